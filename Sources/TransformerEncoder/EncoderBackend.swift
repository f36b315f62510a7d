import CDNNL
import Foundation
import InferenceCore
import Logging

/// The `transformer_encoder` backend: a DistilBERT or BERT checkpoint in
/// Hugging Face's layout (`config.json`, `model.safetensors`, `vocab.txt`) in
/// the model's version directory.
///
/// Inputs (names configurable with the parameters `input_ids_tensor`,
/// `attention_mask_tensor`, `text_tensor`): INPUT_IDS and ATTENTION_MASK
/// (INT64 [-1]) as Triton deployments of DistilBERT use them, or TEXT (BYTES
/// [1], tokenized in the server). Output: LOGITS (FP32 [labels], sequence
/// classification) or EMBEDDING (FP32 [hidden], mean-pooled and L2-normalized).
/// Requests of any lengths share a batch: tokens are packed without padding.
public struct EncoderBackend: ModelBackend {
    public let name = "transformer_encoder"
    public let variableLengthBatching: TokenCost? = .packed

    public init() {}

    struct Names {
        var ids = "INPUT_IDS", mask = "ATTENTION_MASK", text = "TEXT"
        init(_ spec: ModelSpec) {
            ids = spec.parameters["input_ids_tensor"] ?? ids
            mask = spec.parameters["attention_mask_tensor"] ?? mask
            text = spec.parameters["text_tensor"] ?? text
        }
    }

    public func validate(_ spec: ModelSpec) throws {
        let names = Names(spec)
        guard spec.maxBatchSize > 0 else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs max_batch_size > 0")
        }
        for input in spec.inputs {
            switch input.name {
            case names.ids, names.mask:
                guard input.dataType == .int64, input.dims == [-1] else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': input '\(input.name)' must be TYPE_INT64 with dims [ -1 ]")
                }
            case names.text:
                guard input.dataType == .bytes, input.dims == [1] else {
                    throw InferenceError.invalidArgument("model '\(spec.name)': input '\(input.name)' must be TYPE_STRING with dims [ 1 ]")
                }
            default:
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': backend '\(name)' does not know input '\(input.name)' (expected \(names.ids), \(names.mask) or \(names.text))")
            }
        }
        guard spec.inputs.contains(where: { $0.name == names.ids || $0.name == names.text }) else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' needs input '\(names.ids)' or '\(names.text)'")
        }
        guard spec.outputs.count == 1, let output = spec.outputs.first, ["LOGITS", "EMBEDDING"].contains(output.name),
              output.dataType == .fp32, output.dims.count == 1 else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' has one output, LOGITS or EMBEDDING, TYPE_FP32 with one dim")
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        try EncoderInstance(spec: spec, names: Names(spec))
    }

    public func sequenceLength(of request: ValidatedRequest, spec: ModelSpec) -> Int? {
        let names = Names(spec)
        if let ids = request.request.input(named: names.ids), ids.shape.count == 2 { return ids.shape[1] }
        if let text = request.request.input(named: names.text) {
            // A cheap estimate for batching (about four bytes a token); the
            // tokenizer runs on the instance's thread, not in the scheduler.
            return min(text.bytes.count / max(request.batchSize, 1) / 4 + 2, 512)
        }
        return nil
    }
}

final class EncoderInstance: ModelInstance, @unchecked Sendable {
    let spec: ModelSpec
    let names: EncoderBackend.Names
    let forward: EncoderForward
    let tokenizer: WordPieceTokenizer?
    let outputName: String
    let threads: Int
    private var threadsApplied = false

