// swift-tools-version: 6.1
import Foundation
import PackageDescription

// The root package's identity is its directory's name, whatever the checkout is called.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()

// Scheduler overhead benchmarks, kept out of the main build (and CI) because
// package-benchmark is heavy to build. Run: `swift package benchmark` here.
let package = Package(
    name: "SchedulerBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "SchedulerOverhead",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "InferenceCore", package: rootIdentity),
                .product(name: "Scheduler", package: rootIdentity),
            ],
            path: "Benchmarks/SchedulerOverhead",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
