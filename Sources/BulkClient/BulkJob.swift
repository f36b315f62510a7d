import Foundation
import TritonProto

/// What `batch-server-client run` was asked to do.
public struct BulkJobOptions: Sendable {
    public var model: String
    public var input: String
    public var output: String
    public var errors: String?
    public var fields = FieldNames()
    public var ordered = false
    public var classes: Int?
    /// nil: sized from the server's queue time; a number: fixed.
    public var inFlight: Int?
    public var maxInFlight = 256
    public var restart = false
    public var compress = false
    public var callTimeout: Duration = .seconds(60)
    /// A row is given up (into the errors file) after this many attempts.
    public var maxAttempts = 100
    /// The job stops (resumable) when no endpoint has answered for this long.
    public var giveUpAfter: Duration = .seconds(300)
    public var commitInterval: Duration = .seconds(1)
    /// Polled on every tick: once true, no new rows are sent, those in flight
    /// finish and are committed, and the job ends resumable (SIGTERM, SIGINT).
    public var stopRequested: @Sendable () -> Bool = { false }

    public init(model: String, input: String, output: String) {
        self.model = model
        self.input = input
        self.output = output
    }
}

/// The figures of a finished (or stopped) job, as `--summary-json` writes them.
public struct BulkJobSummary: Sendable, Codable {
    public var rows = 0
    public var succeeded = 0
    public var errors = 0
    public var resumed = 0
    public var retries = 0
    public var seconds = 0.0
    public var rowsPerSecond = 0.0
    public var completedByEndpoint: [String: Int] = [:]
    public var failuresByEndpoint: [String: Int] = [:]
    public var finalWindow = 0
    public var stoppedEarly: String?
}

/// Pushes every row of the input through the servers and writes each result
/// once. One loop owns all state (rows waiting, in flight, the writer); the
/// calls run as child tasks and report back to it.
public final class BulkJob {
    let options: BulkJobOptions
    let connections: [KServeConnection]
    let progress: ProgressReporter
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant

    public init(options: BulkJobOptions, connections: [KServeConnection], progress: ProgressReporter) {
        self.options = options
        self.connections = connections
        self.progress = progress
        started = clock.now
    }

    private var now: Double { Self.seconds(clock.now - started) }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    enum Event: Sendable {
        case answered(row: InputRow, endpoint: Int, attempt: Int, result: Result<Inference_ModelInferResponse, Failure>)
        case tick
        case statistics([Inference_ModelStatisticsResponse?])
    }

    struct Failure: Error, Sendable {
        let error: any Error
    }

    struct Waiting {
        var row: InputRow
        var attempt: Int
        var notBefore: Double
    }

