import Foundation
import InferenceCore
import Synchronization
import Testing
@testable import AccessControl

final class ManualDuration: Sendable {
    private let value = Mutex(Duration.zero)
    func advance(_ by: Duration) { value.withLock { $0 += by } }
    var now: @Sendable () -> Duration { { [self] in value.withLock { $0 } } }
}

@Suite struct PrincipalLimitsTests {
    @Test func theBucketRefillsAtTheRateAndSaysWhenToComeBack() throws {
        let time = ManualDuration()
        let limiter = PrincipalLimiter(limits: ["bulk": PrincipalLimit(requests_per_second: 2, burst: 2)], now: time.now)
        try limiter.admit("bulk").release()
        try limiter.admit("bulk").release()
        do {
            _ = try limiter.admit("bulk")
            Issue.record("a third request within the burst was admitted")
        } catch let error as InferenceError {
            #expect(error.code == .resourceExhausted && error.retryAfter == .milliseconds(500))
            #expect(error.message.contains("token 'bulk' is limited to 2 inference requests per second"))
        }
        time.advance(.milliseconds(500))
        try limiter.admit("bulk").release()
        // Others, and callers without a token, are not limited.
        for _ in 0..<10 { try limiter.admit("clinical").release(); try limiter.admit(nil).release() }
    }

    @Test func aRequestWhoseClockReadingIsOlderThanTheLastRefillIsServedNotCrashed() throws {
        // Two requests read the clock, the later one takes the lock first.
        let readings = Mutex([Duration.milliseconds(10), .milliseconds(9), .milliseconds(9)])
        let limiter = PrincipalLimiter(limits: ["bulk": PrincipalLimit(requests_per_second: 1000, burst: 5)],
                                       now: { readings.withLock { $0.removeFirst() } })
        for _ in 0..<3 { try limiter.admit("bulk").release() }
        #expect(Duration.microseconds(-500).nanosecondsClamped == 0)
        #expect(Duration.seconds(-2).nanosecondsClamped == 0)
        #expect(Duration.microseconds(1500).nanosecondsClamped == 1_500_000)
    }

    @Test func inFlightRequestsAreCappedAndFreedOnRelease() throws {
        let limiter = PrincipalLimiter(limits: ["bulk": PrincipalLimit(max_concurrent: 2)])
        let one = try limiter.admit("bulk")
        let two = try limiter.admit("bulk")
        #expect(throws: InferenceError.self) { try limiter.admit("bulk") }
        one.release()
        let three = try limiter.admit("bulk")
        two.release()
        three.release()
    }

    @Test func theTokensFileCarriesLimits() throws {
        let json = """
        {"tokens": [{"name": "bulk", "token": "0123456789abcdef-bulk", "groups": ["inference"],
                     "limits": {"requests_per_second": 5, "max_concurrent": 2}},
                    {"name": "app", "token": "0123456789abcdef-app", "groups": ["inference"]}]}
        """
        let policy = try AccessPolicy(json: Data(json.utf8), source: "tokens.json", openHealth: true)
        #expect(policy.limiter.limits == ["bulk": PrincipalLimit(requests_per_second: 5, max_concurrent: 2)])
        let bad = json.replacingOccurrences(of: "\"max_concurrent\": 2", with: "\"max_concurrent\": 0")
        #expect(throws: InferenceError.self) { try AccessPolicy(json: Data(bad.utf8), source: "tokens.json", openHealth: true) }
    }
}
