import CDNNL
import InferenceCore

/// Linear layers through oneDNN's matmul primitive, which picks its fastest
/// kernels (brgemm, AVX-512, AMX or bf16 where the CPU has them) only when the
/// shapes are fixed at creation. Rows are therefore rounded up to a multiple of
/// `rowGranularity` and one primitive is kept per (rows, in, out, fused
/// operation): a handful of shapes per model, created once (0.2-1.4 ms each).
/// Each instance owns its primitives, stream and scratchpad, so concurrent
/// instances never share oneDNN state (a shared primitive with a library-owned
/// scratchpad miscomputes).
final class OneDNNMatmul: @unchecked Sendable {
    enum Precision: String, Sendable {
        case fp32, bf16
        var dataType: dnnl_data_type_t { self == .fp32 ? dnnl_f32 : dnnl_bf16 }
    }

    enum Epilogue: Hashable { case none, gelu }

    struct Key: Hashable { let rows: Int, inFeatures: Int, outFeatures: Int, epilogue: Epilogue }

    static let rowGranularity = 32
    let precision: Precision
    private var engine: dnnl_engine_t?
    private var stream: dnnl_stream_t?
    /// A primitive with the memory descriptors it runs on, made once per key.
    private struct Prepared {
        let primitive: dnnl_primitive_t
        var descriptors: Descriptors
        var scratchpad: dnnl_memory_desc_t
    }
    private var prepared: [Key: Prepared] = [:]
    private var scratchpad: [UInt8] = []
    /// Activations converted to bf16, (rows, in).
    private var converted: [UInt16] = []

    init(precision: Precision) throws {
        self.precision = precision
        try check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine_create")
        try check(dnnl_stream_create(&stream, engine, UInt32(dnnl_stream_default_flags.rawValue)), "stream_create")
    }

    deinit {
        for entry in prepared.values { dnnl_primitive_destroy(entry.primitive) }
        if let stream { dnnl_stream_destroy(stream) }
        if let engine { dnnl_engine_destroy(engine) }
    }

    /// Rows rounded up to the granularity: buffers passed in must hold this many.
    static func paddedRows(_ rows: Int) -> Int { (rows + rowGranularity - 1) / rowGranularity * rowGranularity }

    /// output (rows x out) = epilogue(input (rows x in) * weight^T + bias), where
    /// weight is (out x in) row-major as PyTorch stores Linear weights, in this
    /// instance's precision (UInt16 bf16 bits or Float). Input and output must
    /// have room for `paddedRows(rows)` rows; the extra rows are scratch.
    func linear(_ input: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafeRawPointer, bias: UnsafePointer<Float>,
                outFeatures: Int, epilogue: Epilogue, output: UnsafeMutablePointer<Float>) throws {
        let padded = Self.paddedRows(rows)
        let key = Key(rows: padded, inFeatures: inFeatures, outFeatures: outFeatures, epilogue: epilogue)
        let entry = try prepare(key)
        if precision == .bf16 {
            if converted.count < padded * inFeatures { converted = [UInt16](repeating: 0, count: padded * inFeatures) }
            try converted.withUnsafeMutableBufferPointer { out in
                for i in 0..<(rows * inFeatures) { out[i] = BFloat16Bits.round(input[i]) }
                try execute(entry, source: UnsafeMutableRawPointer(out.baseAddress!), weight: weight, bias: bias, output: output)
            }
        } else {
            try execute(entry, source: UnsafeMutableRawPointer(mutating: input), weight: weight, bias: bias, output: output)
        }
    }

    private func execute(_ entry: Prepared, source: UnsafeMutableRawPointer, weight: UnsafeRawPointer,
                         bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) throws {
        var entry = entry
        var descriptors = entry.descriptors
        var memories: [dnnl_memory_t?] = [nil, nil, nil, nil, nil]
        defer { for memory in memories { if let memory { dnnl_memory_destroy(memory) } } }
        try check(dnnl_memory_create(&memories[0], &descriptors.source, engine, source), "memory_create src")
        try check(dnnl_memory_create(&memories[1], &descriptors.weights, engine, UnsafeMutableRawPointer(mutating: weight)), "memory_create weights")
        try check(dnnl_memory_create(&memories[2], &descriptors.bias, engine, UnsafeMutableRawPointer(mutating: bias)), "memory_create bias")
        try check(dnnl_memory_create(&memories[3], &descriptors.destination, engine, UnsafeMutableRawPointer(output)), "memory_create dst")
        var arguments = [
            dnnl_exec_arg_t(arg: 1, memory: memories[0]),   // DNNL_ARG_SRC
            dnnl_exec_arg_t(arg: 33, memory: memories[1]),  // DNNL_ARG_WEIGHTS
            dnnl_exec_arg_t(arg: 41, memory: memories[2]),  // DNNL_ARG_BIAS
            dnnl_exec_arg_t(arg: 17, memory: memories[3]),  // DNNL_ARG_DST
        ]
        try scratchpad.withUnsafeMutableBytes { pad in
            if dnnl_memory_desc_get_size(&entry.scratchpad) > 0 {
                try check(dnnl_memory_create(&memories[4], &entry.scratchpad, engine, pad.baseAddress), "memory_create scratchpad")
                arguments.append(dnnl_exec_arg_t(arg: 80, memory: memories[4]))  // DNNL_ARG_SCRATCHPAD
            }
            try check(dnnl_primitive_execute(entry.primitive, stream, Int32(arguments.count), arguments), "primitive_execute")
            try check(dnnl_stream_wait(stream), "stream_wait")
        }
    }

