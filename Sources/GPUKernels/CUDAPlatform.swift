import InferenceCore

/// Names the dynamic linker is asked for; tests point them at missing or fake libraries.
public struct CUDALibraryNames: Sendable {
    public var driver = ["libcuda.so.1"]
    public var runtime = ["libcudart.so.12"]
    public var cublas = ["libcublas.so.12"]
    public var nvrtc = ["libnvrtc.so.12"]
    public var nvml = ["libnvidia-ml.so.1"]

    public init() {}
    public static let standard = CUDALibraryNames()
}

/// The CUDA libraries of this host, loaded at run time, and its usable devices.
public struct CUDAPlatform: Sendable {
    public struct Device: Sendable, Hashable {
        public let index: Int
        public let computeCapability: Int  // major * 10 + minor: 70, 80, 90
    }

    /// The oldest architecture the kernels are built and checked for (Volta).
    public static let minimumComputeCapability = 70

    let driver: DriverFunctions
    let runtime: RuntimeFunctions
    let cublas: CUBLASFunctions
    let nvrtc: NVRTCFunctions
    public let devices: [Device]
    /// NVRTC's version, part of the kernel cache key.
    public let nvrtcVersion: Int
}

/// Whether this process can run CUDA, and if not, the one line that says why.
public enum CUDAAvailability: Sendable {
    case available(CUDAPlatform)
    case unavailable(reason: String)
}

public enum CUDALoader {
    /// The host's answer, probed once per process on first use.
    public static let shared: CUDAAvailability = probe()

    /// Loads the driver first (it says whether there is a device at all), then
    /// the runtime, cuBLAS and NVRTC. Never exits, never throws: every failure
    /// becomes the reason a caller logs or reports.
    public static func probe(_ names: CUDALibraryNames = .standard) -> CUDAAvailability {
        let driverLibrary: DynamicLibrary
        switch DynamicLibrary.open(names.driver) {
        case .success(let library): driverLibrary = library
        case .failure(let failure): return .unavailable(reason: "no NVIDIA driver: \(failure.message)")
        }
        let driver: DriverFunctions
        do { driver = try DriverFunctions(driverLibrary) } catch {
            return .unavailable(reason: "the NVIDIA driver library is unusable: \(error.message)")
        }
        let initialized = driver.cuInit(0)
        if initialized == DriverFunctions.noDevice {
            return .unavailable(reason: "no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)")
        }
        guard initialized == 0 else {
            return .unavailable(reason: "cuInit failed: \(describeDriverError(initialized, driver))")
        }
        var count: Int32 = 0
        let counted = driver.cuDeviceGetCount(&count)
        guard counted == 0 else { return .unavailable(reason: "cuDeviceGetCount failed: \(describeDriverError(counted, driver))") }
        guard count > 0 else { return .unavailable(reason: "no CUDA device (cuDeviceGetCount: 0)") }

        var found: [Int] = []
        var devices: [CUDAPlatform.Device] = []
        for index in 0..<count {
            var major: Int32 = 0, minor: Int32 = 0
            guard driver.cuDeviceGetAttribute(&major, DriverFunctions.computeCapabilityMajor, index) == 0,
                  driver.cuDeviceGetAttribute(&minor, DriverFunctions.computeCapabilityMinor, index) == 0 else { continue }
            let capability = Int(major) * 10 + Int(minor)
            found.append(capability)
            if capability >= CUDAPlatform.minimumComputeCapability {
                devices.append(.init(index: Int(index), computeCapability: capability))
            }
        }
        guard !devices.isEmpty else {
            let seen = found.map { "\($0 / 10).\($0 % 10)" }.joined(separator: ", ")
            return .unavailable(reason: "no CUDA device of compute capability 7.0 or later (found \(seen.isEmpty ? "none readable" : seen))")
        }

        do {
            let runtime = try RuntimeFunctions(try open(names.runtime, what: "CUDA runtime"))
            let cublas = try CUBLASFunctions(try open(names.cublas, what: "cuBLAS"))
            let nvrtc = try NVRTCFunctions(try open(names.nvrtc, what: "NVRTC"))
            var major: Int32 = 0, minor: Int32 = 0
            _ = nvrtc.nvrtcVersion(&major, &minor)
            return .available(CUDAPlatform(driver: driver, runtime: runtime, cublas: cublas, nvrtc: nvrtc, devices: devices,
                                           nvrtcVersion: Int(major) * 100 + Int(minor)))
        } catch {
            return .unavailable(reason: error.message)
        }
    }

    private static func open(_ names: [String], what: String) throws(LibraryLoadFailure) -> DynamicLibrary {
        switch DynamicLibrary.open(names) {
        case .success(let library): return library
        case .failure(let failure):
            throw LibraryLoadFailure(names: names, message: "\(what) library \(names.joined(separator: " or ")) not loadable: \(failure.message)")
        }
    }

    static func describeDriverError(_ code: CUResult, _ driver: DriverFunctions) -> String {
        var text: UnsafePointer<CChar>?
        if driver.cuGetErrorString(code, &text) == 0, let text { return "error \(code) (\(String(cString: text)))" }
        return "error \(code)"
    }
}

/// Every CUDA, cuBLAS and NVRTC return code goes through these: a failure
/// becomes an InferenceError naming the call and the library's own message.
extension CUDAPlatform {
    func check(_ code: CUDAErrorCode, _ call: @autoclosure () -> String) throws(InferenceError) {
        guard code != 0 else { return }
        let text = runtime.cudaGetErrorString(code).map { String(cString: $0) } ?? "unknown"
        throw InferenceError.internal("CUDA: \(call()) failed: error \(code) (\(text))")
    }

    func checkDriver(_ code: CUResult, _ call: @autoclosure () -> String) throws(InferenceError) {
        guard code != 0 else { return }
        throw InferenceError.internal("CUDA driver: \(call()) failed: \(CUDALoader.describeDriverError(code, driver))")
    }

    func checkBLAS(_ status: CUBLASStatus, _ call: @autoclosure () -> String) throws(InferenceError) {
        guard status != 0 else { return }
        throw InferenceError.internal("cuBLAS: \(call()) failed: \(Self.cublasStatusName(status))")
    }

    func checkNVRTC(_ result: NVRTCResult, _ call: @autoclosure () -> String, log: String = "") throws(InferenceError) {
        guard result != 0 else { return }
        let text = nvrtc.nvrtcGetErrorString(result).map { String(cString: $0) } ?? "error \(result)"
        throw InferenceError.internal("NVRTC: \(call()) failed: \(text)\(log.isEmpty ? "" : "\n\(log)")")
    }

    /// cublasStatus_t names (cuBLAS has no status-to-string call before 11.4's cublasGetStatusString).
    static func cublasStatusName(_ status: CUBLASStatus) -> String {
        switch status {
        case 1: "CUBLAS_STATUS_NOT_INITIALIZED"
        case 3: "CUBLAS_STATUS_ALLOC_FAILED"
        case 7: "CUBLAS_STATUS_INVALID_VALUE"
        case 8: "CUBLAS_STATUS_ARCH_MISMATCH"
        case 11: "CUBLAS_STATUS_MAPPING_ERROR"
        case 13: "CUBLAS_STATUS_EXECUTION_FAILED"
        case 14: "CUBLAS_STATUS_INTERNAL_ERROR"
        case 15: "CUBLAS_STATUS_NOT_SUPPORTED"
        case 16: "CUBLAS_STATUS_LICENSE_ERROR"
        default: "cuBLAS status \(status)"
        }
    }
}