    public func run() async throws -> BulkJobSummary {
        var summary = BulkJobSummary()
        let job = "model=\(options.model) input=\(options.input)"
        let journal = try ResultJournal(paths: .init(output: options.output, errors: options.errors), job: job, restart: options.restart)
        summary.resumed = journal.resumedRows
        let shape = try await modelShape()
        let messages = KServeMessages(model: shape, classes: options.classes)
        var reader: any RowReader = options.input.lowercased().hasSuffix(".csv")
            ? try CSVReader(path: options.input, fields: options.fields)
            : try JSONLinesReader(path: options.input, fields: options.fields)
        let total = RowCounter.lines(in: options.input).map { options.input.lowercased().hasSuffix(".csv") ? max($0 - 1, 0) : $0 }
        var window = InFlightWindow(initial: options.inFlight ?? 8 * connections.count, maximum: options.inFlight ?? options.maxInFlight,
                                    fixed: options.inFlight != nil)
        var pool = EndpointPool(addresses: connections.map(\.address))
        var order = OrderedWriter(ordered: options.ordered)
        var written = Set<String>()
        var seen = Set<String>()
        var waiting: [Waiting] = []
        var inFlight = 0
        var inputEnded = false
        var lastCommit = now
        var lastProgress = now
        var previousStatistics: [Inference_ModelStatistics?] = Array(repeating: nil, count: connections.count)
        var statisticsPending = false
        var stopping = false

        func finish(_ row: InputRow, line: [UInt8]?, error: String?) {
            guard written.insert(row.id).inserted else { return }
            lastProgress = now
            order.add(index: row.index, entry: line.map { .result($0) } ?? .error(row.id, row.index, error ?? "error"))
            for entry in order.drain() {
                switch entry {
                case .result(let bytes): journal.writeResult(bytes); summary.succeeded += 1
                case .error(let id, let index, let reason): journal.writeError(id: id, index: index, reason: reason); summary.errors += 1
                case .skipped: break
                }
            }
        }

        try await withThrowingTaskGroup(of: Event.self) { group in
            group.addTask { try await Task.sleep(for: .milliseconds(250)); return .tick }
            while true {
                // Send while the window and the reorder bound allow.
                while !stopping, inFlight < window.size, order.pending < 4 * max(window.size, 64) {
                    let at = now
                    var next: Waiting?
                    if let ready = waiting.firstIndex(where: { $0.notBefore <= at }) {
                        next = waiting.remove(at: ready)
                    } else if !inputEnded {
                        guard let result = try reader.next() else { inputEnded = true; continue }
                        switch result {
                        case .failure(let problem):
                            summary.rows += 1
                            if journal.done.contains(problem.id) { order.add(index: problem.index, entry: .skipped); continue }
                            finish(InputRow(index: problem.index, id: problem.id), line: nil, error: problem.reason)
                            continue
                        case .success(let row):
                            summary.rows += 1
                            if journal.done.contains(row.id) {
                                order.add(index: row.index, entry: .skipped)
                                _ = order.drain()
                                continue
                            }
                            guard seen.insert(row.id).inserted else {
                                finish(InputRow(index: row.index, id: row.id + "#\(row.index)"), line: nil,
                                       error: "duplicate id '\(row.id)' (row \(row.index + 1)); ids must be unique")
                                continue
                            }
                            next = Waiting(row: row, attempt: 1, notBefore: 0)
                        }
                    }
                    guard let item = next else { break }
                    guard let endpoint = pool.pick(now: at) else {
                        waiting.insert(item, at: 0)
                        break
                    }
                    let request: Inference_ModelInferRequest
                    do {
                        request = try messages.request(for: item.row)
                    } catch {
                        finish(item.row, line: nil, error: (error as? RowProblem)?.reason ?? "\(error)")
                        continue
                    }
                    pool.started(endpoint)
                    inFlight += 1
                    let connection = connections[endpoint]
                    let row = item.row, attempt = item.attempt
                    group.addTask {
                        do {
                            return .answered(row: row, endpoint: endpoint, attempt: attempt, result: .success(try await connection.infer(request)))
                        } catch {
                            return .answered(row: row, endpoint: endpoint, attempt: attempt, result: .failure(Failure(error: error)))
                        }
                    }
                }
                if inputEnded && waiting.isEmpty && inFlight == 0 { break }
                if stopping && inFlight == 0 {
                    summary.stoppedEarly = "stopped by a signal; rerun the same command to continue"
                    break
                }
                guard let event = try await group.next() else { break }
                switch event {
                case .answered(let row, let endpoint, let attempt, let result):
                    inFlight -= 1
                    switch result {
                    case .success(let response):
                        pool.succeeded(endpoint)
                        do {
                            finish(row, line: try messages.line(for: row, response: response), error: nil)
                        } catch {
                            finish(row, line: nil, error: "\(error)")
                        }
                    case .failure(let failure):
                        switch RetryPolicy.verdict(for: failure.error) {
                        case .rowError(let reason):
                            pool.answered(endpoint)
                            finish(row, line: nil, error: reason)
                        case .retry:
                            pool.failed(endpoint, now: now)
                            summary.retries += 1
                            if attempt >= options.maxAttempts {
                                finish(row, line: nil, error: "gave up after \(attempt) attempts: \(failure.error)")
                            } else {
                                let delay = min(2.0, 0.05 * Double(attempt))
                                waiting.append(Waiting(row: row, attempt: attempt + 1, notBefore: now + delay))
                            }
                        }
                    }
                case .tick:
                    let at = now
                    if options.stopRequested() { stopping = true }
                    if journal.hasUncommitted, at - lastCommit >= Self.seconds(options.commitInterval) {
                        try journal.commit()
                        lastCommit = at
                    }
                    progress.update(.init(done: summary.succeeded + summary.errors + summary.resumed, total: total,
                                          errors: summary.errors, retries: summary.retries, inFlight: inFlight,
                                          window: window.size, elapsed: at))
                    if inFlight > 0 || !waiting.isEmpty, at - lastProgress > Self.seconds(options.giveUpAfter) {
                        summary.stoppedEarly = "no endpoint answered for \(options.giveUpAfter); rerun the same command to continue"
                        group.cancelAll()
                        break
                    }
                    if !statisticsPending, !window.fixed {
                        statisticsPending = true
                        let connections = self.connections, model = options.model
                        group.addTask {
                            var results: [Inference_ModelStatisticsResponse?] = []
                            for connection in connections { results.append(try? await connection.statistics(model: model)) }
                            return .statistics(results)
                        }
                    }
                    group.addTask { try await Task.sleep(for: .milliseconds(250)); return .tick }
                case .statistics(let responses):
                    statisticsPending = false
                    var sample = InFlightWindow.Sample(queueNanoseconds: 0, computeNanoseconds: 0, requests: 0)
                    var queue = 0.0, compute = 0.0
                    for (index, response) in responses.enumerated() {
                        guard let stats = response?.modelStats.last else { continue }
                        if let before = previousStatistics[index] {
                            let count = Int(stats.inferenceStats.success.count) - Int(before.inferenceStats.success.count)
                            if count > 0 {
                                sample.requests += count
                                queue += Double(stats.inferenceStats.queue.ns &- before.inferenceStats.queue.ns)
                                compute += Double(stats.inferenceStats.computeInfer.ns &- before.inferenceStats.computeInfer.ns)
                            }
                        }
                        previousStatistics[index] = stats
                    }
                    if sample.requests > 0 {
                        sample.queueNanoseconds = queue / Double(sample.requests)
                        // Compute per request is per batch member; per execution is what a queued request waits for.
                        sample.computeNanoseconds = compute / Double(sample.requests)
                        window.adjust(sample, inFlight: inFlight)
                    }
                }
                if summary.stoppedEarly != nil { break }
            }
            group.cancelAll()
        }
        try journal.commit()
        summary.seconds = now
        summary.rowsPerSecond = summary.seconds > 0 ? Double(summary.succeeded + summary.errors) / summary.seconds : 0
        summary.finalWindow = window.size
        for endpoint in pool.endpoints {
            summary.completedByEndpoint[endpoint.address] = endpoint.completed
            summary.failuresByEndpoint[endpoint.address] = endpoint.failures
        }
        progress.finish(.init(done: summary.succeeded + summary.errors + summary.resumed, total: total, errors: summary.errors,
                              retries: summary.retries, inFlight: 0, window: window.size, elapsed: summary.seconds))
        return summary
    }

