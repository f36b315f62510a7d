import AsyncAlgorithms
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import Synchronization

/// Settings of a gRPC server.
public struct GRPCServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Largest request message accepted, in bytes (larger: RESOURCE_EXHAUSTED).
    public var maxReceiveMessageBytes: Int
    /// Largest size a compressed request message may inflate to (larger:
    /// RESOURCE_EXHAUSTED, checked while inflating, after the handler has
    /// authorized the call); at most `maxReceiveMessageBytes`.
    public var maxInflatedMessageBytes: Int
    /// Largest response message sent, in bytes (larger: RESOURCE_EXHAUSTED).
    public var maxSendMessageBytes: Int
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    public var maxConcurrentStreams: Int
    /// Interval of HTTP/2 keepalive pings; nil disables them.
    public var keepaliveInterval: Duration?
    /// How long open calls may run after GOAWAY before the connection is closed.
    public var drainTimeout: Duration
    /// TLS for every connection (ALPN "h2" is added); nil serves plain text.
    public var tls: TLSConfiguration?
    /// A connection with no open stream for this long is sent GOAWAY and closed.
    /// The clock starts at accept, so it also bounds a client that never
    /// finishes the TLS handshake or the HTTP/2 preface. nil: never.
    public var idleTimeout: Duration?

    public init(host: String = "0.0.0.0", port: Int = 8001, maxReceiveMessageBytes: Int = Int(Int32.max),
                maxInflatedMessageBytes: Int = 64 << 20, maxSendMessageBytes: Int = Int(Int32.max), maxConcurrentStreams: Int = 1000,
                keepaliveInterval: Duration? = .seconds(7200), drainTimeout: Duration = .seconds(30), tls: TLSConfiguration? = nil,
                idleTimeout: Duration? = .seconds(300)) {
        self.tls = tls
        self.idleTimeout = idleTimeout
        self.host = host
        self.port = port
        self.maxReceiveMessageBytes = maxReceiveMessageBytes
        self.maxInflatedMessageBytes = min(maxInflatedMessageBytes, maxReceiveMessageBytes)
        self.maxSendMessageBytes = maxSendMessageBytes
        self.maxConcurrentStreams = maxConcurrentStreams
        self.keepaliveInterval = keepaliveInterval
        self.drainTimeout = drainTimeout
    }
}

/// A minimal gRPC server over swift-nio-http2: framing, routing by `:path`,
/// status trailers, deadlines, unary and bidirectional streaming calls. It
/// knows nothing of the messages it carries.
public final class GRPCServer: Sendable {
    typealias StreamChannel = NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>
    typealias Connection = (channel: any Channel, streams: NIOHTTP2Handler.AsyncStreamMultiplexer<StreamChannel>)

