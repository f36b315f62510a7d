import Foundation
import InferenceCore

/// Finds identifiers in a text: every recognizer runs over one scan, then
/// overlaps are resolved, the allow list and the threshold applied.
public struct PHIAnalyzer: Sendable {
    public var lexicon: Lexicon
    /// Extra patterns from the model's patterns file, each with its type and score.
    public var extraPatterns: [ExtraPattern]

    public struct ExtraPattern: @unchecked Sendable {
        // NSRegularExpression is immutable and documented thread-safe for matching.
        public var type: EntityType
        public var expression: NSRegularExpression
        public var score: Double
        public init(type: EntityType, expression: NSRegularExpression, score: Double) {
            self.type = type
            self.expression = expression
            self.score = score
        }
    }

    public init(lexicon: Lexicon, extraPatterns: [ExtraPattern] = []) {
        self.lexicon = lexicon
        self.extraPatterns = extraPatterns
    }

    /// Every identifier of the given types at or above `threshold`, sorted by
    /// start, no two overlapping.
    /// `modelSpans`: what a token-classification model found in the same
    /// text, resolved together with the rules' findings.
    public func analyze(_ text: String, entities: Set<EntityType> = Set(EntityType.allCases), threshold: Double = 0.5,
                        modelSpans: [DetectedEntity] = []) -> [DetectedEntity] {
        let scanned = ScannedText(text)
        var found = modelSpans
        PatternRecognizers.findAll(scanned, into: &found)
        DateRecognizer.findAll(scanned, into: &found)
        ContextRecognizer.findAll(scanned, into: &found)
        AddressRecognizer.findAll(scanned, lexicon: lexicon, into: &found)
        NameRecognizer.findAll(scanned, lexicon: lexicon, into: &found)
        denyListTerms(scanned, &found)
        extra(text, scanned, &found)
        let kept = found.filter { entities.contains($0.type) && $0.score >= threshold && !isAllowed($0, scanned) }
        return SpanResolver.resolve(kept)
    }

    func isAllowed(_ entity: DetectedEntity, _ text: ScannedText) -> Bool {
        guard !lexicon.allowList.isEmpty else { return false }
        return lexicon.allowList.contains(text.text(entity.start, entity.end).lowercased())
    }

    func denyListTerms(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        guard !lexicon.denyList.isEmpty else { return }
        for index in text.tokens.indices {
            for (terms, type) in lexicon.denyList where text.matches(terms, at: index) {
                let last = index + terms.count - 1
                found.append(DetectedEntity(type: type, start: text.tokens[index].start, end: text.tokens[last].end, score: 1.0, recognizer: .denyList))
            }
        }
    }

    /// The patterns file's expressions, whose UTF-16 ranges become scalar offsets.
    func extra(_ text: String, _ scanned: ScannedText, _ found: inout [DetectedEntity]) {
        guard !extraPatterns.isEmpty else { return }
        let utf16 = text.utf16
        var scalarAtUTF16: [Int] = []
        scalarAtUTF16.reserveCapacity(utf16.count + 1)
        for (k, scalar) in text.unicodeScalars.enumerated() {
            scalarAtUTF16.append(k)
            if scalar.utf16.count == 2 { scalarAtUTF16.append(k) }
        }
        scalarAtUTF16.append(scanned.scalars.count)
        let whole = NSRange(location: 0, length: utf16.count)
        for pattern in extraPatterns {
            for match in pattern.expression.matches(in: text, range: whole) where match.range.length > 0 {
                found.append(DetectedEntity(type: pattern.type, start: scalarAtUTF16[match.range.location],
                                            end: scalarAtUTF16[match.range.location + match.range.length],
                                            score: pattern.score, recognizer: .pattern))
            }
        }
    }
}

/// Overlapping spans: the higher score wins, then the longer span, then the
/// earlier one; what is left is sorted by start and disjoint.
public enum SpanResolver {
    public static func resolve(_ spans: [DetectedEntity]) -> [DetectedEntity] {
        let ranked = spans.sorted {
            if $0.score != $1.score { return $0.score > $1.score }
            if $0.length != $1.length { return $0.length > $1.length }
            if $0.start != $1.start { return $0.start < $1.start }
            return $0.type < $1.type   // a fixed order, so equal claims resolve the same way every time
        }
        // An occupancy map of the text: linear in its length, whatever the number of spans.
        var taken = [Bool](repeating: false, count: (spans.map(\.end).max() ?? 0) + 1)
        var kept: [DetectedEntity] = []
        for span in ranked where span.length > 0 && span.start >= 0 {
            if taken[span.start..<span.end].contains(true) { continue }
            for k in span.start..<span.end { taken[k] = true }
            kept.append(span)
        }
        return kept.sorted { $0.start < $1.start }
    }
}
