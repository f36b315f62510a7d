import Dispatch
import Foundation
import InferenceCore
import Logging
import Synchronization

/// Nanoseconds on a monotonic clock, as Triton's trace timestamps are (its
/// steady clock). Injected, so tests choose the time.
public typealias TraceClock = @Sendable () -> UInt64

public enum TraceClocks {
    /// CLOCK_MONOTONIC, in nanoseconds.
    public static let monotonic: TraceClock = { DispatchTime.now().uptimeNanoseconds }
}

/// The trace settings given at start with Triton's `--trace-config` syntax:
/// `level=TIMESTAMPS`, `rate=N`, `count=N`, `mode=triton`,
/// `triton,file=PATH`, `triton,log-frequency=N` (and `opentelemetry,url=…`,
/// `opentelemetry,resource=…`, which are kept for that mode). They are the
/// defaults the trace-setting APIs fall back to.
public struct TraceConfiguration: Sendable, Equatable {
    public var levels: [String] = ["OFF"]
    public var rate: UInt32 = 1000
    public var count: Int64 = -1
    public var mode = "triton"
    public var file = ""
    public var logFrequency: UInt32 = 0
    public var openTelemetry: [String: [String]] = [:]
    /// Ours (`--trace-allow-tensors`): level TENSORS is accepted. Off by
    /// default, since tensor traces write request and response contents.
    public var allowTensors = false

    public init() {}

    public init(flags: [String], allowTensors: Bool = false) throws {
        self.allowTensors = allowTensors
        for flag in flags { try apply(flag) }
    }

    /// Tensor traces would write request contents, which can hold patient
    /// data: refused from the command line and the trace APIs alike unless
    /// the operator started the server with `--trace-allow-tensors`.
    static let tensorsRefusal = "trace level TENSORS is refused: tensor traces would write request contents, which can hold patient data (use TIMESTAMPS, or start the server with --trace-allow-tensors)"

    mutating func apply(_ flag: String) throws {
        var parts = flag.split(separator: ",", maxSplits: 1).map(String.init)
        var section = ""
        if parts.count == 2, ["triton", "opentelemetry"].contains(parts[0]) { section = parts.removeFirst() }
        let setting = parts.joined(separator: ",")
        let pair = setting.split(separator: "=", maxSplits: 1).map(String.init)
        guard pair.count == 2, !pair[0].isEmpty else {
            throw InferenceError.invalidArgument("--trace-config '\(flag)': expected [triton|opentelemetry,]<setting>=<value>")
        }
        let (key, value) = (pair[0], pair[1])
        func number<T: FixedWidthInteger>(_: T.Type) throws -> T {
            guard let parsed = T(value) else { throw InferenceError.invalidArgument("--trace-config '\(flag)': '\(value)' is not a valid \(key)") }
            return parsed
        }
        switch (section, key) {
        case ("", "level"):
            // Repeatable, as Triton's: each level adds to the others; OFF clears them.
            let level: String
            switch value.lowercased() {
            case "off", "false": levels = ["OFF"]; return
            case "timestamps", "true": level = "TIMESTAMPS"
            case "tensors" where allowTensors: level = "TENSORS"
            case "tensors": throw InferenceError.invalidArgument("--trace-config '\(flag)': \(Self.tensorsRefusal)")
            default: throw InferenceError.invalidArgument("--trace-config '\(flag)': level must be OFF, TIMESTAMPS or TENSORS")
            }
            levels = levels.filter { $0 != "OFF" && $0 != level } + [level]
        case ("", "rate"): rate = try number(UInt32.self)
        case ("", "count"):
            count = try number(Int64.self)
            guard count >= -1 else { throw InferenceError.invalidArgument("--trace-config '\(flag)': count must be -1 or more") }
        case ("", "mode"):
            guard ["triton", "opentelemetry"].contains(value) else {
                throw InferenceError.invalidArgument("--trace-config '\(flag)': mode must be triton or opentelemetry")
            }
            mode = value
        case ("triton", "file"): file = value
        case ("triton", "log-frequency"): logFrequency = try number(UInt32.self)
        case ("opentelemetry", let name): openTelemetry[name, default: []].append(value)
        default:
            throw InferenceError.invalidArgument("--trace-config '\(flag)': unknown setting '\(key)'")
        }
    }

    /// The settings as the trace APIs report them.
    var reported: [String: [String]] {
        ["trace_file": [file], "trace_level": levels, "trace_rate": [String(rate)], "trace_count": [String(count)],
         "log_frequency": [String(logFrequency)], "trace_mode": [mode]]
    }
}

