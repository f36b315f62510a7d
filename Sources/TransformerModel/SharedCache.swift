import Foundation
import InferenceCore
import Synchronization

/// What a model version is made from once and shared by its instances (the
/// CPU engine's prepared weights, a GPU's device copy of them), by key, held
/// weakly: the instances keep a value alive, and it is freed when the last
/// one goes, so a reloaded or unloaded model does not stay in memory.
public final class SharedCache<Value: AnyObject & Sendable>: Sendable {
    private struct Weak: @unchecked Sendable { weak var value: Value? }
    private let entries = Mutex<[String: Weak]>([:])

    public init() {}

    /// The live value for `key`, or a new one from `make` (called at most
    /// once per key while its value lives; instances are made one at a time).
    public func value(for key: String, make: () throws -> Value) rethrows -> Value {
        if let existing = entries.withLock({ $0[key]?.value }) { return existing }
        let made = try make()
        entries.withLock { entries in
            entries = entries.filter { $0.value.value != nil }
            entries[key] = Weak(value: made)
        }
        return made
    }

    /// Keys whose value is alive now.
    public var liveCount: Int { entries.withLock { $0.values.filter { $0.value != nil }.count } }
}

/// The files a model version is read from, and a fingerprint of them (sizes
/// and modification times), so a checkpoint replaced in the same directory is
/// prepared and uploaded anew.
public enum ModelFiles {
    public static let names = ["config.json", "model.safetensors", "vocab.txt", "sentence_bert_config.json", "config_sentence_transformers.json"]

    public static func fingerprint(_ spec: ModelSpec) -> String {
        let directory = spec.versionPath as NSString
        return names.map { name in
            let attributes = try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name))
            return "\((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0):\(attributes?[.size] ?? 0)"
        }.joined(separator: ",")
    }
}
