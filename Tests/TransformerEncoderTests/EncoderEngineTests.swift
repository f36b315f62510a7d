import Foundation
import InferenceCore
import Testing
@testable import TransformerEncoder
@testable import TransformerModel

/// A small DistilBERT with deterministic random weights: the engine's own
/// behaviour (batch invariance, precisions, buckets) without a checkpoint file.
enum TinyEncoder {
    static let config = EncoderConfig(family: .distilbert, hidden: 64, layers: 2, heads: 4, intermediate: 128,
                                      vocabularySize: 300, maxPositions: 96, labels: ["NEGATIVE", "POSITIVE"])

    static func weights(seed: UInt64 = 7) -> EncoderWeights {
        var state = seed
        func random(_ count: Int, scale: Float) -> [Float] {
            (0..<count).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
            }
        }
        let h = config.hidden, f = config.intermediate
        let layers = (0..<config.layers).map { _ in
            EncoderLayerWeights(
                qkvWeight: random(3 * h * h, scale: 0.15), qkvBias: random(3 * h, scale: 0.05),
                outputWeight: random(h * h, scale: 0.15), outputBias: random(h, scale: 0.05),
                attentionNormScale: random(h, scale: 0.1).map { 1 + $0 }, attentionNormBias: random(h, scale: 0.05),
                ffnInWeight: random(f * h, scale: 0.15), ffnInBias: random(f, scale: 0.05),
                ffnOutWeight: random(h * f, scale: 0.1), ffnOutBias: random(h, scale: 0.05),
                outputNormScale: random(h, scale: 0.1).map { 1 + $0 }, outputNormBias: random(h, scale: 0.05))
        }
        return EncoderWeights(
            wordEmbeddings: random(config.vocabularySize * h, scale: 0.5), positionEmbeddings: random(config.maxPositions * h, scale: 0.2),
            tokenTypeEmbedding: nil, embeddingNormScale: random(h, scale: 0.1).map { 1 + $0 }, embeddingNormBias: random(h, scale: 0.05),
            layers: layers,
            classifier: SequenceClassifier(preWeight: random(h * h, scale: 0.15), preBias: random(h, scale: 0.05),
                                           weight: random(2 * h, scale: 0.2), bias: random(2, scale: 0.05), activation: .relu))
    }

    static func forward(_ precision: EncoderPrecision, maxTokens: Int = 400, threads: Int = 2) throws -> EncoderForward {
        let model = try PreparedEncoder(config: config, weights: weights(), precision: precision, maxTokens: maxTokens)
        let forward = try EncoderForward(model: model, threads: threads)
        try forward.warm()
        return forward
    }

    static func sequence(_ length: Int, seed: Int) -> [Int32] {
        (0..<length).map { Int32((($0 + 1) * 7919 + seed * 104_729) % (config.vocabularySize - 1) + 1) }
    }
}

@Suite struct EncoderEngineTests {
    /// The precisions whose code path can run here: bf16 where the CPU has
    /// bf16 dot products, or where oneDNN emulates them (slowly; the backend
    /// would serve fp32 there, but the engine's bf16 path still runs and is
    /// checked). The server-level bf16 test says which it was.
    static let precisions: [EncoderPrecision] = {
        let bf16Runs = PrecisionChoice.CPU.current.bf16
            || (try? MatmulProbe.bestSeconds(.bf16, rows: 32, k: 64, n: 64, repeats: 1)) != nil
        return bf16Runs ? [.fp32, .bf16, .int8] : [.fp32, .int8]
    }()

    /// An input alone and inside a batch of others of different lengths give
    /// the same output. int8's products are exact integer sums and its scales
    /// are per row, so its encoder states match bit for bit; fp32's products
    /// run on a different row bucket in each case, whose kernel may order the
    /// reduction differently, so they match to float rounding (and bf16 to
    /// its own rounding).
    @Test(arguments: precisions)
    func anInputAloneAndInAMixedBatchGiveTheSameOutput(precision: EncoderPrecision) throws {
        let forward = try TinyEncoder.forward(precision, maxTokens: 600)
        let h = TinyEncoder.config.hidden
        let target = TinyEncoder.sequence(23, seed: 1)
        var alone = PackedSequences()
        alone.append(tokens: target)
        let single = try forward.hiddenStates(alone)
        let singleLogits = try forward.logits(alone)
        func check(_ batch: PackedSequences, index: Int) throws {
            let states = try forward.hiddenStates(batch)
            let start = batch.starts[index] * h
            let got = Array(states[start..<(start + target.count * h)])
            if precision == .int8 {
                #expect(got == single, "int8 encoder states differ in a batch")
            } else {
                // bf16: a float-rounding difference may flip one input's bf16 rounding.
                let tolerance: Float = precision == .fp32 ? 1e-5 : 1e-2
                let worst = zip(got, single).map { abs($0 - $1) }.max()!
                #expect(worst <= tolerance * single.map(abs).max()!, "\(precision.rawValue): worst difference \(worst)")
            }
            let logits = try forward.logits(batch)
            let tolerance: Float = precision == .bf16 ? 1e-2 : 1e-5
            for (a, b) in zip(logits[(2 * index)..<(2 * index + 2)], singleLogits) { #expect(abs(a - b) <= tolerance * max(abs(b), 1)) }
        }
        var mixed = PackedSequences()
        for (length, seed) in [(5, 2), (61, 3)] { mixed.append(tokens: TinyEncoder.sequence(length, seed: seed)) }
        mixed.append(tokens: target)
        for (length, seed) in [(96, 4), (1, 5), (40, 6)] { mixed.append(tokens: TinyEncoder.sequence(length, seed: seed)) }
        try check(mixed, index: 2)
        // A batch spanning several row chunks (563 tokens, chunks of 256) and QKV groups too.
        var large = PackedSequences()
        for seed in 0..<6 { large.append(tokens: TinyEncoder.sequence(90, seed: 10 + seed)) }
        large.append(tokens: target)
        try check(large, index: 6)
        // The whole budget (600 tokens), with QKV groups starting off a 32-row
        // boundary, so the last group's blocks reach past the last token.
        var full = PackedSequences()
        for seed in 0..<8 { full.append(tokens: TinyEncoder.sequence(70, seed: 20 + seed)) }
        full.append(tokens: target)
        full.append(tokens: TinyEncoder.sequence(17, seed: 30))
        #expect(full.tokenCount == 600)
        try check(full, index: 8)
    }

    /// Each precision stays close to fp32 on the same weights.
    @Test(arguments: precisions.filter { $0 != .fp32 })
    func lowerPrecisionsStayCloseToFP32(precision: EncoderPrecision) throws {
        let reference = try TinyEncoder.forward(.fp32), lower = try TinyEncoder.forward(precision)
        var batch = PackedSequences()
        for (length, seed) in [(7, 1), (50, 2), (96, 3)] { batch.append(tokens: TinyEncoder.sequence(length, seed: seed)) }
        let want = try reference.hiddenStates(batch), got = try lower.hiddenStates(batch)
        let largest = want.map(abs).max()!
        let worst = zip(want, got).map { abs($0 - $1) }.max()!
        #expect(worst / largest <= (precision == .int8 ? 0.08 : 0.03), "\(precision.rawValue): worst relative error \(worst / largest)")
    }

    @Test func batchesOverThePreparedBudgetAreRefusedNotOverrun() throws {
        let forward = try TinyEncoder.forward(.fp32, maxTokens: 100)
        var batch = PackedSequences()
        for seed in 0..<3 { batch.append(tokens: TinyEncoder.sequence(40, seed: seed)) }
        #expect(throws: InferenceError.invalidArgument("a batch of 120 tokens exceeds the 100 this instance was prepared for")) {
            _ = try forward.logits(batch)
        }
    }

