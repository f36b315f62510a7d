import InferenceCore

/// A text cut into tokens once, for every recognizer to read. Offsets are in
/// Unicode scalars, so a span's start and end are Python's (and Presidio's)
/// string indices whatever the text's UTF-8 length.
struct ScannedText {
    enum Kind: Equatable { case letters, digits, mixed, symbol }

    struct Token {
        var start: Int
        var end: Int
        var kind: Kind
        /// Lower-cased text of the token.
        var lower: String
        /// First scalar is an upper-case letter.
        var capitalized: Bool
        /// Every letter is upper case (and there are at least two).
        var allCaps: Bool
        var length: Int { end - start }
    }

    let scalars: [Unicode.Scalar]
    let tokens: [Token]

    init(_ text: String) {
        let scalars = Array(text.unicodeScalars)
        var tokens: [Token] = []
        tokens.reserveCapacity(scalars.count / 4)
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            if Self.isSpace(c) { i += 1; continue }
            if Self.isWordScalar(c) {
                let start = i
                var letters = 0, digits = 0, upper = 0
                while i < scalars.count, Self.isWordScalar(scalars[i]) {
                    let s = scalars[i]
                    if Self.isDigit(s) { digits += 1 } else {
                        letters += 1
                        if Self.isUpper(s) { upper += 1 }
                    }
                    i += 1
                }
                let lower = Self.lowercased(scalars[start..<i])
                let kind: Kind = digits == 0 ? .letters : (letters == 0 ? .digits : .mixed)
                tokens.append(Token(start: start, end: i, kind: kind, lower: lower,
                                    capitalized: Self.isUpper(scalars[start]),
                                    allCaps: letters >= 2 && upper == letters))
            } else {
                tokens.append(Token(start: i, end: i + 1, kind: .symbol, lower: String(Character(c)), capitalized: false, allCaps: false))
                i += 1
            }
        }
        self.scalars = scalars
        self.tokens = tokens
    }

    // ASCII answers first: Unicode property lookups cost more than the rest of the scan.
    static func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 48 && c.value <= 57 }
    static func isWordScalar(_ c: Unicode.Scalar) -> Bool {
        if c.value < 128 { return isDigit(c) || (c.value | 0x20 >= 97 && c.value | 0x20 <= 122) }
        return c.properties.isAlphabetic
    }
    static func isUpper(_ c: Unicode.Scalar) -> Bool {
        c.value < 128 ? (c.value >= 65 && c.value <= 90) : c.properties.isUppercase
    }
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        c.value < 128 ? (c == " " || (c.value >= 9 && c.value <= 13)) : c.properties.isWhitespace
    }

    /// Lower case of a run of scalars, without Unicode tables for ASCII.
    static func lowercased(_ run: ArraySlice<Unicode.Scalar>) -> String {
        if run.allSatisfy({ $0.value < 128 }) {
            return String(decoding: run.map { UInt8($0.value >= 65 && $0.value <= 90 ? $0.value + 32 : $0.value) }, as: UTF8.self)
        }
        var text = ""
        text.unicodeScalars.append(contentsOf: run)
        return text.lowercased()
    }

    func scalar(_ i: Int) -> Unicode.Scalar? { i >= 0 && i < scalars.count ? scalars[i] : nil }

    /// The text of scalars start..<end.
    func text(_ start: Int, _ end: Int) -> String {
        var s = ""
        s.unicodeScalars.append(contentsOf: scalars[start..<end])
        return s
    }

    /// Token `index` directly follows token `index - 1` with no space between.
    func touchesPrevious(_ index: Int) -> Bool {
        index > 0 && index < tokens.count && tokens[index - 1].end == tokens[index].start
    }

    func isSymbol(_ index: Int, _ symbol: String) -> Bool {
        index >= 0 && index < tokens.count && tokens[index].kind == .symbol && tokens[index].lower == symbol
    }

    func lower(_ index: Int) -> String? { index >= 0 && index < tokens.count ? tokens[index].lower : nil }

    /// The index of the first token that starts at or after scalar `offset` (tokens.count if none).
    func firstToken(atOrAfter offset: Int) -> Int {
        var low = 0, high = tokens.count
        while low < high {
            let mid = (low + high) / 2
            if tokens[mid].start < offset { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Whether the lower-cased words `phrase` appear at token `index` (symbols
    /// inside a phrase, like the apostrophe of "driver's", count as words).
    func matches(_ phrase: [String], at index: Int) -> Bool {
        guard index >= 0, index + phrase.count <= tokens.count else { return false }
        for (k, word) in phrase.enumerated() where tokens[index + k].lower != word { return false }
        return true
    }
}
