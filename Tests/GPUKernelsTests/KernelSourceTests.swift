import Foundation
import Testing
@testable import GPUKernels

@Suite struct KernelSourceTests {
    static let cudaDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/GPUKernels/cuda")

    @Test func embeddedSourcesAreTheFilesInCuda() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.cudaDirectory.path).filter { $0.hasSuffix(".cu") }.sorted()
        #expect(KernelSources.all.map(\.file).sorted() == files)
        for (file, source) in KernelSources.all {
            let onDisk = try Data(contentsOf: Self.cudaDirectory.appendingPathComponent(file))
            #expect([UInt8](onDisk) == source, "\(file) embedded differs from the file")
        }
    }

    @Test func kernelNamesMatchTheManifest() throws {
        let manifest = try String(contentsOf: Self.cudaDirectory.appendingPathComponent("kernels.txt"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
            .map { $0.split(separator: " ").map(String.init) }
        let parsed = KernelSources.all.flatMap { file, source in KernelSources.kernelNames(in: source).map { [file, $0] } }
        #expect(parsed.sorted { $0.joined() < $1.joined() } == manifest.sorted { $0.joined() < $1.joined() })
    }

    @Test func everyKernelTheForwardPassLaunchesIsDefined() {
        let defined = Set(KernelSources.all.flatMap { KernelSources.kernelNames(in: $0.source) })
        for kernel in ["embedding_layernorm_f32", "split_qkv_heads_f32", "attention_softmax_f32", "merge_heads_f32",
                       "bias_residual_layernorm_f32", "bias_gelu_f32", "mean_pool_l2norm_f32", "gather_rows_f32",
                       "bias_relu_f32", "add_bias_f32", "convert_f32_to_bf16"] {
            #expect(defined.contains(kernel), "\(kernel)")
        }
    }

    @Test func cacheKeyChangesWithEverythingThatChangesTheBinary() {
        let source = Array("extern \"C\" __global__ void k() {}".utf8)
        let key = KernelCompiler.cacheKey(file: "k.cu", source: source, computeCapability: 80, nvrtcVersion: 1209)
        #expect(key == KernelCompiler.cacheKey(file: "k.cu", source: source, computeCapability: 80, nvrtcVersion: 1209))
        #expect(key.hasPrefix("k-sm80-") && key.hasSuffix(".cubin"))
        #expect(key != KernelCompiler.cacheKey(file: "k.cu", source: source + [32], computeCapability: 80, nvrtcVersion: 1209))
        #expect(key != KernelCompiler.cacheKey(file: "k.cu", source: source, computeCapability: 90, nvrtcVersion: 1209))
        #expect(key != KernelCompiler.cacheKey(file: "k.cu", source: source, computeCapability: 80, nvrtcVersion: 1300))
    }

    @Test func cacheDirectoryPrecedence() {
        #expect(KernelCompiler.defaultCacheDirectory(environment: ["BATCHSERVER_KERNEL_CACHE": "/k", "HOME": "/h"]) == "/k")
        #expect(KernelCompiler.defaultCacheDirectory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/x/batch-server/kernels")
        #expect(KernelCompiler.defaultCacheDirectory(environment: ["HOME": "/h"]) == "/h/.cache/batch-server/kernels")
        #expect(KernelCompiler.defaultCacheDirectory(environment: [:]) == nil)
    }

    @Test func kernelArgumentsHoldEachValueInItsOwnSlot() {
        var arguments = KernelArguments()
        let pointer = UnsafeMutableRawPointer(bitPattern: 0x1234_5678)
        arguments.pointer(pointer)
        arguments.int32(-7)
        arguments.float(0.5)
        arguments.uint64(1 << 40)
        arguments.pointer(nil)
        #expect(arguments.count == 5)
        let list = arguments.list
        #expect(list[0]!.load(as: UInt.self) == UInt(bitPattern: pointer))
        #expect(list[1]!.load(as: Int32.self) == -7)
        #expect(list[2]!.load(as: Float.self) == 0.5)
        #expect(list[3]!.load(as: UInt64.self) == 1 << 40)
        #expect(list[4]!.load(as: UInt.self) == 0)
    }
}