    private struct Descriptors {
        var source = dnnl_memory_desc_t(), weights = dnnl_memory_desc_t(), bias = dnnl_memory_desc_t(), destination = dnnl_memory_desc_t()
    }

    private func memoryDescriptors(_ key: Key) throws -> Descriptors {
        var d = Descriptors()
        try describe(&d.source, [key.rows, key.inFeatures], precision.dataType, dnnl_ab, "src")
        // (in, out) dims over (out x in) row-major storage: format tag "ba".
        try describe(&d.weights, [key.inFeatures, key.outFeatures], precision.dataType, dnnl_ba, "weights")
        try describe(&d.bias, [1, key.outFeatures], dnnl_f32, dnnl_ab, "bias")
        try describe(&d.destination, [key.rows, key.outFeatures], dnnl_f32, dnnl_ab, "dst")
        return d
    }

    private func describe(_ descriptor: inout dnnl_memory_desc_t, _ dims: [Int], _ type: dnnl_data_type_t,
                          _ tag: dnnl_format_tag_t, _ what: String) throws {
        let values = dims.map { dnnl_dim_t($0) } + [dnnl_dim_t](repeating: 0, count: 12 - dims.count)
        let status = values.withUnsafeBufferPointer { dnnl_memory_desc_init_by_tag(&descriptor, Int32(dims.count), $0.baseAddress, type, tag) }
        try check(status, "memory_desc \(what)")
    }

    private func prepare(_ key: Key) throws -> Prepared {
        if let entry = prepared[key] { return entry }
        var d = try memoryDescriptors(key)
        var operation = dnnl_matmul_desc_t()
        try check(dnnl_matmul_desc_init(&operation, &d.source, &d.weights, &d.bias, &d.destination), "matmul_desc_init")
        var attributes: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attributes), "attr_create")
        defer { dnnl_primitive_attr_destroy(attributes) }
        try check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "scratchpad_mode")
        if key.epilogue == .gelu {
            var postOps: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&postOps), "post_ops_create")
            defer { dnnl_post_ops_destroy(postOps) }
            try check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_gelu_erf, 0, 0), "append gelu_erf")
            try check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "set_post_ops")
        }
        var descriptor: dnnl_primitive_desc_t?
        try check(dnnl_primitive_desc_create(&descriptor, &operation, attributes, engine, nil), "primitive_desc_create")
        defer { dnnl_primitive_desc_destroy(descriptor) }
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, descriptor), "primitive_create")
        var scratch = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0)?.pointee ?? dnnl_memory_desc_t()
        let size = dnnl_memory_desc_get_size(&scratch)
        if size > scratchpad.count { scratchpad = [UInt8](repeating: 0, count: size) }
        let entry = Prepared(primitive: primitive!, descriptors: d, scratchpad: scratch)
        prepared[key] = entry
        return entry
    }

    private func check(_ status: dnnl_status_t, _ what: String) throws {
        guard status == dnnl_success else {
            throw InferenceError.internal("oneDNN \(what) failed with status \(status.rawValue)")
        }
    }

    /// Whether this CPU runs bf16 matrix products natively (AVX-512 BF16 or AMX).
    static var cpuHasBF16: Bool {
        dnnl_get_effective_cpu_isa().rawValue & dnnl_cpu_isa_avx512_core_bf16.rawValue == dnnl_cpu_isa_avx512_core_bf16.rawValue
    }
}

/// bfloat16 as the upper 16 bits of a Float, rounded to nearest even.
/// bfloat16 as its 16 bits: round to nearest even, NaN kept quiet. The GPU
/// path converts its weights with the same function.
public enum BFloat16Bits {
    @inline(__always)
    public static func round(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = ((bits >> 16) & 1) + 0x7FFF
        return UInt16((bits &+ rounding) >> 16)
    }

    public static func convert(_ values: [Float]) -> [UInt16] { values.map(round) }
}
