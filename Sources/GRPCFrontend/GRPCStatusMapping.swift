import GRPCLite
import InferenceCore
import TextTasks

extension InferenceError.Code {
    /// The gRPC code for each error code, the ones Triton returns.
    var grpcCode: GRPCStatus.Code {
        switch self {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .unavailable: .unavailable
        case .internal: .internal
        case .unsupported: .unimplemented
        case .alreadyExists: .alreadyExists
        case .cancelled: .cancelled
        case .deadlineExceeded: .deadlineExceeded
        case .resourceExhausted: .resourceExhausted
        case .unauthenticated: .unauthenticated
        case .permissionDenied: .permissionDenied
        default: .unknown
        }
    }
}

extension GRPCStatus {
    /// The one place errors become gRPC statuses.
    init(_ error: any Error) {
        switch error {
        case let status as GRPCStatus: self = status
        case let inference as InferenceError:
            // gRPC has no Retry-After: the wait is said in the message.
            let retry = inference.retryAfter.map { "; retry after \(Double($0.nanosecondsClamped / 1_000_000) / 1000) s" } ?? ""
            self.init(inference.code.grpcCode, inference.message + retry)
        case let text as TextTaskError:
            // TEI's mapping: its request errors are INVALID_ARGUMENT, the model's FAILED_PRECONDITION.
            self.init(text.kind == .validation || text.kind == .empty ? .invalidArgument : .failedPrecondition, text.message)
        case is CancellationError: self.init(.cancelled, "call cancelled")
        default: self.init(.internal, "internal error")
        }
    }
}
