/// The error texts clients match on, worded as Triton words them, with the
/// code Triton returns for each: the one table, walked by the tests on both
/// protocols (`catalog`). Other errors keep their own wording where they are
/// thrown; these are the ones client code is known to depend on.
public enum TritonErrors {
    // MARK: Models

    public static func unknownModel(_ name: String) -> InferenceError {
        .notFound("Request for unknown model: '\(name)' is not found")
    }

    public static func unknownVersion(_ name: String, version: Int64) -> InferenceError {
        .notFound("Request for unknown model: '\(name)' version \(version) is not found")
    }

    /// A version string that is not an integer.
    public static func malformedVersion(_ version: String) -> InferenceError {
        .invalidArgument(
            "failed to get model version from specified version string '\(version)' (details: stol), version should be an integral value > 0")
    }

    public static func negativeVersion(_ version: String) -> InferenceError {
        .invalidArgument("invalid model version specified '\(version)' , version should be an integral value > 0")
    }

    /// The newest version asked for and none is ready (also a failed or
    /// unloaded model; `reason` says why a model failed to load).
    public static func noAvailableVersion(_ name: String, reason: String = "") -> InferenceError {
        .notFound("Request for unknown model: '\(name)' has no available versions" + (reason.isEmpty ? "" : " (\(reason))"))
    }

    public static func versionNotReady(_ name: String, version: Int64) -> InferenceError {
        .unavailable("Request for unknown model: '\(name)' version \(version) is not at ready state")
    }

    /// Trace settings for a model the server does not know.
    public static func traceUnknownModel(_ name: String) -> InferenceError {
        .invalidArgument("Request for unknown model : \(name)")
    }

    // MARK: Tensors

    /// gRPC: an input that sets typed `contents` in a request using `raw_input_contents`.
    public static func contentsWithRawContents(input: String, model: String) -> InferenceError {
        .invalidArgument("contents field must not be specified when using raw_input_contents for '\(input)' for model '\(model)'")
    }

    public static func contentsWithSharedMemory(input: String, model: String) -> InferenceError {
        .invalidArgument("unexpected 'content' provided when using shared memory for input tensor '\(input)' for model '\(model)'")
    }

    public static func inputByteSizeMismatch(input: String, model: String, expected: Int, got: Int) -> InferenceError {
        .invalidArgument("input byte size mismatch for input '\(input)' for model '\(model)'. Expected \(expected), got \(got)")
    }

    /// HTTP: an input that sets more than one of data, binary_data_size and shared_memory_region.
    public static func inputDataConflict(_ fields: [String]) -> InferenceError {
        .invalidArgument(
            "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. But set "
                + fields.map { "'\($0)'" }.joined(separator: " "))
    }

    /// HTTP: an output in shared memory that also asks for `classification` or `binary_data`.
    public static func outputSharedMemoryConflict(_ other: String) -> InferenceError {
        .invalidArgument("Output can't set both 'shared_memory_region' and '\(other)'")
    }

    public static func sharedMemoryParameterWithoutRegion(_ parameter: String, tensor: String) -> InferenceError {
        .invalidArgument("'\(parameter)' can not be specified without 'shared_memory_region' parameter for tensor '\(tensor)'")
    }

    public static func sharedMemoryByteSizeMissing(tensor: String) -> InferenceError {
        .invalidArgument("'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor '\(tensor)'")
    }

    public static func sharedMemoryParameterType(_ parameter: String, tensor: String, expected: String) -> InferenceError {
        .invalidArgument("invalid value type for '\(parameter)' parameter for tensor '\(tensor)', expected \(expected).")
    }

    // MARK: Shared memory

    public static func sharedMemoryAlreadyRegistered(_ name: String) -> InferenceError {
        InferenceError(.alreadyExists, "shared memory region '\(name)' already in manager")
    }

    public static func sharedMemoryOpenFailed(_ key: String) -> InferenceError {
        .internal("Unable to open shared memory region: '\(key)'")
    }

    public static func sharedMemoryMapFailed(_ name: String, reason: String) -> InferenceError {
        .invalidArgument("failed to register shared memory region '\(name)': unable to process address space\(reason)")
    }

    /// Register: offset + byte_size past the end of the shm segment.
    public static func sharedMemoryRegionTooLarge(_ name: String, offset: UInt64, byteSize: UInt64, segmentSize: UInt64) -> InferenceError {
        .invalidArgument(
            "failed to register shared memory region '\(name)': invalid args (offset \(offset) + byte_size \(byteSize) > segment size \(segmentSize))")
    }

    /// Status of a region that is not registered.
    public static func sharedMemoryUnknownRegion(_ name: String) -> InferenceError {
        .notFound("Unable to find system shared memory region: '\(name)'")
    }

    /// An inference request naming a region that is not registered.
    public static func sharedMemoryRegionNotRegistered(_ name: String) -> InferenceError {
        .notFound("Unable to find shared memory region: '\(name)'")
    }

    public static func sharedMemoryInvalidOffset(_ name: String) -> InferenceError {
        .invalidArgument("Invalid offset for shared memory region: '\(name)'")
    }

    public static func sharedMemoryOutOfBounds(_ name: String) -> InferenceError {
        .invalidArgument("Invalid offset + byte size for shared memory region: '\(name)'")
    }