/// Trace settings, global and per model, as Triton keeps and reports them,
/// and the sampling they drive: every `trace_rate`-th request of a scope
/// (a model with settings of its own, or the rest) is traced while
/// `trace_count` lasts, at level TIMESTAMPS, into `trace_file` (Triton's JSON
/// trace format, `TraceFileWriter`). Changing a scope's settings restarts
/// its sampling, as Triton replaces its setting object.
public final class TraceSettingsStore: TraceSettingsControl {
    private struct Sampling { var seen: UInt64 = 0; var remaining: Int64 }
    private struct State {
        var global: [String: [String]]
        var models: [String: [String: [String]]] = [:]
        var sampling: [String: Sampling] = [:]
        var writers: [String: TraceFileWriter] = [:]
    }
    private let defaults: [String: [String]]
    private let allowTensors: Bool
    private let state: Mutex<State>
    /// Names the per-model route may address (the repository's models).
    private let knownModel: @Sendable (String) -> Bool
    let clock: TraceClock
    private let logger: Logger
    private let ids = TraceIDs()
    /// Where mode `opentelemetry` sends spans; nil: that mode traces nothing.
    private let openTelemetry: OpenTelemetryTraces?

    public init(configuration: TraceConfiguration = .init(), knownModel: @escaping @Sendable (String) -> Bool = { _ in true },
                clock: @escaping TraceClock = TraceClocks.monotonic, openTelemetry: OpenTelemetryTraces? = nil,
                logger: Logger = Logger(label: "batch-server")) {
        self.openTelemetry = openTelemetry
        defaults = configuration.reported
        allowTensors = configuration.allowTensors
        state = Mutex(State(global: configuration.reported))
        self.knownModel = knownModel
        self.clock = clock
        self.logger = logger
    }

    public func current(model: String) throws -> [String: [String]] {
        if !model.isEmpty, !knownModel(model) { throw TritonErrors.traceUnknownModel(model) }
        return state.withLock { state in Self.effective(state, model: model) }
    }

    private static func effective(_ state: State, model: String) -> [String: [String]] {
        var settings = state.global.merging(model.isEmpty ? [:] : state.models[model] ?? [:]) { $1 }
        // Triton reports the count a sampling scope has left.
        let scope = !model.isEmpty && state.models[model] != nil ? model : ""
        if let sampling = state.sampling[scope] { settings["trace_count"] = [String(sampling.remaining)] }
        return settings
    }

    /// A nil value clears the setting: a model's falls back to the global
    /// one, a global one to its start value. Keys it does not know are ignored.
    public func update(model: String, _ changes: [String: [String]?]) throws -> [String: [String]] {
        if !model.isEmpty, !knownModel(model) { throw TritonErrors.traceUnknownModel(model) }
        var checked: [String: [String]?] = [:]
        for (key, value) in changes where defaults[key] != nil {
            if key == "trace_file" { throw TritonErrors.traceFileNotSettable() }
            // updateValue keeps a nil (clear) that subscript assignment would drop.
            checked.updateValue(try value.map { try Self.check(key, $0, allowTensors: allowTensors) }, forKey: key)
        }
        state.withLock { state in
            for (key, value) in checked {
                if model.isEmpty {
                    state.global[key] = value ?? defaults[key]
                } else {
                    state.models[model, default: [:]][key] = value
                    if state.models[model]?.isEmpty == true { state.models[model] = nil }
                }
            }
            if model.isEmpty { state.sampling = [:] } else { state.sampling[model] = nil }
        }
        return try current(model: model)
    }

    /// The value as stored, or Triton's error for it.
    private static func check(_ key: String, _ value: [String], allowTensors: Bool) throws -> [String] {
        if key == "trace_level" {
            let levels = value.filter { ["OFF", "TIMESTAMPS", "TENSORS"].contains($0) }
            if levels.contains("OFF"), levels.count > 1 { throw TritonErrors.traceLevelOffWithOthers() }
            if levels.contains("TENSORS"), !allowTensors { throw InferenceError.invalidArgument(TraceConfiguration.tensorsRefusal) }
            return levels.isEmpty ? ["OFF"] : levels
        }
        guard value.count == 1 else { throw TritonErrors.traceSingleValue(key) }
        let text = value[0]
        switch key {
        case "trace_rate", "log_frequency":
            guard UInt32(text) != nil else { throw TritonErrors.traceValueUnparsable(key, text) }
        case "trace_count":
            guard let count = Int64(text) else { throw TritonErrors.traceValueUnparsable(key, text) }
            guard count >= -1, count <= Int64(Int32.max) else { throw TritonErrors.traceCountInvalid(text) }
        case "trace_mode":
            guard ["triton", "opentelemetry"].contains(text) else { throw TritonErrors.traceValueUnparsable(key, text) }
        default:
            break
        }
        return value
    }

