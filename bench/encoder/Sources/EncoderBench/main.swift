// encoder-bench MODEL_DIR [fp32|bf16|int8] [--profile]: reads batches as JSON
// lines on standard input ({"name": ..., "lengths": [...], "repeats": N}),
// runs the encoder's classification forward on random token ids of those
// lengths, and prints one JSON line per batch with the median and best wall
// time in milliseconds and, with --profile, the seconds per operation of one
// forward pass. Exit 3: the CPU has no native instructions for the precision.
import CEncoderKernels
import Foundation
import TransformerEncoder

struct Job: Decodable { let name: String; let lengths: [Int]; let repeats: Int }

let arguments = CommandLine.arguments
let directory = arguments[1]
let precision = EncoderPrecision(rawValue: arguments.count > 2 ? arguments[2] : "fp32") ?? .fp32
let profiling = arguments.contains("--profile")
if precision == .bf16 && !PrecisionChoice.CPU.current.bf16 {
    FileHandle.standardError.write(Data("this CPU has no bf16 dot products\n".utf8))
    exit(3)
}
// --peak: oneDNN's own matmul speed for the DistilBERT product shapes, one
// JSON line per (precision, shape), then exit.
if directory == "--peak" {
    for p in EncoderPrecision.allCases where p != .bf16 || PrecisionChoice.CPU.current.bf16 {
        for (rows, k, n) in [(1024, 768, 2304), (1024, 768, 3072), (1024, 3072, 768), (512, 768, 3072), (128, 768, 3072)] {
            let (seconds, implementation) = try MatmulProbe.bestSeconds(p, rows: rows, k: k, n: n, repeats: 8)
            let record: [String: Any] = ["precision": p.rawValue, "m": rows, "k": k, "n": n, "gflops": 2.0 * Double(rows * k * n) / seconds / 1e9,
                                         "implementation": implementation]
            FileHandle.standardOutput.write(try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) + [0x0A])
        }
    }
    exit(0)
}
let config = try EncoderConfig(file: directory + "/config.json")
let weights = try EncoderWeights(file: try SafeTensorsFile(path: directory + "/model.safetensors"), config: config)
// The same thread count as the server's instance (OMP_NUM_THREADS, set by the harness).
let threads = Int(ProcessInfo.processInfo.environment["OMP_NUM_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
let model = try PreparedEncoder(config: config, weights: weights, precision: precision, maxTokens: 8192)
let forward = try EncoderForward(model: model, threads: threads)
try forward.warm()
FileHandle.standardError.write(Data("isa \(PreparedEncoder.isa), row kernels \(String(cString: ek_variant())), \(model.implementations.joined(separator: "; "))\n".utf8))
var generator = SystemRandomNumberGenerator()

func milliseconds(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }

while let line = readLine() {
    let job = try JSONDecoder().decode(Job.self, from: Data(line.utf8))
    var batch = PackedSequences()
    for length in job.lengths {
        let ids = (0..<length).map { _ in Int64.random(in: 1000..<30000, using: &generator) }
        batch.append(ids: ids, mask: Optional<[Int64]>.none)
    }
    _ = try forward.logits(batch)  // warm-up: pages touched
    var times: [Double] = []
    for _ in 0..<job.repeats {
        let start = ContinuousClock.now
        _ = try forward.logits(batch)
        times.append(milliseconds(ContinuousClock.now - start))
    }
    times.sort()
    var record: [String: Any] = ["name": job.name, "median_ms": times[times.count / 2], "best_ms": times[0]]
    if profiling {
        forward.profile = EncoderProfile()
        for _ in 0..<3 { _ = try forward.logits(batch) }
        let profile = forward.profile!
        forward.profile = nil
        record["profile_ms"] = profile.seconds.mapValues { $0 * 1e3 / Double(profile.forwards) }
        record["product_share"] = profile.productShare
    }
    let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
    FileHandle.standardOutput.write(data + [0x0A])
}
