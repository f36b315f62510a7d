#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A shared library opened at run time, so the same binary runs on hosts
/// without it. The handle is never closed: CUDA and ONNX Runtime keep
/// process-wide state that outlives any one model.
public struct DynamicLibrary: @unchecked Sendable {
    public let name: String
    private let handle: UnsafeMutableRawPointer

    /// Opens the first of `names` the dynamic linker finds; nil with dlerror's
    /// text for the last one when none loads.
    public static func open(_ names: [String]) -> Result<DynamicLibrary, LibraryLoadFailure> {
        var lastError = "no candidate names"
        for name in names {
            if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) {
                return .success(DynamicLibrary(name: name, handle: handle))
            }
            lastError = dlerror().map { String(cString: $0) } ?? "dlopen(\(name)) failed"
        }
        return .failure(LibraryLoadFailure(names: names, message: lastError))
    }

    /// The function `symbol` as the C function type `T`.
    public func function<T>(_ symbol: String, as type: T.Type = T.self) throws(LibraryLoadFailure) -> T {
        guard let address = dlsym(handle, symbol) else {
            throw LibraryLoadFailure(names: [name], message: "symbol \(symbol) not found in \(name)")
        }
        return unsafeBitCast(address, to: type)
    }
}

public struct LibraryLoadFailure: Error, Sendable, CustomStringConvertible {
    public let names: [String]
    public let message: String
    public init(names: [String], message: String) {
        self.names = names
        self.message = message
    }
    public var description: String { message }
}