    /// A trace for this request of `model`, or nil when it is not sampled.
    /// `REQUEST_START` is recorded at `started` (the pipeline's entry), or now.
    public func sample(model: String, requestID: String = "", started: UInt64? = nil,
                       headers: [String: String] = [:]) -> (any RunTrace)? {
        enum Picked { case triton(TraceFileWriter, UInt32, Set<String>), openTelemetry(OpenTelemetryTraces) }
        let picked: Picked? = state.withLock { state in
            let scope = state.models[model] != nil ? model : ""
            let settings = state.global.merging(scope.isEmpty ? [:] : state.models[model] ?? [:]) { $1 }
            let levels = Set(settings["trace_level"] ?? []).intersection(["TIMESTAMPS", "TENSORS"])
            guard !levels.isEmpty,
                  let rate = settings["trace_rate"]?.first.flatMap({ UInt64($0) }), rate > 0 else { return nil }
            let file = settings["trace_file"]?.first ?? ""
            let mode = settings["trace_mode"]?.first
            switch mode {
            case "triton" where !file.isEmpty: break
            case "opentelemetry" where openTelemetry != nil: break
            default: return nil
            }
            var sampling = state.sampling[scope] ?? Sampling(remaining: settings["trace_count"]?.first.flatMap { Int64($0) } ?? -1)
            defer { state.sampling[scope] = sampling }
            guard sampling.remaining != 0 else { return nil }
            sampling.seen += 1
            guard sampling.seen % rate == 0 else { return nil }
            if sampling.remaining > 0 { sampling.remaining -= 1 }
            // Spans never carry tensors: OpenTelemetry mode traces timestamps only.
            if mode == "opentelemetry", let openTelemetry { return levels.contains("TIMESTAMPS") ? .openTelemetry(openTelemetry) : nil }
            let writer = state.writers[file] ?? TraceFileWriter(path: file, logger: logger)
            state.writers[file] = writer
            return .triton(writer, settings["log_frequency"]?.first.flatMap { UInt32($0) } ?? 0, levels)
        }
        switch picked {
        case nil:
            return nil
        case .openTelemetry(let traces):
            return traces.request(model: model, requestID: requestID, started: started ?? clock(), headers: headers)
        case .triton(let writer, let logFrequency, let levels):
            let trace = RequestTrace(id: ids.next(), model: model, requestID: requestID, clock: clock, writer: writer,
                                     logFrequency: logFrequency, ids: ids, timestamps: levels.contains("TIMESTAMPS"),
                                     tensors: levels.contains("TENSORS"))
            trace.record("REQUEST_START", at: started ?? clock())
            return trace
        }
    }

    /// Writes what the writers hold back (a last partial group of
    /// `log_frequency` traces): at shutdown.
    public func flush() {
        for writer in state.withLock({ Array($0.writers.values) }) { writer.flush() }
    }
}

/// The scheduler's stages of one request, placed back from `returned` (when
/// the response reached the pipeline) by the durations the scheduler
/// measured, none before `handed`.
struct SchedulingStamps {
    /// TOKENIZE_START/END (ours) where the backend tokenized text before
    /// queuing: from `handed`, and nothing of the queue before it ends.
    let tokenize: (start: UInt64, end: UInt64)?
    let queueStart, computeStart, inputEnd, outputStart, computeEnd: UInt64

    init(handed start: UInt64, returned: UInt64, timing: RequestTiming) {
        func ns(_ duration: Duration) -> UInt64 { UInt64(clamping: duration.nanosecondsClamped) }
        let handed = min(start &+ ns(timing.tokenize), max(returned, start))
        tokenize = timing.tokenize > .zero ? (start, handed) : nil
        computeEnd = max(returned, handed)
        outputStart = computeEnd &- min(ns(timing.computeOutput), computeEnd - handed)
        inputEnd = outputStart &- min(ns(timing.computeInfer), outputStart - handed)
        computeStart = inputEnd &- min(ns(timing.computeInput), inputEnd - handed)
        queueStart = computeStart &- min(ns(timing.queue), computeStart - handed)
    }
}

