import Foundation
import InferenceCore

/// JSON bodies of the KServe v2 HTTP API, field names as Triton writes them.
enum HTTPResponseBodies {
    struct ErrorBody: Encodable { let error: String }

    struct ServerMetadata: Encodable {
        let name: String
        let version: String
        let extensions: [String]
    }

    struct TensorMetadata: Encodable {
        let name: String
        let datatype: String
        let shape: [Int]
    }

    struct ModelMetadata: Encodable {
        let name: String
        let versions: [String]
        let platform: String
        let inputs: [TensorMetadata]
        let outputs: [TensorMetadata]
    }

    static func modelMetadata(_ models: [ModelView]) -> ModelMetadata {
        let newest = models.last!.spec
        func describe(_ tensors: [TensorSpec]) -> [TensorMetadata] {
            tensors.map { TensorMetadata(name: $0.name, datatype: $0.dataType.rawValue, shape: newest.protocolShape($0)) }
        }
        return ModelMetadata(
            name: newest.name, versions: models.map { String($0.spec.version) },
            platform: models.last!.platform,
            inputs: describe(newest.inputs), outputs: describe(newest.outputs))
    }

    struct InferResponseHeader: Encodable {
        struct Output: Encodable {
            let name: String
            let datatype: String
            let shape: [Int]
            let parameters: [String: JSONParameter]?
            let data: JSONTensorValues?
        }
        let model_name: String
        let model_version: String
        let id: String?
        let outputs: [Output]
    }

    struct Duration: Encodable {
        let count: UInt64
        let ns: UInt64
        init(_ value: StatisticDuration) { count = value.count; ns = value.nanoseconds }
    }

    struct ModelStatisticsBody: Encodable {
        struct InferenceStats: Encodable {
            let success, fail, queue, compute_input, compute_infer, compute_output, cache_hit, cache_miss: Duration
        }
        struct BatchStats: Encodable {
            let batch_size: Int
            let compute_input, compute_infer, compute_output: Duration
        }
        let name: String
        let version: String
        let last_inference: UInt64
        let inference_count: UInt64
        let execution_count: UInt64
        let inference_stats: InferenceStats
        let batch_stats: [BatchStats]
        let memory_usage: [String]
        let response_stats: [String: String]

        init(_ model: ModelView) {
            let stats = model.runner.statistics()
            name = model.spec.name
            version = String(model.spec.version)
            last_inference = stats.lastInferenceMilliseconds
            inference_count = stats.inferenceCount
            execution_count = stats.executionCount
            inference_stats = InferenceStats(
                success: .init(stats.success), fail: .init(stats.fail), queue: .init(stats.queue),
                compute_input: .init(stats.computeInput), compute_infer: .init(stats.computeInfer),
                compute_output: .init(stats.computeOutput), cache_hit: .init(stats.cacheHit), cache_miss: .init(stats.cacheMiss))
            batch_stats = stats.batches.keys.sorted().map { size in
                let batch = stats.batches[size]!
                return BatchStats(batch_size: size, compute_input: .init(batch.computeInput),
                                  compute_infer: .init(batch.computeInfer), compute_output: .init(batch.computeOutput))
            }
            memory_usage = []
            response_stats = [:]
        }
    }

    struct StatisticsBody: Encodable { let model_stats: [ModelStatisticsBody] }

    struct IndexEntry: Encodable {
        let name: String
        let version: String?
        let state: String
        let reason: String?
        init(_ entry: ModelIndexEntry) {
            name = entry.name
            version = entry.version.isEmpty ? nil : entry.version
            state = entry.state.rawValue
            reason = entry.reason.isEmpty ? nil : entry.reason
        }
    }
}
