import CDNNL
import CEncoderKernels
import Dispatch
import Synchronization

/// The next (sequence, head) pair to compute, the first error seen, and the
/// threads' time in products, for the profile.
private final class AttentionWork: Sendable {
    private let state = Mutex<(next: Int, error: (any Error)?, productSeconds: Double, softmaxSeconds: Double)>((0, nil, 0, 0))

    func take(below count: Int) -> Int? {
        state.withLock { state in
            guard state.error == nil, state.next < count else { return nil }
            defer { state.next += 1 }
            return state.next
        }
    }

    func fail(_ error: any Error) { state.withLock { if $0.error == nil { $0.error = error } } }
    func record(products: Double, softmax: Double) {
        state.withLock { $0.productSeconds += products; $0.softmaxSeconds += softmax }
    }
    var error: (any Error)? { state.withLock { $0.error } }
    var productShare: Double {
        state.withLock { $0.productSeconds + $0.softmaxSeconds > 0 ? $0.productSeconds / ($0.productSeconds + $0.softmaxSeconds) : 1 }
    }
}

extension EncoderForward {
    /// context (tokens, hidden) = softmax(Q K^T / sqrt(d)) V for every sequence
    /// and head of a group of packed QKV rows, in float32 whatever the precision of
    /// the linears (these products are a few percent of the FLOPs at 128
    /// tokens, and quantizing attention probabilities costs accuracy). The
    /// (sequence, head) pairs are shared out among the instance's threads, each
    /// running its pairs' products single-threaded: small products split
    /// across OpenMP threads spend more on fork and barrier than on arithmetic.
    /// - Parameters:
    ///   - starts: (sequences + 1) first rows of the sequences, relative to `qkv` and `context`.
    func attend(starts: [Int], qkv: UnsafeMutablePointer<Float>, context: UnsafeMutablePointer<Float>,
                scores: UnsafeMutablePointer<Float>) throws {
        let h = config.hidden, heads = config.heads, d = config.headDimension
        let scale = 1 / Float(d).squareRoot()
        let pairs = (starts.count - 1) * heads
        let workers = min(threads, pairs)
        let longest = longestSequence
        let buffers = UncheckedBox((qkv: qkv, context: context, scores: scores))
        let profiling = profile != nil
        let work = AttentionWork()
        let began = ContinuousClock.now
        let run: @Sendable (Int) -> Void = { worker in
            // OpenMP's thread count is per calling thread (libgomp keeps one per
            // foreign thread), so this leaves other threads' settings alone.
            if workers > 1 { omp_set_num_threads(1) }
            let own = buffers.value.scores + worker * longest * longest
            var productSeconds = 0.0, softmaxSeconds = 0.0
            while let pair = work.take(below: pairs) {
                let s = pair / heads, head = pair % heads
                let start = starts[s], length = starts[s + 1] - start
                guard length > 0 else { continue }
                let rows = buffers.value.qkv + start * 3 * h
                let q = rows + head * d, k = rows + h + head * d, v = rows + 2 * h + head * d
                do {
                    let t0 = profiling ? ContinuousClock.now : nil
                    // scores (L x L) = Q K^T / sqrt(d)
                    try CPUMatmul.gemm(m: length, n: length, k: d, alpha: scale, a: q, lda: 3 * h, b: k, ldb: 3 * h,
                                       transposeB: true, c: own, ldc: length)
                    let t1 = profiling ? ContinuousClock.now : nil
                    ek_softmax_rows(own, length, length, length)
                    let t2 = profiling ? ContinuousClock.now : nil
                    // context (L x d) = P V, written into this head's columns.
                    try CPUMatmul.gemm(m: length, n: d, k: length, a: own, lda: length, b: v, ldb: 3 * h,
                                       transposeB: false, c: buffers.value.context + start * h + head * d, ldc: h)
                    if let t0, let t1, let t2 {
                        productSeconds += Self.seconds(t1 - t0) + Self.seconds(ContinuousClock.now - t2)
                        softmaxSeconds += Self.seconds(t2 - t1)
                    }
                } catch {
                    work.fail(error)
                }
            }
            if profiling { work.record(products: productSeconds, softmax: softmaxSeconds) }
        }
        if workers > 1 {
            DispatchQueue.concurrentPerform(iterations: workers, execute: run)
            // The executor thread ran one worker: give it its team back.
            omp_set_num_threads(Int32(threads))
        } else {
            run(0)
        }
        if let error = work.error { throw error }
        if profiling {
            let wall = Self.seconds(ContinuousClock.now - began)
            profile?.add("attention_products", wall * work.productShare)
            profile?.add("attention_softmax", wall * (1 - work.productShare))
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
