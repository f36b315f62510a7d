import Foundation
import InferenceCore

/// `task: token_classification`: a `…ForTokenClassification` checkpoint's
/// per-token labels (config.json's `id2label`, BIO, BIOES or plain IO tags)
/// turned into character spans of the input text through the tokenizer's
/// offsets. Outputs: ENTITIES (BYTES [1], a JSON list per text: entity_type,
/// start, end in Unicode scalars of the input, end exclusive, score) and
/// TOKEN_LOGITS (FP32 [-1, labels], every token's logits, [CLS] and [SEP]
/// included; rows of one request padded with zeros to the longest).
public struct TokenClassificationHead: Sendable {
    public static let task = "token_classification"
    public static let entitiesOutput = "ENTITIES"
    public static let logitsOutput = "TOKEN_LOGITS"

    /// One label as the span merger reads it.
    struct Tag: Sendable, Equatable {
        enum Position: Sendable { case outside, begin, inside, end, single }
        var position: Position
        /// The entity type the tag names ("PER" of "B-PER"); empty outside.
        var type: String

        init(_ label: String) {
            if label == "O" || label.isEmpty {
                (position, type) = (.outside, "")
                return
            }
            let scalars = Array(label.unicodeScalars)
            if scalars.count > 2, scalars[1] == "-" || scalars[1] == "_" {
                let kinds: [Unicode.Scalar: Position] = ["B": .begin, "I": .inside, "E": .end, "S": .single, "L": .end, "U": .single]
                if let kind = kinds[scalars[0]] {
                    (position, type) = (kind, String(String.UnicodeScalarView(scalars[2...])))
                    return
                }
            }
            // IO tagging: a bare type continues a run of the same type.
            (position, type) = (.inside, label)
        }
    }

    /// One entity found: offsets in Unicode scalars of the input, end exclusive.
    public struct Span: Sendable, Equatable {
        public var type: String
        public var start: Int
        public var end: Int
        /// The mean, over the span's tokens, of the winning label's probability.
        public var score: Double
    }

    let tags: [Tag]
    public var labels: Int { tags.count }

    public init(labels: [String]) {
        tags = labels.map(Tag.init)
    }

