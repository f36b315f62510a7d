import Foundation

/// One input row: an id and either text or token ids.
public struct InputRow: Sendable, Equatable {
    /// Position in the input, from 0 (ordered output follows it).
    public var index: Int
    public var id: String
    public var text: String?
    public var inputIDs: [Int64]?

    public init(index: Int, id: String, text: String? = nil, inputIDs: [Int64]? = nil) {
        self.index = index
        self.id = id
        self.text = text
        self.inputIDs = inputIDs
    }
}

/// A row that could not be read; it goes to the errors file, the job goes on.
public struct RowProblem: Error, Sendable, Equatable {
    public var index: Int
    /// The row's id where it could be read, else "row <index>".
    public var id: String
    public var reason: String
}

/// Which fields hold what (`--id-field`, `--text-field`, `--ids-field`).
public struct FieldNames: Sendable {
    public var id = "id"
    public var text = "text"
    public var inputIDs = "input_ids"
    public init(id: String = "id", text: String = "text", inputIDs: String = "input_ids") {
        self.id = id
        self.text = text
        self.inputIDs = inputIDs
    }
}

/// Reads rows one at a time from a file, in constant memory.
public protocol RowReader {
    /// The next row, a problem with it, or nil at the end.
    mutating func next() throws -> Result<InputRow, RowProblem>?
}

/// Reads a file in 64 KiB chunks and hands out bytes; the base of both readers.
struct ChunkedFile {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var position = 0
    private var ended = false

    init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw BulkJobError.input("cannot open input file '\(path)'")
        }
        self.handle = handle
    }

    /// The next line without its newline (CR LF or LF), nil at the end.
    mutating func line() -> [UInt8]? {
        var line: [UInt8] = []
        while true {
            if position == buffer.count {
                if ended || !refill() { return line.isEmpty ? nil : line }
            }
            if let newline = buffer[position...].firstIndex(of: 0x0A) {
                line.append(contentsOf: buffer[position..<newline])
                position = newline + 1
                if line.last == 0x0D { line.removeLast() }
                return line
            }
            line.append(contentsOf: buffer[position...])
            position = buffer.count
        }
    }

    /// The next byte, nil at the end.
    mutating func byte() -> UInt8? {
        if position == buffer.count, ended || !refill() { return nil }
        defer { position += 1 }
        return buffer[position]
    }

    private mutating func refill() -> Bool {
        let data = handle.readData(ofLength: 1 << 16)
        if data.isEmpty {
            ended = true
            return false
        }
        buffer = Array(data)
        position = 0
        return true
    }
}

/// JSON Lines: one object per line; blank lines are skipped.
public struct JSONLinesReader: RowReader {
    private var file: ChunkedFile
    private let fields: FieldNames
    private var index = 0
    /// Lines read, blank ones included, for messages.
    private var lineNumber = 0

    public init(path: String, fields: FieldNames) throws {
        file = try ChunkedFile(path: path)
        self.fields = fields
    }

    public mutating func next() throws -> Result<InputRow, RowProblem>? {
        while let line = file.line() {
            lineNumber += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            defer { index += 1 }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
                return .failure(RowProblem(index: index, id: "row \(index + 1)", reason: "line \(lineNumber) is not a JSON object"))
            }
            return RowFields.row(index: index, fields: fields, id: object[fields.id], text: object[fields.text],
                                 inputIDs: object[fields.inputIDs])
        }
        return nil
    }
}

/// CSV (RFC 4180: quoted fields, doubled quotes, newlines inside quotes) with
/// a header row naming the columns. Token ids in a column are separated by
/// spaces or given as a JSON array.
public struct CSVReader: RowReader {
    private var file: ChunkedFile
    private let fields: FieldNames
    private var columns: [String: Int] = [:]
    private var index = 0

    public init(path: String, fields: FieldNames) throws {
        file = try ChunkedFile(path: path)
        self.fields = fields
        guard let header = try Self.record(&file) else { throw BulkJobError.input("CSV input '\(path)' is empty") }
        for (position, name) in header.enumerated() { columns[name.trimmingCharacters(in: .whitespaces)] = position }
        guard columns[fields.id] != nil else {
            throw BulkJobError.input("CSV input '\(path)' has no '\(fields.id)' column (columns: \(header.joined(separator: ", ")))")
        }
    }

