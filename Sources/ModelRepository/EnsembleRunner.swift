import Foundation
import InferenceCore
import Synchronization

/// Runs an ensemble: its steps as a graph, each step as soon as the tensors
/// it reads exist, each through its own model's scheduler (so batching still
/// applies per step), steps without dependencies between them at once. A
/// failed step fails the request, naming the step. The composing models
/// count their own statistics; the ensemble counts its requests.
final class EnsembleRunner: InferenceRunner {
    let spec: ModelSpec
    let steps: [EnsembleStep]
    /// Runs a request on a step's model (resolved at request time, so a
    /// reloaded step model serves the next request).
    let runStep: @Sendable (EnsembleStep, InferenceRequest) async throws -> InferenceResponse
    private let stats = Mutex(ModelStatistics())
    private let clock: any SchedulerClock

    init(spec: ModelSpec, steps: [EnsembleStep], clock: any SchedulerClock,
         runStep: @escaping @Sendable (EnsembleStep, InferenceRequest) async throws -> InferenceResponse) {
        self.spec = spec
        self.steps = steps
        self.clock = clock
        self.runStep = runStep
    }

    func statistics() -> ModelStatistics { stats.withLock { $0 } }
    func shutdown() async {}

    /// How many ensembles the current request is inside: an ensemble that
    /// reaches itself through others stops here instead of recursing forever.
    @TaskLocal static var depth = 0
    static let maxDepth = 8

    func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        guard Self.depth < Self.maxDepth else {
            throw InferenceError.invalidArgument("ensemble '\(spec.name)' is nested more than \(Self.maxDepth) deep (does it contain itself?)")
        }
        return try await Self.$depth.withValue(Self.depth + 1) { try await runCounted(request) }
    }

    private func runCounted(_ request: ValidatedRequest) async throws -> InferenceResponse {
        let started = clock.now
        do {
            let response = try await run(request)
            let total = clock.now - started
            stats.withLock { stats in
                stats.executionCount += 1
                stats.inferenceCount += UInt64(request.batchSize)
                stats.lastInferenceMilliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
                stats.success.record(total)
                stats.computeInfer.record(total)
                stats.queue.record(.zero)
            }
            return response
        } catch {
            stats.withLock { stats in
                stats.fail.record(clock.now - started)
                stats.failures[.backend, default: 0] += 1
            }
            throw error
        }
    }

    private func run(_ request: ValidatedRequest) async throws -> InferenceResponse {
        var tensors = Dictionary(request.request.inputs.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var remaining = Array(steps.indices)
        while !remaining.isEmpty {
            let ready = remaining.filter { steps[$0].inputMap.values.allSatisfy { tensors[$0] != nil } }
            guard !ready.isEmpty else {
                throw InferenceError.internal("in ensemble '\(spec.name)', no step can run: their inputs are never produced")
            }
            remaining.removeAll { ready.contains($0) }
            let available = tensors
            let results = try await withThrowingTaskGroup(of: (Int, InferenceResponse).self) { group in
                for index in ready {
                    let step = steps[index]
                    let inputs = step.inputMap.sorted { $0.key < $1.key }.map { modelInput, tensorName -> Tensor in
                        var tensor = available[tensorName]!
                        tensor.name = modelInput
                        return tensor
                    }
                    let stepRequest = InferenceRequest(id: request.request.id, modelName: step.modelName, modelVersion: step.modelVersion,
                                                       inputs: inputs, requestedOutputs: step.outputMap.keys.sorted().map { RequestedOutput(name: $0) },
                                                       parameters: request.request.parameters, priority: request.request.priority,
                                                       timeout: request.request.timeout)
                    group.addTask {
                        do {
                            return (index, try await self.runStep(step, stepRequest))
                        } catch let error as InferenceError {
                            throw InferenceError(error.code, "in ensemble '\(self.spec.name)', step \(index) ('\(step.modelName)') failed: \(error.message)")
                        }
                    }
                }
                var collected: [(Int, InferenceResponse)] = []
                for try await result in group { collected.append(result) }
                return collected
            }
            for (index, response) in results {
                for var output in response.outputs {
                    guard let target = steps[index].outputMap[output.name] else { continue }
                    output.name = target
                    tensors[target] = output
                }
            }
        }
        let outputs = try request.outputs.map { wanted -> Tensor in
            guard let tensor = tensors[wanted.name] else {
                throw InferenceError.internal("in ensemble '\(spec.name)', output '\(wanted.name)' was not produced")
            }
            return tensor
        }
        return InferenceResponse(id: request.request.id, modelName: spec.name, modelVersion: spec.version, outputs: outputs)
    }
}
