import Hummingbird
import HummingbirdCore
import InferenceCore
import NIOCore
import Synchronization

/// Hummingbird keeps running a route after its client has closed the
/// connection; Triton drops such a client's queued requests before compute,
/// and so does gRPC here. A handler in each connection's pipeline sees the
/// close, and the inference routes run in a task it cancels: the scheduler
/// then removes the queued request and counts it CANCELED.
final class ClientDisconnectSignal: Sendable {
    private struct State {
        var gone = false
        var nextToken: UInt64 = 0
        var actions: [UInt64: @Sendable () -> Void] = [:]
    }
    private let state = Mutex(State())

    /// Runs `action` when the client goes, at once if it has gone. The token
    /// removes it when the request ends first.
    func onDisconnect(_ action: @escaping @Sendable () -> Void) -> UInt64? {
        let token: UInt64? = state.withLock { state in
            guard !state.gone else { return nil }
            state.nextToken += 1
            state.actions[state.nextToken] = action
            return state.nextToken
        }
        if token == nil { action() }
        return token
    }

    func remove(_ token: UInt64?) {
        guard let token else { return }
        _ = state.withLock { $0.actions.removeValue(forKey: token) }
    }

    func disconnected() {
        let actions = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.gone else { return [] }
            state.gone = true
            defer { state.actions = [:] }
            return Array(state.actions.values)
        }
        for action in actions { action() }
    }
}

/// Sits after HTTP decoding. Hummingbird allows half-closure, so a client
/// that closes its socket shows as end of input, not as the channel closing.
final class ClientDisconnectHandler: ChannelInboundHandler, RemovableChannelHandler {
    // Reads pass through untouched.
    typealias InboundIn = NIOAny
    let signal = ClientDisconnectSignal()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { signal.disconnected() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        signal.disconnected()
        context.fireChannelInactive()
    }
}

/// Hummingbird's basic context plus the connection, to find its signal.
public struct KServeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Runs `body` in a task cancelled when the client closes the connection.
    func cancellingOnDisconnect(_ body: @escaping @Sendable () async throws -> Response) async throws -> Response {
        let signal = try? await channel.pipeline.handler(type: ClientDisconnectHandler.self).map(\.signal).get()
        let task = Task { try await body() }
        let token = signal?.onDisconnect { task.cancel() }
        defer { signal?.remove(token) }
        return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
    }
}

extension Router where Context == KServeRequestContext {
    /// A POST route that runs inference: its work stops when its client goes,
    /// and the requests it makes carry the client's trace context.
    func postCancellable(_ path: RouterPath, use handler: @escaping @Sendable (Request, Context) async throws -> Response) {
        post(path) { request, context in
            try await IncomingTraceContext.$headers.withValue(KServeHTTPServer.traceHeaders(request)) {
                try await context.cancellingOnDisconnect { try await handler(request, context) }
            }
        }
    }
}
