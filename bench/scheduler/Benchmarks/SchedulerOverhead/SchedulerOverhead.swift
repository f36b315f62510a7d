import Benchmark
import InferenceCore
import Scheduler

/// A backend that does no work, so what is measured is the scheduler itself.
final class NoOpInstance: ModelInstance {
    func execute(_ batch: Batch) throws -> [[Tensor]] {
        batch.items.map { item in item.request.inputs.map { var t = $0; t.name = "OUT"; return t } }
    }
}

func spec(batching: DynamicBatchingSpec?) -> ModelSpec {
    ModelSpec(name: "noop", version: 1, backend: "noop", maxBatchSize: 32,
              inputs: [TensorSpec(name: "IN", dataType: .int32, dims: [16])],
              outputs: [TensorSpec(name: "OUT", dataType: .int32, dims: [16])],
              dynamicBatching: batching)
}

func request(_ spec: ModelSpec) -> ValidatedRequest {
    try! spec.validate(InferenceRequest(modelName: "noop",
                                        inputs: [Tensor(name: "IN", shape: [1, 16], values: [Int32](repeating: 1, count: 16))]))
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        maxDuration: .seconds(3), maxIterations: 1_000_000)

    let plain = spec(batching: nil)
    let batched = spec(batching: DynamicBatchingSpec(preferredBatchSizes: [32], maxQueueDelay: .zero))

    // The floor: calling the backend directly, no queue, no thread hop.
    Benchmark("direct backend call") { benchmark in
        let instance = NoOpInstance()
        let batch = Batch(items: [request(plain)])
        for _ in benchmark.scaledIterations { blackHole(try instance.execute(batch)) }
    }

    // Low load: one client, back to back. The difference to the direct call
    // is the latency the scheduler adds (actor hops, executor thread, continuation).
    Benchmark("scheduler, 1 client back to back") { benchmark in
        let scheduler = ModelScheduler(spec: plain, instances: [NoOpInstance()])
        let item = request(plain)
        for _ in benchmark.scaledIterations { blackHole(try await scheduler.infer(item)) }
        await scheduler.shutdown()
    }

    // High offered rate: 64 clients at once, dynamic batching up to 32.
    // Each iteration is one request; wall clock per iteration is µs per request.
    Benchmark("scheduler, 64 concurrent clients, dynamic batching",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, .throughput], scalingFactor: .kilo)) { benchmark in
        let scheduler = ModelScheduler(spec: batched, instances: [NoOpInstance(), NoOpInstance()])
        let item = request(batched)
        let total = benchmark.scaledIterations.count
        let clients = 64
        benchmark.startMeasurement()
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                let share = total / clients + (client < total % clients ? 1 : 0)
                group.addTask {
                    for _ in 0..<share { blackHole(try? await scheduler.infer(item)) }
                }
            }
        }
        benchmark.stopMeasurement()
        await scheduler.shutdown()
    }
}
