import InferenceCore

/// One instance of an ONNX model: its own ORT session. A batch's requests are
/// concatenated along the batch dimension and run in one `Run`; the outputs
/// are split back by each request's rows.
final class ONNXRuntimeInstance: ModelInstance, @unchecked Sendable {
    let spec: ModelSpec
    let session: ORTSession
    private let outputNames: [String]

    init(spec: ModelSpec, session: ORTSession) {
        self.spec = spec
        self.session = session
        // Implicit state outputs run too: the sequence scheduler feeds them back.
        outputNames = spec.outputs.map(\.name) + (spec.sequenceBatching?.states.map(\.outputName) ?? [])
    }

    var reportedParameters: [String: String] {
        ["onnxruntime_version": session.runtime.version, "execution_provider": session.onCUDA ? "CUDA" : "CPU"]
    }

    func execute(_ batch: Batch) throws -> [[Tensor]] {
        var results: [[Tensor]] = []
        results.reserveCapacity(batch.items.count)
        for group in Self.runs(batch.items, batching: spec.maxBatchSize > 0) {
            let items = group.map { batch.items[$0] }
            let inputs = try items.count == 1
                ? items[0].request.inputs
                : items[0].request.inputs.map { first in
                    try Tensor.concatenatingRows(items.map { $0.request.input(named: first.name)! })
                }
            let outputs = try session.run(inputs, outputNames: outputNames)
            if items.count == 1 {
                results.append(outputs)
                continue
            }
            var row = 0
            for item in items {
                let rows = row..<(row + item.batchSize)
                results.append(try outputs.map { output in
                    guard output.shape.first == items.reduce(0, { $0 + $1.batchSize }) else {
                        throw InferenceError.internal(
                            "model '\(spec.name)': output '\(output.name)' \(ShapeMath.format(output.shape)) has no batch dimension to split")
                    }
                    return try output.rows(rows)
                })
                row += item.batchSize
            }
        }
        return results
    }

    /// Consecutive items that can share one Run: same input names and the same
    /// shapes past the batch dimension. Models without batching run each alone.
    static func runs(_ items: [ValidatedRequest], batching: Bool) -> [[Int]] {
        var runs: [[Int]] = []
        for (index, item) in items.enumerated() {
            if batching, let last = runs.last?.last, compatible(items[last], item) {
                runs[runs.count - 1].append(index)
            } else {
                runs.append([index])
            }
        }
        return runs
    }

    private static func compatible(_ a: ValidatedRequest, _ b: ValidatedRequest) -> Bool {
        let x = a.request.inputs, y = b.request.inputs
        guard x.count == y.count else { return false }
        return x.allSatisfy { tensor in
            guard let other = b.request.input(named: tensor.name) else { return false }
            return other.dataType == tensor.dataType && other.shape.dropFirst() == tensor.shape.dropFirst()
        }
    }
}
