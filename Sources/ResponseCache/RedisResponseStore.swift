import InferenceCore
import NIOCore
import NIOPosix

/// Triton's `redis` cache: entries in a Redis server every pod shares, under
/// `batchserver:response:<HMAC>`, each a sealed box (`CacheKeys`), so the
/// Redis server holds no patient text or result in clear. Written with
/// `SET … NX` (the first writer wins, as the local cache refuses a second
/// insert) and, with `ttl`, an expiry.
public final class RedisResponseStore: ResponseStore {
    static let prefix = "batchserver:response:"
    let client: RedisClient
    let timeToLive: Duration?

    public init(settings: CacheConfiguration.RedisSettings, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        client = RedisClient(settings: settings, group: group)
        timeToLive = settings.timeToLive
    }

    /// Connects and pings, so a server with an unreachable or refusing Redis
    /// does not start (Triton's behaviour).
    public func connect() async throws {
        do {
            _ = try await client.send(["PING", "BatchServer response cache connected"])
        } catch {
            throw InferenceError.invalidArgument("Failed to initialize RedisCache: \(RedisClient.describe(error))")
        }
    }

    public func get(_ name: String) async throws -> [UInt8]? {
        switch try await client.send(["GET", Self.prefix + name]) {
        case .bulk(let value): return value
        case let other: throw RedisError.unexpectedReply("GET", other.kind)
        }
    }

    public func put(_ name: String, _ value: [UInt8]) async throws -> StoreOutcome {
        var command: [[UInt8]] = [Array("SET".utf8), Array((Self.prefix + name).utf8), value, Array("NX".utf8)]
        if let timeToLive {
            command += [Array("EX".utf8), Array(String(max(1, timeToLive.components.seconds)).utf8)]
        }
        switch try await client.send(command) {
        case .simple: return .stored
        case .bulk(nil): return .alreadyExists
        case let other: throw RedisError.unexpectedReply("SET", other.kind)
        }
    }

    public func occupancy() -> StoreOccupancy? { nil }

    public func close() async { await client.close() }
}

enum RedisError: Error, CustomStringConvertible {
    case server(String)
    case timeout
    case closed
    case malformed
    case unexpectedReply(String, String)

    var description: String {
        switch self {
        case .server(let message): "Redis answered: \(message)"
        case .timeout: "no answer from Redis within socket_timeout"
        case .closed: "the connection to Redis closed"
        case .malformed: "Redis sent a reply that is not RESP"
        case .unexpectedReply(let command, let kind): "Redis answered \(command) with \(kind)"
        }
    }
}

/// A RESP2 value as Redis replies.
enum RESPValue: Sendable, Equatable {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8]?)
    case array([RESPValue]?)

    var kind: String {
        switch self {
        case .simple: "a simple string"
        case .error: "an error"
        case .integer: "an integer"
        case .bulk: "a bulk string"
        case .array: "an array"
        }
    }

    /// A command: an array of bulk strings.
    static func encode(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.count)\r\n")
            buffer.writeBytes(argument)
            buffer.writeString("\r\n")
        }
    }

    /// One whole value from the front of `buffer`, or nil (buffer untouched
    /// by the caller's copy) until more bytes arrive.
    static func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        guard let type = buffer.readInteger(as: UInt8.self), let line = readLine(&buffer) else { return nil }
        switch type {
        case UInt8(ascii: "+"): return .simple(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let number = Int64(line) else { throw RedisError.malformed }
            return .integer(number)
        case UInt8(ascii: "$"):
            guard let count = Int(line) else { throw RedisError.malformed }
            if count < 0 { return .bulk(nil) }
            guard buffer.readableBytes >= count + 2, let bytes = buffer.readBytes(length: count) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .bulk(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(line) else { throw RedisError.malformed }
            if count < 0 { return .array(nil) }
            var items: [RESPValue] = []
            for _ in 0..<count {
                guard let item = try parse(&buffer) else { return nil }
                items.append(item)
            }
            return .array(items)
        default:
            throw RedisError.malformed
        }
    }

    static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")), view.index(after: cr) < view.endIndex else { return nil }
        let line = buffer.readString(length: view.distance(from: view.startIndex, to: cr))
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}

