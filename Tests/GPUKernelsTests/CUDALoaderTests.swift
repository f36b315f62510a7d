import Foundation
import InferenceCore
import Testing
@testable import GPUKernels
import TransformerEncoder
@testable import TransformerModel

/// The loader's paths on hosts without a usable GPU, against missing libraries
/// and fake drivers built here with the C compiler (no GPU or CUDA needed).
@Suite struct CUDALoaderTests {
    /// A libcuda stand-in whose cuInit, device count and compute capability are chosen per test.
    static func fakeDriver(initResult: Int, devices: Int, major: Int = 8, minor: Int = 0) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fake-cuda-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let source = directory.appendingPathComponent("fake.c")
        try """
        int cuInit(unsigned flags) { return \(initResult); }
        int cuDeviceGetCount(int *count) { *count = \(devices); return 0; }
        int cuDeviceGetAttribute(int *value, int attribute, int device) { *value = attribute == 75 ? \(major) : \(minor); return 0; }
        int cuGetErrorString(int error, const char **text) { *text = "fake driver error"; return 0; }
        int cuModuleLoadData(void **module, const void *image) { return 1; }
        int cuModuleGetFunction(void **function, void *module, const char *name) { return 1; }
        int cuModuleUnload(void *module) { return 0; }
        int cuLaunchKernel(void) { return 1; }
        """.write(to: source, atomically: true, encoding: .utf8)
        let library = directory.appendingPathComponent("libfakecuda.so").path
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        compiler.arguments = ["cc", "-shared", "-fPIC", "-o", library, source.path]
        try compiler.run()
        compiler.waitUntilExit()
        try #require(compiler.terminationStatus == 0, "cc could not build the fake driver")
        return library
    }

    static func reason(_ availability: CUDAAvailability) -> String? {
        if case .unavailable(let reason) = availability { return reason }
        return nil
    }

    @Test func missingDriverSaysSo() {
        var names = CUDALibraryNames()
        names.driver = ["libcuda-absent-for-test.so.1"]
        let reason = Self.reason(CUDALoader.probe(names))
        #expect(reason?.hasPrefix("no NVIDIA driver:") == true)
        #expect(reason?.contains("libcuda-absent-for-test.so.1") == true)
    }

    @Test func aDriverLibraryWithoutTheEntryPointsIsRefused() {
        var names = CUDALibraryNames()
        names.driver = ["libm.so.6"]
        let reason = Self.reason(CUDALoader.probe(names))
        #expect(reason?.contains("symbol cuInit not found") == true)
    }

    @Test func noDeviceFromCuInit() throws {
        var names = CUDALibraryNames()
        names.driver = [try Self.fakeDriver(initResult: 100, devices: 0)]
        #expect(Self.reason(CUDALoader.probe(names)) == "no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)")
    }

    @Test func otherDriverErrorsCarryTheDriverMessage() throws {
        var names = CUDALibraryNames()
        names.driver = [try Self.fakeDriver(initResult: 999, devices: 0)]
        #expect(Self.reason(CUDALoader.probe(names)) == "cuInit failed: error 999 (fake driver error)")
    }

    @Test func zeroDevices() throws {
        var names = CUDALibraryNames()
        names.driver = [try Self.fakeDriver(initResult: 0, devices: 0)]
        #expect(Self.reason(CUDALoader.probe(names)) == "no CUDA device (cuDeviceGetCount: 0)")
    }

    @Test func devicesOlderThanVoltaAreNotUsed() throws {
        var names = CUDALibraryNames()
        names.driver = [try Self.fakeDriver(initResult: 0, devices: 2, major: 6, minor: 1)]
        #expect(Self.reason(CUDALoader.probe(names)) == "no CUDA device of compute capability 7.0 or later (found 6.1, 6.1)")
    }

    @Test func aDeviceWithoutTheRuntimeLibraries() throws {
        var names = CUDALibraryNames()
        names.driver = [try Self.fakeDriver(initResult: 0, devices: 1)]
        names.runtime = ["libcudart-absent-for-test.so.12"]
        let reason = try #require(Self.reason(CUDALoader.probe(names)))
        #expect(reason.hasPrefix("CUDA runtime library libcudart-absent-for-test.so.12 not loadable"))
    }

    @Test func gpuInstancesFallBackToTheCPUOrFailWhenRequired() throws {
        let spec = ModelSpec(name: "encoder", version: 1, backend: "transformer_encoder", maxBatchSize: 4,
                             inputs: [TensorSpec(name: "INPUT_IDS", dataType: .int64, dims: [-1])],
                             outputs: [TensorSpec(name: "LOGITS", dataType: .fp32, dims: [2])],
                             instanceGroups: [InstanceGroupSpec(kind: .gpu, count: 1)],
                             versionPath: "/nonexistent/encoder/1")
        let required = EncoderBackend(accelerator: CUDAEncoderAccelerator(requireGPU: true, logger: .init(label: "test"),
                                                                          availability: { .unavailable(reason: "no CUDA device") }))
        #expect(throws: InferenceError.unavailable("model 'encoder' asks for KIND_GPU and --require-gpu is set, but no CUDA device")) {
            _ = try required.makeInstance(for: spec, index: 0)
        }
        // Without --require-gpu it builds the CPU instance, which reads the checkpoint (missing here).
        let fallback = EncoderBackend(accelerator: CUDAEncoderAccelerator(requireGPU: false, logger: .init(label: "test"),
                                                                          availability: { .unavailable(reason: "no CUDA device") }))
        #expect(throws: (any Error).self) { _ = try fallback.makeInstance(for: spec, index: 0) }
    }

    @Test func nvmlAbsentMeansNoGPUMetrics() {
        var names = CUDALibraryNames()
        names.nvml = ["libnvidia-ml-absent-for-test.so.1"]
        #expect(GPUMetricsSampler.make(names: names) == nil)
    }
}
