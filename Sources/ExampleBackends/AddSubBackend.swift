import InferenceCore

/// Triton's example "simple" family: OUTPUT0 = INPUT0 + INPUT1 and
/// OUTPUT1 = INPUT0 - INPUT1, element-wise. Integer types wrap on overflow as
/// the framework models do; BYTES tensors hold decimal integers (simple_string).
public struct AddSubBackend: ModelBackend {
    public let name = "add_sub"
    public init() {}

    static let supported: Set<DataType> = [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64, .fp32, .fp64, .bytes]

    public func validate(_ spec: ModelSpec) throws {
        guard spec.inputs.count == 2, spec.outputs.count == 2 else {
            throw InferenceError.invalidArgument(
                "model '\(spec.name)': backend '\(name)' needs exactly 2 inputs and 2 outputs, got \(spec.inputs.count) and \(spec.outputs.count)")
        }
        let type = spec.inputs[0].dataType
        guard Self.supported.contains(type) else {
            throw InferenceError.invalidArgument("model '\(spec.name)': backend '\(name)' does not support data_type \(type.configName)")
        }
        for tensor in spec.inputs + spec.outputs {
            guard tensor.dataType == type else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': backend '\(name)' needs every tensor of one data_type; '\(tensor.name)' is \(tensor.dataType.configName), not \(type.configName)")
            }
            guard tensor.dims == spec.inputs[0].dims else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': backend '\(name)' needs equal dims; '\(tensor.name)' has \(ShapeMath.format(tensor.dims))")
            }
        }
    }

    public func makeInstance(for spec: ModelSpec, index: Int) throws -> any ModelInstance {
        AddSubInstance(spec: spec, delay: try ExecutionDelay(spec))
    }
}

final class AddSubInstance: ModelInstance {
    let spec: ModelSpec
    let delay: ExecutionDelay
    init(spec: ModelSpec, delay: ExecutionDelay) {
        self.spec = spec
        self.delay = delay
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        delay.apply()
        return try batch.items.map { item in
            let request = item.request
            guard let a = request.input(named: spec.inputs[0].name), let b = request.input(named: spec.inputs[1].name) else {
                throw InferenceError.invalidArgument("model '\(spec.name)': both inputs are required")
            }
            guard a.shape == b.shape else {
                throw InferenceError.invalidArgument(
                    "model '\(spec.name)': inputs '\(a.name)' \(ShapeMath.format(a.shape)) and '\(b.name)' \(ShapeMath.format(b.shape)) must have the same shape")
            }
            let (sum, difference) = try compute(a, b)
            return [
                Tensor(name: spec.outputs[0].name, dataType: a.dataType, shape: a.shape, bytes: sum),
                Tensor(name: spec.outputs[1].name, dataType: a.dataType, shape: a.shape, bytes: difference),
            ]
        }
    }

    private func compute(_ a: Tensor, _ b: Tensor) throws -> ([UInt8], [UInt8]) {
        switch a.dataType {
        case .int8: try wrapping(a, b, Int8.self)
        case .int16: try wrapping(a, b, Int16.self)
        case .int32: try wrapping(a, b, Int32.self)
        case .int64: try wrapping(a, b, Int64.self)
        case .uint8: try wrapping(a, b, UInt8.self)
        case .uint16: try wrapping(a, b, UInt16.self)
        case .uint32: try wrapping(a, b, UInt32.self)
        case .uint64: try wrapping(a, b, UInt64.self)
        case .fp32: try floating(a, b, Float.self)
        case .fp64: try floating(a, b, Double.self)
        case .bytes: try decimal(a, b)
        default: throw InferenceError.unsupported("model '\(spec.name)': data type \(a.dataType.rawValue) is not supported")
        }
    }

    private func wrapping<T: FixedWidthInteger & TensorElement>(_ a: Tensor, _ b: Tensor, _: T.Type) throws -> ([UInt8], [UInt8]) {
        let x = try a.values(as: T.self), y = try b.values(as: T.self)
        return (bytes(zip(x, y).map { $0 &+ $1 }), bytes(zip(x, y).map { $0 &- $1 }))
    }

    private func floating<T: BinaryFloatingPoint & TensorElement>(_ a: Tensor, _ b: Tensor, _: T.Type) throws -> ([UInt8], [UInt8]) {
        let x = try a.values(as: T.self), y = try b.values(as: T.self)
        return (bytes(zip(x, y).map { $0 + $1 }), bytes(zip(x, y).map { $0 - $1 }))
    }

    /// simple_string: elements are decimal INT32 values written as text.
    private func decimal(_ a: Tensor, _ b: Tensor) throws -> ([UInt8], [UInt8]) {
        func parse(_ tensor: Tensor) throws -> [Int32] {
            try tensor.elements().enumerated().map { index, element in
                guard let text = String(validating: element, as: UTF8.self),
                      let value = Int32(text.trimmingCharacters(in: " ")) else {
                    // The value itself is not echoed: inputs may carry patient data.
                    throw InferenceError.invalidArgument(
                        "input '\(tensor.name)' element \(index) of model '\(spec.name)' is not a decimal 32-bit integer")
                }
                return value
            }
        }
        let x = try parse(a), y = try parse(b)
        func text(_ values: [Int32]) -> [UInt8] { BytesElements.serialize(values.map { Array(String($0).utf8) }) }
        return (text(zip(x, y).map { $0 &+ $1 }), text(zip(x, y).map { $0 &- $1 }))
    }

    private func bytes<T>(_ values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }
}

extension String {
    func trimmingCharacters(in character: Character) -> String {
        var slice = Substring(self)
        while slice.first == character { slice = slice.dropFirst() }
        while slice.last == character { slice = slice.dropLast() }
        return String(slice)
    }
}
