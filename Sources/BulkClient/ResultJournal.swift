#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The job's output, its errors file and the journal that makes a rerun of
/// the same command continue where the last one stopped, with every id in the
/// output exactly once.
///
/// Writes go to the output and errors files first; every commit then fsyncs
/// both and appends their committed lengths to the journal (and fsyncs it).
/// On resume both files are cut back to the last committed lengths (lines
/// written after the last commit, possibly half a line, are dropped: their rows
/// run again), and the ids in what remains are done. A row's result is written
/// once per run (a retried request whose first answer was lost is written
/// once), so no id appears twice and none is missing.
public final class ResultJournal {
    public struct Paths: Sendable {
        public var output: String
        public var errors: String
        public var journal: String

        public init(output: String, errors: String? = nil) {
            self.output = output
            self.errors = errors ?? output + ".errors.jsonl"
            self.journal = output + ".journal"
        }
    }

    public let paths: Paths
    /// Ids finished in earlier runs (results and row errors alike).
    public private(set) var done: Set<String> = []
    /// How many ids earlier runs finished.
    public private(set) var resumedRows = 0
    private let output: FileHandle
    private let errors: FileHandle
    private let journal: FileHandle
    private var outputBytes: UInt64
    private var errorBytes: UInt64
    private var uncommitted = 0
    private let header: String

    /// Opens (resuming) or creates the files. `job` identifies the job (model,
    /// input, the options that shape its lines): a journal written for another
    /// job is refused unless `restart`.
    public init(paths: Paths, job: String, restart: Bool) throws {
        self.paths = paths
        header = "batch-server-client journal v1 " + job + " errors=\(paths.errors)"
        let manager = FileManager.default
        if restart {
            for path in [paths.output, paths.errors, paths.journal] where manager.fileExists(atPath: path) {
                try manager.removeItem(atPath: path)
            }
        }
        var committed: (UInt64, UInt64)? = nil
        if manager.fileExists(atPath: paths.journal) {
            let text = try String(contentsOfFile: paths.journal, encoding: .utf8)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
            // A torn last line (no newline) is not a commit.
            if !text.hasSuffix("\n"), !lines.isEmpty { lines.removeLast() }
            guard let first = lines.first, first == header else {
                throw BulkJobError.output(
                    "journal '\(paths.journal)' belongs to another job (\(lines.first ?? "empty")); pass --restart to start over")
            }
            for line in lines.dropFirst() {
                let parts = line.split(separator: " ")
                if parts.count == 3, parts[0] == "commit", let out = UInt64(parts[1]), let err = UInt64(parts[2]) {
                    committed = (out, err)
                }
            }
            committed = committed ?? (0, 0)
        } else if manager.fileExists(atPath: paths.output), (try? manager.attributesOfItem(atPath: paths.output)[.size] as? UInt64) ?? 0 > 0 {
            throw BulkJobError.output(
                "output '\(paths.output)' exists without a journal; pass --restart to overwrite it or choose another --output")
        }
        for path in [paths.output, paths.errors] where !manager.fileExists(atPath: path) {
            guard manager.createFile(atPath: path, contents: nil) else { throw BulkJobError.output("cannot create '\(path)'") }
        }
        guard let output = FileHandle(forUpdatingAtPath: paths.output),
              let errors = FileHandle(forUpdatingAtPath: paths.errors) else {
            throw BulkJobError.output("cannot open '\(paths.output)' or '\(paths.errors)' for writing")
        }
        self.output = output
        self.errors = errors
        let (outLength, errLength) = committed ?? (0, 0)
        for (handle, length, path) in [(output, outLength, paths.output), (errors, errLength, paths.errors)] {
            let size = try handle.seekToEnd()
            guard size >= length else {
                throw BulkJobError.output(
                    "'\(path)' is shorter (\(size) bytes) than its journal says was committed (\(length)); it was changed since: pass --restart")
            }
            try handle.truncate(atOffset: length)
        }
        outputBytes = outLength
        errorBytes = errLength
        for path in [paths.output, paths.errors] { done.formUnion(try Self.ids(in: path)) }
        resumedRows = done.count
        if committed == nil {
            manager.createFile(atPath: paths.journal, contents: Data((header + "\n").utf8))
        }
        // The new files' names are durable too, not only their contents.
        Self.syncDirectory(of: paths.journal)
        if paths.errors != paths.output { Self.syncDirectory(of: paths.errors) }
        guard let journal = FileHandle(forUpdatingAtPath: paths.journal) else {
            throw BulkJobError.output("cannot open journal '\(paths.journal)'")
        }
        try journal.seekToEnd()
        self.journal = journal
        try output.seekToEnd()
        try errors.seekToEnd()
    }

    deinit {
        try? output.close()
        try? errors.close()
        try? journal.close()
    }

    /// Appends one result line (a JSON object holding `id`).
    public func writeResult(_ line: [UInt8]) throws {
        try append(Data(line + [0x0A]), to: output, path: paths.output)
        outputBytes += UInt64(line.count + 1)
        uncommitted += 1
    }

    /// Appends one row error: `{"id", "index", "reason"}`.
    public func writeError(id: String, index: Int, reason: String) throws {
        let object: [String: Any] = ["id": id, "index": index, "reason": reason]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try append(data + Data([0x0A]), to: errors, path: paths.errors)
        errorBytes += UInt64(data.count + 1)
        uncommitted += 1
    }

    /// A full disk or an I/O error ends the job (resumable), never the process.
    private func append(_ data: Data, to handle: FileHandle, path: String) throws {
        do {
            try handle.write(contentsOf: data)
        } catch {
            throw BulkJobError.output("cannot write '\(path)': \(error.localizedDescription)")
        }
    }

    public var hasUncommitted: Bool { uncommitted > 0 }

    /// Makes everything written so far durable and records it in the journal.
    public func commit() throws {
        guard uncommitted > 0 else { return }
        guard fsync(output.fileDescriptor) == 0, fsync(errors.fileDescriptor) == 0 else {
            throw BulkJobError.output("fsync of the output failed: \(String(cString: strerror(errno)))")
        }
        try append(Data("commit \(outputBytes) \(errorBytes)\n".utf8), to: journal, path: paths.journal)
        guard fsync(journal.fileDescriptor) == 0 else {
            throw BulkJobError.output("fsync of the journal failed: \(String(cString: strerror(errno)))")
        }
        uncommitted = 0
    }

    static func syncDirectory(of path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    /// The `id` of every line of a JSON-lines file.
    static func ids(in path: String) throws -> Set<String> {
        var file = try ChunkedFile(path: path)
        var ids = Set<String>()
        while let line = file.line() {
            guard !line.isEmpty, let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any],
                  let id = object["id"] as? String else { continue }
            ids.insert(id)
        }
        return ids
    }
}
