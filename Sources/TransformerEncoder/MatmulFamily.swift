import CDNNL
import InferenceCore
import TransformerModel

/// Which of a layer's four products; each has its own fused epilogue.
enum LinearKind: Int, CaseIterable, Sendable {
    case qkv, output, ffnIn, ffnOut

    var name: String {
        switch self {
        case .qkv: "qkv"
        case .output: "attention_output"
        case .ffnIn: "ffn_in"
        case .ffnOut: "ffn_out"
        }
    }
}

/// One oneDNN matmul primitive, made for a fixed row count so oneDNN picks its
/// fastest kernel (a run-time row count falls back to gemm:jit), with the
/// memory descriptors it runs on.
struct MatmulPrimitive: @unchecked Sendable {
    let handle: dnnl_primitive_t
    var source: dnnl_memory_desc_t
    var destination: dnnl_memory_desc_t
    var scratchpad: dnnl_memory_desc_t
    let scratchpadBytes: Int
    /// oneDNN's name for the kernel it chose, e.g. `brg:avx512_core_vnni`.
    let implementation: String
}

/// The primitives of one product kind (say, every layer's FFN input product),
/// one per row bucket, and the weight layout they all read. Layers share them:
/// their shapes are the same, only the weights differ. Made once per prepared
/// model; primitives may run concurrently on several streams as long as each
/// caller passes its own scratchpad.
///
/// Epilogues by precision: fp32 and bf16 add the bias in the primitive, fuse
/// GELU after the FFN input product, and accumulate the attention output and
/// FFN output products onto the residual (a sum post-op), writing float32
/// except the FFN input's bf16; int8 writes int32 sums and leaves scales, bias
/// and everything after them to the engine's own fused row kernels.
final class MatmulFamily: @unchecked Sendable {
    let kind: LinearKind
    let inFeatures: Int, outFeatures: Int
    let precision: EncoderPrecision
    /// Ascending row counts, multiples of `rowGranularity`.
    let buckets: [Int]
    let primitives: [MatmulPrimitive]
    /// The layout oneDNN chose for the weights (format `any`); every layer's
    /// weights are reordered into it once at load.
    var weights: dnnl_memory_desc_t
    var bias: dnnl_memory_desc_t
    /// The engine the primitives were made on, kept until they are destroyed.
    private let engine: OneDNNEngine

    static let rowGranularity = 32

    var hasBias: Bool { precision != .int8 }
    var destinationType: dnnl_data_type_t { Self.destinationType(kind, precision) }

    static func destinationType(_ kind: LinearKind, _ precision: EncoderPrecision) -> dnnl_data_type_t {
        switch precision {
        case .int8: dnnl_s32
        case .bf16 where kind == .ffnIn: dnnl_bf16
        default: dnnl_f32
        }
    }

    /// int8 reads signed rows with symmetric scales, except the FFN output
    /// product, whose input (GELU's) is nearly one-sided: unsigned with a zero
    /// point per row, VNNI's native u8 x s8.
    static func sourceType(_ kind: LinearKind, _ precision: EncoderPrecision) -> dnnl_data_type_t {
        precision == .int8 && kind == .ffnOut ? dnnl_u8 : precision.sourceType
    }

    init(engine: OneDNNEngine, kind: LinearKind, inFeatures: Int, outFeatures: Int, precision: EncoderPrecision,
         buckets: [Int]) throws {
        precondition(!buckets.isEmpty)
        self.kind = kind
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.precision = precision
        self.buckets = buckets
        self.engine = engine
        bias = try OneDNN.descriptor([1, outFeatures], dnnl_f32, dnnl_ab)
        weights = try OneDNN.descriptor([inFeatures, outFeatures], precision.sourceType, dnnl_format_tag_any)
        // The largest bucket chooses the weight layout; the others are made on it.
        var made: [MatmulPrimitive] = []
        let (largest, chosen) = try Self.make(engine: engine, rows: buckets.last!, weights: weights, family: (kind, inFeatures, outFeatures, precision, bias, Self.destinationType(kind, precision)))
        weights = chosen
        for rows in buckets.dropLast() {
            made.append(try Self.make(engine: engine, rows: rows, weights: weights, family: (kind, inFeatures, outFeatures, precision, bias, Self.destinationType(kind, precision))).0)
        }
        made.append(largest)
        primitives = made
    }

