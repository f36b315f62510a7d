// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Times BatchServer's encoder engine offline (no server), for
// bench/encoder_vs_ort.py. Kept out of the main build.
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()

let package = Package(
    name: "EncoderBench",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../..")],
    targets: [
        .executableTarget(
            name: "EncoderBench",
            dependencies: [
                .product(name: "TransformerEncoder", package: rootIdentity),
                .product(name: "CEncoderKernels", package: rootIdentity),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
