/// Finds where a config.pbtxt goes wrong. swift-protobuf decodes the text but
/// its errors carry no position, so when decoding fails this scanner splits
/// the text into field entries (with line and column), asks swift-protobuf to
/// decode each entry alone, and descends into the first one that fails until
/// it reaches the smallest failing entry. It never decodes values itself.
struct TextFormatLocator {
    struct Position: Equatable, CustomStringConvertible {
        var line: Int
        var column: Int
        var description: String { "\(line):\(column)" }
    }

    struct Token: Equatable {
        enum Kind: Equatable { case identifier, string, number, symbol }
        var kind: Kind
        var text: String
        var position: Position
        /// Offsets into the source's UTF-8 bytes.
        var start: Int
        var end: Int
    }

    struct SyntaxError: Error, Equatable {
        var position: Position
        var message: String
    }

    /// One `name: value`, `name { ... }` or `name [ ... ]` entry.
    struct Entry {
        var name: Token
        /// Byte range of the whole entry in the source.
        var start: Int
        var end: Int
        /// For message values, the byte ranges of each message body (one per list element).
        var bodies: [Range<Int>]
    }

    let source: [UInt8]
    private(set) var tokens: [Token] = []

    init(_ text: String) throws(SyntaxError) {
        source = Array(text.utf8)
        tokens = try Self.tokenize(source)
    }

    func text(_ range: Range<Int>) -> String { String(decoding: source[range], as: UTF8.self) }

    // MARK: Tokens

    static func tokenize(_ bytes: [UInt8]) throws(SyntaxError) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        var line = 1
        var lineStart = 0
        func position(_ at: Int) -> Position { Position(line: line, column: at - lineStart + 1) }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\n"):
                index += 1
                line += 1
                lineStart = index
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                index += 1
            case UInt8(ascii: "#"):
                while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let start = index
                index += 1
                while index < bytes.count && bytes[index] != byte {
                    if bytes[index] == UInt8(ascii: "\\") { index += 1 }
                    if index < bytes.count && bytes[index] == UInt8(ascii: "\n") {
                        throw SyntaxError(position: position(start), message: "unterminated string")
                    }
                    index += 1
                }
                guard index < bytes.count else { throw SyntaxError(position: position(start), message: "unterminated string") }
                index += 1
                tokens.append(Token(kind: .string, text: String(decoding: bytes[start..<index], as: UTF8.self),
                                    position: position(start), start: start, end: index))
            case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "<"),
                 UInt8(ascii: ">"), UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: ";"):
                tokens.append(Token(kind: .symbol, text: String(UnicodeScalar(byte)), position: position(index), start: index, end: index + 1))
                index += 1
            default:
                let start = index
                let isWord: (UInt8) -> Bool = { b in
                    (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                        || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: "-") || b == UInt8(ascii: "+")
                }
                guard isWord(byte) else {
                    throw SyntaxError(position: position(index), message: "unexpected character '\(String(decoding: [byte], as: UTF8.self))'")
                }
                while index < bytes.count && isWord(bytes[index]) { index += 1 }
                let text = String(decoding: bytes[start..<index], as: UTF8.self)
                let first = text.unicodeScalars.first!
                let kind: Token.Kind = (first == "-" || first == "+" || first == "." || ("0"..."9").contains(first)) ? .number : .identifier
                tokens.append(Token(kind: kind, text: text, position: position(start), start: start, end: index))
            }
        }
        return tokens
    }

    // MARK: Entries

    /// The entries of a message body spanning `tokens[range]`.
    func entries(in range: Range<Int>) throws(SyntaxError) -> [Entry] {
        var entries: [Entry] = []
        var index = range.lowerBound
        while index < range.upperBound {
            let name = tokens[index]
            guard name.kind == .identifier else {
                throw SyntaxError(position: name.position, message: "expected a field name, found '\(name.text)'")
            }
            index += 1
            var hasColon = false
            if index < range.upperBound, tokens[index].text == ":" && tokens[index].kind == .symbol {
                hasColon = true
                index += 1
            }
            guard index < range.upperBound else {
                throw SyntaxError(position: name.position, message: "field '\(name.text)' has no value")
            }
            var bodies: [Range<Int>] = []
            let valueEnd = try value(at: index, limit: range.upperBound, field: name, allowScalar: hasColon, bodies: &bodies)
            index = valueEnd
            let entryEnd = tokens[valueEnd - 1].end
            if index < range.upperBound, tokens[index].kind == .symbol, tokens[index].text == "," || tokens[index].text == ";" {
                index += 1
            }
            entries.append(Entry(name: name, start: name.start, end: entryEnd, bodies: bodies))
        }
        return entries
    }

    /// Skips one value starting at token `index`; returns the index after it.
    private func value(at index: Int, limit: Int, field: Token, allowScalar: Bool, bodies: inout [Range<Int>]) throws(SyntaxError) -> Int {
        let token = tokens[index]
        switch (token.kind, token.text) {
        case (.symbol, "{"), (.symbol, "<"):
            let close = try matching(index, limit: limit)
            bodies.append(tokens[index].end..<tokens[close].start)
            return close + 1
        case (.symbol, "["):
            var cursor = index + 1
            while cursor < limit, !(tokens[cursor].kind == .symbol && tokens[cursor].text == "]") {
                cursor = try value(at: cursor, limit: limit, field: field, allowScalar: true, bodies: &bodies)
                if cursor < limit, tokens[cursor].kind == .symbol, tokens[cursor].text == "," { cursor += 1 }
            }
            guard cursor < limit else { throw SyntaxError(position: token.position, message: "'[' of field '\(field.text)' is never closed") }
            return cursor + 1
        case (.symbol, _):
            throw SyntaxError(position: token.position, message: "unexpected '\(token.text)' as the value of field '\(field.text)'")
        default:
            guard allowScalar else {
                throw SyntaxError(position: token.position, message: "expected ':' after field name '\(field.text)'")
            }
            var cursor = index + 1
            // Adjacent strings concatenate in the text format.
            while token.kind == .string, cursor < limit, tokens[cursor].kind == .string { cursor += 1 }
            return cursor
        }
    }

    private func matching(_ open: Int, limit: Int) throws(SyntaxError) -> Int {
        let closer = tokens[open].text == "{" ? "}" : ">"
        var depth = 0
        var index = open
        while index < limit {
            let token = tokens[index]
            if token.kind == .symbol {
                if token.text == "{" || token.text == "<" { depth += 1 }
                if token.text == "}" || token.text == ">" {
                    depth -= 1
                    if depth == 0 {
                        guard token.text == closer else {
                            throw SyntaxError(position: token.position, message: "'\(token.text)' does not match '\(tokens[open].text)' at \(tokens[open].position)")
                        }
                        return index
                    }
                }
            }
            index += 1
        }
        throw SyntaxError(position: tokens[open].position, message: "'\(tokens[open].text)' is never closed")
    }

    /// Token index range of a byte range.
    func tokenRange(_ bytes: Range<Int>) -> Range<Int> {
        let lower = tokens.firstIndex { $0.start >= bytes.lowerBound } ?? tokens.count
        let upper = tokens.firstIndex { $0.start >= bytes.upperBound } ?? tokens.count
        return lower..<max(lower, upper)
    }
}