    /// The model's inputs and outputs, from the first endpoint that answers.
    private func modelShape() async throws -> ModelShape {
        var lastError: (any Error)?
        let deadline = clock.now + options.giveUpAfter
        while clock.now < deadline {
            for connection in connections {
                do {
                    return try ModelShape(metadata: try await connection.metadata(model: options.model))
                } catch let error as BulkJobError {
                    throw error
                } catch {
                    if case .rowError(let reason) = RetryPolicy.verdict(for: error) {
                        throw BulkJobError.server("model metadata for '\(options.model)' from \(connection.address): \(reason)")
                    }
                    lastError = error
                }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        throw BulkJobError.server("no server answered model metadata for '\(options.model)': \(lastError.map { "\($0)" } ?? "timeout")")
    }
}

/// Holds finished rows until they can be written: in input order
/// (`--ordered`), or at once.
struct OrderedWriter {
    enum Entry {
        case result([UInt8])
        case error(String, Int, String)
        /// Done in an earlier run: only advances the order.
        case skipped
    }

    let ordered: Bool
    private var next = 0
    private var held: [Int: Entry] = [:]
    private var ready: [Entry] = []

    init(ordered: Bool) { self.ordered = ordered }

    /// Rows finished but not yet written (the reorder buffer's size).
    var pending: Int { held.count }

    mutating func add(index: Int, entry: Entry) {
        guard ordered else {
            ready.append(entry)
            return
        }
        held[index] = entry
    }

    mutating func drain() -> [Entry] {
        if ordered {
            while let entry = held.removeValue(forKey: next) {
                ready.append(entry)
                next += 1
            }
        }
        defer { ready.removeAll(keepingCapacity: true) }
        return ready
    }
}
