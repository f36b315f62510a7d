// encoder-bench MODEL_DIR [fp32|bf16]: reads batches as JSON lines on standard input
// ({"name": ..., "lengths": [...], "repeats": N}), runs the encoder's
// classification forward on random token ids of those lengths, and prints one
// JSON line per batch with the median and best wall time in milliseconds.
import Foundation
import TransformerEncoder

struct Job: Decodable { let name: String; let lengths: [Int]; let repeats: Int }

let directory = CommandLine.arguments[1]
let config = try EncoderConfig(file: directory + "/config.json")
let weights = try EncoderWeights(file: try SafeTensorsFile(path: directory + "/model.safetensors"), config: config)
let precision = CommandLine.arguments.count > 2 ? CommandLine.arguments[2] : "fp32"
if precision == "bf16" && !EncoderForward.bf16Available {
    FileHandle.standardError.write(Data("this CPU has no bf16 matrix instructions\n".utf8))
    exit(3)
}
// The same thread count as the server's instance (OMP_NUM_THREADS, set by the harness).
let threads = Int(ProcessInfo.processInfo.environment["OMP_NUM_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
let forward = try EncoderForward(config: config, weights: weights, precision: precision, threads: threads)
var generator = SystemRandomNumberGenerator()

while let line = readLine() {
    let job = try JSONDecoder().decode(Job.self, from: Data(line.utf8))
    var batch = PackedSequences()
    for length in job.lengths {
        let ids = (0..<length).map { _ in Int64.random(in: 1000..<30000, using: &generator) }
        batch.append(ids: ids, mask: Optional<[Int64]>.none)
    }
    _ = try forward.logits(batch)  // warm-up: buffers sized, pages touched
    var times: [Double] = []
    for _ in 0..<job.repeats {
        let start = ContinuousClock.now
        _ = try forward.logits(batch)
        let elapsed = ContinuousClock.now - start
        times.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15)
    }
    times.sort()
    FileHandle.standardOutput.write(Data(#"{"name":"\#(job.name)","median_ms":\#(times[times.count / 2]),"best_ms":\#(times[0])}"#.utf8 + [0x0A]))
}
