import Foundation
import Testing
@testable import TransformerEncoder
@testable import TransformerModel

@Suite struct TokenizerUnitTests {
    let tokenizer = try! WordPieceTokenizer(vocabulary: Dictionary(uniqueKeysWithValues: [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "un", "##aff", "##able", ",", "!", "cafe", "的",
    ].enumerated().map { (Array($0.element.utf8), Int32($0.offset)) }))

    @Test func basicTokenizationAndWordPieces() {
        #expect(tokenizer.encode("Hello, WORLD!", maxLength: 512) == [2, 4, 9, 5, 10, 3])
        #expect(tokenizer.encode("unaffable", maxLength: 512) == [2, 6, 7, 8, 3])
        #expect(tokenizer.encode("Café", maxLength: 512) == [2, 11, 3])   // accents stripped
        #expect(tokenizer.encode("hello的world", maxLength: 512) == [2, 4, 12, 5, 3])   // CJK spaced out
        #expect(tokenizer.encode("xyz", maxLength: 512) == [2, 1, 3])
        #expect(tokenizer.encode("hello\u{0}\u{200B} world\u{7}", maxLength: 512) == [2, 4, 5, 3])   // control and format chars dropped
    }

    @Test func truncationKeepsClassifierAndSeparator() {
        let ids = tokenizer.encode(String(repeating: "hello ", count: 100), maxLength: 8)
        #expect(ids.count == 8)
        #expect(ids.first == 2 && ids.last == 3)
    }

    @Test func overlongWordsAreUnknown() {
        #expect(tokenizer.encode(String(repeating: "a", count: 101), maxLength: 512) == [2, 1, 3])
    }
}

@Suite struct BFloat16Tests {
    @Test func roundsToNearestEven() {
        #expect(BFloat16Bits.round(1.0) == 0x3F80)
        #expect(BFloat16Bits.round(Float(bitPattern: 0x3F80_8000)) == 0x3F80)   // tie, even stays
        #expect(BFloat16Bits.round(Float(bitPattern: 0x3F81_8000)) == 0x3F82)   // tie, odd rounds up
        #expect(BFloat16Bits.round(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(BFloat16Bits.round(-2.5) == 0xC020)
        #expect(BFloat16Bits.round(.nan) & 0x7FC0 == 0x7FC0)
    }
}

@Suite struct TokenOffsetTests {
    let tokenizer = try! WordPieceTokenizer(vocabulary: Dictionary(uniqueKeysWithValues: [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "un", "##aff", "##able", ",", "!", "cafe", "的",
    ].enumerated().map { (Array($0.element.utf8), Int32($0.offset)) }))

    @Test func idsEqualEncodeAndOffsetsPointIntoTheInput() {
        for text in ["Hello, WORLD!", "unaffable", "Café  au", "hello的world", "xyz hello", "hello\u{0}\u{200B} world\u{7}"] {
            #expect(tokenizer.tokens(text, addSpecialTokens: true).map(\.id) == tokenizer.encode(text, maxLength: 512))
        }
        let tokens = tokenizer.tokens("Café, unaffable", addSpecialTokens: true)
        #expect(tokens.map(\.text) == ["[CLS]", "Café", ",", "un", "aff", "able", "[SEP]"])
        #expect(tokens.map(\.start) == [nil, 0, 4, 6, 8, 11, nil])
        #expect(tokens.map(\.stop) == [nil, 4, 5, 8, 11, 15, nil])
        #expect(tokens.first?.special == true && tokens[1].special == false)
        #expect(tokenizer.tokens("hello", addSpecialTokens: false).map(\.id) == [4])
    }
}
