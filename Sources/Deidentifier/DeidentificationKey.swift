import Crypto
import Foundation
import InferenceCore

/// The server-held secret behind keyed hashing, date shifts and reversible
/// encryption, read once from a file the model names. The file must be
/// readable by its owner only; its bytes are never logged or echoed, and each
/// use gets its own derived key (HKDF), so a pseudonym reveals nothing about
/// the encryption key.
public struct DeidentificationKey: Sendable {
    let pseudonym: SymmetricKey
    let dateShift: SymmetricKey
    let encryption: SymmetricKey

    public init(secret: [UInt8]) throws {
        guard secret.count >= 32 else {
            throw DeidentificationError.keyFile("the key file must hold at least 32 bytes")
        }
        let master = SymmetricKey(data: secret)
        func derive(_ label: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: master, info: Array("batchserver-deid-\(label)".utf8), outputByteCount: 32)
        }
        pseudonym = derive("pseudonym")
        dateShift = derive("date-shift")
        encryption = derive("encryption")
    }

    /// Reads `path`, refusing a file that its group or others may read.
    public static func read(path: String) throws -> DeidentificationKey {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw DeidentificationError.keyFile("the key file '\(path)' cannot be read (errno \(errno))")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw DeidentificationError.keyFile("the key file '\(path)' may be read by its group or others (mode \(String(status.st_mode & 0o777, radix: 8))): chmod 600 it")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DeidentificationError.keyFile("the key file '\(path)' cannot be read")
        }
        return try DeidentificationKey(secret: Array(data))
    }

    /// The same value (after case and space folding) gives the same hex
    /// pseudonym under one key, and an unrelated one under another.
    public func pseudonym(of value: String, type: String) -> String {
        let folded = value.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return Array(HMAC<SHA256>.authenticationCode(for: Array("\(type):\(folded)".utf8), using: pseudonym)).hex
    }

    /// The SHA-512 form of `pseudonym(of:type:)`.
    public func pseudonym512(of value: String, type: String) -> String {
        let folded = value.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return Array(HMAC<SHA512>.authenticationCode(for: Array("\(type):\(folded)".utf8), using: pseudonym)).hex
    }

    /// Days to move a patient's dates back: 1…365, the same for every date of one patient key.
    public func shiftDays(patientKey: String) -> Int {
        let mac = Array(HMAC<SHA256>.authenticationCode(for: Array(patientKey.utf8), using: dateShift))
        let value = mac.prefix(4).reduce(0) { ($0 << 8) | Int($1) }
        return 1 + value % 365
    }

    /// AES-GCM; base64 of nonce, ciphertext and tag.
    public func encrypt(_ value: String) throws -> String {
        let sealed = try AES.GCM.seal(Array(value.utf8), using: encryption)
        guard let combined = sealed.combined else { throw DeidentificationError.invalid("encryption failed") }
        return combined.base64EncodedString()
    }

    public func decrypt(_ value: String) throws -> String {
        guard let data = Data(base64Encoded: value), let box = try? AES.GCM.SealedBox(combined: data),
              let plain = try? AES.GCM.open(box, using: encryption), let text = String(data: plain, encoding: .utf8) else {
            throw DeidentificationError.invalid("a span to decrypt is not a value this server encrypted")
        }
        return text
    }
}

/// What went wrong in a de-identification request or model; messages name
/// the field, never the text.
public enum DeidentificationError: Error, Sendable, Equatable {
    case invalid(String)
    case keyFile(String)

    public var message: String {
        switch self {
        case .invalid(let message), .keyFile(let message): message
        }
    }
}
