// swift-tools-version: 6.1
import PackageDescription

// Module graph (dependencies point one way; docs/architecture.md draws it):
//   InferenceCore  <- every module but GRPCLite and TritonProto
//   TritonProto    <- ModelRepository, RequestPipeline, GRPCFrontend
//   TEIProto       <- GRPCFrontend (text-embeddings-inference's gRPC messages)
//   TextTasks -> InferenceCore; HTTPFrontend, GRPCFrontend -> TextTasks
//   RequestPipeline -> ModelRepository (frontends know only InferenceCore's InferenceServer)
//   GPUKernels -> TransformerEncoder -> CDNNL, CEncoderKernels; GRPCFrontend -> GRPCLite
//   ONNXRuntimeBackend -> CONNXRuntime (ORT's C API header; the library is opened at run time)
//   BatchServer (executable) wires them together.
//   BatchServerClient (executable) -> BulkClient -> InferenceCore, TritonProto, grpc-swift-2's client.
let package = Package(
    name: "BatchServer",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "batch-server", targets: ["BatchServer"]),
        .executable(name: "batch-server-tokenize", targets: ["TokenizeTool"]),
        .executable(name: "batch-server-client", targets: ["BatchServerClient"]),
        // For the benchmark packages under bench/ and the fuzzers under fuzz/,
        // which build against these modules.
        .library(name: "InferenceCore", targets: ["InferenceCore"]),
        .library(name: "Scheduler", targets: ["Scheduler"]),
        .library(name: "TransformerEncoder", targets: ["TransformerEncoder"]),
        .library(name: "TransformerModel", targets: ["TransformerModel"]),
        .library(name: "CEncoderKernels", targets: ["CEncoderKernels"]),
        .library(name: "TritonProto", targets: ["TritonProto"]),
        .library(name: "ModelRepository", targets: ["ModelRepository"]),
        .library(name: "HTTPFrontend", targets: ["HTTPFrontend"]),
        .library(name: "GRPCLite", targets: ["GRPCLite"]),
        .library(name: "GRPCFrontend", targets: ["GRPCFrontend"]),
        .library(name: "RequestPipeline", targets: ["RequestPipeline"]),
        .library(name: "ONNXRuntimeBackend", targets: ["ONNXRuntimeBackend"]),
        .library(name: "Deidentifier", targets: ["Deidentifier"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.35.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
        // OTLP/HTTP only: the gRPC exporter's trait would build a second gRPC stack.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // The vocabulary every layer shares: datatypes, tensors, requests,
        // responses, the error type and the backend protocol. No I/O, no NIO.
        .target(name: "InferenceCore"),
        // Generated swift-protobuf messages for Triton's schemas (see Protos/).
        .target(
            name: "TritonProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // text-embeddings-inference's gRPC messages (package tei.v1), generated
        // from Protos/tei/tei.proto by scripts/generate-protos.sh.
        .target(
            name: "TEIProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // Bearer tokens and endpoint groups, shared by every frontend.
        .target(name: "AccessControl", dependencies: ["InferenceCore", .product(name: "CoreMetrics", package: "swift-metrics")]),
        // Executes batches on model instances. Imports no NIO and no CUDA.
        .target(
            name: "Scheduler",
            dependencies: [
                "InferenceCore",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // config.pbtxt, versions, model lifecycle.
        // Triton's response cache: entries named by an HMAC of the request and
        // sealed with AES-GCM, in a local LRU or a shared Redis (RESP over
        // SwiftNIO); the runner that answers from it.
        .target(
            name: "ResponseCache",
            dependencies: [
                "InferenceCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Triton-layout repositories: config.pbtxt, versions, auto-complete,
        // the model lifecycle (load, swap, unload), ensembles and warm-up.
        .target(
            name: "ModelRepository",
            dependencies: [
                "InferenceCore", "TritonProto", "ResponseCache",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // oneDNN's C API (Debian's libdnnl-dev) for CPU matrix products.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // The encoder's row kernels (epilogues between products, softmax) in C,
        // built for AVX-512, AVX2 and baseline x86-64, chosen at load (ifunc).
        .target(name: "CEncoderKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=fast"])]),
        // A DistilBERT/BERT encoder as files and values, no compute: config,
        // safetensors checkpoint, WordPiece tokenizer, packing requests into
        // sequences and splitting outputs back, the accelerator protocol.
        // Both engines (CPU, CUDA) import it; neither imports the other.
        .target(
            name: "TransformerModel",
            dependencies: ["InferenceCore"],
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // DistilBERT and BERT encoders on the CPU: the prepared model shared by
        // its instances, the per-instance forward pass on oneDNN, and the
        // `transformer_encoder` backend.
        .target(
            name: "TransformerEncoder",
            dependencies: ["InferenceCore", "TransformerModel", "CDNNL", "CEncoderKernels", .product(name: "Logging", package: "swift-log")],
            // The model math is loops over floats: optimize it even in debug
            // builds so tests run the real thing at a usable speed.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // The one request pipeline both frontends call (phase, model lease,
        // shared memory, validation, scheduling, the log line), the shared
        // memory registry, and the log and trace settings.
        .target(
            name: "RequestPipeline",
            dependencies: [
                "InferenceCore", "ModelRepository", "TritonProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ]
        ),
        // ONNX Runtime's C API header (scripts/install-onnxruntime.sh puts it in
        // vendor/, from Debian 13's libonnxruntime-dev); nothing is linked.
        .target(name: "CONNXRuntime", exclude: ["vendor"]),
        // Triton's `onnxruntime` backend: ONNX models on ONNX Runtime, opened at
        // run time from the onnxruntime wheel's libonnxruntime.so.
        .target(
            name: "ONNXRuntimeBackend",
            dependencies: ["InferenceCore", "CONNXRuntime", .product(name: "Logging", package: "swift-log")]
        ),
        // Triton's example models (simple, simple_int8, simple_string, simple_identity).
        .target(name: "ExampleBackends", dependencies: ["InferenceCore"]),
        // PHI de-identification: recognizers (patterns, dates, context words,
        // names, addresses), the span resolver, the operators (keyed hash,
        // date shift, AES-GCM) and the `phi_deidentifier` backend.
        .target(
            name: "Deidentifier",
            dependencies: [
                "InferenceCore", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            // Scanning text is loops over scalars: optimize it even in debug builds.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        // The embedding, classification, rerank and sparse-embedding tasks the
        // OpenAI, TEI, Cohere and vLLM APIs ask of a text model, written once
        // for the HTTP and gRPC frontends: which tensors to fill, the requests
        // through the pipeline, and the arithmetic on the answers.
        .target(name: "TextTasks", dependencies: ["InferenceCore"]),
        // KServe v2 HTTP/REST, as Triton speaks it.
        .target(
            name: "HTTPFrontend",
            dependencies: [
                "InferenceCore", "AccessControl", "TextTasks",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A minimal gRPC server on swift-nio-http2. Knows nothing of models.
        .target(
            name: "GRPCLite",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // KServe v2 gRPC (inference.GRPCInferenceService) on GRPCLite, as Triton speaks it.
        .target(
            name: "GRPCFrontend",
            dependencies: [
                "GRPCLite", "InferenceCore", "TritonProto", "TEIProto", "AccessControl", "TextTasks",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Prometheus exposition on the metrics port, plus host CPU and memory series.
        .target(
            name: "MetricsExporter",
            dependencies: [
                "AccessControl", "InferenceCore",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The encoder on CUDA: run-time loaded cudart, cuBLAS, NVRTC and the driver
        // (so one binary runs on hosts without them), NVRTC-compiled kernels
        // embedded from cuda/, per-instance streams. CPU twins of every kernel.
        .target(
            name: "GPUKernels",
            dependencies: [
                "InferenceCore", "TransformerModel",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            exclude: ["cuda/kernels.txt"],
            resources: [
                .embedInCode("cuda/attention_softmax.cu"),
                .embedInCode("cuda/bias_gelu.cu"),
                .embedInCode("cuda/classifier_head.cu"),
                .embedInCode("cuda/convert.cu"),
                .embedInCode("cuda/layernorm.cu"),
                .embedInCode("cuda/packing.cu"),
                .embedInCode("cuda/pooling.cu"),
            ]
        ),
        // The `batch-server` executable: flags, wiring, lifecycle (thin).
        .executableTarget(
            name: "BatchServer",
            dependencies: [
                "InferenceCore", "Scheduler", "ModelRepository", "RequestPipeline", "ExampleBackends", "HTTPFrontend", "GRPCFrontend", "GRPCLite", "MetricsExporter", "AccessControl", "TransformerModel", "TransformerEncoder", "GPUKernels", "ONNXRuntimeBackend", "Deidentifier", "ResponseCache",
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Bulk jobs over KServe v2 gRPC (grpc-swift-2's client): streamed input,
        // a window sized from the server's queue time, several endpoints,
        // retries, and the journal that makes a rerun resume exactly once.
        .target(
            name: "BulkClient",
            dependencies: [
                "InferenceCore", "TritonProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // The `batch-server-client` executable: bulk jobs from the command line.
        .executableTarget(
            name: "BatchServerClient",
            dependencies: ["BulkClient", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The tokenizer on the command line (checks against Hugging Face's, operator use).
        .executableTarget(name: "TokenizeTool", dependencies: ["TransformerModel"]),
        .testTarget(name: "InferenceCoreTests", dependencies: ["InferenceCore"]),
        .testTarget(name: "SchedulerTests", dependencies: ["Scheduler", "InferenceCore"]),
        .testTarget(name: "ModelRepositoryTests", dependencies: ["ModelRepository", "InferenceCore", "ExampleBackends"]),
        .testTarget(name: "HTTPFrontendTests", dependencies: ["HTTPFrontend", "InferenceCore", "TextTasks"]),
        .testTarget(name: "TextTasksTests", dependencies: ["TextTasks", "InferenceCore"]),
        .testTarget(name: "BulkClientTests", dependencies: [
            "BulkClient", "TritonProto", .product(name: "GRPCCore", package: "grpc-swift-2"),
        ]),
        .testTarget(name: "GRPCFrontendTests", dependencies: ["GRPCFrontend", "GRPCLite", "InferenceCore"]),
        .testTarget(name: "RequestPipelineTests", dependencies: ["RequestPipeline", "ModelRepository", "InferenceCore", "Scheduler"]),
        .testTarget(name: "ONNXRuntimeBackendTests", dependencies: ["ONNXRuntimeBackend", "InferenceCore"]),
        .testTarget(name: "DeidentifierTests", dependencies: ["Deidentifier", "InferenceCore"]),
        .testTarget(name: "ResponseCacheTests", dependencies: ["ResponseCache", "InferenceCore"]),
        .testTarget(name: "AccessControlTests", dependencies: ["AccessControl", "InferenceCore"]),
        .testTarget(name: "TransformerEncoderTests", dependencies: ["TransformerEncoder", "TransformerModel", "CEncoderKernels", "InferenceCore"]),
        .testTarget(name: "GPUKernelsTests", dependencies: ["GPUKernels", "TransformerEncoder", "TransformerModel", "CEncoderKernels", "InferenceCore", "Scheduler"]),
        .testTarget(name: "GRPCLiteTests", dependencies: [
            "GRPCLite", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHPACK", package: "swift-nio-http2"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
