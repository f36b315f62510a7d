import Foundation
import InferenceCore
import TritonProto

/// config.pbtxt's `sequence_batching` checked and turned into the scheduler's
/// SequenceBatchingSpec; every message names the model and the field.
enum SequenceBatchingConfig {
    static let correlationTypes: Set<DataType> = [.uint64, .int64, .uint32, .int32, .bytes]

    static func build(_ config: Inference_ModelSequenceBatching, model: String, maxBatchSize: Int, modelPath: String) throws -> SequenceBatchingSpec {
        func fail(_ message: String) -> InferenceError { .invalidArgument("model '\(model)': sequence_batching.\(message)") }
        var controls: [SequenceControl] = []
        for input in config.controlInput {
            guard !input.name.isEmpty else { throw fail("control_input: a control input has an empty name") }
            guard input.control.count == 1, let control = input.control.first else {
                throw fail("control_input '\(input.name)' must hold exactly one control, got \(input.control.count)")
            }
            let kind: SequenceControl.Kind
            switch control.kind {
            case .controlSequenceStart: kind = .start
            case .controlSequenceEnd: kind = .end
            case .controlSequenceReady: kind = .ready
            case .controlSequenceCorrid: kind = .correlationID
            case .UNRECOGNIZED(let value): throw fail("control_input '\(input.name)': unknown control kind \(value)")
            }
            if controls.contains(where: { $0.kind == kind }) {
                throw fail("control_input '\(input.name)': the model already has a \(control.kind) control")
            }
            if kind == .correlationID {
                guard let type = DataType(protoType: control.dataType), correlationTypes.contains(type) else {
                    throw fail("control_input '\(input.name)': CONTROL_SEQUENCE_CORRID needs data_type TYPE_UINT64, TYPE_INT64, TYPE_UINT32, TYPE_INT32 or TYPE_STRING")
                }
                controls.append(SequenceControl(kind: kind, tensorName: input.name, values: nil, dataType: type))
                continue
            }
            let values: SequenceControl.FlagValues
            let given = [control.int32FalseTrue.isEmpty, control.fp32FalseTrue.isEmpty, control.boolFalseTrue.isEmpty].filter { !$0 }.count
            guard given == 1 else {
                throw fail("control_input '\(input.name)' must set exactly one of int32_false_true, fp32_false_true, bool_false_true")
            }
            if control.int32FalseTrue.count == 2 {
                values = .int32(control.int32FalseTrue[0], control.int32FalseTrue[1])
            } else if control.fp32FalseTrue.count == 2 {
                values = .fp32(control.fp32FalseTrue[0], control.fp32FalseTrue[1])
            } else if control.boolFalseTrue.count == 2 {
                values = .bool(control.boolFalseTrue[0], control.boolFalseTrue[1])
            } else {
                throw fail("control_input '\(input.name)': the false/true list must hold exactly 2 values")
            }
            let dataType: DataType = switch values {
            case .int32: .int32
            case .fp32: .fp32
            case .bool: .bool
            }
            controls.append(SequenceControl(kind: kind, tensorName: input.name, values: values, dataType: dataType))
        }
        let states = try config.state.map { state in
            guard !state.inputName.isEmpty, !state.outputName.isEmpty else {
                throw fail("state: input_name and output_name are required")
            }
            guard let type = DataType(protoType: state.dataType) else {
                throw fail("state '\(state.inputName)': data_type \(state.dataType) is not supported")
            }
            let dims = state.dims.map(Int.init)
            guard !dims.isEmpty, dims.allSatisfy({ $0 > 0 }) else {
                throw fail("state '\(state.inputName)': dims must be positive, got \(ShapeMath.format(dims))")
            }
            guard state.initialState.count <= 1 else { throw fail("state '\(state.inputName)': at most one initial_state") }
            let (count, overflow) = dims.reduce((1, false)) { product, dim in
                let (value, over) = product.0.multipliedReportingOverflow(by: dim)
                return (value, product.1 || over)
            }
            guard !overflow, count * max(type.elementByteSize ?? 8, 1) <= 64 << 20 else {
                throw fail("state '\(state.inputName)': dims \(ShapeMath.format(dims)) make a state larger than 64 MiB")
            }
            var bytes = [UInt8](repeating: 0, count: count * (type.elementByteSize ?? 0))
            if type == .bytes { bytes = BytesElements.serialize(Array(repeating: [], count: count)) }
            if let initial = state.initialState.first, case .dataFile(let file)? = initial.stateData {
                guard !file.isEmpty, !file.hasPrefix("/"), !file.split(separator: "/").contains("..") else {
                    throw fail("state '\(state.inputName)': initial_state data_file must be a relative path inside initial_state/")
                }
                let path = ((modelPath as NSString).appendingPathComponent("initial_state") as NSString).appendingPathComponent(file)
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw fail("state '\(state.inputName)': cannot read initial_state data_file \(path)")
                }
                guard type == .bytes || data.count == bytes.count else {
                    throw fail("state '\(state.inputName)': initial_state data_file \(path) holds \(data.count) bytes, dims \(ShapeMath.format(dims)) of \(type.configName) need \(bytes.count)")
                }
                bytes = Array(data)
            }
            return SequenceState(inputName: state.inputName, outputName: state.outputName, dataType: type, dims: dims, initialBytes: bytes)
        }
        let strategy: SequenceBatchingSpec.Strategy
        switch config.strategyChoice {
        case .oldest(let oldest)?:
            let largest = max(maxBatchSize, 1)
            for size in oldest.preferredBatchSize where size < 1 || Int(size) > largest {
                throw fail("oldest.preferred_batch_size \(size) must be within 1...\(largest)")
            }
            strategy = .oldest(maxCandidateSequences: Int(max(oldest.maxCandidateSequences, 0)),
                               preferredBatchSizes: oldest.preferredBatchSize.isEmpty ? [largest] : oldest.preferredBatchSize.map(Int.init),
                               maxQueueDelay: .microseconds(Int64(clamping: oldest.maxQueueDelayMicroseconds)))
        case .direct?, nil:
            strategy = .direct
        }
        let idle = config.maxSequenceIdleMicroseconds == 0 ? 1_000_000 : config.maxSequenceIdleMicroseconds
        return SequenceBatchingSpec(strategy: strategy, maxSequenceIdle: .microseconds(Int64(clamping: idle)),
                                    controls: controls, states: states)
    }
}