/// Trace ids, shared by a store's traces and their children.
final class TraceIDs: Sendable {
    private let value = Atomic<UInt64>(1)
    func next() -> UInt64 {
        value.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}

/// One sampled request's timestamps, written when it ends. Timestamps are
/// names and nanoseconds only: nothing of the request's content.
public final class RequestTrace: RunTrace {
    public let id: UInt64
    /// The trace of the ensemble this run is a step of.
    let parentID: UInt64?
    let model: String
    let requestID: String
    let clock: TraceClock
    let writer: TraceFileWriter
    let logFrequency: UInt32
    /// Hands out ids, the store's counter: children draw from it too.
    let ids: TraceIDs
    /// The levels sampled: TIMESTAMPS writes the timestamps, TENSORS the
    /// tensors (only where the server allows that level).
    let timestamps: Bool
    let tensors: Bool
    private let events = Mutex<[(name: String, ns: UInt64)]>([])
    private let tensorEntries = Mutex<[String]>([])

    init(id: UInt64, parentID: UInt64? = nil, model: String, requestID: String, clock: @escaping TraceClock, writer: TraceFileWriter,
         logFrequency: UInt32, ids: TraceIDs, timestamps: Bool = true, tensors: Bool = false) {
        self.timestamps = timestamps
        self.tensors = tensors
        self.id = id
        self.parentID = parentID
        self.model = model
        self.requestID = requestID
        self.clock = clock
        self.writer = writer
        self.logFrequency = logFrequency
        self.ids = ids
    }

    public var now: UInt64 { clock() }

    /// A step's trace, written to the same file with this one as its parent
    /// (Triton's `parent_id`); REQUEST_START is recorded now.
    public func child(model: String) -> any RunTrace {
        let child = RequestTrace(id: ids.next(), parentID: id, model: model, requestID: requestID, clock: clock, writer: writer,
                                 logFrequency: logFrequency, ids: ids, timestamps: timestamps, tensors: tensors)
        child.record("REQUEST_START")
        return child
    }

    public func record(_ name: String) { record(name, at: clock()) }

    public func record(_ name: String, at ns: UInt64) {
        events.withLock { $0.append((name, ns)) }
    }

    /// Triton's tensor entries (`TENSOR_QUEUE_INPUT`, `TENSOR_BACKEND_OUTPUT`),
    /// at level TENSORS only: `{"id","activity","tensor":{"name","data","shape","dtype"}}`.
    public func recordTensors(_ activity: String, _ list: [Tensor]) {
        guard tensors else { return }
        let entries = list.map { tensor in
            "{\"id\":\(id),\"activity\":\"\(activity)\",\"tensor\":{\"name\":\(Self.quoted(tensor.name)),"
                + "\"data\":\(Self.quoted(TensorTraceText.data(tensor))),"
                + "\"shape\":\"\(tensor.shape.map(String.init).joined(separator: ","))\",\"dtype\":\"\(tensor.dataType.rawValue)\"}}"
        }
        tensorEntries.withLock { $0 += entries }
    }

    /// The scheduler's stages, placed back from `returned` (when the
    /// response reached the pipeline) by the durations the scheduler
    /// measured: TOKENIZE_START/END (ours, text models), QUEUE_START, COMPUTE_START, COMPUTE_INPUT_END,
    /// COMPUTE_OUTPUT_START, COMPUTE_END. `handed`: when the request was
    /// given to the scheduler (its checks and tokenizing run before queuing).
    public func recordScheduling(handed: UInt64, returned: UInt64, timing: RequestTiming) {
        let stamps = SchedulingStamps(handed: handed, returned: returned, timing: timing)
        if let tokenize = stamps.tokenize {
            record("TOKENIZE_START", at: tokenize.start)
            record("TOKENIZE_END", at: tokenize.end)
        }
        for (name, time) in [("QUEUE_START", stamps.queueStart), ("COMPUTE_START", stamps.computeStart),
                             ("COMPUTE_INPUT_END", stamps.inputEnd), ("COMPUTE_OUTPUT_START", stamps.outputStart),
                             ("COMPUTE_END", stamps.computeEnd)] {
            record(name, at: time)
        }
    }

    /// Records REQUEST_END and writes the trace: Triton's entries, the
    /// model's (`model_version` -1 when no version was resolved) then one per
    /// timestamp, in time order.
    public func finish(version: Int64?) {
        record("REQUEST_END")
        let stamps = events.withLock { $0 }.enumerated().sorted { ($0.element.ns, $0.offset) < ($1.element.ns, $1.offset) }.map(\.element)
        var json = "{\"id\":\(id),\"model_name\":\(Self.quoted(model)),\"model_version\":\(version ?? -1)"
        if !requestID.isEmpty { json += ",\"request_id\":\(Self.quoted(String(requestID.prefix(128))))" }
        if let parentID { json += ",\"parent_id\":\(parentID)" }
        json += "}"
        if timestamps {
            for stamp in stamps { json += ",{\"id\":\(id),\"timestamps\":[{\"name\":\"\(stamp.name)\",\"ns\":\(stamp.ns)}]}" }
        }
        for entry in tensorEntries.withLock({ $0 }) { json += "," + entry }
        writer.append(json, logFrequency: logFrequency)
    }