    deinit { for primitive in primitives { dnnl_primitive_destroy(primitive.handle) } }

    /// The bucket that holds `rows` rows: the smallest at least that large.
    func bucket(for rows: Int) -> Int {
        buckets.firstIndex { $0 >= rows } ?? (buckets.count - 1)
    }

    var largestScratchpadBytes: Int { primitives.map(\.scratchpadBytes).max() ?? 0 }

    private static func make(engine: OneDNNEngine, rows: Int, weights: dnnl_memory_desc_t,
                             family: (kind: LinearKind, inFeatures: Int, outFeatures: Int, precision: EncoderPrecision,
                                      bias: dnnl_memory_desc_t, destinationType: dnnl_data_type_t))
        throws -> (MatmulPrimitive, dnnl_memory_desc_t) {
        var source = try OneDNN.descriptor([rows, family.inFeatures], Self.sourceType(family.kind, family.precision), dnnl_ab)
        var destination = try OneDNN.descriptor([rows, family.outFeatures], family.destinationType, dnnl_ab)
        var weights = weights
        var bias = family.bias
        var operation = dnnl_matmul_desc_t()
        let int8 = family.precision == .int8
        try OneDNN.check(int8 ? dnnl_matmul_desc_init(&operation, &source, &weights, nil, &destination)
                              : dnnl_matmul_desc_init(&operation, &source, &weights, &bias, &destination), "matmul_desc_init")
        var attributes: dnnl_primitive_attr_t?
        try OneDNN.check(dnnl_primitive_attr_create(&attributes), "attr_create")
        defer { dnnl_primitive_attr_destroy(attributes) }
        try OneDNN.check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "scratchpad_mode")
        if !int8 && family.kind != .qkv {
            var postOps: dnnl_post_ops_t?
            try OneDNN.check(dnnl_post_ops_create(&postOps), "post_ops_create")
            defer { dnnl_post_ops_destroy(postOps) }
            if family.kind == .ffnIn {
                try OneDNN.check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_gelu_erf, 0, 0), "append gelu_erf")
            } else {
                // destination = residual + x W^T + b: the residual connection for free.
                try OneDNN.check(dnnl_post_ops_append_sum(postOps, 1), "append sum")
            }
            try OneDNN.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "set_post_ops")
        }
        var descriptor: dnnl_primitive_desc_t?
        try OneDNN.check(dnnl_primitive_desc_create(&descriptor, &operation, attributes, engine.handle, nil),
                         "matmul \(family.kind.name) \(rows)x\(family.inFeatures)x\(family.outFeatures) \(family.precision.rawValue)")
        defer { dnnl_primitive_desc_destroy(descriptor) }
        let chosenWeights = dnnl_primitive_desc_query_md(descriptor, dnnl_query_weights_md, 0)!.pointee
        var scratchpad = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0)?.pointee ?? dnnl_memory_desc_t()
        var name: UnsafePointer<CChar>?
        _ = dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name)
        var primitive: dnnl_primitive_t?
        try OneDNN.check(dnnl_primitive_create(&primitive, descriptor), "primitive_create")
        let made = MatmulPrimitive(handle: primitive!, source: source, destination: destination, scratchpad: scratchpad,
                                   scratchpadBytes: dnnl_memory_desc_get_size(&scratchpad),
                                   implementation: name.map { String(cString: $0) } ?? "unknown")
        return (made, chosenWeights)
    }

    /// Weights (out x in, row-major, as PyTorch stores a Linear) in this
    /// family's layout and precision: converted and reordered once.
    func pack(_ values: [Float], engine: OneDNNEngine) throws -> (data: AlignedBuffer, columnScales: [Float]?, columnSums: [Int32]?) {
        precondition(values.count == inFeatures * outFeatures)
        switch precision {
        case .fp32, .bf16:
            // oneDNN's reorder converts f32 to bf16 (nearest even) on the way.
            let plain = try OneDNN.descriptor([inFeatures, outFeatures], dnnl_f32, dnnl_ba)
            return (try values.withUnsafeBytes { try reorder(plain, $0.baseAddress!, engine: engine) }, nil, nil)
        case .int8:
            // Symmetric per output channel: no calibration data needed. Without
            // VNNI, oneDNN's int8 kernels add pairs of u8 x s8 products in int16,
            // which 255 x 127 x 2 overflows: 7-bit weights keep the pair sums
            // exact there (oneDNN's own advice), at some accuracy.
            let levels: Float = OneDNN.hasVNNI ? 127 : 63
            var scales = [Float](repeating: 1, count: outFeatures)
            var quantized = [Int8](repeating: 0, count: values.count)
            for o in 0..<outFeatures {
                let row = values[(o * inFeatures)..<((o + 1) * inFeatures)]
                let largest = row.reduce(Float(0)) { max($0, abs($1)) }
                let scale = largest > 0 ? largest / levels : 1
                scales[o] = scale
                for (i, v) in row.enumerated() {
                    quantized[o * inFeatures + i] = Int8(max(-levels, min(levels, (v / scale).rounded(.toNearestOrEven))))
                }
            }
            // Each column's sum of quantized weights: what a zero point adds to its int32 sums.
            let sums = (0..<outFeatures).map { o in quantized[(o * inFeatures)..<((o + 1) * inFeatures)].reduce(Int32(0)) { $0 + Int32($1) } }
            let plain = try OneDNN.descriptor([inFeatures, outFeatures], dnnl_s8, dnnl_ba)
            return (try quantized.withUnsafeBytes { try reorder(plain, $0.baseAddress!, engine: engine) }, scales, sums)
        }
    }

    private func reorder(_ plain: dnnl_memory_desc_t, _ data: UnsafeRawPointer, engine: OneDNNEngine) throws -> AlignedBuffer {
        var from = plain, to = weights
        let output = AlignedBuffer(bytes: dnnl_memory_desc_get_size(&to))
        var descriptor: dnnl_primitive_desc_t?
        try OneDNN.check(dnnl_reorder_primitive_desc_create(&descriptor, &from, engine.handle, &to, engine.handle, nil), "reorder_desc")
        defer { dnnl_primitive_desc_destroy(descriptor) }
        var primitive: dnnl_primitive_t?
        try OneDNN.check(dnnl_primitive_create(&primitive, descriptor), "reorder_create")
        defer { dnnl_primitive_destroy(primitive) }
        var stream: dnnl_stream_t?
        try OneDNN.check(dnnl_stream_create(&stream, engine.handle, UInt32(dnnl_stream_default_flags.rawValue)), "stream_create")
        defer { dnnl_stream_destroy(stream) }
        var source: dnnl_memory_t?, destination: dnnl_memory_t?
        try OneDNN.check(dnnl_memory_create(&source, &from, engine.handle, UnsafeMutableRawPointer(mutating: data)), "memory_create")
        defer { dnnl_memory_destroy(source) }
        try OneDNN.check(dnnl_memory_create(&destination, &to, engine.handle, output.pointer), "memory_create")
        defer { dnnl_memory_destroy(destination) }
        let arguments = [dnnl_exec_arg_t(arg: OneDNN.argFrom, memory: source), dnnl_exec_arg_t(arg: OneDNN.argTo, memory: destination)]
        try OneDNN.check(dnnl_primitive_execute(primitive, stream, 2, arguments), "reorder")
        try OneDNN.check(dnnl_stream_wait(stream), "stream_wait")
        return output
    }
}