    /// Checks a model's outputs for this task against its checkpoint's labels.
    public static func validateOutputs(_ spec: ModelSpec, labels: Int) throws {
        for output in spec.outputs {
            switch output.name {
            case entitiesOutput:
                guard output.dataType == .bytes, output.dims == [1] else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': output '\(entitiesOutput)' must be TYPE_STRING with dims [ 1 ]")
                }
            case logitsOutput:
                guard output.dataType == .fp32, output.dims.count == 2, output.dims[0] == -1, labels < 0 || output.dims[1] == labels else {
                    throw InferenceError.invalidArgument(
                        "model '\(spec.name)': output '\(logitsOutput)' must be TYPE_FP32 with dims [ -1, \(labels < 0 ? "labels" : String(labels)) ]")
                }
            default:
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': task '\(task)' produces '\(entitiesOutput)' and '\(logitsOutput)', not '\(output.name)'")
            }
        }
    }

    /// Merges a text's tokens (as the tokenizer cut it, special tokens
    /// included) and their logits ((tokens, labels), row-major) into spans:
    /// each token takes its most probable label; a B (or S, or a change of
    /// type) starts an entity, I and E of the same type extend it, O ends it.
    /// Tokens past `logits` (a truncated text) and special tokens are skipped.
    func spans(tokens: [TextToken], logits: ArraySlice<Float>) -> [Span] {
        let width = labels
        var spans: [Span] = []
        var open: (span: Span, scores: Double, count: Int)?
        func close() {
            if let current = open {
                var span = current.span
                span.score = current.scores / Double(current.count)
                spans.append(span)
            }
            open = nil
        }
        let base = logits.startIndex
        for (index, token) in tokens.enumerated() where (index + 1) * width <= logits.count {
            guard !token.special, let start = token.start, let stop = token.stop else { continue }
            let row = logits[(base + index * width)..<(base + (index + 1) * width)]
            var best = row.startIndex
            for j in row.indices where row[j] > row[best] { best = j }
            // The winner's softmax probability: 1 / sum(exp(l_j - l_best)).
            let total = row.reduce(0.0) { $0 + exp(Double($1 - row[best])) }
            let probability = 1 / total
            let tag = tags[best - row.startIndex]
            switch tag.position {
            case .outside:
                close()
            case .inside, .end:
                if var current = open, current.span.type == tag.type {
                    current.span.end = stop
                    current.scores += probability
                    current.count += 1
                    open = current
                } else {
                    close()
                    open = (Span(type: tag.type, start: start, end: stop, score: 0), probability, 1)
                }
                if tag.position == .end { close() }
            case .begin, .single:
                close()
                open = (Span(type: tag.type, start: start, end: stop, score: 0), probability, 1)
                if tag.position == .single { close() }
            }
        }
        close()
        return spans
    }

    /// The spans as JSON, the shape the de-identifier's ENTITIES and
    /// analyzer results share.
    static func json(_ spans: [Span]) -> [UInt8] {
        var out = "["
        for (k, span) in spans.enumerated() {
            if k > 0 { out += "," }
            let type = (try? JSONSerialization.data(withJSONObject: span.type, options: [.fragmentsAllowed]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
            out += "{\"entity_type\":\(type),\"start\":\(span.start),\"end\":\(span.end),\"score\":\((span.score * 1e6).rounded() / 1e6)}"
        }
        return Array((out + "]").utf8)
    }
}

extension EncoderModel {
    /// Token classification: each request's rows of (tokens, labels) logits,
    /// in packed order, as its outputs. ENTITIES re-cuts the request's text
    /// with offsets (the ids were made before queuing; cutting again costs
    /// far less than the forward pass) and keeps the tokens the row kept.
    public func splitTokens(_ logits: [Float], batch: Batch, packed: PackedSequences, tokenizer: WordPieceTokenizer?) throws -> [[Tensor]] {
        guard let head = tokenHead else { throw InferenceError.internal("model '\(spec.name)' has no token classification head") }
        let width = head.labels
        var sequence = 0
        return try batch.items.map { item in
            let rows = item.batchSize
            defer { sequence += rows }
            let lengths = (0..<rows).map { packed.starts[sequence + $0 + 1] - packed.starts[sequence + $0] }
            func rowLogits(_ row: Int) -> ArraySlice<Float> {
                logits[(packed.starts[sequence + row] * width)..<(packed.starts[sequence + row + 1] * width)]
            }
            return try spec.outputs.map { output in
                if output.name == TokenClassificationHead.logitsOutput {
                    let longest = lengths.max() ?? 0
                    var values = [Float](repeating: 0, count: rows * longest * width)
                    for row in 0..<rows {
                        let slice = rowLogits(row)
                        values.replaceSubrange((row * longest * width)..<(row * longest * width + slice.count), with: slice)
                    }
                    return Tensor(name: output.name, shape: [rows, longest, width], values: values)
                }
                guard let text = item.request.input(named: names.text), let tokenizer else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': output '\(output.name)' needs input '\(names.text)' (spans are offsets into the text)")
                }
                let elements = try text.elements()
                let json = (0..<rows).map { row -> [UInt8] in
                    var tokens = tokenizer.tokens(String(decoding: elements[row], as: UTF8.self), addSpecialTokens: true)
                    // A truncated row kept its first tokens and a closing [SEP].
                    if tokens.count > lengths[row] { tokens = Array(tokens.prefix(max(lengths[row] - 1, 0))) }
                    return TokenClassificationHead.json(head.spans(tokens: tokens, logits: rowLogits(row)))
                }
                return Tensor(name: output.name, shape: text.shape, elements: json)
            }
        }
    }
}
