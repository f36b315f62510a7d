#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import InferenceCore
import Synchronization

/// One mapped region. Requests hold it while they read or write, so a region
/// unregistered mid-request stays mapped until the last holder lets go.
final class MappedRegion: @unchecked Sendable {
    let status: SharedMemoryRegionStatus
    /// The mapping starts at the segment's first byte (mmap wants page-aligned
    /// offsets; the client's offset need not be one).
    private let mapping: UnsafeMutableRawPointer
    private let mappingLength: Int

    init(status: SharedMemoryRegionStatus, mapping: UnsafeMutableRawPointer, mappingLength: Int) {
        self.status = status
        self.mapping = mapping
        self.mappingLength = mappingLength
    }

    deinit { munmap(mapping, mappingLength) }

    var byteSize: Int { Int(status.byteSize) }

    /// `count` bytes at `offset` within the region, bounds checked by the caller.
    func read(offset: Int, count: Int) -> [UInt8] {
        let start = mapping + Int(status.offset) + offset
        return Array(UnsafeRawBufferPointer(start: start, count: count))
    }

    func write(_ bytes: [UInt8], offset: Int) {
        let start = mapping + Int(status.offset) + offset
        bytes.withUnsafeBytes { source in
            guard let base = source.baseAddress else { return }
            start.copyMemory(from: base, byteCount: source.count)
        }
    }
}

/// Triton's system shared memory manager: regions the client created with
/// shm_open, registered by name, mapped once at register.
public final class SystemSharedMemory: SharedMemoryRegistry {
    private let regions = Mutex<[String: MappedRegion]>([:])
    /// Each region is one mapping; the kernel's map count is finite.
    public let maxRegions: Int

    public init(maxRegions: Int = 4096) {
        self.maxRegions = maxRegions
    }

    public func register(name: String, key: String, offset: UInt64, byteSize: UInt64) throws {
        if regions.withLock({ $0[name] != nil }) { throw TritonErrors.sharedMemoryAlreadyRegistered(name) }
        if regions.withLock({ $0.count >= maxRegions }) {
            throw InferenceError(.resourceExhausted, "failed to register shared memory region '\(name)': \(maxRegions) regions are registered already")
        }
        guard !key.isEmpty, Int(exactly: offset) != nil, Int(exactly: byteSize) != nil else {
            throw TritonErrors.sharedMemoryOpenFailed(key)
        }
        let descriptor = shm_open(key, O_RDWR, 0)
        guard descriptor >= 0 else { throw TritonErrors.sharedMemoryOpenFailed(key) }
        defer { close(descriptor) }
        var information = stat()
        guard fstat(descriptor, &information) == 0 else { throw TritonErrors.sharedMemoryOpenFailed(key) }
        let segmentSize = UInt64(max(information.st_size, 0))
        guard SharedMemoryBounds.regionFits(offset: offset, byteSize: byteSize, segmentSize: segmentSize) else {
            throw TritonErrors.sharedMemoryRegionTooLarge(name, offset: offset, byteSize: byteSize, segmentSize: segmentSize)
        }
        let length = Int(offset + byteSize)
        // A zero-byte region maps one page so it still has an address.
        guard let mapping = mmap(nil, max(length, 1), PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0),
              mapping != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw TritonErrors.sharedMemoryMapFailed(name, reason: String(cString: strerror(errno)))
        }
        let region = MappedRegion(status: .init(name: name, key: key, offset: offset, byteSize: byteSize),
                                  mapping: mapping, mappingLength: max(length, 1))
        let inserted = regions.withLock { regions -> Bool in
            guard regions[name] == nil else { return false }
            regions[name] = region
            return true
        }
        if !inserted { throw TritonErrors.sharedMemoryAlreadyRegistered(name) }
    }

    public func status(name: String) throws -> [SharedMemoryRegionStatus] {
        try regions.withLock { regions in
            if name.isEmpty { return regions.values.map(\.status).sorted { $0.name < $1.name } }
            guard let region = regions[name] else { throw TritonErrors.sharedMemoryUnknownRegion(name) }
            return [region.status]
        }
    }

    public func unregister(name: String) throws {
        // Dropping the registry's reference unmaps once no request holds the region.
        regions.withLock { regions in
            if name.isEmpty { regions.removeAll() } else { regions[name] = nil }
        }
    }

    /// The region `reference` names, for a request to hold while it uses it,
    /// with the reference checked against its bounds.
    func region(for reference: SharedMemoryReference) throws -> MappedRegion {
        let region = try regions.withLock { regions in
            guard let region = regions[reference.region] else { throw TritonErrors.sharedMemoryRegionNotRegistered(reference.region) }
            return region
        }
        try SharedMemoryBounds.checkAccess(region: reference.region, offset: reference.offset, byteSize: reference.byteSize,
                                           regionSize: region.byteSize)
        return region
    }
}

/// CUDA shared memory where this server has no CUDA IPC: nothing can be
/// registered, so status lists nothing and unregister has nothing to do.
public struct UnavailableCUDASharedMemory: CUDASharedMemoryRegistry {
    public init() {}

    public var isAvailable: Bool { false }

    public func register(name: String, rawHandle: [UInt8], deviceID: Int64, byteSize: UInt64) throws {
        throw TritonErrors.cudaSharedMemoryUnsupported(name)
    }

    public func status(name: String) throws -> [CUDASharedMemoryRegionStatus] {
        if name.isEmpty { return [] }
        throw TritonErrors.cudaSharedMemoryUnknownRegion(name)
    }

    public func unregister(name: String) throws {}
}
