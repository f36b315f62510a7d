import Foundation
import InferenceCore
import Testing
@testable import TransformerEncoder
@testable import TransformerModel

@Suite struct TokenClassificationTests {
    let head = TokenClassificationHead(labels: ["O", "B-PER", "I-PER", "B-DATE", "I-DATE", "S-ZIP", "E-PER", "LOC"])

    /// Tokens at the given scalar ranges, with [CLS] and [SEP] around them.
    func tokens(_ ranges: [Range<Int>]) -> [TextToken] {
        [TextToken(id: 2, text: "[CLS]", special: true, start: nil, stop: nil)]
            + ranges.map { TextToken(id: 7, text: "x", special: false, start: $0.lowerBound, stop: $0.upperBound) }
            + [TextToken(id: 3, text: "[SEP]", special: true, start: nil, stop: nil)]
    }

    /// Logits whose winner per token is `winners[i]` (by 4 over the rest).
    func logits(_ winners: [Int]) -> ArraySlice<Float> {
        var values: [Float] = []
        for winner in winners { values += (0..<head.labels).map { $0 == winner ? 4 : 0 } }
        return values[...]
    }

    @Test func tagsOfEachScheme() {
        #expect(TokenClassificationHead.Tag("O").position == .outside)
        #expect(TokenClassificationHead.Tag("B-PER") == .init("B_PER"))
        #expect(TokenClassificationHead.Tag("I-DATE").type == "DATE")
        #expect(TokenClassificationHead.Tag("S-ZIP").position == .single)
        #expect(TokenClassificationHead.Tag("LOC").position == .inside)   // IO tagging
        #expect(TokenClassificationHead.Tag("B-").type == "B-")           // not a prefix: the whole label
    }

    @Test func beginsInsidesAndOutsidesMergeIntoSpans() {
        // [CLS] Maria(0..<5) Lopez(6..<11) on(12..<14) 14(15..<17) March(18..<23) [SEP]
        let t = tokens([0..<5, 6..<11, 12..<14, 15..<17, 18..<23])
        let spans = head.spans(tokens: t, logits: logits([0, 1, 2, 0, 3, 4, 0]))
        #expect(spans.map { [$0.type, "\($0.start)", "\($0.end)"] } == [["PER", "0", "11"], ["DATE", "15", "23"]])
        let p = 1 / (1 + 7 * exp(-4.0))
        #expect(abs(spans[0].score - p) < 1e-9)
    }

    @Test func aBeginAfterAnEntityStartsAnotherAndAnInsideOfAnotherTypeToo() {
        let t = tokens([0..<3, 4..<7, 8..<11, 12..<15])
        let spans = head.spans(tokens: t, logits: logits([0, 1, 1, 4, 2, 0]))
        #expect(spans.map(\.type) == ["PER", "PER", "DATE", "PER"])
        #expect(spans.map(\.start) == [0, 4, 8, 12])
    }

    @Test func singlesAndEndsCloseTheirEntity() {
        let t = tokens([0..<5, 6..<9, 10..<13, 14..<17])
        let spans = head.spans(tokens: t, logits: logits([0, 5, 1, 6, 2, 0]))
        #expect(spans.map { "\($0.type):\($0.start)-\($0.end)" } == ["ZIP:0-5", "PER:6-13", "PER:14-17"])
    }

    @Test func specialTokensAndTokensPastTheLogitsAreSkipped() {
        // Logits for [CLS] and two tokens only (a truncated row without its [SEP] here).
        let t = tokens([0..<2, 3..<5, 6..<8])
        let spans = head.spans(tokens: t, logits: logits([1, 1, 2]))
        #expect(spans.map { "\($0.start)-\($0.end)" } == ["0-5"])
    }

    @Test func spansAsJSON() throws {
        let json = TokenClassificationHead.json([.init(type: "PER", start: 0, end: 5, score: 0.98765432)])
        #expect(String(decoding: json, as: UTF8.self) == #"[{"entity_type":"PER","start":0,"end":5,"score":0.987654}]"#)
        #expect(TokenClassificationHead.json([]) == Array("[]".utf8))
    }
}
