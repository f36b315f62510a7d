import InferenceCore
import Testing
@testable import HTTPFrontend

/// Every entry of Triton's text table answers with the HTTP status Triton's
/// http_server.cc gives its code (HttpCodeFromError).
@Suite struct TritonErrorTableHTTPTests {
    static let expected: [String: Int] = [
        "unknownModel": 404, "unknownVersion": 404, "malformedVersion": 400, "negativeVersion": 400,
        "noAvailableVersion": 404, "versionNotReady": 503, "traceUnknownModel": 400,
        "contentsWithRawContents": 400, "contentsWithSharedMemory": 400, "inputByteSizeMismatch": 400,
        "inputDataConflict": 400, "outputSharedMemoryConflict": 400, "sharedMemoryParameterWithoutRegion": 400,
        "sharedMemoryByteSizeMissing": 400, "sharedMemoryParameterType": 400, "sharedMemoryAlreadyRegistered": 400,
        "sharedMemoryOpenFailed": 500, "sharedMemoryMapFailed": 400, "sharedMemoryRegionTooLarge": 400,
        "sharedMemoryUnknownRegion": 404, "sharedMemoryRegionNotRegistered": 404, "sharedMemoryInvalidOffset": 400,
        "sharedMemoryOutOfBounds": 400, "sharedMemoryOutputTooSmall": 500, "cudaSharedMemoryUnsupported": 400,
        "cudaSharedMemoryUnknownRegion": 404, "unsupportedContentEncoding": 501, "logFileNotSettable": 501,
        "logSettingType": 400, "logFormatInvalid": 400, "traceFileNotSettable": 501, "traceValueUnparsable": 400,
        "traceCountInvalid": 400, "traceLevelOffWithOthers": 400, "traceSingleValue": 400,
    ]

    @Test func everyEntryHasTritonsStatus() {
        #expect(Set(TritonErrors.catalog.map(\.case)) == Set(Self.expected.keys), "a new entry needs its expected status here")
        for (name, error) in TritonErrors.catalog {
            #expect(Int(error.code.httpStatus.code) == Self.expected[name], "\(name): \(error.message)")
        }
    }
}
