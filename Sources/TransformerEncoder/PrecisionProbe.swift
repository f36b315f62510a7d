import CDNNL
import Foundation

/// A short measurement at load for CPUs with bf16 dot products but no AMX,
/// where oneDNN's bf16 is not always faster than its fp32: one FFN-shaped
/// product (256 x 768 x 3072) timed in both, best of a few runs (~20 ms).
enum PrecisionProbe {
    static func bf16FasterThanFP32() throws -> Bool {
        let engine = try OneDNNEngine()
        let rows = 256, k = 768, n = 3072
        func best(_ precision: EncoderPrecision) throws -> Double {
            let family = try MatmulFamily(engine: engine, kind: .ffnIn, inFeatures: k, outFeatures: n, precision: precision, buckets: [rows])
            let weights = try family.pack([Float](repeating: 0.01, count: k * n), engine: engine).data
            let source = AlignedBuffer(bytes: rows * k * 4), destination = AlignedBuffer(bytes: rows * n * 4)
            memset(source.pointer, 0, source.byteCount)
            let bias = [Float](repeating: 0, count: n)
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
            let arguments = try bias.withUnsafeBytes { b in [
                dnnl_exec_arg_t(arg: OneDNN.argSource, memory: try memory(primitive.source, source.pointer)),
                dnnl_exec_arg_t(arg: OneDNN.argWeights, memory: try memory(family.weights, weights.pointer)),
                dnnl_exec_arg_t(arg: OneDNN.argBias, memory: try memory(family.bias, UnsafeMutableRawPointer(mutating: b.baseAddress!))),
                dnnl_exec_arg_t(arg: OneDNN.argDestination, memory: try memory(primitive.destination, destination.pointer)),
                dnnl_exec_arg_t(arg: OneDNN.argScratchpad, memory: try memory(primitive.scratchpad, scratch.pointer)),
            ] }
            var fastest = Double.infinity
            for _ in 0..<4 {
                let began = ContinuousClock.now
                try OneDNN.check(dnnl_primitive_execute(primitive.handle, stream, Int32(arguments.count), arguments), "execute")
                try OneDNN.check(dnnl_stream_wait(stream), "stream_wait")
                fastest = min(fastest, EncoderForward.seconds(ContinuousClock.now - began))
            }
            return fastest
        }
        let bf16 = try best(.bf16), fp32 = try best(.fp32)
        return bf16 < fp32
    }
}
