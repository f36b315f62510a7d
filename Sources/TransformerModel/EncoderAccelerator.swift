import InferenceCore

/// Makes encoder instances on an accelerator. Returns nil for an instance it
/// does not claim, which then runs on the CPU. The CPU engine's backend asks
/// it first; the executable wires the CUDA one in (so neither engine module
/// imports the other).
public protocol EncoderAccelerator: Sendable {
    func validate(_ spec: ModelSpec) throws
    func makeInstance(for spec: ModelSpec, index: Int) throws -> (any ModelInstance)?
}