    init(spec: ModelSpec, names: EncoderBackend.Names) throws {
        self.spec = spec
        self.names = names
        let directory = spec.versionPath
        let config = try EncoderConfig(file: (directory as NSString).appendingPathComponent("config.json"))
        let file = try SafeTensorsFile(path: (directory as NSString).appendingPathComponent("model.safetensors"))
        let weights = try EncoderWeights(file: file, config: config)
        var precision = spec.parameters["precision"] ?? "fp32"
        if precision == "bf16" && !EncoderForward.bf16Available {
            Logger(label: "batch-server").warning("this CPU has no bf16 matrix instructions; running in fp32", metadata: [
                "model.name": "\(spec.name)", "model.version": "\(spec.version)",
            ])
            precision = "fp32"
        }
        forward = try EncoderForward(config: config, weights: weights, precision: precision)
        let vocabulary = (directory as NSString).appendingPathComponent("vocab.txt")
        if spec.inputs.contains(where: { $0.name == names.text }) {
            tokenizer = try WordPieceTokenizer(vocabularyFile: vocabulary)
        } else {
            tokenizer = nil
        }
        outputName = spec.outputs[0].name
        let width = spec.outputs[0].dims[0]
        if outputName == "LOGITS" {
            guard let labels = weights.classifier?.bias.count else {
                throw InferenceError.invalidArgument("model '\(spec.name)': output LOGITS needs a classification checkpoint (pre_classifier, classifier)")
            }
            guard width == labels else {
                throw InferenceError.invalidArgument("model '\(spec.name)': output LOGITS has dims [\(width)] but the checkpoint has \(labels) labels")
            }
        } else if width != config.hidden {
            throw InferenceError.invalidArgument("model '\(spec.name)': output EMBEDDING has dims [\(width)] but the checkpoint's hidden size is \(config.hidden)")
        }
        threads = Int(spec.parameters["threads"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        if !threadsApplied {
            omp_set_num_threads(Int32(max(threads, 1)))
            threadsApplied = true
        }
        var packed = PackedSequences()
        var rowsPerItem: [Int] = []
        for item in batch.items {
            try pack(item.request, into: &packed)
            rowsPerItem.append(item.batchSize)
        }
        let width = spec.outputs[0].dims[0]
        let values = outputName == "LOGITS" ? try forward.logits(packed) : try forward.embeddings(packed)
        var offset = 0
        return rowsPerItem.map { rows in
            defer { offset += rows * width }
            return [Tensor(name: outputName, shape: [rows, width], values: Array(values[offset..<(offset + rows * width)]))]
        }
    }

    private func pack(_ request: InferenceRequest, into packed: inout PackedSequences) throws {
        let maxPositions = forward.config.maxPositions
        if let text = request.input(named: names.text) {
            guard let tokenizer else { throw InferenceError.internal("model '\(spec.name)' has no tokenizer") }
            for (index, element) in try text.elements().enumerated() {
                guard let string = String(validating: element, as: UTF8.self) else {
                    throw InferenceError.invalidArgument("input '\(names.text)' element \(index) is not valid UTF-8")
                }
                guard !string.isEmpty else {
                    throw InferenceError.invalidArgument("input '\(names.text)' element \(index) is empty")
                }
                let ids = tokenizer.encode(string, maxLength: maxPositions)
                packed.append(ids: ids.map(Int64.init), mask: Optional<[Int64]>.none)
            }
            return
        }
        guard let ids = request.input(named: names.ids) else {
            throw InferenceError.invalidArgument("model '\(spec.name)' needs input '\(names.ids)' or '\(names.text)'")
        }
        let mask = request.input(named: names.mask)
        if let mask, mask.shape != ids.shape {
            throw InferenceError.invalidArgument(
                "input '\(names.mask)' has shape \(ShapeMath.format(mask.shape)) but '\(names.ids)' has \(ShapeMath.format(ids.shape))")
        }
        let rows = ids.shape[0], length = ids.shape[1]
        guard length > 0 else { throw InferenceError.invalidArgument("input '\(names.ids)' is empty") }
        guard length <= maxPositions else {
            throw InferenceError.invalidArgument("input '\(names.ids)' length \(length) exceeds the model's \(maxPositions) positions")
        }
        let values = try ids.values(as: Int64.self)
        let vocabulary = Int64(forward.config.vocabularySize)
        if values.contains(where: { $0 < 0 || $0 >= vocabulary }) {
            throw InferenceError.invalidArgument("input '\(names.ids)' holds a token id outside the vocabulary of \(vocabulary)")
        }
        let maskValues = try mask?.values(as: Int64.self)
        for row in 0..<rows {
            let slice = values[(row * length)..<((row + 1) * length)]
            let maskSlice = maskValues.map { Array($0[(row * length)..<((row + 1) * length)]) }
            if let maskSlice, !maskSlice.contains(where: { $0 != 0 }) {
                throw InferenceError.invalidArgument("input '\(names.mask)' row \(row) masks every token")
            }
            packed.append(ids: slice, mask: maskSlice)
        }
    }
}
