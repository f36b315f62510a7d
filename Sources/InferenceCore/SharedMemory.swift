/// A tensor's place in a registered shared-memory region, as the request
/// parameters `shared_memory_region`, `shared_memory_offset` and
/// `shared_memory_byte_size` give it.
public struct SharedMemoryReference: Sendable, Hashable {
    public var region: String
    public var offset: Int
    public var byteSize: Int

    public init(region: String, offset: Int = 0, byteSize: Int) {
        self.region = region
        self.offset = offset
        self.byteSize = byteSize
    }

    /// The reference in a tensor's parameters, nil when it names no region.
    public static func parse(_ parameters: [String: ParameterValue], tensor: String) throws -> SharedMemoryReference? {
        guard let regionValue = parameters["shared_memory_region"] else {
            for parameter in ["shared_memory_offset", "shared_memory_byte_size"] where parameters[parameter] != nil {
                throw TritonErrors.sharedMemoryParameterWithoutRegion(parameter, tensor: tensor)
            }
            return nil
        }
        guard case .string(let region) = regionValue else {
            throw TritonErrors.sharedMemoryParameterType("shared_memory_region", tensor: tensor, expected: "string_param")
        }
        guard let sizeValue = parameters["shared_memory_byte_size"] else { throw TritonErrors.sharedMemoryByteSizeMissing(tensor: tensor) }
        guard let byteSize = sizeValue.nonNegativeInt else {
            throw TritonErrors.sharedMemoryParameterType("shared_memory_byte_size", tensor: tensor, expected: "int64_param")
        }
        var offset = 0
        if let offsetValue = parameters["shared_memory_offset"] {
            guard let value = offsetValue.nonNegativeInt else {
                throw TritonErrors.sharedMemoryParameterType("shared_memory_offset", tensor: tensor, expected: "int64_param")
            }
            offset = value
        }
        return SharedMemoryReference(region: region, offset: offset, byteSize: byteSize)
    }

    /// The parameters a response carries for an output written into a region.
    public var parameters: [String: ParameterValue] {
        var result: [String: ParameterValue] = ["shared_memory_region": .string(region), "shared_memory_byte_size": .int64(Int64(byteSize))]
        if offset != 0 { result["shared_memory_offset"] = .int64(Int64(offset)) }
        return result
    }
}

extension ParameterValue {
    var nonNegativeInt: Int? {
        switch self {
        case .int64(let value) where value >= 0: Int(exactly: value)
        case .uint64(let value): Int(exactly: value)
        default: nil
        }
    }
}

/// The arithmetic that keeps every access inside a region, with no overflow:
/// a region is `byteSize` bytes starting `offset` bytes into its segment.
public enum SharedMemoryBounds {
    /// Checks a region of `byteSize` bytes at `offset` against a segment of `segmentSize` bytes.
    public static func regionFits(offset: UInt64, byteSize: UInt64, segmentSize: UInt64) -> Bool {
        offset <= segmentSize && byteSize <= segmentSize - offset
    }

    /// Checks `byteSize` bytes at `offset` (both relative to the region)
    /// against a region of `regionSize` bytes, as Triton does: first the
    /// offset, then offset + size.
    public static func checkAccess(region: String, offset: Int, byteSize: Int, regionSize: Int) throws {
        guard offset >= 0, offset < regionSize || (offset == 0 && byteSize == 0) else {
            throw TritonErrors.sharedMemoryInvalidOffset(region)
        }
        guard byteSize >= 0, byteSize <= regionSize - offset else { throw TritonErrors.sharedMemoryOutOfBounds(region) }
    }
}

/// One registered region, as status reports it.
public struct SharedMemoryRegionStatus: Sendable, Hashable {
    public var name: String
    public var key: String
    public var offset: UInt64
    public var byteSize: UInt64

    public init(name: String, key: String, offset: UInt64, byteSize: UInt64) {
        self.name = name
        self.key = key
        self.offset = offset
        self.byteSize = byteSize
    }
}

/// System shared memory as the frontends drive it (register, status, unregister).
/// Unregistering a name that is not registered succeeds, as in Triton.
public protocol SharedMemoryRegistry: Sendable {
    func register(name: String, key: String, offset: UInt64, byteSize: UInt64) throws
    /// Every region (name empty) or the one named.
    func status(name: String) throws -> [SharedMemoryRegionStatus]
    /// Every region (name empty) or the one named; a region in use by a
    /// request stays mapped until that request ends.
    func unregister(name: String) throws
}

/// One registered CUDA region, as status reports it.
public struct CUDASharedMemoryRegionStatus: Sendable, Hashable {
    public var name: String
    public var deviceID: UInt64
    public var byteSize: UInt64

    public init(name: String, deviceID: UInt64, byteSize: UInt64) {
        self.name = name
        self.deviceID = deviceID
        self.byteSize = byteSize
    }
}

/// CUDA shared memory (regions exported with cudaIpcGetMemHandle).
public protocol CUDASharedMemoryRegistry: Sendable {
    /// False where no CUDA IPC exists: register is refused before its body is read, as in Triton.
    var isAvailable: Bool { get }
    func register(name: String, rawHandle: [UInt8], deviceID: Int64, byteSize: UInt64) throws
    func status(name: String) throws -> [CUDASharedMemoryRegionStatus]
    func unregister(name: String) throws
}

/// Log settings as Triton's LogSettings RPC and `/v2/logging` carry them.
public enum LogSettingValue: Sendable, Hashable {
    case bool(Bool)
    case uint32(UInt32)
    case string(String)
}

public protocol LogSettingsControl: Sendable {
    func current() -> [String: LogSettingValue]
    /// Applies every change or none; returns the settings now in effect.
    func update(_ changes: [String: LogSettingValue]) throws -> [String: LogSettingValue]
}

/// Trace settings as Triton's TraceSetting RPC and `…/trace/setting` carry
/// them: every value a list of strings (HTTP writes `trace_level` as a list,
/// the rest as one string). A nil value clears a model's own setting.
public protocol TraceSettingsControl: Sendable {
    /// The settings for `model` (empty: the global ones).
    func current(model: String) throws -> [String: [String]]
    func update(model: String, _ changes: [String: [String]?]) throws -> [String: [String]]
}

public enum TraceSettingKeys {
    /// Keys whose value is a list on the HTTP route; the others are one string.
    public static let listValued: Set<String> = ["trace_level"]
}
