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
    /// Server names are looked up again this often, and soon after an
    /// endpoint fails (a restarted pod may come back at another address);
    /// nil: only at the start.
    public var lookupInterval: Duration? = .seconds(30)
    public var lookup = AddressLookup()
    /// KServe's request priority for every row (bulk work: a lower level than interactive traffic).
    public var priority: UInt64?
    /// Sent as `authorization: Bearer` on every call.
    public var token: String?
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
    /// Rows that failed every retryable attempt: not written, a rerun sends them again.
    public var abandoned = 0
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
    let servers: [ServerName]
    let progress: ProgressReporter
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant

    public init(options: BulkJobOptions, servers: [ServerName], progress: ProgressReporter) {
        self.options = options
        self.servers = servers
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
        case statistics([Int: Inference_ModelStatisticsResponse])
        case resolved([ServerName: [String]?])
        /// A connection's task ended (it was stopped).
        case closed
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
        // What shapes the output's lines: a rerun with other values would mix two kinds.
        let job = "model=\(options.model) input=\(options.input) classes=\(options.classes.map(String.init) ?? "-") "
            + "fields=\(options.fields.id),\(options.fields.text),\(options.fields.inputIDs) ordered=\(options.ordered)"
        let journal = try ResultJournal(paths: .init(output: options.output, errors: options.errors), job: job, restart: options.restart)
        summary.resumed = journal.resumedRows
        // Endpoints and their connections, index for index; both only grow.
        var pool = EndpointPool()
        var connections: [KServeConnection] = []
        let names = servers.filter { !$0.isAddressLiteral }
        let found = await options.lookup.addresses(of: names)
        for server in servers {
            if server.isAddressLiteral {
                _ = pool.add(host: server.host, port: server.port)
            } else if let addresses = found[server] ?? nil {
                _ = pool.update(server, addresses: addresses)
            } else {
                throw BulkJobError.server("--server '\(server)': cannot resolve '\(server.host)'")
            }
        }
        func connect(_ index: Int) throws -> KServeConnection {
            let endpoint = pool.endpoints[index]
            let connection = try KServeConnection(host: endpoint.host, port: endpoint.port, timeout: options.callTimeout,
                                                  compress: options.compress, token: options.token)
            connections.append(connection)
            return connection
        }
        for index in pool.endpoints.indices { _ = try connect(index) }
        var reader: any RowReader = options.input.lowercased().hasSuffix(".csv")
            ? try CSVReader(path: options.input, fields: options.fields)
            : try JSONLinesReader(path: options.input, fields: options.fields)
        let total = RowCounter.lines(in: options.input).map { options.input.lowercased().hasSuffix(".csv") ? max($0 - 1, 0) : $0 }
        var window = InFlightWindow(initial: options.inFlight ?? 8 * connections.count, maximum: options.inFlight ?? options.maxInFlight,
                                    fixed: options.inFlight != nil)
        var order = OrderedWriter(ordered: options.ordered)
        var finished = Set<Int>()
        var seen = Set<String>()
        var waiting: [Waiting] = []
        var inFlight = 0
        var inputEnded = false
        var lastCommit = now
        var lastProgress = now
        var previousStatistics: [Int: Inference_ModelStatistics] = [:]
        var statisticsPending = false
        var lookupPending = false, lookupWanted = false
        var lastLookup = now
        var stopping = false
        var abandoned = 0

        /// Records a row's outcome once (by input position) and writes what the order allows.
        func record(index: Int, _ entry: OrderedWriter.Entry) throws {
            guard finished.insert(index).inserted else { return }
            order.add(index: index, entry: entry)
            for ready in order.drain() {
                switch ready {
                case .result(let bytes): try journal.writeResult(bytes); summary.succeeded += 1
                case .error(let id, let index, let reason): try journal.writeError(id: id, index: index, reason: reason); summary.errors += 1
                case .skipped: break
                }
            }
        }

        func finish(index: Int, id: String, line: [UInt8]?, error: String?) throws {
            lastProgress = now
            try record(index: index, line.map { .result($0) } ?? .error(id, index, error ?? "error"))
        }

        /// The next row from the input, or nil (the input is over, or the row was handled here).
        func readRow() throws -> Waiting? {
            guard let result = try reader.next() else {
                inputEnded = true
                return nil
            }
            summary.rows += 1
            let (index, id): (Int, String)
            switch result {
            case .failure(let problem): (index, id) = (problem.index, problem.id)
            case .success(let row): (index, id) = (row.index, row.id)
            }
            if journal.done.contains(id) {
                // Done in an earlier run: only the order moves on.
                try record(index: index, .skipped)
                return nil
            }
            guard seen.insert(id).inserted else {
                try finish(index: index, id: id, line: nil, error: "duplicate id '\(id)' (row \(index + 1)); ids must be unique")
                return nil
            }
            switch result {
            case .failure(let problem):
                try finish(index: index, id: id, line: nil, error: problem.reason)
                return nil
            case .success(let row):
                return Waiting(row: row, attempt: 1, notBefore: 0)
            }
        }

        /// Stops a retired endpoint's connection once nothing is in flight on it.
        func closeIfIdle(_ index: Int) {
            if pool.endpoints[index].retired, pool.endpoints[index].inFlight == 0 { connections[index].stop() }
        }

        try await withThrowingTaskGroup(of: Event.self) { group in
            func keepRunning(_ connection: KServeConnection) {
                group.addTask {
                    try? await connection.run()
                    return .closed
                }
            }
            connections.forEach(keepRunning)
            defer { connections.forEach { $0.stop() } }
            let messages = KServeMessages(model: try await modelShape(connections), classes: options.classes, priority: options.priority)
            group.addTask { try await Task.sleep(for: .milliseconds(250)); return .tick }
            while true {
                // Send while the window allows: retries first; new rows only
                // while the reorder buffer (--ordered) is within its bound.
                while !stopping, inFlight < window.size {
                    let at = now
                    var next: Waiting?
                    if let ready = waiting.firstIndex(where: { $0.notBefore <= at }) {
                        next = waiting.remove(at: ready)
                    } else if !inputEnded, order.pending < 4 * max(window.size, 64) {
                        next = try readRow()
                        if next == nil { if inputEnded { break } else { continue } }
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
                        try finish(index: item.row.index, id: item.row.id, line: nil, error: (error as? RowProblem)?.reason ?? "\(error)")
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
                    summary.stoppedEarly = summary.stoppedEarly ?? "stopped by a signal; rerun the same command to continue"
                    break
                }
                guard let event = try await group.next() else { break }
                switch event {
                case .answered(let row, let endpoint, let attempt, let result):
                    inFlight -= 1
                    defer { closeIfIdle(endpoint) }
                    switch result {
                    case .success(let response):
                        pool.succeeded(endpoint)
                        do {
                            try finish(index: row.index, id: row.id, line: try messages.line(for: row, response: response), error: nil)
                        } catch let error as BulkJobError {
                            throw error
                        } catch {
                            try finish(index: row.index, id: row.id, line: nil, error: "\(error)")
                        }
                    case .failure(let failure):
                        switch RetryPolicy.verdict(for: failure.error) {
                        case .rowError(let reason):
                            pool.succeeded(endpoint)
                            try finish(index: row.index, id: row.id, line: nil, error: reason)
                        case .stopJob(let reason):
                            pool.succeeded(endpoint)
                            // The row is not written: a rerun sends it again once the cause is fixed.
                            waiting.append(Waiting(row: row, attempt: attempt, notBefore: 0))
                            if !stopping { summary.stoppedEarly = "\(reason) (from \(connections[endpoint].address)); fix it and rerun the same command" }
                            stopping = true
                        case .wait(let seconds):
                            // Nothing more goes there until the wait is over (other endpoints go on).
                            pool.hold(endpoint, until: now + seconds)
                            summary.retries += 1
                            waiting.append(Waiting(row: row, attempt: attempt, notBefore: now + seconds))
                        case .retry(let suspect, let bound):
                            if suspect {
                                pool.failed(endpoint, now: now)
                                lookupWanted = true
                            } else {
                                pool.released(endpoint)
                            }
                            summary.retries += 1
                            if let bound, attempt >= bound {
                                try finish(index: row.index, id: row.id, line: nil, error: "\(failure.error) (after \(attempt) attempts)")
                            } else if attempt >= options.maxAttempts {
                                // Not written: the rerun tries it again.
                                abandoned += 1
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
                        let active = pool.endpoints.indices.filter { !pool.endpoints[$0].retired }.map { ($0, connections[$0]) }
                        let model = options.model
                        group.addTask {
                            var results: [Int: Inference_ModelStatisticsResponse] = [:]
                            for (index, connection) in active { results[index] = try? await connection.statistics(model: model) }
                            return .statistics(results)
                        }
                    }
                    // Names again: on the timer, and within a second of a failure.
                    if !lookupPending, !names.isEmpty, let interval = options.lookupInterval,
                       at - lastLookup >= Self.seconds(interval) || (lookupWanted && at - lastLookup >= 1) {
                        lookupPending = true
                        lookupWanted = false
                        lastLookup = at
                        let lookup = options.lookup
                        group.addTask { .resolved(await lookup.addresses(of: names)) }
                    }
                    group.addTask { try await Task.sleep(for: .milliseconds(250)); return .tick }
                case .statistics(let responses):
                    statisticsPending = false
                    var sample = InFlightWindow.Sample(queueNanoseconds: 0, computeNanoseconds: 0, requests: 0)
                    var queue = 0.0, compute = 0.0
                    for (index, response) in responses {
                        guard let stats = response.modelStats.last else { continue }
                        // A restarted server counts from zero again: that interval only sets the baseline.
                        if let before = previousStatistics[index],
                           stats.inferenceStats.success.count > before.inferenceStats.success.count,
                           stats.inferenceStats.queue.ns >= before.inferenceStats.queue.ns,
                           stats.inferenceStats.computeInfer.ns >= before.inferenceStats.computeInfer.ns {
                            sample.requests += min(Int(clamping: stats.inferenceStats.success.count - before.inferenceStats.success.count), 1 << 40)
                            queue += Double(stats.inferenceStats.queue.ns - before.inferenceStats.queue.ns)
                            compute += Double(stats.inferenceStats.computeInfer.ns - before.inferenceStats.computeInfer.ns)
                        }
                        previousStatistics[index] = stats
                    }
                    if sample.requests > 0 {
                        sample.queueNanoseconds = queue / Double(sample.requests)
                        // Compute per request is per batch member; per execution is what a queued request waits for.
                        sample.computeNanoseconds = compute / Double(sample.requests)
                        window.adjust(sample, inFlight: inFlight)
                    }
                case .resolved(let found):
                    lookupPending = false
                    for name in names {
                        // A failed lookup (the DNS server away, every pod down) keeps what there is.
                        guard let addresses = found[name] ?? nil else { continue }
                        let (added, retired) = pool.update(name, addresses: addresses)
                        for index in added { keepRunning(try connect(index)) }
                        retired.forEach(closeIfIdle)
                    }
                case .closed:
                    break
                }
                if summary.stoppedEarly != nil { break }
            }
            group.cancelAll()
        }
        try journal.commit()
        if abandoned > 0, summary.stoppedEarly == nil {
            summary.stoppedEarly = "\(abandoned) rows failed \(options.maxAttempts) retryable attempts; rerun the same command to try them again"
        }
        if order.pending > 0, summary.stoppedEarly == nil {
            summary.stoppedEarly = "\(order.pending) finished rows wait for an earlier row (--ordered); rerun the same command"
        }
        summary.abandoned = abandoned
        summary.seconds = now
        summary.rowsPerSecond = summary.seconds > 0 ? Double(summary.succeeded + summary.errors) / summary.seconds : 0
        summary.finalWindow = window.size
        for endpoint in pool.endpoints {
            // An address that left and came back was two endpoints: one line.
            summary.completedByEndpoint[endpoint.address, default: 0] += endpoint.completed
            summary.failuresByEndpoint[endpoint.address, default: 0] += endpoint.failures
        }
        progress.finish(.init(done: summary.succeeded + summary.errors + summary.resumed, total: total, errors: summary.errors,
                              retries: summary.retries, inFlight: 0, window: window.size, elapsed: summary.seconds))
        return summary
    }

    /// The model's inputs and outputs, from the first endpoint that answers.
    private func modelShape(_ connections: [KServeConnection]) async throws -> ModelShape {
        var lastError: (any Error)?
        let deadline = clock.now + options.giveUpAfter
        while clock.now < deadline {
            for connection in connections {
                do {
                    return try ModelShape(metadata: try await connection.metadata(model: options.model))
                } catch let error as BulkJobError {
                    throw error
                } catch {
                    switch RetryPolicy.verdict(for: error) {
                    case .rowError(let reason), .stopJob(let reason):
                        // Not found, refused token: asking again will not help.
                        throw BulkJobError.server("model metadata for '\(options.model)' from \(connection.address): \(reason)")
                    case .retry, .wait:
                        lastError = error
                    }
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
