import Foundation
import InferenceCore
import Logging

/// The CUDA C sources of the kernels, embedded in the binary from cuda/ (one
/// file per op), so the binary needs no files beside it.
public enum KernelSources {
    public static let all: [(file: String, source: [UInt8])] = [
        ("layernorm.cu", PackageResources.layernorm_cu),
        ("bias_gelu.cu", PackageResources.bias_gelu_cu),
        ("attention_softmax.cu", PackageResources.attention_softmax_cu),
        ("packing.cu", PackageResources.packing_cu),
        ("classifier_head.cu", PackageResources.classifier_head_cu),
        ("pooling.cu", PackageResources.pooling_cu),
        ("convert.cu", PackageResources.convert_cu),
    ]

    /// The kernels each file defines: its `extern "C" __global__` names.
    public static func kernelNames(in source: [UInt8]) -> [String] {
        let text = String(decoding: source, as: UTF8.self)
        var names: [String] = []
        var rest = text[...]
        while let marker = rest.range(of: "extern \"C\" __global__") {
            rest = rest[marker.upperBound...]
            // The name is the identifier before the parameter list, past
            // `__launch_bounds__(...)` when the kernel declares it.
            while let open = rest.firstIndex(of: "(") {
                let identifier = rest[..<open].split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).last.map(String.init)
                rest = rest[rest.index(after: open)...]
                if identifier == "__launch_bounds__" {
                    guard let close = rest.firstIndex(of: ")") else { break }
                    rest = rest[rest.index(after: close)...]
                    continue
                }
                if let identifier { names.append(identifier) }
                break
            }
        }
        return names
    }
}

/// Compiles kernel sources with NVRTC for one device architecture, keeping
/// each CUBIN on disk so later loads (and other instances) skip compilation.
/// A cache that cannot be written only costs compile time.
struct KernelCompiler: Sendable {
    let platform: CUDAPlatform
    let cacheDirectory: String?
    let logger: Logger

    /// `$BATCHSERVER_KERNEL_CACHE`, else `$XDG_CACHE_HOME/batch-server/kernels`,
    /// else `~/.cache/batch-server/kernels`.
    static func defaultCacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let explicit = environment["BATCHSERVER_KERNEL_CACHE"], !explicit.isEmpty { return explicit }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/batch-server/kernels" }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.cache/batch-server/kernels" }
        return nil
    }

    static func options(computeCapability: Int) -> [String] {
        ["--gpu-architecture=sm_\(computeCapability)", "--std=c++14"]
    }

    /// The cache file name: a hash of everything that changes the CUBIN.
    static func cacheKey(file: String, source: [UInt8], computeCapability: Int, nvrtcVersion: Int) -> String {
        var hash = FNV1a()
        hash.add(Array(file.utf8))
        hash.add(source)
        hash.add(Array(options(computeCapability: computeCapability).joined(separator: " ").utf8))
        hash.add(Array(String(nvrtcVersion).utf8))
        let stem = file.hasSuffix(".cu") ? String(file.dropLast(3)) : file
        return "\(stem)-sm\(computeCapability)-\(String(hash.value, radix: 16)).cubin"
    }

    func cubin(file: String, source: [UInt8], computeCapability: Int) throws -> [UInt8] {
        let key = Self.cacheKey(file: file, source: source, computeCapability: computeCapability, nvrtcVersion: platform.nvrtcVersion)
        let path = cacheDirectory.map { $0 + "/" + key }
        if let path, let cached = FileManager.default.contents(atPath: path), !cached.isEmpty {
            return [UInt8](cached)
        }
        let started = ContinuousClock.now
        let binary = try compile(file: file, source: source, computeCapability: computeCapability)
        logger.info("compiled CUDA kernels", metadata: [
            "kernel.file": "\(file)", "gpu.sm": "\(computeCapability)",
            "duration_ms": "\(Int((ContinuousClock.now - started) / .milliseconds(1)))",
        ])
        if let path, let cacheDirectory { store(binary, at: path, directory: cacheDirectory) }
        return binary
    }

    private func compile(file: String, source: [UInt8], computeCapability: Int) throws -> [UInt8] {
        let nvrtc = platform.nvrtc
        var program: RawPointer?
        let text = String(decoding: source, as: UTF8.self)
        try platform.checkNVRTC(nvrtc.nvrtcCreateProgram(&program, text, file, 0, nil, nil), "nvrtcCreateProgram(\(file))")
        defer { _ = nvrtc.nvrtcDestroyProgram(&program) }
        let options = Self.options(computeCapability: computeCapability).map { strdup($0) }
        defer { options.forEach { free($0) } }
        let result = options.map { UnsafePointer($0) }.withUnsafeBufferPointer { pointers in
            nvrtc.nvrtcCompileProgram(program, Int32(pointers.count), pointers.baseAddress)
        }
        try platform.checkNVRTC(result, "nvrtcCompileProgram(\(file), sm_\(computeCapability))", log: programLog(program))
        var size = 0
        try platform.checkNVRTC(nvrtc.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize(\(file))")
        var binary = [UInt8](repeating: 0, count: size)
        try binary.withUnsafeMutableBytes { raw in
            try platform.checkNVRTC(nvrtc.nvrtcGetCUBIN(program, raw.baseAddress!.assumingMemoryBound(to: CChar.self)), "nvrtcGetCUBIN(\(file))")
        }
        return binary
    }

    private func programLog(_ program: RawPointer?) -> String {
        var size = 0
        guard platform.nvrtc.nvrtcGetProgramLogSize(program, &size) == 0, size > 1 else { return "" }
        var log = [CChar](repeating: 0, count: size)
        guard platform.nvrtc.nvrtcGetProgramLog(program, &log) == 0 else { return "" }
        return String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes through a temporary file and a rename, so a concurrent reader
    /// never sees half a CUBIN.
    private func store(_ binary: [UInt8], at path: String, directory: String) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let temporary = path + ".\(getpid()).tmp"
            try Data(binary).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        } catch {
            logger.notice("cannot write the CUDA kernel cache; kernels will be compiled again next load",
                          metadata: ["cache.directory": "\(directory)"])
        }
    }
}

/// 64-bit FNV-1a: a cache key, not a security boundary.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ bytes: [UInt8]) {
        for byte in bytes {
            value ^= UInt64(byte)
            value &*= 0x0000_0100_0000_01b3
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        value ^= 0xff
        value &*= 0x0000_0100_0000_01b3
    }
}