struct RESPDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var attempt = buffer
        guard let value = try RESPValue.parse(&attempt) else { return .needMoreData }
        buffer.moveReaderIndex(to: attempt.readerIndex)
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// A command and where its reply goes.
struct RedisCommand: Sendable {
    var bytes: ByteBuffer
    var reply: EventLoopPromise<RESPValue>
}

/// Pairs replies with commands in order, so one connection carries many
/// requests' commands at once (pipelining).
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisCommand
    typealias OutboundOut = ByteBuffer
    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        waiting.append(command.reply)
        context.write(wrapOutboundOut(command.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        waiting.popFirst()?.succeed(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.closed)
        context.fireChannelInactive()
    }

    private func failAll(_ error: any Error) {
        while let reply = waiting.popFirst() { reply.fail(error) }
    }
}

/// One pipelined connection, opened on first use and again after it drops;
/// authenticates and selects the database on each opening.
actor RedisConnection {
    let settings: CacheConfiguration.RedisSettings
    let group: any EventLoopGroup
    private var channel: (any Channel)?
    private var opening: Task<any Channel, any Error>?

    init(settings: CacheConfiguration.RedisSettings, group: any EventLoopGroup) {
        self.settings = settings
        self.group = group
    }

    func current() async throws -> any Channel {
        if let channel, channel.isActive { return channel }
        if let opening { return try await opening.value }
        let task = Task { [settings, group] in try await Self.open(settings, group) }
        opening = task
        defer { opening = nil }
        let opened = try await task.value
        channel = opened
        return opened
    }

    func close() async {
        try? await channel?.close()
        channel = nil
    }

    static func open(_ settings: CacheConfiguration.RedisSettings, _ group: any EventLoopGroup) async throws -> any Channel {
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
                    try channel.pipeline.syncOperations.addHandler(RedisCommandHandler())
                }
            }
        if let timeout = settings.connectTimeout {
            bootstrap = bootstrap.connectTimeout(.nanoseconds(Int64(clamping: timeout.nanosecondsClamped)))
        }
        let channel = try await bootstrap.connect(host: settings.host, port: settings.port).get()
        do {
            if let password = settings.password {
                _ = try await RedisClient.exchange(on: channel, ["AUTH", settings.user, password], timeout: settings.socketTimeout)
            }
            if settings.database != 0 {
                _ = try await RedisClient.exchange(on: channel, ["SELECT", String(settings.database)], timeout: settings.socketTimeout)
            }
        } catch {
            try? await channel.close()
            throw error
        }
        return channel
    }
}

final class RedisClient: Sendable {
    let connection: RedisConnection
    let timeout: Duration?

    init(settings: CacheConfiguration.RedisSettings, group: any EventLoopGroup) {
        connection = RedisConnection(settings: settings, group: group)
        timeout = settings.socketTimeout
    }

    func send(_ arguments: [String]) async throws -> RESPValue {
        try await send(arguments.map { Array($0.utf8) })
    }

    func send(_ arguments: [[UInt8]]) async throws -> RESPValue {
        try await Self.exchange(on: try await connection.current(), arguments, timeout: timeout)
    }

    func close() async { await connection.close() }

    static func exchange(on channel: any Channel, _ arguments: [String], timeout: Duration?) async throws -> RESPValue {
        try await exchange(on: channel, arguments.map { Array($0.utf8) }, timeout: timeout)
    }

    /// Sends one command and waits for its reply; a Redis error reply throws.
    static func exchange(on channel: any Channel, _ arguments: [[UInt8]], timeout: Duration?) async throws -> RESPValue {
        let reply = channel.eventLoop.makePromise(of: RESPValue.self)
        var buffer = channel.allocator.buffer(capacity: 32 + arguments.reduce(0) { $0 + $1.count + 16 })
        RESPValue.encode(arguments, into: &buffer)
        if let timeout {
            // A late reply then completes nothing: a promise keeps its first result.
            let expiry = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(clamping: timeout.nanosecondsClamped))) {
                reply.fail(RedisError.timeout)
            }
            reply.futureResult.whenComplete { _ in expiry.cancel() }
        }
        channel.writeAndFlush(RedisCommand(bytes: buffer, reply: reply)).whenFailure { reply.fail($0) }
        let value = try await reply.futureResult.get()
        if case .error(let message) = value { throw RedisError.server(message) }
        return value
    }

    static func describe(_ error: any Error) -> String {
        if let redis = error as? RedisError { return redis.description }
        return "\(error)"
    }
}
