import Foundation
import GRPCCore
import Testing
import TritonProto
@testable import BulkClient

func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "bulk-\(UUID().uuidString)-" + name
}

func write(_ text: String, to name: String) throws -> String {
    let path = temporaryPath(name)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

func readAll(_ reader: inout some RowReader) throws -> [Result<InputRow, RowProblem>] {
    var rows: [Result<InputRow, RowProblem>] = []
    while let row = try reader.next() { rows.append(row) }
    return rows
}

@Suite struct InputReaderTests {
    @Test func jsonLinesWithTextAndTokenIDs() throws {
        let path = try write("""
        {"id": "a", "text": "chest pain, resolved"}
        {"id": 7, "input_ids": [101, 2023, 102]}

        not json
        {"text": "no id"}
        {"id": "b", "input_ids": [1.5]}
        {"id": "c"}
        """, to: "in.jsonl")
        var reader = try JSONLinesReader(path: path, fields: FieldNames())
        let rows = try readAll(&reader)
        #expect(rows.count == 6)
        #expect(try rows[0].get() == InputRow(index: 0, id: "a", text: "chest pain, resolved"))
        #expect(try rows[1].get() == InputRow(index: 1, id: "7", inputIDs: [101, 2023, 102]))
        guard case .failure(let notJSON) = rows[2], case .failure(let noID) = rows[3], case .failure(let fractional) = rows[4],
              case .failure(let empty) = rows[5] else {
            Issue.record("rows 3-6 should be problems")
            return
        }
        #expect(notJSON.reason.contains("not a JSON object"))
        #expect(noID.reason.contains("has no 'id'"))
        #expect(fractional.id == "b" && fractional.reason.contains("list of integers"))
        #expect(empty.reason.contains("neither"))
    }

    @Test func csvWithQuotesNewlinesAndCustomFields() throws {
        let path = try write("note_id,body,tokens\r\n1,\"She said \"\"fine\"\", then\nleft\",\n2,,101 7 102\n3,plain,\"[5, 6]\"\n", to: "in.csv")
        var reader = try CSVReader(path: path, fields: FieldNames(id: "note_id", text: "body", inputIDs: "tokens"))
        let rows = try readAll(&reader).map { try $0.get() }
        #expect(rows == [
            InputRow(index: 0, id: "1", text: "She said \"fine\", then\nleft"),
            InputRow(index: 1, id: "2", inputIDs: [101, 7, 102]),
            InputRow(index: 2, id: "3", text: "plain", inputIDs: [5, 6]),
        ])
    }

    @Test func csvWithoutTheIDColumnIsRefused() throws {
        let path = try write("name,text\nx,y\n", to: "in.csv")
        #expect(throws: BulkJobError.self) { _ = try CSVReader(path: path, fields: FieldNames()) }
    }

    @Test func countsRowsWithoutATrailingNewline() throws {
        #expect(RowCounter.lines(in: try write("a\nb\nc", to: "n.txt")) == 3)
        #expect(RowCounter.lines(in: try write("a\nb\n", to: "n.txt")) == 2)
    }
}