    @Test func rowBucketsAreBoundedMultiplesOf32() {
        #expect(PreparedEncoder.rowBuckets(maxTokens: 8192).buckets == Array(stride(from: 32, through: 256, by: 32)))
        #expect(PreparedEncoder.rowBuckets(maxTokens: 8192).chunk == 256)
        #expect(PreparedEncoder.rowBuckets(maxTokens: 100) == (buckets: [32, 64, 96, 128], chunk: 128))
        #expect(PreparedEncoder.rowBuckets(maxTokens: 1).buckets == [32])
    }

    @Test func instancesShareOnePreparedModel() throws {
        let model = try PreparedEncoder(config: TinyEncoder.config, weights: TinyEncoder.weights(), precision: .int8, maxTokens: 200)
        let first = try EncoderForward(model: model, threads: 1), second = try EncoderForward(model: model, threads: 1)
        #expect(first.model === second.model)
        var batch = PackedSequences()
        batch.append(tokens: TinyEncoder.sequence(30, seed: 9))
        #expect(try first.logits(batch) == second.logits(batch))
    }

    @Test func profileCoversTheForwardPass() throws {
        let forward = try TinyEncoder.forward(.int8)
        forward.profile = EncoderProfile()
        var batch = PackedSequences()
        batch.append(tokens: TinyEncoder.sequence(50, seed: 1))
        _ = try forward.logits(batch)
        let profile = try #require(forward.profile)
        #expect(profile.forwards == 1)
        for op in ["qkv", "attention_output", "ffn_in", "ffn_out", "attention_products", "attention_softmax", "gelu_quantize",
                   "residual_layernorm", "embedding", "head"] {
            #expect((profile.seconds[op] ?? 0) > 0, "\(op)")
        }
        #expect(profile.productShare > 0 && profile.productShare < 1)
    }
}

@Suite struct PrecisionChoiceTests {
    typealias CPU = PrecisionChoice.CPU
    static let amx = CPU(amx: true, bf16: true, vnni: true), bf16Only = CPU(amx: false, bf16: true, vnni: true)
    static let vnni = CPU(amx: false, bf16: false, vnni: true), avx2 = CPU(amx: false, bf16: false, vnni: false)

    /// `auto` is a table over the CPU's features and nothing else: no timing at load.
    @Test(arguments: [
        (PrecisionChoiceTests.amx, EncoderPrecision.bf16), (PrecisionChoiceTests.bf16Only, .bf16),
        (PrecisionChoiceTests.vnni, .fp32), (PrecisionChoiceTests.avx2, .fp32),
    ])
    func autoIsAPureFunctionOfTheCPU(cpu: CPU, expected: EncoderPrecision) throws {
        #expect(try PrecisionChoice.resolve(nil, cpu: cpu).precision == expected)
        #expect(try PrecisionChoice.resolve("auto", cpu: cpu) == PrecisionChoice.resolve("auto", cpu: cpu))
    }

    @Test func explicitChoicesAndTheBF16Fallback() throws {
        #expect(try PrecisionChoice.resolve("int8", cpu: Self.avx2).precision == .int8)
        #expect(try PrecisionChoice.resolve("fp32", cpu: Self.amx).precision == .fp32)
        let fallback = try PrecisionChoice.resolve("bf16", cpu: Self.vnni)
        #expect(fallback.precision == .fp32)
        #expect(fallback.reason.contains("no bf16 dot products"))
        #expect(throws: InferenceError.self) { try PrecisionChoice.resolve("fp16", cpu: Self.amx) }
    }
}
