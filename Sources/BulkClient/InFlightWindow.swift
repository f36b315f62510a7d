/// How many requests the client keeps in flight, sized from the server's own
/// signals: the queue time its statistics API reports per request. A queue
/// shorter than a few executions means the batcher could take more (the
/// window grows); a longer one only adds latency and memory (it shrinks).
public struct InFlightWindow: Sendable, Equatable {
    public private(set) var size: Int
    public let minimum: Int
    public let maximum: Int
    /// A fixed window (`--in-flight N`) never changes.
    public let fixed: Bool

    public init(initial: Int = 8, minimum: Int = 1, maximum: Int = 512, fixed: Bool = false) {
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.size = min(max(initial, self.minimum), self.maximum)
        self.fixed = fixed
    }

    /// One interval's statistics, summed over the endpoints: mean queue and
    /// compute time per request (nanoseconds), and how many requests finished.
    public struct Sample: Sendable, Equatable {
        public var queueNanoseconds: Double
        public var computeNanoseconds: Double
        public var requests: Int
        public init(queueNanoseconds: Double, computeNanoseconds: Double, requests: Int) {
            self.queueNanoseconds = queueNanoseconds
            self.computeNanoseconds = computeNanoseconds
            self.requests = requests
        }
    }

    /// Adjusts the window: grow by a quarter while the queue holds under two
    /// executions' worth of work, shrink by a quarter past four.
    public mutating func adjust(_ sample: Sample, inFlight: Int) {
        guard !fixed, sample.requests > 0, sample.computeNanoseconds > 0 else { return }
        let queueInExecutions = sample.queueNanoseconds / sample.computeNanoseconds
        if queueInExecutions < 2 {
            // Only grow a window that is being used: an idle one says nothing.
            guard inFlight >= size - size / 8 else { return }
            size = min(maximum, size + max(1, size / 4))
        } else if queueInExecutions > 4 {
            size = max(minimum, size - max(1, size / 4))
        }
    }
}

/// One server address and what the client knows of it.
public struct EndpointState: Sendable, Equatable {
    public let host: String
    public let port: Int
    /// The `--server` name it came from (nil for an address literal): a
    /// name's endpoints change as the name resolves.
    public let source: ServerName?
    /// Gone from its name's addresses: takes no new requests; those in flight finish.
    public var retired = false
    public var inFlight = 0
    /// No requests go to it before this instant (after a failure), seconds.
    public var downUntil: Double = 0
    public var consecutiveFailures = 0
    public var completed = 0
    public var failures = 0

    public init(host: String, port: Int, source: ServerName? = nil) {
        self.host = host
        self.port = port
        self.source = source
    }

    /// `host:port`, as logs and the summary name it.
    public var address: String { ServerName.endpoint(host, port: port) }
}

/// Picks endpoints by in-flight count among the healthy ones, and backs off
/// from one that fails (exponentially, 0.1 s doubling to 5 s).
public struct EndpointPool: Sendable {
    public private(set) var endpoints: [EndpointState] = []

    public init() {}

    /// The healthy endpoint with the fewest requests in flight, or nil.
    public func pick(now: Double) -> Int? {
        endpoints.indices.filter { !endpoints[$0].retired && endpoints[$0].downUntil <= now }
            .min { endpoints[$0].inFlight < endpoints[$1].inFlight }
    }

    /// `name` resolves to `addresses` now: an address not yet served becomes
    /// a new endpoint, and the name's endpoints whose address is gone retire.
    /// Indices never move (requests in flight name theirs); a retired address
    /// that comes back is a new endpoint with a new connection.
    public mutating func update(_ name: ServerName, addresses: [String]) -> (added: [Int], retired: [Int]) {
        var added: [Int] = [], retired: [Int] = []
        for index in endpoints.indices where endpoints[index].source == name && !endpoints[index].retired
            && !addresses.contains(endpoints[index].host) {
            endpoints[index].retired = true
            retired.append(index)
        }
        for address in addresses
        where !endpoints.contains(where: { $0.source == name && $0.host == address && !$0.retired }) {
            endpoints.append(EndpointState(host: address, port: name.port, source: name))
            added.append(endpoints.count - 1)
        }
        return (added, retired)
    }

    /// Adds an endpoint that stays (an address literal).
    public mutating func add(host: String, port: Int) -> Int {
        endpoints.append(EndpointState(host: host, port: port))
        return endpoints.count - 1
    }

    public mutating func started(_ index: Int) { endpoints[index].inFlight += 1 }

    /// An answer came back (a result, or the row's own error): the endpoint is well.
    public mutating func succeeded(_ index: Int) {
        endpoints[index].inFlight -= 1
        endpoints[index].completed += 1
        endpoints[index].consecutiveFailures = 0
    }

    /// A request failed in a way that says the endpoint is unwell.
    public mutating func failed(_ index: Int, now: Double) {
        endpoints[index].inFlight -= 1
        endpoints[index].failures += 1
        endpoints[index].consecutiveFailures += 1
        let backoff = min(5.0, 0.1 * Double(1 << min(endpoints[index].consecutiveFailures - 1, 6)))
        endpoints[index].downUntil = max(endpoints[index].downUntil, now + backoff)
    }

    /// The endpoint asked to be left alone for a while (a rate limit's
    /// "retry after"): no requests go to it before `until`; not a failure.
    public mutating func hold(_ index: Int, until: Double) {
        endpoints[index].inFlight -= 1
        endpoints[index].downUntil = max(endpoints[index].downUntil, until)
    }

    /// A request failed for a reason of its own (too large, too slow): the
    /// endpoint is not suspect.
    public mutating func released(_ index: Int) {
        endpoints[index].inFlight -= 1
    }
}