    public let configuration: GRPCServerConfiguration
    private let router: GRPCRouter
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var quiescing = false
    }

    public init(configuration: GRPCServerConfiguration, router: GRPCRouter, logger: Logger) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
    }

    /// Listens and serves until `beginGracefulShutdown` has drained every connection.
    /// `onListening` receives the bound port (useful with port 0).
    public func run(onListening: @Sendable (Int) -> Void = { _ in }) async throws {
        let configuration = self.configuration
        let sslContext = try configuration.tls.map { tls -> NIOSSLContext in
            var tls = tls
            tls.applicationProtocols = ["h2"]
            return try NIOSSLContext(configuration: tls)
        }
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture { () -> Connection in
                    if let sslContext {
                        // A handshake failure (plain text, wrong certificate) closes only this connection.
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    let management = NIOHTTP2ServerConnectionManagementHandler(
                        eventLoop: channel.eventLoop,
                        configuration: .init(
                            maxIdleTime: configuration.idleTimeout.map(TimeAmount.init), maxAge: nil,
                            maxGraceTime: TimeAmount(configuration.drainTimeout),
                            keepalive: configuration.keepaliveInterval.map {
                                .init(pingInterval: TimeAmount($0), ackTimeout: .seconds(20))
                            }))
                    var http2 = NIOHTTP2Handler.Configuration()
                    http2.connection.initialSettings = [
                        HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maxConcurrentStreams),
                        HTTP2Setting(parameter: .maxHeaderListSize, value: 16 * 1024),
                    ]
                    let streams = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
                        mode: .server, streamDelegate: management.http2StreamDelegate, configuration: http2
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture { try StreamChannel(wrappingChannelSynchronously: stream) }
                    }
                    try channel.pipeline.syncOperations.addHandler(management)
                    if let idle = configuration.idleTimeout {
                        try channel.pipeline.syncOperations.addHandler(ConnectionSetupTimeoutHandler(timeout: TimeAmount(idle)))
                    }
                    return (channel, streams)
                }
            }
        let boundPort = listener.channel.localAddress?.port ?? configuration.port
        let quiescingAlready = state.withLock { state in
            state.listener = listener.channel
            return state.quiescing
        }
        if quiescingAlready { listener.channel.close(promise: nil) }
        logger.info("gRPC frontend listening", metadata: ["port": "\(boundPort)"])
        onListening(boundPort)

        try await withThrowingDiscardingTaskGroup { group in
            try await listener.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    /// Stops accepting connections and sends GOAWAY on each open one; calls in
    /// flight finish (up to `drainTimeout`), then `run` returns.
    public func beginGracefulShutdown() {
        let (listener, connections) = state.withLock { state in
            state.quiescing = true
            return (state.listener, Array(state.connections.values))
        }
        listener?.close(promise: nil)
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    private func serve(_ connection: Connection) async {
        let id = ObjectIdentifier(connection.channel)
        let quiescing = state.withLock { state in
            state.connections[id] = connection.channel
            return state.quiescing
        }
        if quiescing { connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
        defer { _ = state.withLock { $0.connections.removeValue(forKey: id) } }
        do {
            try await withThrowingDiscardingTaskGroup { group in
                for try await stream in connection.streams.inbound {
                    group.addTask { await self.serve(stream) }
                }
            }
        } catch {
            // One client's broken connection ends only that connection.
            logger.debug("gRPC connection ended", metadata: ["error": "\(type(of: error))"])
        }
    }

    /// One HTTP/2 stream: one call.
    private func serve(_ stream: StreamChannel) async {
        try? await stream.executeThenClose { inbound, outbound in
            let writer = GRPCResponseWriter(outbound: outbound, maxMessageBytes: configuration.maxSendMessageBytes)
            var frames = inbound.makeAsyncIterator()
            guard case .headers(let head)? = try await frames.next() else { return }
            let accepted: GRPCRequestHead.Accepted
            switch GRPCRequestHead.validate(head.headers) {
            case .failure(.http(let status)):
                await writer.reject(httpStatus: status)
                return
            case .failure(.grpc(let status)):
                await writer.finish(status)
                return
            case .success(let value):
                accepted = value
            }
            await writer.compressResponses(with: accepted.responseCompression)
            guard let handler = router.handler(for: accepted.path) else {
                await writer.finish(GRPCStatus(.unimplemented, "unknown method \(accepted.path)"))
                return
            }
            let context = GRPCCallContext(path: accepted.path, metadata: GRPCRequestHead.metadata(head.headers),
                                          timeout: accepted.timeout)
            let requests = AsyncThrowingChannel<GRPCInboundMessage, any Error>()
            await withDiscardingTaskGroup { group in
                // The handler runs beside the reader, racing its deadline, and
                // writes the status itself so it never waits on the client.
                group.addTask {
                    let stream = GRPCRequestStream(channel: requests, compression: accepted.compression,
                                                   inflateLimit: self.configuration.maxInflatedMessageBytes)
                    let status = await self.runHandler(handler, requests: stream, writer: writer, context: context)
                    await writer.finish(status)
                    // Unblocks the reader if the client still sends after the call ended.
                    requests.finish()
                }
                // This task reads DATA frames into messages; `send` waits for the
                // handler to take each one, which is the call's backpressure.
                var deframer = GRPCMessageDeframer(maxMessageBytes: configuration.maxReceiveMessageBytes,
                                                   compression: accepted.compression)
                var ended = head.endStream
                do {
                    while !ended, let frame = try await frames.next() {
                        switch frame {
                        case .data(let data):
                            guard case .byteBuffer(let bytes) = data.data else { continue }
                            deframer.append(bytes)
                            // Compressed messages are inflated as the handler takes them,
                            // so a call is authorized before any inflating.
                            while let message = try deframer.nextMessage() { await requests.send(message) }
                            ended = data.endStream
                        case .headers(let trailers):
                            ended = trailers.endStream
                        default:
                            continue
                        }
                    }
                    guard ended else { throw GRPCStatus(.cancelled, "the client reset the stream") }
                    if deframer.hasPartialMessage { throw GRPCStatus(.internal, "the stream ended inside a message") }
                    requests.finish()
                } catch {
                    let status = error as? GRPCStatus ?? GRPCStatus(.cancelled, "the client reset the stream")
                    requests.fail(status)
                    if status.code == .cancelled {
                        // Nobody is listening any more: stop the work, queued requests included.
                        group.cancelAll()
                    } else {
                        await writer.finish(status)
                    }
                }
            }
        }
    }

    private func runHandler(_ handler: GRPCMethodHandler, requests: GRPCRequestStream, writer: GRPCResponseWriter,
                            context: GRPCCallContext) async -> GRPCStatus {
        await withTaskGroup(of: GRPCStatus?.self) { group in
            group.addTask {
                do {
                    switch handler {
                    case .unary(let body):
                        var iterator = requests.makeAsyncIterator()
                        guard let request = try await iterator.next() else {
                            throw GRPCStatus(.unimplemented, "unary call without a request message")
                        }
                        try await writer.write(try await body(request, context))
                    case .bidirectionalStreaming(let body):
                        try await body(requests, writer, context)
                    }
                    return .ok
                } catch let status as GRPCStatus {
                    return status
                } catch is CancellationError {
                    return GRPCStatus(.cancelled, "call cancelled")
                } catch {
                    return GRPCStatus(.unknown, "\(error)")
                }
            }
            if let timeout = context.timeout {
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return Task.isCancelled ? nil : GRPCStatus(.deadlineExceeded, "deadline of \(timeout) exceeded")
                }
            }
            // The first to finish decides; cancelling the other stops queued work.
            var outcome = GRPCStatus(.unknown, "no outcome")
            while let next = await group.next() {
                if let status = next {
                    outcome = status
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
    }
}
