import Foundation
import InferenceCore

/// What the repository holds on disk.
enum RepositoryScan {
    static func modelNames(_ repositoryPath: String) throws -> [String] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: repositoryPath, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw InferenceError.notFound("model repository '\(repositoryPath)' is not a directory")
        }
        return try fm.contentsOfDirectory(atPath: repositoryPath).filter { name in
            var dir: ObjCBool = false
            return !name.hasPrefix(".")
                && fm.fileExists(atPath: (repositoryPath as NSString).appendingPathComponent(name), isDirectory: &dir)
                && dir.boolValue
        }.sorted()
    }

    /// Model names come from clients in the load API: one path component only.
    static func checkModelName(_ name: String) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\0") else {
            throw InferenceError.invalidArgument("'\(name)' is not a valid model name")
        }
    }

    /// A summary of everything in a model directory that affects loading:
    /// paths, sizes and modification times of its files, and the config's text.
    static func fingerprint(_ modelPath: String) -> String {
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: modelPath) else { return "" }
        var parts: [String] = []
        for case let relative as String in walker {
            let path = (modelPath as NSString).appendingPathComponent(relative)
            guard let attributes = try? fm.attributesOfItem(atPath: path) else { continue }
            let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            parts.append("\(relative)|\(attributes[.type] as? FileAttributeType == .typeDirectory ? "d" : "f")|\(size)|\(modified)")
        }
        if let config = fm.contents(atPath: (modelPath as NSString).appendingPathComponent(ModelConfigFile.fileName)) {
            parts.append(String(decoding: config, as: UTF8.self))
        }
        return parts.sorted().joined(separator: "\n")
    }
}

/// The load API's `file:<path>` parameters, written to a private directory
/// that the model then loads from. Paths are checked so nothing escapes it.
enum PrivateModelDirectory {
    static func write(model: String, files: [String: [UInt8]]) throws -> String {
        let root = NSTemporaryDirectory() + "batchserver-load-" + UUID().uuidString
        let modelPath = (root as NSString).appendingPathComponent(model)
        for (relative, contents) in files {
            let components = relative.split(separator: "/", omittingEmptySubsequences: false)
            guard !relative.hasPrefix("/"), !components.isEmpty,
                  components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains("\0") }) else {
                throw InferenceError.invalidArgument("file parameter 'file:\(relative)' must be a relative path inside the model directory")
            }
            guard components.first.map({ Int64($0) != nil }) == true else {
                throw InferenceError.invalidArgument("file parameter 'file:\(relative)' must start with a numeric version directory")
            }
            let path = (modelPath as NSString).appendingPathComponent(relative)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: path, contents: Data(contents)) else {
                throw InferenceError.internal("cannot write file parameter 'file:\(relative)'")
            }
        }
        return modelPath
    }
}
