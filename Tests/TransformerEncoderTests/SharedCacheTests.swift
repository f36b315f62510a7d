import Synchronization
import Testing
@testable import TransformerModel

/// What a model version makes once and its instances share (the CPU
/// engine's prepared weights, one device copy per GPU): made once per key,
/// shared while any holder lives, made again after the last one goes.
@Suite struct SharedCacheTests {
    final class Copy: Sendable {
        let key: String
        init(_ key: String) { self.key = key }
    }

    @Test func instancesOfOneKeyShareOneValueMadeOnce() throws {
        let cache = SharedCache<Copy>()
        let made = Mutex(0)
        func instance(_ key: String) -> Copy {
            cache.value(for: key) {
                made.withLock { $0 += 1 }
                return Copy(key)
            }
        }
        var first: Copy? = instance("m|files|gpu 0|tf32")
        let second = instance("m|files|gpu 0|tf32")
        let otherDevice = instance("m|files|gpu 1|tf32")
        #expect(first === second && first !== otherDevice)
        #expect(made.withLock { $0 } == 2 && cache.liveCount == 2)
        first = nil
        #expect(cache.liveCount == 2, "still held by the second instance")
        withExtendedLifetime(second) {}
    }

    @Test func aValueGoesWithItsLastHolderAndIsMadeAgain() {
        let cache = SharedCache<Copy>()
        let made = Mutex(0)
        var held: Copy? = cache.value(for: "k") { made.withLock { $0 += 1 }; return Copy("k") }
        #expect(cache.liveCount == 1)
        held = nil
        #expect(cache.liveCount == 0)
        held = cache.value(for: "k") { made.withLock { $0 += 1 }; return Copy("k") }
        #expect(made.withLock { $0 } == 2 && held != nil)
    }

    @Test func aFailedMakeCachesNothing() {
        struct Refused: Error {}
        let cache = SharedCache<Copy>()
        #expect(throws: Refused.self) { try cache.value(for: "k") { throw Refused() } }
        #expect(cache.liveCount == 0)
    }
}
