import InferenceCore
import TritonProto

/// One step of an ensemble (`ensemble_scheduling { step [...] }`).
public struct EnsembleStep: Sendable, Equatable {
    public var modelName: String
    /// nil: the newest ready version (Triton's -1).
    public var modelVersion: Int64?
    /// The step model's input name -> the ensemble tensor it reads.
    public var inputMap: [String: String]
    /// The step model's output name -> the ensemble tensor it writes.
    public var outputMap: [String: String]
}

/// `platform: "ensemble"` checked with Triton's rules and texts.
enum EnsembleConfig {
    static func steps(_ config: Inference_ModelConfig) throws -> [EnsembleStep]? {
        let name = config.name
        let isEnsemble = config.platform == "ensemble"
        guard case .ensembleScheduling(let scheduling)? = config.schedulingChoice else {
            if isEnsemble { throw InferenceError.invalidArgument("ensemble scheduling must be set for ensemble \(name)") }
            return nil
        }
        guard isEnsemble else {
            throw InferenceError.invalidArgument("ensemble scheduling cannot be set for model '\(name)' whose platform is not ensemble")
        }
        guard config.instanceGroup.isEmpty else {
            throw InferenceError.invalidArgument("instance group should not be specified for ensemble '\(name)'")
        }
        guard !scheduling.step.isEmpty else { throw InferenceError.invalidArgument("must specify 'step' for ensemble '\(name)'") }
        var written = Set<String>()
        var read = Set<String>()
        let steps = try scheduling.step.enumerated().map { index, step -> EnsembleStep in
            for (field, empty) in [("model_name", step.modelName.isEmpty), ("input_map", step.inputMap.isEmpty), ("output_map", step.outputMap.isEmpty)]
            where empty {
                throw InferenceError.invalidArgument("must specify '\(field)' in step \(index) of ensemble '\(name)'")
            }
            for tensor in step.outputMap.values {
                guard written.insert(tensor).inserted else {
                    throw InferenceError.invalidArgument(
                        "ensemble tensor '\(tensor)' can appear in an output map only once for ensemble '\(name)' step \(index)")
                }
            }
            read.formUnion(step.inputMap.values)
            return EnsembleStep(modelName: step.modelName, modelVersion: step.modelVersion > 0 ? step.modelVersion : nil,
                                inputMap: step.inputMap, outputMap: step.outputMap)
        }
        for input in config.input where !read.contains(input.name) {
            throw InferenceError.invalidArgument("ensemble input '\(input.name)' for ensemble \(name)' is not used")
        }
        for output in config.output where !written.contains(output.name) {
            throw InferenceError.invalidArgument("output '\(output.name)' for ensemble '\(name)' is not written")
        }
        let available = Set(config.input.map(\.name)).union(written)
        for tensor in read where !available.contains(tensor) {
            throw InferenceError.invalidArgument("ensemble tensor '\(tensor)' of ensemble '\(name)' is read by a step but neither an ensemble input nor written by a step")
        }
        for (index, step) in steps.enumerated() where step.modelName == name {
            throw InferenceError.invalidArgument("step \(index) of ensemble '\(name)' names the ensemble itself")
        }
        // The steps must run in some order: walk them as the runner will.
        var produced = Set(config.input.map(\.name))
        var pending = Array(steps.indices)
        while !pending.isEmpty {
            let ready = pending.filter { steps[$0].inputMap.values.allSatisfy(produced.contains) }
            guard !ready.isEmpty else {
                throw InferenceError.invalidArgument(
                    "ensemble '\(name)' has a cycle: steps \(pending.map(String.init).joined(separator: ", ")) each wait for another's output")
            }
            for index in ready { produced.formUnion(steps[index].outputMap.values) }
            pending.removeAll { ready.contains($0) }
        }
        return steps
    }
}
