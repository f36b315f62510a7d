import CDNNL
import InferenceCore
import TransformerModel

/// Checked helpers over oneDNN's C API, shared by the prepared model and the
/// per-instance contexts.
enum OneDNN {
    // Argument indices of dnnl_types.h (DNNL_ARG_*), which Swift does not import as constants.
    static let argSource: Int32 = 1, argDestination: Int32 = 17, argWeights: Int32 = 33, argBias: Int32 = 41
    static let argScratchpad: Int32 = 80, argFrom: Int32 = 1, argTo: Int32 = 17

    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) throws {
        guard status == dnnl_success else {
            throw InferenceError.internal("oneDNN \(what()) failed with status \(status.rawValue)")
        }
    }

    static func descriptor(_ dims: [Int], _ type: dnnl_data_type_t, _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
        var descriptor = dnnl_memory_desc_t()
        let values = dims.map { dnnl_dim_t($0) } + [dnnl_dim_t](repeating: 0, count: 12 - dims.count)
        let status = values.withUnsafeBufferPointer {
            dnnl_memory_desc_init_by_tag(&descriptor, Int32(dims.count), $0.baseAddress, type, tag)
        }
        try check(status, "memory_desc_init \(dims)")
        return descriptor
    }

    /// The instruction set oneDNN dispatches to on this CPU, as its name.
    static var effectiveISA: String {
        let isa = dnnl_get_effective_cpu_isa()
        switch isa {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_sse41: return "sse41"
        default: return "isa 0x\(String(isa.rawValue, radix: 16))"
        }
    }

    private static func has(_ isa: dnnl_cpu_isa_t) -> Bool {
        dnnl_get_effective_cpu_isa().rawValue & isa.rawValue == isa.rawValue
    }

    /// AMX tiles (amx_bf16, amx_int8) usable by oneDNN.
    static var hasAMX: Bool { has(dnnl_cpu_isa_avx512_core_amx) }
    /// bf16 dot products (AVX512_BF16, or AMX) usable by oneDNN.
    static var hasBF16: Bool { has(dnnl_cpu_isa_avx512_core_bf16) }
    /// int8 dot products (VNNI on AVX-512 or AVX2).
    static var hasVNNI: Bool { has(dnnl_cpu_isa_avx512_core_vnni) || has(dnnl_cpu_isa_avx2_vnni) }
}

/// A oneDNN CPU engine: primitives made on it can run on any stream of it.
final class OneDNNEngine: @unchecked Sendable {
    let handle: dnnl_engine_t

    init() throws {
        var engine: dnnl_engine_t?
        try OneDNN.check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine_create")
        handle = engine!
    }

    deinit { dnnl_engine_destroy(handle) }
}

/// Memory with a fixed address for oneDNN and the kernels: 64-byte aligned,
/// never moved, freed with its owner. Large buffers come from the kernel
/// lazily (malloc maps them), so the pages a batch never reaches cost no RSS.
final class AlignedBuffer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let byteCount: Int

    init(bytes: Int) {
        byteCount = max(bytes, 64)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
    }

    convenience init<T>(copying values: [T]) {
        self.init(bytes: values.count * MemoryLayout<T>.stride)
        values.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    func typed<T>(_ type: T.Type) -> UnsafeMutablePointer<T> { pointer.assumingMemoryBound(to: type) }

    deinit { pointer.deallocate() }
}


