/// A gRPC status: the code and message sent in `grpc-status` / `grpc-message`.
/// Handlers throw it to end a call with that status.
public struct GRPCStatus: Error, Sendable, Hashable, CustomStringConvertible {
    /// gRPC status codes (the numbers are the wire values).
    public enum Code: Int, Sendable, Hashable {
        case ok = 0, cancelled = 1, unknown = 2, invalidArgument = 3, deadlineExceeded = 4, notFound = 5,
             alreadyExists = 6, permissionDenied = 7, resourceExhausted = 8, failedPrecondition = 9, aborted = 10,
             outOfRange = 11, unimplemented = 12, `internal` = 13, unavailable = 14, dataLoss = 15, unauthenticated = 16
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = message
    }

    public static let ok = GRPCStatus(.ok)

    public var description: String { "\(code) (\(code.rawValue)): \(message)" }

    /// `grpc-message` is percent-encoded: bytes outside printable ASCII, and '%'.
    public static func percentEncode(_ message: String) -> String {
        var out = ""
        out.reserveCapacity(message.utf8.count)
        for byte in message.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0xF, radix: 16, uppercase: true)
            }
        }
        return out
    }

    public static func percentDecode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
               let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
