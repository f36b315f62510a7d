import InferenceCore
/// The few CUDA, cuBLAS, NVRTC and NVML entry points this module calls,
/// declared here (no CUDA headers at build time) and resolved with dlsym.
/// Opaque handles are raw pointers; enums and error codes are Int32 as in C.
typealias CUResult = Int32
typealias CUDAErrorCode = Int32
typealias CUBLASStatus = Int32
typealias NVRTCResult = Int32
typealias RawPointer = UnsafeMutableRawPointer

struct DriverFunctions: @unchecked Sendable {
    let cuInit: @convention(c) (UInt32) -> CUResult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUResult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> CUResult
    let cuGetErrorString: @convention(c) (CUResult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUResult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<RawPointer?>, UnsafeRawPointer) -> CUResult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<RawPointer?>, RawPointer, UnsafePointer<CChar>) -> CUResult
    let cuModuleUnload: @convention(c) (RawPointer) -> CUResult
    // f, grid x y z, block x y z, shared bytes, stream, kernel params, extra
    let cuLaunchKernel: @convention(c) (RawPointer, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, RawPointer?,
                                        UnsafeMutablePointer<RawPointer?>?, UnsafeMutablePointer<RawPointer?>?) -> CUResult

    init(_ library: DynamicLibrary) throws(LibraryLoadFailure) {
        cuInit = try library.function("cuInit")
        cuDeviceGetCount = try library.function("cuDeviceGetCount")
        cuDeviceGetAttribute = try library.function("cuDeviceGetAttribute")
        cuGetErrorString = try library.function("cuGetErrorString")
        cuModuleLoadData = try library.function("cuModuleLoadData")
        cuModuleGetFunction = try library.function("cuModuleGetFunction")
        cuModuleUnload = try library.function("cuModuleUnload")
        cuLaunchKernel = try library.function("cuLaunchKernel")
    }

    static let computeCapabilityMajor: Int32 = 75  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    static let computeCapabilityMinor: Int32 = 76  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
    static let noDevice: CUResult = 100            // CUDA_ERROR_NO_DEVICE
}

struct RuntimeFunctions: @unchecked Sendable {
    let cudaSetDevice: @convention(c) (Int32) -> CUDAErrorCode
    let cudaFree: @convention(c) (RawPointer?) -> CUDAErrorCode
    let cudaMalloc: @convention(c) (UnsafeMutablePointer<RawPointer?>, Int) -> CUDAErrorCode
    let cudaMallocHost: @convention(c) (UnsafeMutablePointer<RawPointer?>, Int) -> CUDAErrorCode
    let cudaFreeHost: @convention(c) (RawPointer?) -> CUDAErrorCode
    let cudaMemcpyAsync: @convention(c) (RawPointer?, UnsafeRawPointer?, Int, Int32, RawPointer?) -> CUDAErrorCode
    let cudaMemsetAsync: @convention(c) (RawPointer?, Int32, Int, RawPointer?) -> CUDAErrorCode
    let cudaStreamCreateWithFlags: @convention(c) (UnsafeMutablePointer<RawPointer?>, UInt32) -> CUDAErrorCode
    let cudaStreamSynchronize: @convention(c) (RawPointer?) -> CUDAErrorCode
    let cudaStreamDestroy: @convention(c) (RawPointer?) -> CUDAErrorCode
    let cudaGetErrorString: @convention(c) (CUDAErrorCode) -> UnsafePointer<CChar>?
    let cudaRuntimeGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUDAErrorCode

    init(_ library: DynamicLibrary) throws(LibraryLoadFailure) {
        cudaSetDevice = try library.function("cudaSetDevice")
        cudaFree = try library.function("cudaFree")
        cudaMalloc = try library.function("cudaMalloc")
        cudaMallocHost = try library.function("cudaMallocHost")
        cudaFreeHost = try library.function("cudaFreeHost")
        cudaMemcpyAsync = try library.function("cudaMemcpyAsync")
        cudaMemsetAsync = try library.function("cudaMemsetAsync")
        cudaStreamCreateWithFlags = try library.function("cudaStreamCreateWithFlags")
        cudaStreamSynchronize = try library.function("cudaStreamSynchronize")
        cudaStreamDestroy = try library.function("cudaStreamDestroy")
        cudaGetErrorString = try library.function("cudaGetErrorString")
        cudaRuntimeGetVersion = try library.function("cudaRuntimeGetVersion")
    }

