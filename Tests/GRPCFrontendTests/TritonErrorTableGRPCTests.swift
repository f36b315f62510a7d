import GRPCLite
import InferenceCore
import Testing
@testable import GRPCFrontend

/// Every entry of Triton's text table answers with the gRPC code Triton's
/// grpc_utils.cc gives its status code, and the text unchanged.
@Suite struct TritonErrorTableGRPCTests {
    static let expected: [String: GRPCStatus.Code] = [
        "unknownModel": .notFound, "unknownVersion": .notFound, "malformedVersion": .invalidArgument,
        "negativeVersion": .invalidArgument, "noAvailableVersion": .notFound, "versionNotReady": .unavailable,
        "traceUnknownModel": .invalidArgument, "contentsWithRawContents": .invalidArgument,
        "contentsWithSharedMemory": .invalidArgument, "inputByteSizeMismatch": .invalidArgument,
        "inputDataConflict": .invalidArgument, "outputSharedMemoryConflict": .invalidArgument,
        "sharedMemoryParameterWithoutRegion": .invalidArgument, "sharedMemoryByteSizeMissing": .invalidArgument,
        "sharedMemoryParameterType": .invalidArgument, "sharedMemoryAlreadyRegistered": .alreadyExists,
        "sharedMemoryOpenFailed": .internal, "sharedMemoryMapFailed": .invalidArgument,
        "sharedMemoryRegionTooLarge": .invalidArgument, "sharedMemoryUnknownRegion": .notFound,
        "sharedMemoryRegionNotRegistered": .notFound, "sharedMemoryInvalidOffset": .invalidArgument,
        "sharedMemoryOutOfBounds": .invalidArgument, "sharedMemoryOutputTooSmall": .internal,
        "cudaSharedMemoryUnsupported": .invalidArgument, "cudaSharedMemoryUnknownRegion": .notFound,
        "unsupportedContentEncoding": .unimplemented, "logFileNotSettable": .unimplemented,
        "logSettingType": .invalidArgument, "logFormatInvalid": .invalidArgument, "traceFileNotSettable": .unimplemented,
        "traceValueUnparsable": .invalidArgument, "traceCountInvalid": .invalidArgument,
        "traceLevelOffWithOthers": .invalidArgument, "traceSingleValue": .invalidArgument,
    ]

    @Test func everyEntryHasTritonsCode() {
        #expect(Set(TritonErrors.catalog.map(\.case)) == Set(Self.expected.keys), "a new entry needs its expected code here")
        for (name, error) in TritonErrors.catalog {
            let status = GRPCStatus(error)
            #expect(status.code == Self.expected[name], "\(name)")
            #expect(status.message == error.message)
        }
    }
}
