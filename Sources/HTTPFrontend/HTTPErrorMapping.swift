import HTTPTypes
import InferenceCore

extension InferenceError.Code {
    /// Triton's mapping: not found 404, unavailable 503, internal 500,
    /// unsupported 501, everything else 400; plus 401/403 for access control.
    var httpStatus: HTTPResponse.Status {
        switch self {
        case .notFound: .notFound
        case .unavailable: .serviceUnavailable
        case .internal: .internalServerError
        case .unsupported: .notImplemented
        case .unauthenticated: .unauthorized
        case .permissionDenied: .forbidden
        default: .badRequest
        }
    }
}