    static let hostToDevice: Int32 = 1   // cudaMemcpyHostToDevice
    static let deviceToHost: Int32 = 2   // cudaMemcpyDeviceToHost
    static let nonBlockingStream: UInt32 = 1  // cudaStreamNonBlocking: no implicit sync with the legacy stream
}

struct CUBLASFunctions: @unchecked Sendable {
    let cublasCreate: @convention(c) (UnsafeMutablePointer<RawPointer?>) -> CUBLASStatus
    let cublasDestroy: @convention(c) (RawPointer?) -> CUBLASStatus
    let cublasSetStream: @convention(c) (RawPointer?, RawPointer?) -> CUBLASStatus
    let cublasSetWorkspace: @convention(c) (RawPointer?, RawPointer?, Int) -> CUBLASStatus
    // handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType, algo
    let cublasGemmEx: @convention(c) (RawPointer?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer, UnsafeRawPointer?, Int32, Int32,
                                      UnsafeRawPointer?, Int32, Int32, UnsafeRawPointer, RawPointer?, Int32, Int32, Int32, Int32) -> CUBLASStatus
    // ... as GemmEx with a stride after each of lda, ldb, ldc, then batchCount
    let cublasGemmStridedBatchedEx: @convention(c) (RawPointer?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer,
                                                    UnsafeRawPointer?, Int32, Int32, Int64, UnsafeRawPointer?, Int32, Int32, Int64,
                                                    UnsafeRawPointer, RawPointer?, Int32, Int32, Int64, Int32, Int32, Int32) -> CUBLASStatus

    init(_ library: DynamicLibrary) throws(LibraryLoadFailure) {
        cublasCreate = try library.function("cublasCreate_v2")
        cublasDestroy = try library.function("cublasDestroy_v2")
        cublasSetStream = try library.function("cublasSetStream_v2")
        cublasSetWorkspace = try library.function("cublasSetWorkspace_v2")
        cublasGemmEx = try library.function("cublasGemmEx")
        cublasGemmStridedBatchedEx = try library.function("cublasGemmStridedBatchedEx")
    }

    static let opN: Int32 = 0            // CUBLAS_OP_N
    static let opT: Int32 = 1            // CUBLAS_OP_T
    static let realFloat: Int32 = 0      // CUDA_R_32F
    static let realBFloat16: Int32 = 14  // CUDA_R_16BF
    static let computeFloat: Int32 = 68          // CUBLAS_COMPUTE_32F
    static let computeFloatFastTF32: Int32 = 77  // CUBLAS_COMPUTE_32F_FAST_TF32
    static let defaultAlgorithm: Int32 = -1      // CUBLAS_GEMM_DEFAULT
}

struct NVRTCFunctions: @unchecked Sendable {
    // program, source, name, header count, headers, include names
    let nvrtcCreateProgram: @convention(c) (UnsafeMutablePointer<RawPointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>, Int32,
                                            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> NVRTCResult
    let nvrtcCompileProgram: @convention(c) (RawPointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> NVRTCResult
    let nvrtcGetProgramLogSize: @convention(c) (RawPointer?, UnsafeMutablePointer<Int>) -> NVRTCResult
    let nvrtcGetProgramLog: @convention(c) (RawPointer?, UnsafeMutablePointer<CChar>) -> NVRTCResult
    let nvrtcGetCUBINSize: @convention(c) (RawPointer?, UnsafeMutablePointer<Int>) -> NVRTCResult
    let nvrtcGetCUBIN: @convention(c) (RawPointer?, UnsafeMutablePointer<CChar>) -> NVRTCResult
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<RawPointer?>) -> NVRTCResult
    let nvrtcGetErrorString: @convention(c) (NVRTCResult) -> UnsafePointer<CChar>?
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> NVRTCResult

    init(_ library: DynamicLibrary) throws(LibraryLoadFailure) {
        nvrtcCreateProgram = try library.function("nvrtcCreateProgram")
        nvrtcCompileProgram = try library.function("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try library.function("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.function("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try library.function("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.function("nvrtcGetCUBIN")
        nvrtcDestroyProgram = try library.function("nvrtcDestroyProgram")
        nvrtcGetErrorString = try library.function("nvrtcGetErrorString")
        nvrtcVersion = try library.function("nvrtcVersion")
    }
}
