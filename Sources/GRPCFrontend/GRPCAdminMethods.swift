import Foundation
import GRPCLite
import InferenceCore
import SwiftProtobuf
import TritonProto

/// Shared memory, log and trace settings methods, as Triton answers them.
extension KServeGRPCService {
    func addAdministrationMethods(to router: inout GRPCRouter) {
        let system = server.systemSharedMemory
        unary(&router, "SystemSharedMemoryStatus") { (request: Inference_SystemSharedMemoryStatusRequest) in
            let regions = try system.status(name: request.name)
            return Inference_SystemSharedMemoryStatusResponse.with { response in
                for region in regions {
                    response.regions[region.name] = .with {
                        $0.name = region.name
                        $0.key = region.key
                        $0.offset = region.offset
                        $0.byteSize = region.byteSize
                    }
                }
            }
        }
        unary(&router, "SystemSharedMemoryRegister") { (request: Inference_SystemSharedMemoryRegisterRequest) in
            try system.register(name: request.name, key: request.key, offset: request.offset, byteSize: request.byteSize)
            return Inference_SystemSharedMemoryRegisterResponse()
        }
        unary(&router, "SystemSharedMemoryUnregister") { (request: Inference_SystemSharedMemoryUnregisterRequest) in
            try system.unregister(name: request.name)
            return Inference_SystemSharedMemoryUnregisterResponse()
        }

        let cuda = server.cudaSharedMemory
        unary(&router, "CudaSharedMemoryStatus") { (request: Inference_CudaSharedMemoryStatusRequest) in
            let regions = try cuda.status(name: request.name)
            return Inference_CudaSharedMemoryStatusResponse.with { response in
                for region in regions {
                    response.regions[region.name] = .with {
                        $0.name = region.name
                        $0.deviceID = region.deviceID
                        $0.byteSize = region.byteSize
                    }
                }
            }
        }
        unary(&router, "CudaSharedMemoryRegister") { (request: Inference_CudaSharedMemoryRegisterRequest) in
            try cuda.register(name: request.name, rawHandle: Array(request.rawHandle), deviceID: request.deviceID, byteSize: request.byteSize)
            return Inference_CudaSharedMemoryRegisterResponse()
        }
        unary(&router, "CudaSharedMemoryUnregister") { (request: Inference_CudaSharedMemoryUnregisterRequest) in
            try cuda.unregister(name: request.name)
            return Inference_CudaSharedMemoryUnregisterResponse()
        }

        let logs = server.logSettings
        unary(&router, "LogSettings") { (request: Inference_LogSettingsRequest) in
            var changes: [String: LogSettingValue] = [:]
            for (key, value) in request.settings {
                switch value.parameterChoice {
                case .boolParam(let flag)?: changes[key] = .bool(flag)
                case .uint32Param(let number)?: changes[key] = .uint32(number)
                case .stringParam(let text)?: changes[key] = .string(text)
                case nil:
                    // An empty value (tritonclient's None) is a value of no type.
                    let expected = key == "log_verbose_level" ? "int32" : key == "log_format" || key == "log_file" ? "string" : "boolean"
                    throw TritonErrors.logSettingType(key, expected: expected)
                }
            }
            let settings = changes.isEmpty ? logs.current() : try logs.update(changes)
            return Inference_LogSettingsResponse.with { response in
                for (key, value) in settings {
                    response.settings[key] = .with {
                        switch value {
                        case .bool(let flag): $0.boolParam = flag
                        case .uint32(let number): $0.uint32Param = number
                        case .string(let text): $0.stringParam = text
                        }
                    }
                }
            }
        }

        let traces = server.traceSettings
        unary(&router, "TraceSetting") { (request: Inference_TraceSettingRequest) in
            // An empty value list clears the setting, as in Triton.
            let changes = request.settings.mapValues { $0.value.isEmpty ? nil : $0.value }
            let settings = changes.isEmpty
                ? try traces.current(model: request.modelName)
                : try traces.update(model: request.modelName, changes)
            return Inference_TraceSettingResponse.with { response in
                for (key, value) in settings { response.settings[key] = .with { $0.value = value } }
            }
        }
    }
}

/// Messages built from the server core's values.
enum GRPCAdminMessages {
    static func metadata(_ versions: [ModelView]) -> Inference_ModelMetadataResponse {
        // The pipeline returns at least one version or throws.
        let newest = versions[versions.count - 1]
        func describe(_ tensors: [TensorSpec]) -> [Inference_ModelMetadataResponse.TensorMetadata] {
            tensors.map { spec in
                .with {
                    $0.name = spec.name
                    $0.datatype = spec.dataType.rawValue
                    $0.shape = newest.spec.protocolShape(spec).map(Int64.init)
                }
            }
        }
        return .with {
            $0.name = newest.spec.name
            $0.versions = versions.map { String($0.spec.version) }
            $0.platform = newest.platform
            $0.inputs = describe(newest.spec.inputs)
            $0.outputs = describe(newest.spec.outputs)
        }
    }

    /// The load API's parameters: `config` (model config JSON) and `file:<path>` bytes.
    static func loadParameters(_ request: Inference_RepositoryModelLoadRequest) throws -> (String?, [String: [UInt8]]) {
        var config: String?
        var files: [String: [UInt8]] = [:]
        for (key, parameter) in request.parameters {
            switch (key, parameter.parameterChoice) {
            case ("config", .stringParam(let json)?): config = json
            case (let name, .bytesParam(let bytes)?) where name.hasPrefix("file:"): files[String(name.dropFirst(5))] = Array(bytes)
            default: throw InferenceError.invalidArgument("unknown or mistyped model load parameter '\(key)'")
            }
        }
        return (config, files)
    }

    static func statistics(_ model: ModelView) -> Inference_ModelStatistics {
        let stats = model.runner.statistics()
        func duration(_ value: StatisticDuration) -> Inference_StatisticDuration {
            .with {
                $0.count = value.count
                $0.ns = value.nanoseconds
            }
        }
        return .with {
            $0.name = model.spec.name
            $0.version = String(model.spec.version)
            $0.lastInference = stats.lastInferenceMilliseconds
            $0.inferenceCount = stats.inferenceCount
            $0.executionCount = stats.executionCount
            $0.inferenceStats = .with {
                $0.success = duration(stats.success)
                $0.fail = duration(stats.fail)
                $0.queue = duration(stats.queue)
                $0.computeInput = duration(stats.computeInput)
                $0.computeInfer = duration(stats.computeInfer)
                $0.computeOutput = duration(stats.computeOutput)
                $0.cacheHit = duration(stats.cacheHit)
                $0.cacheMiss = duration(stats.cacheMiss)
            }
            $0.batchStats = stats.batches.keys.sorted().map { size in
                let batch = stats.batches[size]!
                return .with {
                    $0.batchSize = UInt64(size)
                    $0.computeInput = duration(batch.computeInput)
                    $0.computeInfer = duration(batch.computeInfer)
                    $0.computeOutput = duration(batch.computeOutput)
                }
            }
        }
    }
}