    public mutating func next() throws -> Result<InputRow, RowProblem>? {
        while let record = try Self.record(&file) {
            if record.count == 1, record[0].isEmpty { continue }
            defer { index += 1 }
            func value(_ name: String) -> String? {
                guard let column = columns[name], column < record.count else { return nil }
                return record[column]
            }
            var ids: Any? = nil
            if let text = value(fields.inputIDs), !text.isEmpty {
                if text.hasPrefix("[") {
                    ids = try? JSONSerialization.jsonObject(with: Data(text.utf8))
                    if ids == nil { ids = "invalid" }
                } else {
                    let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
                    let numbers = parts.compactMap { Int64($0) }
                    ids = numbers.count == parts.count ? numbers : "invalid"
                }
            }
            let text = value(fields.text)
            return RowFields.row(index: index, fields: fields, id: value(fields.id), text: text?.isEmpty == true ? nil : text, inputIDs: ids)
        }
        return nil
    }

    /// One record: fields split on commas outside quotes, up to an unquoted newline.
    static func record(_ file: inout ChunkedFile) throws -> [String]? {
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var sawAny = false
        while let byte = file.byte() {
            sawAny = true
            if quoted {
                if byte == 0x22 {
                    if let following = file.byte() {
                        if following == 0x22 { field.append(0x22); continue }
                        quoted = false
                        if following == 0x2C { fields.append(String(decoding: field, as: UTF8.self)); field = []; continue }
                        if following == 0x0A { break }
                        if following == 0x0D { continue }
                        field.append(following)
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(byte)
                }
                continue
            }
            switch byte {
            case 0x22 where field.isEmpty: quoted = true
            case 0x2C:
                fields.append(String(decoding: field, as: UTF8.self))
                field = []
            case 0x0A:
                fields.append(String(decoding: field, as: UTF8.self))
                return fields
            case 0x0D: continue
            default: field.append(byte)
            }
        }
        guard sawAny else { return nil }
        if quoted { throw BulkJobError.input("CSV input ends inside a quoted field") }
        fields.append(String(decoding: field, as: UTF8.self))
        return fields
    }
}

enum RowFields {
    /// Whole numbers only: 1.5 or "7" is not a token id.
    static func integers(_ list: [Any]) -> [Int64]? {
        var numbers: [Int64] = []
        numbers.reserveCapacity(list.count)
        for item in list {
            guard let number = item as? NSNumber, !(item is Bool) else { return nil }
            let value = number.int64Value
            guard Double(value) == number.doubleValue else { return nil }
            numbers.append(value)
        }
        return numbers
    }

    static func row(index: Int, fields: FieldNames, id: Any?, text: Any?, inputIDs: Any?) -> Result<InputRow, RowProblem> {
        let idText: String
        switch id {
        case let string as String where !string.isEmpty: idText = string
        case let number as NSNumber: idText = number.stringValue
        default:
            return .failure(RowProblem(index: index, id: "row \(index + 1)", reason: "row \(index + 1) has no '\(fields.id)'"))
        }
        var row = InputRow(index: index, id: idText)
        if let ids = inputIDs, !(ids is NSNull) {
            if let numbers = ids as? [Int64] {
                row.inputIDs = numbers
            } else if let list = ids as? [Any], let numbers = integers(list) {
                row.inputIDs = numbers
            } else {
                return .failure(RowProblem(index: index, id: idText, reason: "'\(fields.inputIDs)' must be a list of integers"))
            }
        }
        if let value = text, !(value is NSNull) {
            guard let string = value as? String else {
                return .failure(RowProblem(index: index, id: idText, reason: "'\(fields.text)' must be a string"))
            }
            row.text = string
        }
        if row.text == nil && row.inputIDs == nil {
            return .failure(RowProblem(index: index, id: idText, reason: "row has neither '\(fields.text)' nor '\(fields.inputIDs)'"))
        }
        return .success(row)
    }
}

/// Errors that end the job (as opposed to a row's own error).
public enum BulkJobError: Error, CustomStringConvertible {
    case input(String)
    case output(String)
    case server(String)
    case usage(String)

    public var description: String {
        switch self {
        case .input(let message), .output(let message), .server(let message), .usage(let message): message
        }
    }
}

/// Counts rows quickly (for the progress total) without parsing them.
public enum RowCounter {
    public static func lines(in path: String) -> Int? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var count = 0
        var last: UInt8 = 0x0A
        while true {
            let data = handle.readData(ofLength: 1 << 20)
            if data.isEmpty { break }
            data.withUnsafeBytes { raw in
                for byte in raw where byte == 0x0A { count += 1 }
                last = raw.last ?? last
            }
        }
        return count + (last == 0x0A ? 0 : 1)
    }
}
