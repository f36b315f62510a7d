// swift-tools-version: 6.1
import Foundation
import PackageDescription

// The root package's identity is its directory's name, whatever the checkout is called.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()

// libFuzzer targets for the parsers that read untrusted bytes. Kept out of the
// main build because every dependency is rebuilt with coverage and address
// sanitizer instrumentation. Build and run: `scripts/fuzz.sh [seconds]`.
let package = Package(
    name: "BatchServerFuzzing",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(
            name: "FuzzHTTPInferBody",
            dependencies: [
                .product(name: "HTTPFrontend", package: rootIdentity),
                .product(name: "InferenceCore", package: rootIdentity),
            ]
        ),
        .executableTarget(
            name: "FuzzGRPCInfer",
            dependencies: [
                .product(name: "GRPCFrontend", package: rootIdentity),
                .product(name: "GRPCLite", package: rootIdentity),
                .product(name: "InferenceCore", package: rootIdentity),
                .product(name: "TritonProto", package: rootIdentity),
            ]
        ),
        .executableTarget(
            name: "FuzzDeidentifier",
            dependencies: [
                .product(name: "Deidentifier", package: rootIdentity),
                .product(name: "InferenceCore", package: rootIdentity),
            ]
        ),
        .executableTarget(
            name: "FuzzModelConfig",
            dependencies: [
                .product(name: "ModelRepository", package: rootIdentity),
                .product(name: "InferenceCore", package: rootIdentity),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
