import Crypto
import Foundation
import InferenceCore

/// How an answer is kept without keeping patient data in clear: an entry is
/// named by an HMAC-SHA256 of everything that decides the answer (model,
/// version, every input's name, type, shape and bytes, the outputs asked for,
/// the parameters), and its contents are sealed with AES-GCM, the name as
/// associated data so an entry cannot be moved under another name. Both keys
/// come from one secret by HKDF: a random one per process for the local
/// cache, a shared file for Redis (every pod must name and open the same
/// entries; the Redis server holds neither key).
public struct CacheKeys: Sendable {
    let naming: SymmetricKey
    let sealing: SymmetricKey

    init(secret: SymmetricKey) {
        naming = HKDF<SHA256>.deriveKey(inputKeyMaterial: secret, info: Data("batchserver response cache: entry names".utf8),
                                        outputByteCount: 32)
        sealing = HKDF<SHA256>.deriveKey(inputKeyMaterial: secret, info: Data("batchserver response cache: entry contents".utf8),
                                         outputByteCount: 32)
    }

    public static func random() -> CacheKeys { CacheKeys(secret: SymmetricKey(size: .bits256)) }

    /// The secret is the file's bytes (at least 32: `head -c 32 /dev/urandom`).
    public static func load(file path: String) throws -> CacheKeys {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InferenceError.invalidArgument("response cache: cannot read key_file '\(path)'")
        }
        guard data.count >= 32 else {
            throw InferenceError.invalidArgument("response cache: key_file '\(path)' holds \(data.count) bytes; at least 32 random bytes are needed")
        }
        return CacheKeys(secret: SymmetricKey(data: data))
    }

    /// The entry's name: lowercase hex of the HMAC. Every field is length-
    /// prefixed, so no two different requests feed the same bytes.
    public func name(of request: ValidatedRequest, model: String, version: Int64) -> String {
        var mac = HMAC<SHA256>(key: naming)
        func feed(_ bytes: some Collection<UInt8>) {
            withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { mac.update(data: $0) }
            mac.update(data: Array(bytes))
        }
        func feed(_ text: String) { feed(Array(text.utf8)) }
        func feed(_ number: Int64) { withUnsafeBytes(of: number.littleEndian) { mac.update(data: $0) } }
        feed(model)
        feed(version)
        let inputs = request.request.inputs.sorted { $0.name < $1.name }
        feed(Int64(inputs.count))
        for input in inputs {
            feed(input.name)
            feed(input.dataType.rawValue)
            feed(Int64(input.shape.count))
            for dimension in input.shape { feed(Int64(dimension)) }
            feed(input.bytes)
        }
        feed(Int64(request.outputs.count))
        for output in request.outputs {
            feed(output.name)
            feed(Int64(output.classificationCount ?? -1))
        }
        let parameters = request.request.parameters.sorted { $0.key < $1.key }
        feed(Int64(parameters.count))
        for (key, value) in parameters {
            feed(key)
            feed(String(describing: value))
        }
        return Array(mac.finalize()).hex
    }

    func seal(_ plain: [UInt8], name: String) throws -> [UInt8] {
        guard let combined = try AES.GCM.seal(plain, using: sealing, authenticating: Array(name.utf8)).combined else {
            throw InferenceError.internal("response cache: AES-GCM gave no combined box")
        }
        return Array(combined)
    }

    /// nil when the entry does not open under this name and key (another
    /// server's key, a damaged value): a miss, never an error to the client.
    func open(_ sealed: [UInt8], name: String) -> [UInt8]? {
        guard let box = try? AES.GCM.SealedBox(combined: sealed),
              let plain = try? AES.GCM.open(box, using: sealing, authenticating: Array(name.utf8)) else { return nil }
        return Array(plain)
    }
}

/// A response's outputs as bytes: per output its name, type, shape and data;
/// then the token count. Little-endian, length-prefixed.
enum CachedResponse {
    static func encode(_ response: InferenceResponse) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + response.outputs.reduce(0) { $0 + $1.bytes.count + $1.name.utf8.count + 8 * $1.shape.count + 32 })
        func put(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        func put(_ bytes: some Collection<UInt8>) { put(UInt64(bytes.count)); out.append(contentsOf: bytes) }
        put(UInt64(response.outputs.count))
        for output in response.outputs {
            put(Array(output.name.utf8))
            put(Array(output.dataType.rawValue.utf8))
            put(UInt64(output.shape.count))
            for dimension in output.shape { put(UInt64(bitPattern: Int64(dimension))) }
            put(output.bytes)
        }
        put(response.tokenCount.map { UInt64($0) + 1 } ?? 0)
        return out
    }

    /// nil where the bytes are not an encoded response.
    static func decode(_ bytes: [UInt8], id: String, model: String, version: Int64) -> InferenceResponse? {
        var offset = 0
        func take() -> UInt64? {
            guard offset + 8 <= bytes.count else { return nil }
            defer { offset += 8 }
            return bytes[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        func takeBytes() -> [UInt8]? {
            guard let count = take(), count <= UInt64(bytes.count - offset) else { return nil }
            defer { offset += Int(count) }
            return Array(bytes[offset..<offset + Int(count)])
        }
        guard let count = take(), count <= UInt64(bytes.count) else { return nil }
        var outputs: [Tensor] = []
        for _ in 0..<count {
            guard let name = takeBytes(), let typeName = takeBytes(),
                  let dataType = DataType(rawValue: String(decoding: typeName, as: UTF8.self)),
                  let rank = take(), rank <= 64 else { return nil }
            var shape: [Int] = []
            for _ in 0..<rank {
                guard let dimension = take() else { return nil }
                shape.append(Int(Int64(bitPattern: dimension)))
            }
            guard let data = takeBytes() else { return nil }
            outputs.append(Tensor(name: String(decoding: name, as: UTF8.self), dataType: dataType, shape: shape, bytes: data))
        }
        guard let tokens = take(), offset == bytes.count else { return nil }
        var response = InferenceResponse(id: id, modelName: model, modelVersion: version, outputs: outputs)
        response.tokenCount = tokens == 0 ? nil : Int(tokens - 1)
        return response
    }
}