    static func quoted(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed])) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// One trace file. With `log_frequency` 0 every trace is appended to the
/// file, which stays a valid JSON array between writes (the closing bracket
/// is rewritten each time); with N > 0 every N traces go to a new file
/// `PATH.0`, `PATH.1`, … as Triton names them, and `flush` writes the rest.
/// Writes are small and synchronous, under the lock, so traces never
/// interleave.
public final class TraceFileWriter: Sendable {
    let path: String
    let logger: Logger
    private struct State { var pending: [String] = []; var nextIndex = 0; var handle: FileHandle?; var failed = false }
    private let state = Mutex<State>(State())

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// Logs the first failure to write this file (the path is the operator's; no trace content).
    private func failed(_ state: inout State) {
        if !state.failed { logger.error("cannot write the trace file", metadata: ["trace.file": "\(path)"]) }
        state.failed = true
    }

    func append(_ trace: String, logFrequency: UInt32) {
        state.withLock { state in
            if logFrequency == 0 {
                if !Self.appendToArray(trace, path: path, state: &state) { failed(&state) }
            } else {
                state.pending.append(trace)
                if state.pending.count >= Int(logFrequency), !Self.writeIndexed(path: path, state: &state) { failed(&state) }
            }
        }
    }

    func flush() {
        state.withLock { state in
            if !state.pending.isEmpty, !Self.writeIndexed(path: path, state: &state) { failed(&state) }
            try? state.handle?.synchronize()
        }
    }

    private static func appendToArray(_ trace: String, path: String, state: inout State) -> Bool {
        guard let handle = state.handle else {
            guard FileManager.default.createFile(atPath: path, contents: Data("[\(trace)]".utf8), attributes: [.posixPermissions: 0o640]),
                  let handle = FileHandle(forUpdatingAtPath: path) else { return false }
            state.handle = handle
            return true
        }
        do {
            let end = try handle.seekToEnd()
            try handle.seek(toOffset: end - 1)   // over the closing bracket
            try handle.write(contentsOf: Data(",\(trace)]".utf8))
            return true
        } catch {
            return false
        }
    }

    private static func writeIndexed(path: String, state: inout State) -> Bool {
        let name = "\(path).\(state.nextIndex)"
        state.nextIndex += 1
        let body = "[" + state.pending.joined(separator: ",") + "]"
        state.pending = []
        return FileManager.default.createFile(atPath: name, contents: Data(body.utf8), attributes: [.posixPermissions: 0o640])
    }
}

/// A tensor's values as Triton's tensor traces write them: comma-separated,
/// floats with 6 significant digits, BYTES elements each in double quotes (here as JSON string content, so the
/// file stays valid JSON whatever the bytes are).
enum TensorTraceText {
    static func data(_ tensor: Tensor) -> String {
        func join<T: TensorElement>(_ type: T.Type, _ text: (T) -> String) -> String {
            ((try? tensor.values(as: type)) ?? []).map(text).joined(separator: ",")
        }
        switch tensor.dataType {
        case .bool: return join(UInt8.self) { $0 == 0 ? "0" : "1" }
        case .uint8: return join(UInt8.self) { "\($0)" }
        case .uint16: return join(UInt16.self) { "\($0)" }
        case .uint32: return join(UInt32.self) { "\($0)" }
        case .uint64: return join(UInt64.self) { "\($0)" }
        case .int8: return join(Int8.self) { "\($0)" }
        case .int16: return join(Int16.self) { "\($0)" }
        case .int32: return join(Int32.self) { "\($0)" }
        case .int64: return join(Int64.self) { "\($0)" }
        // Floats as C++ streams write them by default (Triton's): %g, 6 significant digits.
        case .fp32: return join(Float.self) { String(format: "%g", Double($0)) }
        case .fp64: return join(Double.self) { String(format: "%g", $0) }
        case .fp16:
            return join(UInt16.self) { String(format: "%g", Double(Float(Float16(bitPattern: $0)))) }
        case .bf16:
            return join(UInt16.self) { String(format: "%g", Double(Float(bitPattern: UInt32($0) << 16))) }
        case .bytes:
            let elements = (try? BytesElements.parse(tensor.bytes, tensorName: tensor.name)) ?? []
            return elements.map { "\"" + String(decoding: $0, as: UTF8.self) + "\"" }.joined(separator: ",")
        }
    }
}
