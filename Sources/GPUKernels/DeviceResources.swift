import InferenceCore

/// An instance's CUDA stream and cuBLAS handle on one device, owned apart from
/// the rest of the instance so that an init that fails after making them still
/// releases them, and released on their own device.
final class StreamContext: @unchecked Sendable {
    private let platform: CUDAPlatform
    let device: Int
    private(set) var stream: RawPointer?
    private(set) var cublas: RawPointer?

    init(platform: CUDAPlatform, device: Int) throws {
        self.platform = platform
        self.device = device
        try platform.check(platform.runtime.cudaSetDevice(Int32(device)), "cudaSetDevice(\(device))")
        try platform.check(platform.runtime.cudaStreamCreateWithFlags(&stream, RuntimeFunctions.nonBlockingStream), "cudaStreamCreateWithFlags")
        try platform.checkBLAS(platform.cublas.cublasCreate(&cublas), "cublasCreate")
        try platform.checkBLAS(platform.cublas.cublasSetStream(cublas, stream), "cublasSetStream")
    }

    deinit {
        _ = platform.runtime.cudaSetDevice(Int32(device))
        if let cublas { _ = platform.cublas.cublasDestroy(cublas) }
        if let stream { _ = platform.runtime.cudaStreamDestroy(stream) }
    }
}

/// Device and pinned host allocations of one instance, freed together when the
/// instance goes away (model unload). Not shared between instances.
final class DeviceAllocations: @unchecked Sendable {
    private let platform: CUDAPlatform
    private let ordinal: Int
    private var device: [RawPointer] = []
    /// Bytes of device memory allocated here so far.
    private(set) var deviceBytes = 0
    private var pinned: [RawPointer] = []

    init(platform: CUDAPlatform, device ordinal: Int) {
        self.platform = platform
        self.ordinal = ordinal
    }

    func device(bytes: Int, _ what: String) throws -> RawPointer {
        var pointer: RawPointer?
        try platform.check(platform.runtime.cudaMalloc(&pointer, max(bytes, 1)), "cudaMalloc(\(what), \(bytes) bytes)")
        guard let pointer else { throw InferenceError.internal("CUDA: cudaMalloc(\(what)) returned no memory") }
        device.append(pointer)
        deviceBytes += max(bytes, 1)
        return pointer
    }

    /// Uploads `values` into a new device buffer (synchronously: load time only).
    func upload<T>(_ values: [T], _ what: String, stream: RawPointer?) throws -> RawPointer {
        let bytes = values.count * MemoryLayout<T>.stride
        let pointer = try device(bytes: bytes, what)
        try values.withUnsafeBytes { raw in
            try platform.check(platform.runtime.cudaMemcpyAsync(pointer, raw.baseAddress, bytes, RuntimeFunctions.hostToDevice, stream),
                               "cudaMemcpyAsync(\(what), \(bytes) bytes)")
        }
        // The host array may be freed as soon as this returns.
        try platform.check(platform.runtime.cudaStreamSynchronize(stream), "cudaStreamSynchronize(upload \(what))")
        return pointer
    }

    func pinned(bytes: Int, _ what: String) throws -> RawPointer {
        var pointer: RawPointer?
        try platform.check(platform.runtime.cudaMallocHost(&pointer, max(bytes, 1)), "cudaMallocHost(\(what), \(bytes) bytes)")
        guard let pointer else { throw InferenceError.internal("CUDA: cudaMallocHost(\(what)) returned no memory") }
        pinned.append(pointer)
        return pointer
    }

    deinit {
        // Teardown may run on any thread: free on the device the memory is on.
        _ = platform.runtime.cudaSetDevice(Int32(ordinal))
        for pointer in device { _ = platform.runtime.cudaFree(pointer) }
        for pointer in pinned { _ = platform.runtime.cudaFreeHost(pointer) }
    }
}

/// The kernels of cuda/, compiled for one device and loaded as driver modules.
final class KernelModules: @unchecked Sendable {
    private let platform: CUDAPlatform
    private var modules: [RawPointer] = []
    private var functions: [String: RawPointer] = [:]

    init(platform: CUDAPlatform, compiler: KernelCompiler, computeCapability: Int) throws {
        self.platform = platform
        for (file, source) in KernelSources.all {
            let cubin = try compiler.cubin(file: file, source: source, computeCapability: computeCapability)
            var module: RawPointer?
            try cubin.withUnsafeBytes { raw in
                try platform.checkDriver(platform.driver.cuModuleLoadData(&module, raw.baseAddress!), "cuModuleLoadData(\(file))")
            }
            guard let module else { throw InferenceError.internal("CUDA driver: cuModuleLoadData(\(file)) returned no module") }
            modules.append(module)
            for name in KernelSources.kernelNames(in: source) {
                var function: RawPointer?
                try platform.checkDriver(platform.driver.cuModuleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
                functions[name] = function
            }
        }
    }

    func function(_ name: String) throws -> RawPointer {
        guard let function = functions[name] else { throw InferenceError.internal("CUDA kernel \(name) is not loaded") }
        return function
    }

    deinit {
        for module in modules { _ = platform.driver.cuModuleUnload(module) }
    }
}

/// A kernel's arguments as cuLaunchKernel takes them: an array of pointers,
/// each to one argument's value. Every value gets its own 8-byte slot.
struct KernelArguments: ~Copyable {
    private let slots: UnsafeMutableRawPointer
    private let pointers: UnsafeMutablePointer<RawPointer?>
    private(set) var count = 0
    static let capacity = 16

    init() {
        slots = .allocate(byteCount: 8 * Self.capacity, alignment: 8)
        pointers = .allocate(capacity: Self.capacity)
    }

    deinit {
        slots.deallocate()
        pointers.deallocate()
    }

    private mutating func append<T: BitwiseCopyable>(_ value: T) {
        precondition(count < Self.capacity && MemoryLayout<T>.size <= 8, "kernel argument list too long")
        let slot = slots + 8 * count
        slot.storeBytes(of: 0 as UInt64, as: UInt64.self)
        slot.storeBytes(of: value, as: T.self)
        pointers[count] = slot
        count += 1
    }

    mutating func pointer(_ value: RawPointer?) { append(UInt(bitPattern: value)) }
    mutating func int32(_ value: Int) { append(Int32(value)) }
    mutating func float(_ value: Float) { append(value) }
    mutating func uint64(_ value: Int) { append(UInt64(value)) }

    var list: UnsafeMutablePointer<RawPointer?> { pointers }
}
