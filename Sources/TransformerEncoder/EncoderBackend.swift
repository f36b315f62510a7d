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

    public func validate(_ spec: ModelSpec) throws {
        let names = EncoderInputNames(spec)
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
        try EncoderInstance(model: EncoderModel(spec: spec))
    }

    public func sequenceLength(of request: ValidatedRequest, spec: ModelSpec) -> Int? {
        let names = EncoderInputNames(spec)
        if let ids = request.request.input(named: names.ids), ids.shape.count == 2 { return ids.shape[1] }
        if let text = request.request.input(named: names.text) {
            // A cheap estimate for batching (about four bytes a token); the
            // tokenizer runs on the instance's thread, not in the scheduler.
            return min(text.bytes.count / max(request.batchSize, 1) / 4 + 2, 512)
        }
        return nil
    }
}

/// One CPU instance: the model's forward pass on oneDNN with its own scratch
/// buffers and OpenMP thread count (parameter `threads`).
final class EncoderInstance: ModelInstance, @unchecked Sendable {
    let model: EncoderModel
    let forward: EncoderForward
    let threads: Int
    private var threadsApplied = false

    init(model: EncoderModel) throws {
        self.model = model
        let spec = model.spec
        var precision = spec.parameters["precision"] ?? "fp32"
        if precision == "bf16" && !EncoderForward.bf16Available {
            Logger(label: "batch-server").warning("this CPU has no bf16 matrix instructions; running in fp32", metadata: [
                "model.name": "\(spec.name)", "model.version": "\(spec.version)",
            ])
            precision = "fp32"
        }
        threads = Int(spec.parameters["threads"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
        forward = try EncoderForward(config: model.config, weights: model.weights, precision: precision, threads: threads)
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        if !threadsApplied {
            omp_set_num_threads(Int32(max(threads, 1)))
            threadsApplied = true
        }
        let (packed, rows) = try model.pack(batch)
        let values = model.head == .logits ? try forward.logits(packed) : try forward.embeddings(packed)
        return model.split(values, rowsPerItem: rows)
    }
}
