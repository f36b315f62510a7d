import AccessControl
import InferenceCore
import CoreMetrics
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import Prometheus
import Synchronization

/// Serves Prometheus metrics at `/metrics` on the metrics port. Model series
/// are recorded through swift-metrics by the scheduler; host series (CPU
/// utilization and memory) are sampled here at each scrape.
public struct MetricsExporter: Sendable {
    public let registry: PrometheusCollectorRegistry
    let host: String
    let port: Int
    let logger: Logger
    let hostMetrics: HostMetrics
    let access: AccessPolicy
    /// TLS for scrapes; nil serves plain text (keep the port inside the cluster then).
    let tls: TLSConfiguration?
    let idleTimeout: Duration?
    /// Called before each scrape to refresh sampled series (GPU metrics).
    let samplers: [@Sendable () -> Void]

    /// Bootstraps swift-metrics with a Prometheus registry. Call once, before
    /// anything records a metric.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        ]
        factory.valueHistogramBuckets = [
            "batchserver_batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256],
            "batchserver_batch_tokens": [16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768],
            "batchserver_padding_ratio": [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1],
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    public init(registry: PrometheusCollectorRegistry, host: String, port: Int, access: AccessPolicy = .open,
                tls: TLSConfiguration? = nil, idleTimeout: Duration? = .seconds(60), samplers: [@Sendable () -> Void] = [],
                logger: Logger) {
        self.samplers = samplers
        self.access = access
        self.tls = tls
        self.idleTimeout = idleTimeout
        self.registry = registry
        self.host = host
        self.port = port
        self.logger = logger
        self.hostMetrics = HostMetrics(registry: registry)
    }

    public func makeApplication() throws -> some ApplicationProtocol {
        let router = Router()
        router.get("/metrics") { request, _ -> Response in
            do {
                _ = try access.authorize(request.headers[.authorization], for: .metrics)
            } catch let error as InferenceError {
                return Response(status: error.code == .permissionDenied ? .forbidden : .unauthorized)
            }
            hostMetrics.sample()
            for sampler in samplers { sampler() }
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16 * 1024)
            registry.emit(into: &buffer)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        let logger = self.logger
        let http1 = HTTP1Channel.Configuration(idleTimeout: idleTimeout.map(TimeAmount.init))
        var server = HTTPServerBuilder.http1(configuration: http1)
        if var tls {
            tls.applicationProtocols = ["http/1.1"]
            server = try .tls(.http1(configuration: http1), tlsConfiguration: tls)
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                logger.info("metrics endpoint listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
    }
}

/// Triton's host series: nv_cpu_utilization (0 to 1 since the previous
/// scrape), nv_cpu_memory_total_bytes and nv_cpu_memory_used_bytes, read from /proc.
final class HostMetrics: Sendable {
    private let utilization: Prometheus.Gauge
    private let memoryTotal: Prometheus.Gauge
    private let memoryUsed: Prometheus.Gauge
    private let residentBytes: Prometheus.Gauge
    private let previous = Mutex<(busy: UInt64, total: UInt64)?>(nil)

    init(registry: PrometheusCollectorRegistry) {
        utilization = registry.makeGauge(name: "nv_cpu_utilization", help: "CPU utilization rate [0.0 - 1.0]")
        memoryTotal = registry.makeGauge(name: "nv_cpu_memory_total_bytes", help: "CPU total memory (RAM), in bytes")
        memoryUsed = registry.makeGauge(name: "nv_cpu_memory_used_bytes", help: "CPU used memory (RAM), in bytes")
        residentBytes = registry.makeGauge(name: "batchserver_process_resident_memory_bytes", help: "Resident memory of this process, in bytes")
    }

    func sample() {
        if let (busy, total) = Self.cpuTimes() {
            let last = previous.withLock { value in
                defer { value = (busy, total) }
                return value
            }
            if let last, total > last.total {
                utilization.set(Double(busy - min(busy, last.busy)) / Double(total - last.total))
            }
        }
        if let memory = Self.memory() {
            memoryTotal.set(Double(memory.total))
            memoryUsed.set(Double(memory.total - min(memory.total, memory.available)))
        }
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
            residentBytes.set(pages * Double(sysconf(Int32(_SC_PAGESIZE))))
        }
    }

    /// Busy and total jiffies from the aggregate line of /proc/stat.
    static func cpuTimes() -> (UInt64, UInt64)? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard fields.count >= 5 else { return nil }
        let idle = fields[3] + fields[4]
        let total = fields.reduce(0, +)
        return (total - idle, total)
    }

    static func memory() -> (total: UInt64, available: UInt64)? {
        guard let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        func kilobytes(_ key: String) -> UInt64? {
            info.split(separator: "\n").first { $0.hasPrefix(key + ":") }?
                .split(separator: " ").dropFirst().first.flatMap { UInt64($0) }
        }
        guard let total = kilobytes("MemTotal"), let available = kilobytes("MemAvailable") else { return nil }
        return (total * 1024, available * 1024)
    }
}