    public static func sharedMemoryOutputTooSmall(_ output: String, given: Int, needed: Int) -> InferenceError {
        .internal(
            "shared memory size specified with the request for output '\(output)' (\(given) bytes) should be at least \(needed) bytes to hold the results")
    }

    public static func cudaSharedMemoryUnsupported(_ name: String) -> InferenceError {
        .invalidArgument("failed to register CUDA shared memory region: '\(name)', GPUs not supported")
    }

    public static func cudaSharedMemoryUnknownRegion(_ name: String) -> InferenceError {
        .notFound("Unable to find cuda shared memory region: '\(name)'")
    }

    // MARK: Compression

    public static func unsupportedContentEncoding() -> InferenceError {
        .unsupported("Unsupported compression type")
    }

    // MARK: Logging and tracing

    public static func logFileNotSettable() -> InferenceError {
        .unsupported("log file location can not be updated through network protocol")
    }

    public static func logSettingType(_ key: String, expected: String) -> InferenceError {
        .invalidArgument("expect \(expected) for '\(key)'")
    }

    public static func logFormatInvalid(_ value: String) -> InferenceError {
        .invalidArgument("invalid argument for log_format, got: \(value)")
    }

    public static func traceFileNotSettable() -> InferenceError {
        .unsupported("trace file location can not be updated through network protocol")
    }

    public static func traceValueUnparsable(_ key: String, _ value: String) -> InferenceError {
        .invalidArgument("Unable to parse '\(key)', got: \(value)")
    }

    public static func traceCountInvalid(_ value: String) -> InferenceError {
        .invalidArgument("Unable to parse 'trace_count'. Expecting value >= -1, got: \(value)")
    }

    public static func traceLevelOffWithOthers() -> InferenceError {
        .invalidArgument("Expect only one trace level 'OFF' is specified")
    }

    public static func traceSingleValue(_ key: String) -> InferenceError {
        .invalidArgument("expect only 1 value for '\(key)'")
    }

    /// Every entry with a sample argument, for tests that walk the table on
    /// each protocol and check text and status.
    public static let catalog: [(case: String, error: InferenceError)] = [
        ("unknownModel", unknownModel("m")),
        ("unknownVersion", unknownVersion("m", version: 9)),
        ("malformedVersion", malformedVersion("x")),
        ("negativeVersion", negativeVersion("-1")),
        ("noAvailableVersion", noAvailableVersion("m")),
        ("versionNotReady", versionNotReady("m", version: 1)),
        ("traceUnknownModel", traceUnknownModel("m")),
        ("contentsWithRawContents", contentsWithRawContents(input: "INPUT0", model: "m")),
        ("contentsWithSharedMemory", contentsWithSharedMemory(input: "INPUT0", model: "m")),
        ("inputByteSizeMismatch", inputByteSizeMismatch(input: "INPUT0", model: "m", expected: 64, got: 60)),
        ("inputDataConflict", inputDataConflict(["data", "shared_memory_region"])),
        ("outputSharedMemoryConflict", outputSharedMemoryConflict("classification")),
        ("sharedMemoryParameterWithoutRegion", sharedMemoryParameterWithoutRegion("shared_memory_offset", tensor: "t")),
        ("sharedMemoryByteSizeMissing", sharedMemoryByteSizeMissing(tensor: "t")),
        ("sharedMemoryParameterType", sharedMemoryParameterType("shared_memory_region", tensor: "t", expected: "string_param")),
        ("sharedMemoryAlreadyRegistered", sharedMemoryAlreadyRegistered("r")),
        ("sharedMemoryOpenFailed", sharedMemoryOpenFailed("/k")),
        ("sharedMemoryMapFailed", sharedMemoryMapFailed("r", reason: "Invalid argument")),
        ("sharedMemoryRegionTooLarge", sharedMemoryRegionTooLarge("r", offset: 0, byteSize: 2, segmentSize: 1)),
        ("sharedMemoryUnknownRegion", sharedMemoryUnknownRegion("r")),
        ("sharedMemoryRegionNotRegistered", sharedMemoryRegionNotRegistered("r")),
        ("sharedMemoryInvalidOffset", sharedMemoryInvalidOffset("r")),
        ("sharedMemoryOutOfBounds", sharedMemoryOutOfBounds("r")),
        ("sharedMemoryOutputTooSmall", sharedMemoryOutputTooSmall("o", given: 1, needed: 2)),
        ("cudaSharedMemoryUnsupported", cudaSharedMemoryUnsupported("r")),
        ("cudaSharedMemoryUnknownRegion", cudaSharedMemoryUnknownRegion("r")),
        ("unsupportedContentEncoding", unsupportedContentEncoding()),
        ("logFileNotSettable", logFileNotSettable()),
        ("logSettingType", logSettingType("log_info", expected: "boolean")),
        ("logFormatInvalid", logFormatInvalid("x")),
        ("traceFileNotSettable", traceFileNotSettable()),
        ("traceValueUnparsable", traceValueUnparsable("trace_rate", "x")),
        ("traceCountInvalid", traceCountInvalid("-2")),
        ("traceLevelOffWithOthers", traceLevelOffWithOthers()),
        ("traceSingleValue", traceSingleValue("trace_rate")),
    ]
}
