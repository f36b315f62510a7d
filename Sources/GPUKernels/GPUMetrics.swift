import InferenceCore
import CoreMetrics

/// Per-GPU utilization and memory from NVML, under Triton's metric names,
/// sampled at each scrape. Absent (nil) where NVML or a device is missing.
public final class GPUMetricsSampler: Sendable {
    struct Functions: @unchecked Sendable {
        let getHandleByIndex: @convention(c) (UInt32, UnsafeMutablePointer<RawPointer?>) -> Int32
        let getUtilizationRates: @convention(c) (RawPointer?, UnsafeMutablePointer<UInt32>) -> Int32  // nvmlUtilization_t {gpu, memory}
        let getMemoryInfo: @convention(c) (RawPointer?, UnsafeMutablePointer<UInt64>) -> Int32        // nvmlMemory_t {total, free, used}
        let getUUID: @convention(c) (RawPointer?, UnsafeMutablePointer<CChar>, UInt32) -> Int32
    }

    struct Device: @unchecked Sendable {
        let handle: RawPointer?
        let utilization: Gauge
        let memoryTotal: Gauge
        let memoryUsed: Gauge
    }

    private let functions: Functions
    private let devices: [Device]

    private init(functions: Functions, devices: [Device]) {
        self.functions = functions
        self.devices = devices
    }

    public static func make(names: CUDALibraryNames = .standard) -> GPUMetricsSampler? {
        guard case .success(let library) = DynamicLibrary.open(names.nvml) else { return nil }
        do {
            let initialize: @convention(c) () -> Int32 = try library.function("nvmlInit_v2")
            let count: @convention(c) (UnsafeMutablePointer<UInt32>) -> Int32 = try library.function("nvmlDeviceGetCount_v2")
            let functions = Functions(getHandleByIndex: try library.function("nvmlDeviceGetHandleByIndex_v2"),
                                      getUtilizationRates: try library.function("nvmlDeviceGetUtilizationRates"),
                                      getMemoryInfo: try library.function("nvmlDeviceGetMemoryInfo"),
                                      getUUID: try library.function("nvmlDeviceGetUUID"))
            guard initialize() == 0 else { return nil }
            var total: UInt32 = 0
            guard count(&total) == 0, total > 0 else { return nil }
            let devices = (0..<total).compactMap { index -> Device? in
                var handle: RawPointer?
                guard functions.getHandleByIndex(index, &handle) == 0 else { return nil }
                var uuid = [CChar](repeating: 0, count: 96)
                let label = functions.getUUID(handle, &uuid, 96) == 0
                    ? String(decoding: uuid.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "GPU-\(index)"
                let dimensions = [("gpu_uuid", label)]
                return Device(handle: handle,
                              utilization: Gauge(label: "nv_gpu_utilization", dimensions: dimensions),
                              memoryTotal: Gauge(label: "nv_gpu_memory_total_bytes", dimensions: dimensions),
                              memoryUsed: Gauge(label: "nv_gpu_memory_used_bytes", dimensions: dimensions))
            }
            return devices.isEmpty ? nil : GPUMetricsSampler(functions: functions, devices: devices)
        } catch {
            return nil
        }
    }

    /// Reads every device once; a device that fails a read keeps its last values.
    public func sample() {
        for device in devices {
            var rates: [UInt32] = [0, 0]
            if functions.getUtilizationRates(device.handle, &rates) == 0 {
                device.utilization.record(Double(rates[0]) / 100)  // Triton reports 0...1
            }
            var memory: [UInt64] = [0, 0, 0]
            if functions.getMemoryInfo(device.handle, &memory) == 0 {
                device.memoryTotal.record(Double(memory[0]))
                device.memoryUsed.record(Double(memory[2]))
            }
        }
    }
}
