#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BulkClient
import Foundation

/// `batch-server-client`: bulk jobs against any KServe v2 (Triton-compatible) gRPC server.
@main
struct BatchServerClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch-server-client",
        abstract: "Bulk inference over KServe v2 gRPC, resumable and exactly once in the output.",
        version: "0.2.0",
        subcommands: [Run.self])
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sends every row of a JSONL or CSV file to MODEL and writes one result line per id.",
        discussion: """
        Rerunning the same command after a crash (of the client or a server) continues where it stopped: \
        the journal beside the output says which rows are done. Exit status: 0 when every row succeeded, \
        1 when some rows are in the errors file, 2 when the job stopped early (rerun to continue), 3 on a usage or setup error.
        """)

    @Argument(help: "The model to call.")
    var model: String

    @Option(help: "Input rows: .jsonl (one JSON object per line) or .csv (header row).")
    var input: String

    @Option(help: "Results, one JSON line per id: {\"id\", \"<OUTPUT>\": [...]}.")
    var output: String

    @Option(help: "Rows that failed with their reason (default: <output>.errors.jsonl).")
    var errors: String?

    @Option(name: .customLong("server"), help: "host:port of a server; repeat for several, or give a name that resolves to all pods (a headless Service).")
    var servers: [String] = ["127.0.0.1:8001"]

    @Option(name: .customLong("id-field")) var idField = "id"
    @Option(name: .customLong("text-field")) var textField = "text"
    @Option(name: .customLong("ids-field"), help: "The field holding token ids (a JSON list; in CSV, space-separated or a JSON list).")
    var idsField = "input_ids"

    @Flag(help: "Write results in input order (default: as they finish).")
    var ordered = false

    @Option(help: "Return the top K classes with labels (Triton's classification extension) instead of the raw first output.")
    var classes: Int?

    @Option(name: .customLong("in-flight"), help: "Requests in flight, fixed (default: sized from the server's queue time).")
    var inFlight: Int?

    @Option(name: .customLong("max-in-flight"), help: "Upper bound of the sized window.")
    var maxInFlight = 256

    @Flag(help: "Discard an existing output, errors file and journal and start over.")
    var restart = false

    @Flag(help: "Compress requests with gzip (grpc-encoding).")
    var compress = false

    @Option(name: .customLong("lookup-secs"),
            help: "Look server names up again this often (and soon after a failure), following pods that restart at new addresses; 0: only at the start.")
    var lookupSecs = 30

    @Option(help: "KServe request priority of every row (1 is the highest level); send bulk work at a lower level than interactive traffic.")
    var priority: UInt64?

    @Option(name: .customLong("token-env"), help: "Environment variable holding a bearer token sent with every call (not on the command line, where ps shows it).")
    var tokenEnv = "BATCHSERVER_TOKEN"

    @Option(name: .customLong("timeout-secs"), help: "Deadline of each call.")
    var timeoutSecs = 60

    @Option(name: .customLong("give-up-secs"), help: "Stop (resumable) when no row finished for this long.")
    var giveUpSecs = 300

    @Option(name: .customLong("max-attempts"), help: "Attempts per row on retryable errors before it goes to the errors file.")
    var maxAttempts = 100

    @Option(help: "Progress output: auto (a live line on a terminal, periodic lines otherwise), terminal, lines, off.")
    var progress: ProgressReporter.Mode = .auto

    @Option(name: .customLong("summary-json"), help: "Write the job's figures here as JSON.")
    var summaryJSON: String?

    func validate() throws {
        if let inFlight, inFlight < 1 { throw ValidationError("--in-flight must be at least 1") }
        if let classes, classes < 1 { throw ValidationError("--classes must be at least 1") }
        guard maxInFlight >= 1 else { throw ValidationError("--max-in-flight must be at least 1") }
        guard !servers.isEmpty else { throw ValidationError("give at least one --server") }
        guard lookupSecs >= 0 else { throw ValidationError("--lookup-secs must be 0 or more") }
        for server in servers {
            do { _ = try ServerName(parsing: server) } catch { throw ValidationError("\(error)") }
        }
    }

    func run() async throws {
        let names = try servers.map(ServerName.init(parsing:))
        var options = BulkJobOptions(model: model, input: input, output: output)
        options.errors = errors
        options.fields = FieldNames(id: idField, text: textField, inputIDs: idsField)
        options.ordered = ordered
        options.classes = classes
        options.inFlight = inFlight
        options.maxInFlight = maxInFlight
        options.restart = restart
        options.compress = compress
        options.callTimeout = .seconds(timeoutSecs)
        options.giveUpAfter = .seconds(giveUpSecs)
        options.maxAttempts = maxAttempts
        options.lookupInterval = lookupSecs > 0 ? .seconds(lookupSecs) : nil
        options.priority = priority
        options.token = ProcessInfo.processInfo.environment[tokenEnv].flatMap { $0.isEmpty ? nil : $0 }
        options.stopRequested = StopSignal.install()
        let summary: BulkJobSummary
        do {
            summary = try await BulkJob(options: options, servers: names, progress: ProgressReporter(mode: progress)).run()
        } catch let error as BulkJobError {
            FileHandle.standardError.write(Data("batch-server-client: \(error)\n".utf8))
            throw ExitCode(3)
        } catch {
            // Exit 1 means "rows in the errors file": anything else unexpected is 3.
            FileHandle.standardError.write(Data("batch-server-client: stopped: \(error)\n".utf8))
            throw ExitCode(3)
        }
        if let summaryJSON {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try encoder.encode(summary).write(to: URL(fileURLWithPath: summaryJSON))
        }
        let line = "batch-server-client: \(summary.succeeded) succeeded, \(summary.errors) errors, \(summary.resumed) done before, "
            + "\(summary.retries) retries, \(String(format: "%.1f", summary.rowsPerSecond)) rows/s over \(String(format: "%.1f", summary.seconds)) s\n"
        FileHandle.standardError.write(Data(line.utf8))
        if let reason = summary.stoppedEarly {
            FileHandle.standardError.write(Data("batch-server-client: stopped early: \(reason)\n".utf8))
            throw ExitCode(2)
        }
        if summary.errors > 0 { throw ExitCode(1) }
    }
}

extension ProgressReporter.Mode: ExpressibleByArgument {}

/// SIGTERM or SIGINT (Airflow cancelling a task, Ctrl-C): finish what is in
/// flight, commit, exit 2; a second signal ends the process at once.
enum StopSignal {
    static func install() -> @Sendable () -> Bool {
        let flag = StopFlag()
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if flag.raise() { exit(130) }
                FileHandle.standardError.write(Data("batch-server-client: stopping: finishing requests in flight\n".utf8))
            }
            source.resume()
            sources.append(source)
        }
        return { flag.isRaised }
    }

    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false

    /// Raises the flag; true if it was already raised.
    func raise() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let was = raised
        raised = true
        return was
    }

    var isRaised: Bool {
        lock.lock()
        defer { lock.unlock() }
        return raised
    }
}
