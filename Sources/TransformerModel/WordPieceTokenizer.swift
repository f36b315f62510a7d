import Foundation
import InferenceCore

/// BERT's uncased tokenizer as Hugging Face `tokenizers` implements it
/// (BertNormalizer, BertPreTokenizer, WordPiece, then [CLS] ... [SEP]):
/// clean text, space out CJK ideographs, strip accents (NFD minus nonspacing
/// marks), lowercase, split on whitespace and punctuation, then greedy
/// longest-match-first word pieces with "##" continuations.
public struct WordPieceTokenizer: Sendable {
    /// Keyed by UTF-8 bytes: Swift's String equality is canonical equivalence,
    /// but tokenizers compares exact code points, and so must we.
    public let vocabulary: [[UInt8]: Int32]
    public let unknownID: Int32
    public let classifierID: Int32
    public let separatorID: Int32
    public let maxCharactersPerWord = 100
    /// Each id's token, for decoding (empty where the vocabulary skips an id).
    let tokensByID: [[UInt8]]
    /// Ids that `decode` drops with `skipSpecialTokens`.
    let specialIDs: Set<Int32>

    public init(vocabularyFile path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw InferenceError.invalidArgument("cannot read vocabulary file \(path)")
        }
        var vocabulary: [[UInt8]: Int32] = [:]
        var index: Int32 = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let token = Array(line.utf8.last == UInt8(ascii: "\r") ? line.utf8.dropLast() : line.utf8[...])
            if !token.isEmpty && vocabulary[token] == nil { vocabulary[token] = index }
            index += 1
        }
        try self.init(vocabulary: vocabulary, source: path)
    }

    public init(vocabulary: [[UInt8]: Int32], source: String = "vocabulary") throws {
        self.vocabulary = vocabulary
        func id(_ token: String) throws -> Int32 {
            guard let id = vocabulary[Array(token.utf8)] else {
                throw InferenceError.invalidArgument("\(source) has no \(token) token")
            }
            return id
        }
        unknownID = try id("[UNK]")
        classifierID = try id("[CLS]")
        separatorID = try id("[SEP]")
        var byID = [[UInt8]](repeating: [], count: Int(vocabulary.values.max() ?? -1) + 1)
        for (token, id) in vocabulary where id >= 0 { byID[Int(id)] = token }
        tokensByID = byID
        specialIDs = Set(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { vocabulary[Array($0.utf8)] })
    }

    /// Which end a text too long for the model loses (TEI's `truncation_direction`).
    public enum TruncationDirection: String, Sendable { case right, left }

    /// Word-piece ids of `text`, without special tokens; with `limit`,
    /// stops once that many are found (right truncation needs no more).
    public func pieces(_ text: String, limit: Int = Int.max) -> [Int32] {
        var ids: [Int32] = []
        for word in preTokenize(normalize(text)) {
            ids.append(contentsOf: wordPieces(word))
            if ids.count >= limit { break }
        }
        return ids
    }

    /// [CLS] text [SEP], losing word pieces from the `direction` end to fit
    /// `maxLength` tokens in all.
    public func encode(_ text: String, maxLength: Int, direction: TruncationDirection = .right) -> [Int32] {
        let room = max(maxLength - 2, 0)
        let ids = pieces(text, limit: direction == .right ? room : Int.max)
        return [classifierID] + Self.truncated(ids, to: room, from: direction) + [separatorID]
    }

    /// A sentence pair as BERT takes it: [CLS] first [SEP] second [SEP], the
    /// segment (token type) 0 through the first [SEP] and 1 after. Too long,
    /// it is cut "longest first" as Hugging Face `tokenizers` cuts pairs: the
    /// shorter text keeps its length where the longer can absorb the cut,
    /// otherwise each keeps half (the longer one the odd token).
    public func encodePair(_ first: String, _ second: String, maxLength: Int, direction: TruncationDirection = .right)
        -> (ids: [Int32], segments: [Int32]) {
        var a = pieces(first), b = pieces(second)
        let room = max(maxLength - 3, 0)
        if a.count + b.count > room {
            let swapped = a.count > b.count
            var n1 = min(a.count, b.count), n2 = max(a.count, b.count)
            n2 = n1 > room ? n1 : max(n1, room - n1)
            if n1 + n2 > room { n1 = room / 2; n2 = n1 + room % 2 }
            if swapped { swap(&n1, &n2) }
            a = Self.truncated(a, to: n1, from: direction)
            b = Self.truncated(b, to: n2, from: direction)
        }
        let ids = [classifierID] + a + [separatorID] + b + [separatorID]
        return (ids, Array(repeating: 0, count: a.count + 2) + Array(repeating: 1, count: b.count + 1))
    }

    static func truncated(_ ids: [Int32], to count: Int, from direction: TruncationDirection) -> [Int32] {
        guard ids.count > count else { return ids }
        return direction == .right ? Array(ids.prefix(count)) : Array(ids.suffix(count))
    }

    /// Text of token ids as `tokenizers`' WordPiece decoder writes it: "##"
    /// pieces joined to the previous one, others after a space, then its
    /// cleanup of spaces before punctuation and contractions. Ids outside
    /// the vocabulary are refused by the caller.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        var text = ""
        var first = true
        for id in ids {
            guard id >= 0, Int(id) < tokensByID.count, !(skipSpecialTokens && specialIDs.contains(id)) else { continue }
            var token = String(decoding: tokensByID[Int(id)], as: UTF8.self)
            if !first {
                if token.hasPrefix("##") { token.removeFirst(2) } else { token = " " + token }
            }
            first = false
            for (dirty, clean) in Self.cleanups { token = token.replacingOccurrences(of: dirty, with: clean) }
            text += token
        }
        return text
    }

    private static let cleanups = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                                   (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]

    /// The vocabulary's size as ids go (the largest id + 1).
    public var idCount: Int { tokensByID.count }

    // MARK: Normalizer

    func normalize(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
            if scalar.properties.isWhitespace {
                cleaned.append(" ")
            } else if Self.isCJK(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        // Strip accents: canonical decomposition, then drop nonspacing marks.
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping
        var stripped = String.UnicodeScalarView()
        for scalar in decomposed.unicodeScalars where scalar.properties.generalCategory != .nonspacingMark {
            stripped.append(scalar)
        }
        var lowered = String.UnicodeScalarView()
        for scalar in stripped {
            lowered.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        }
        return String(lowered)
    }

    /// Rust's char::is_control as tokenizers uses it: categories Cc, Cf, Cs,
    /// Co and Cn, except tab, newline and carriage return (whitespace there).
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isCJK(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            let v = scalar.value
            return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v)
        }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    // MARK: Pre-tokenizer

    /// Splits on whitespace (dropped) and punctuation (kept, one token each).
    func preTokenize(_ text: String) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        func flush() {
            if !current.isEmpty { words.append(String(current)) }
            current = String.UnicodeScalarView()
        }
        for scalar in text.unicodeScalars {
            if scalar.properties.isWhitespace {
                flush()
            } else if Self.isPunctuation(scalar) {
                flush()
                words.append(String(scalar))
            } else {
                current.append(scalar)
            }
        }
        flush()
        return words
    }

    // MARK: WordPiece

    func wordPieces(_ word: String) -> [Int32] {
        wordPieceSpans(Array(word.unicodeScalars)).map(\.id)
    }

    /// Greedy longest-match-first pieces of one word, each with the scalars it
    /// covers; one [UNK] over the whole word where a part matches nothing.
    func wordPieceSpans(_ scalars: [Unicode.Scalar]) -> [(id: Int32, span: Range<Int>)] {
        guard scalars.count <= maxCharactersPerWord else { return [(unknownID, 0..<scalars.count)] }
        var pieces: [(id: Int32, span: Range<Int>)] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int32?
            while start < end {
                var candidate: [UInt8] = start > 0 ? Array("##".utf8) : []
                for scalar in scalars[start..<end] { candidate.append(contentsOf: UTF8.encode(scalar)!) }
                if let id = vocabulary[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else { return [(unknownID, 0..<scalars.count)] }
            pieces.append((id, start..<end))
            start = end
        }
        return pieces
    }

    // MARK: Tokens with offsets

    /// The tokens of `text` with the input scalars each covers (TEI's
    /// /tokenize): the same ids `encode` gives, untruncated. Normalization runs
    /// scalar by scalar so every normalized scalar knows where it came from.
    public func tokens(_ text: String, addSpecialTokens: Bool) -> [TextToken] {
        let original = Array(text.unicodeScalars)
        var normalized: [(scalar: Unicode.Scalar, origin: Int)] = []
        for (index, scalar) in original.enumerated() {
            if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
            if scalar.properties.isWhitespace {
                normalized.append((" ", index))
            } else if Self.isCJK(scalar) {
                normalized += [(" ", index), (scalar, index), (" ", index)]
            } else {
                for part in String(scalar).decomposedStringWithCanonicalMapping.unicodeScalars
                where part.properties.generalCategory != .nonspacingMark {
                    for lower in part.properties.lowercaseMapping.unicodeScalars { normalized.append((lower, index)) }
                }
            }
        }
        var words: [Range<Int>] = []
        var wordStart: Int?
        for (index, entry) in normalized.enumerated() {
            if entry.scalar.properties.isWhitespace || Self.isPunctuation(entry.scalar) {
                if let start = wordStart { words.append(start..<index) }
                wordStart = nil
                if !entry.scalar.properties.isWhitespace { words.append(index..<(index + 1)) }
            } else if wordStart == nil {
                wordStart = index
            }
        }
        if let start = wordStart { words.append(start..<normalized.count) }

        var tokens: [TextToken] = []
        if addSpecialTokens { tokens.append(TextToken(id: classifierID, text: "[CLS]", special: true, start: nil, stop: nil)) }
        for word in words {
            let scalars = normalized[word].map(\.scalar)
            for piece in wordPieceSpans(scalars) {
                let from = normalized[word.lowerBound + piece.span.lowerBound].origin
                let to = normalized[word.lowerBound + piece.span.upperBound - 1].origin + 1
                var covered = String.UnicodeScalarView()
                covered.append(contentsOf: original[from..<to])
                tokens.append(TextToken(id: piece.id, text: String(covered), special: false, start: from, stop: to))
            }
        }
        if addSpecialTokens { tokens.append(TextToken(id: separatorID, text: "[SEP]", special: true, start: nil, stop: nil)) }
        return tokens
    }
}