@Suite struct ResultJournalTests {
    @Test func aRerunCutsBackToTheLastCommitAndKnowsWhatIsDone() throws {
        let output = temporaryPath("out.jsonl")
        do {
            let journal = try ResultJournal(paths: .init(output: output), job: "job", restart: false)
            try journal.writeResult(Array(#"{"id":"a"}"#.utf8))
            try journal.writeError(id: "b", index: 1, reason: "bad")
            try journal.commit()
            // Written after the last commit, then the process dies: half a line too.
            try journal.writeResult(Array(#"{"id":"c"}"#.utf8))
        }
        let handle = FileHandle(forWritingAtPath: output)!
        handle.seekToEndOfFile()
        handle.write(Data(#"{"id":"d","#.utf8))
        try handle.close()

        let resumed = try ResultJournal(paths: .init(output: output), job: "job", restart: false)
        #expect(resumed.done == ["a", "b"])
        #expect(resumed.resumedRows == 2)
        try resumed.writeResult(Array(#"{"id":"c"}"#.utf8))
        try resumed.commit()
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        #expect(lines == [#"{"id":"a"}"#, #"{"id":"c"}"#])
    }

    @Test func anotherJobsJournalOrAnOutputWithoutOneIsRefused() throws {
        let output = temporaryPath("out.jsonl")
        do { _ = try ResultJournal(paths: .init(output: output), job: "model=a", restart: false) }
        #expect(throws: BulkJobError.self) { _ = try ResultJournal(paths: .init(output: output), job: "model=b", restart: false) }
        _ = try ResultJournal(paths: .init(output: output), job: "model=b", restart: true)

        let orphan = temporaryPath("orphan.jsonl")
        try "{\"id\":\"x\"}\n".write(toFile: orphan, atomically: true, encoding: .utf8)
        #expect(throws: BulkJobError.self) { _ = try ResultJournal(paths: .init(output: orphan), job: "j", restart: false) }
    }
}

@Suite struct WindowAndEndpointTests {
    @Test func theWindowGrowsWhileTheQueueIsShortAndShrinksWhenLong() {
        var window = InFlightWindow(initial: 8, maximum: 64)
        window.adjust(.init(queueNanoseconds: 1e6, computeNanoseconds: 10e6, requests: 100), inFlight: 8)
        #expect(window.size == 10)
        // An idle window does not grow.
        window.adjust(.init(queueNanoseconds: 1e6, computeNanoseconds: 10e6, requests: 100), inFlight: 2)
        #expect(window.size == 10)
        window.adjust(.init(queueNanoseconds: 50e6, computeNanoseconds: 10e6, requests: 100), inFlight: 10)
        #expect(window.size == 8)
        for _ in 0..<50 { window.adjust(.init(queueNanoseconds: 0, computeNanoseconds: 1, requests: 1), inFlight: window.size) }
        #expect(window.size == 64)
        var fixed = InFlightWindow(initial: 4, fixed: true)
        fixed.adjust(.init(queueNanoseconds: 0, computeNanoseconds: 1, requests: 1), inFlight: 4)
        #expect(fixed.size == 4)
    }

    @Test func endpointsAreChosenByInFlightAndBackedOffAfterFailures() {
        var pool = EndpointPool()
        _ = pool.add(host: "10.0.0.1", port: 8001)
        _ = pool.add(host: "10.0.0.2", port: 8001)
        #expect(pool.pick(now: 0) == 0)
        pool.started(0)
        #expect(pool.pick(now: 0) == 1)
        pool.started(1)
        pool.started(1)
        #expect(pool.pick(now: 0) == 0)
        pool.failed(1, now: 0)
        pool.failed(1, now: 0)
        pool.started(0)
        // b is backing off: a is chosen despite more in flight.
        #expect(pool.pick(now: 0.1) == 0)
        pool.failed(0, now: 0)
        pool.failed(0, now: 0)
        #expect(pool.pick(now: 0.05) == nil)
        #expect(pool.pick(now: 10) != nil)
        pool.succeeded(1)
        #expect(pool.endpoints[1].consecutiveFailures == 0)
    }

    @Test func aNameFollowsItsAddressesAndRetiredEndpointsTakeNoNewRequests() throws {
        let name = try ServerName(parsing: "pods.example:8001")
        #expect(!name.isAddressLiteral)
        #expect(try ServerName(parsing: "[::1]:8001").isAddressLiteral)
        #expect(try ServerName(parsing: "[::1]:8001").description == "[::1]:8001")
        #expect(throws: BulkJobError.self) { try ServerName(parsing: "pods.example") }
        #expect(throws: BulkJobError.self) { try ServerName(parsing: ":8001") }

        var pool = EndpointPool()
        _ = pool.add(host: "10.0.0.9", port: 9000)
        let change1 = pool.update(name, addresses: ["10.0.0.1", "10.0.0.2"])
        #expect(change1.added == [1, 2] && change1.retired == [])
        #expect(pool.endpoints.map(\.address) == ["10.0.0.9:9000", "10.0.0.1:8001", "10.0.0.2:8001"])
        pool.started(1)
        // A rolling restart: the first pod comes back at a new address.
        let change2 = pool.update(name, addresses: ["10.0.0.3", "10.0.0.2"])
        #expect(change2.added == [3] && change2.retired == [1])
        #expect(pool.endpoints[1].retired && pool.endpoints[1].inFlight == 1)
        #expect(pool.pick(now: 0) != 1)
        // The same answer again changes nothing; the literal endpoint is never touched.
        let change3 = pool.update(name, addresses: ["10.0.0.2", "10.0.0.3"])
        #expect(change3.added == [] && change3.retired == [])
        // An address that comes back is a new endpoint (the old one's connection is gone).
        let change4 = pool.update(name, addresses: ["10.0.0.1"])
        #expect(change4.added == [4] && change4.retired == [2, 3])
        #expect(pool.endpoints.filter { !$0.retired }.map(\.address) == ["10.0.0.9:9000", "10.0.0.1:8001"])
        pool.failed(0, now: 0)
        #expect(pool.pick(now: 0) == 4)
        // A rate limit holds an endpoint for its wait without counting a failure.
        pool.started(0)
        pool.hold(0, until: 3)
        pool.started(4)
        pool.hold(4, until: 2)
        #expect(pool.endpoints[4].inFlight == 0 && pool.endpoints[4].failures == 0)
        #expect(pool.pick(now: 1.9) == nil)
        #expect(pool.pick(now: 2) == 4)
    }

    @Test func aRateLimitIsWaitedOutAsAskedAndAnOversizedRequestIsNot() {
        let limited = RPCError(code: .resourceExhausted, message: "token 'bulk' is limited to 4 inference requests per second; retry after 0.25 s")
        #expect(RetryPolicy.verdict(for: limited) == .wait(0.25))
        #expect(RetryPolicy.verdict(for: RPCError(code: .resourceExhausted, message: "message too large"))
            == .retry(endpointSuspect: false, maxAttempts: 3))
        #expect(RetryPolicy.retryAfter("...; retry after 90 s") == 30)
        #expect(RetryPolicy.retryAfter("no wait named") == nil)
    }

    @Test func everyRequestCarriesThePriorityAskedFor() throws {
        let metadata = Inference_ModelMetadataResponse.with {
            $0.name = "m"
            $0.inputs = [.with { $0.name = "TEXT"; $0.datatype = "BYTES"; $0.shape = [-1, 1] }]
            $0.outputs = [.with { $0.name = "LOGITS"; $0.datatype = "FP32"; $0.shape = [-1, 2] }]
        }
        let row = InputRow(index: 0, id: "a", text: "x", inputIDs: nil)
        let bulk = try KServeMessages(model: ModelShape(metadata: metadata), classes: nil, priority: 2).request(for: row)
        #expect(bulk.parameters["priority"]?.uint64Param == 2)
        let plain = try KServeMessages(model: ModelShape(metadata: metadata), classes: nil).request(for: row)
        #expect(plain.parameters["priority"] == nil)
    }

    @Test func orderedOutputWaitsForTheNextRow() {
        var order = OrderedWriter(ordered: true)
        order.add(index: 1, entry: .result([1]))
        #expect(order.drain().isEmpty && order.pending == 1)
        order.add(index: 0, entry: .skipped)
        #expect(order.drain().count == 2 && order.pending == 0)
        var unordered = OrderedWriter(ordered: false)
        unordered.add(index: 5, entry: .result([5]))
        #expect(unordered.drain().count == 1)
    }

    @Test func progressLineNamesCountsRateAndETA() {
        let line = ProgressReporter.line(.init(done: 150, total: 200, errors: 2, retries: 1, inFlight: 8, window: 16, elapsed: 10), since: 50)
        #expect(line == "150/200 rows (75.0%) 10.0 rows/s ETA 5s errors 2 retries 1 in flight 8/16")
    }
}
