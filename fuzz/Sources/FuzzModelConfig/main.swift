// config.pbtxt: the text-format parser with file:line locations, then the
// normalize → validate → ModelSpec pipeline every model goes through at load.
import InferenceCore
@testable import ModelRepository

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelConfig(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    do {
        let parsed = try ModelConfigFile.parse(text, path: "fuzz/config.pbtxt")
        let normalized = ModelConfigNormalizer.normalize(parsed, directoryName: "fuzz")
        try ModelConfigValidator.validate(normalized, directoryName: "fuzz")
        _ = try ModelSpecBuilder.build(config: normalized, version: 1, modelPath: "/nonexistent/fuzz")
    } catch {
        // Refused configs fail that model only; the fuzzer looks for crashes and hangs.
    }
    return 0
}
