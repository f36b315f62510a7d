import CDNNL
import Foundation

/// Times one oneDNN matmul primitive on its own, weights in the layout it
/// picks: the precision check at load (bf16 against fp32 on CPUs with bf16 dot
/// products but no AMX) and the benchmark's measure of the library's own peak.
public enum MatmulProbe {
    /// Best seconds of `repeats` runs of (rows x k) x (k x n) in `precision`.
    public static func bestSeconds(_ precision: EncoderPrecision, rows: Int, k: Int, n: Int, repeats: Int = 4) throws -> (seconds: Double, implementation: String) {
        let engine = try OneDNNEngine()
        let family = try MatmulFamily(engine: engine, kind: .qkv, inFeatures: k, outFeatures: n, precision: precision, buckets: [rows])
        let weights = try family.pack([Float](repeating: 0.01, count: k * n), engine: engine).data
        let source = AlignedBuffer(bytes: rows * k * 4), destination = AlignedBuffer(bytes: rows * n * 4)
        memset(source.pointer, 0, source.byteCount)
        let bias = AlignedBuffer(bytes: n * 4)
        memset(bias.pointer, 0, bias.byteCount)
        let scratch = AlignedBuffer(bytes: family.largestScratchpadBytes)
        var stream: dnnl_stream_t?
        try OneDNN.check(dnnl_stream_create(&stream, engine.handle, UInt32(dnnl_stream_default_flags.rawValue)), "stream_create")
        defer { dnnl_stream_destroy(stream) }
        let primitive = family.primitives[0]
        var memories: [dnnl_memory_t?] = []
        defer { for m in memories { dnnl_memory_destroy(m) } }
        func memory(_ d: dnnl_memory_desc_t, _ p: UnsafeMutableRawPointer) throws -> dnnl_memory_t? {
            var d = d, m: dnnl_memory_t?
            try OneDNN.check(dnnl_memory_create(&m, &d, engine.handle, p), "memory_create")
            memories.append(m)
            return m
        }
        var arguments = [
            dnnl_exec_arg_t(arg: OneDNN.argSource, memory: try memory(primitive.source, source.pointer)),
            dnnl_exec_arg_t(arg: OneDNN.argWeights, memory: try memory(family.weights, weights.pointer)),
            dnnl_exec_arg_t(arg: OneDNN.argDestination, memory: try memory(primitive.destination, destination.pointer)),
            dnnl_exec_arg_t(arg: OneDNN.argScratchpad, memory: try memory(primitive.scratchpad, scratch.pointer)),
        ]
        if family.hasBias { arguments.append(dnnl_exec_arg_t(arg: OneDNN.argBias, memory: try memory(family.bias, bias.pointer))) }
        var fastest = Double.infinity
        // The memory objects point into these: they must outlive the runs.
        try withExtendedLifetime((family, weights, source, destination, bias, scratch)) {
            for _ in 0..<(repeats + 1) {
                let began = ContinuousClock.now
                try OneDNN.check(dnnl_primitive_execute(primitive.handle, stream, Int32(arguments.count), arguments), "execute")
                try OneDNN.check(dnnl_stream_wait(stream), "stream_wait")
                fastest = min(fastest, EncoderForward.seconds(ContinuousClock.now - began))
            }
        }
        return (fastest, primitive.implementation)
    }
}
