import InferenceCore
import Testing
@testable import GPUKernels
@testable import Scheduler

@Suite struct EncoderPlanTests {
    static let distilbert = EncoderShape(hidden: 768, heads: 12, intermediate: 3072, layers: 6, vocabulary: 30522,
                                         maxPositions: 512, labels: 2)

    @Test func buffersAreSizedForTheLargestBatch() throws {
        let plan = try EncoderPlan(shape: Self.distilbert, maxBatchSize: 8)
        #expect(plan.maxTokens == 8 * 512)
        #expect(plan.maxScoreElements == 12 * 8 * 512 * 512)
        let bytes = Dictionary(uniqueKeysWithValues: plan.buffers.map { ($0.name, $0.bytes) })
        #expect(bytes["hidden"] == 4096 * 768 * 4)
        #expect(bytes["qkv"] == 4096 * 3 * 768 * 4)
        #expect(bytes["intermediate"] == 4096 * 3072 * 4)
        #expect(bytes["scores"] == 12 * 8 * 512 * 512 * 4)
        #expect(bytes["starts"] == 9 * 4)
        #expect(bytes["output"] == 8 * 768 * 4)
        #expect(bytes["bf16_activations"] == nil)
        #expect(plan.activationBytes == plan.buffers.reduce(0) { $0 + $1.bytes })
        let bf16 = try EncoderPlan(shape: Self.distilbert, maxBatchSize: 8, bf16: true)
        #expect(bf16.buffers.last?.name == "bf16_activations")
        #expect(bf16.buffers.last?.bytes == 4096 * 3072 * 2)
    }

    @Test func weightBytesCountDistilBERTsParameters() throws {
        // 66,955,010 parameters in distilbert-base-uncased-finetuned-sst-2 (pre_classifier + classifier included).
        let plan = try EncoderPlan(shape: Self.distilbert, maxBatchSize: 1)
        #expect(plan.weightBytes == 66_955_010 * 4)
    }

    @Test func maxBatchTokensBoundsTheTokenBuffers() throws {
        let plan = try EncoderPlan(shape: Self.distilbert, maxBatchSize: 8, maxBatchTokens: 1000)
        #expect(plan.maxTokens == 1000)
        #expect(plan.maxScoreElements == 12 * (512 * 512 + 488 * 488))
    }

    @Test(arguments: [(7, 3, 4), (10, 4, 2), (12, 5, 3), (9, 9, 1), (16, 4, 8)])
    func largestSumOfSquaresIsTheTrueMaximum(tokens: Int, longest: Int, sequences: Int) {
        // Brute force over every way to cut at most `tokens` into at most `sequences` lengths of at most `longest`.
        func best(_ tokens: Int, _ sequences: Int) -> Int {
            guard sequences > 0 else { return 0 }
            var result = 0
            for length in 0...min(tokens, longest) {
                result = max(result, length * length + best(tokens - length, sequences - 1))
            }
            return result
        }
        #expect(EncoderPlan.largestSumOfSquares(tokens: tokens, longest: longest, sequences: sequences) == best(tokens, sequences))
    }

    @Test func scoreOffsetsArePrefixSumsOfHeadsTimesLengthSquared() {
        #expect(EncoderPlan.scoreOffsets(starts: [0, 3, 3, 10], heads: 2) == [0, 18, 18, 116])
        #expect(EncoderPlan.scoreOffsets(starts: [0], heads: 12) == [0])
    }

    @Test func batchesBeyondThePlanAreRefused() throws {
        let plan = try EncoderPlan(shape: Self.distilbert, maxBatchSize: 2, maxBatchTokens: 600)
        try plan.check(starts: [0, 512, 600])
        #expect(throws: InferenceError.self) { try plan.check(starts: [0, 1, 2, 3]) }   // 3 sequences
        #expect(throws: InferenceError.self) { try plan.check(starts: [0, 400, 601]) }  // 601 tokens
    }

    @Test func launchGeometryMatchesTheKernels() throws {
        let plan = try EncoderPlan(shape: Self.distilbert, maxBatchSize: 8)
        #expect(plan.layerNorm(tokens: 37) == LaunchGeometry(grid: (37, 1, 1), block: 256, sharedBytes: 768 * 4))
        #expect(plan.softmax(longest: 17, sequences: 3) == LaunchGeometry(grid: (3, 12, 3)))
        #expect(plan.softmax(longest: 16, sequences: 1) == LaunchGeometry(grid: (2, 12, 1)))
        #expect(plan.rows(5) == LaunchGeometry(grid: (5, 1, 1)))
        #expect(plan.pooling(sequences: 4) == LaunchGeometry(grid: (4, 1, 1)))
        #expect(plan.convert(elements: 257) == LaunchGeometry(grid: (2, 1, 1)))
    }

    @Test func invalidShapesAreRefused() {
        var shape = Self.distilbert
        shape.heads = 7
        #expect(throws: InferenceError.self) { _ = try EncoderPlan(shape: shape, maxBatchSize: 1) }
        #expect(throws: InferenceError.self) { _ = try EncoderPlan(shape: Self.distilbert, maxBatchSize: 0) }
    }
}

@Suite struct InstancePlacementTests {
    @Test func listedGPUsGetCountInstancesEach() throws {
        let placements = try InstancePlacement.assign(groups: [InstanceGroupSpec(kind: .gpu, count: 2, gpus: [0, 1])], visibleDevices: [0, 1])
        #expect(placements == [.gpu(device: 0), .gpu(device: 0), .gpu(device: 1), .gpu(device: 1)])
        #expect(InstanceGroupSpec(kind: .gpu, count: 2, gpus: [0, 1]).instanceCount == placements.count)
    }

    @Test func unlistedGPUsSpreadRoundRobin() throws {
        let placements = try InstancePlacement.assign(groups: [InstanceGroupSpec(kind: .gpu, count: 3)], visibleDevices: [0, 1])
        #expect(placements == [.gpu(device: 0), .gpu(device: 1), .gpu(device: 0)])
    }

    @Test func groupsKeepConfigOrderAcrossKinds() throws {
        let placements = try InstancePlacement.assign(
            groups: [InstanceGroupSpec(kind: .cpu, count: 1), InstanceGroupSpec(kind: .gpu, count: 1, gpus: [1])], visibleDevices: [0, 1])
        #expect(placements == [.cpu, .gpu(device: 1)])
        let spec = ModelSpec(name: "m", version: 1, backend: "b", maxBatchSize: 1, inputs: [], outputs: [],
                             instanceGroups: [InstanceGroupSpec(kind: .cpu, count: 1), InstanceGroupSpec(kind: .gpu, count: 2, gpus: [0, 1])])
        #expect(spec.instanceCount == 5)
    }

    @Test func aListedGPUThatIsNotVisibleFailsTheModel() {
        #expect(throws: InferenceError.unavailable("instance_group asks for GPU 2 but the usable devices are [0, 1]")) {
            _ = try InstancePlacement.assign(groups: [InstanceGroupSpec(kind: .gpu, count: 1, gpus: [2])], visibleDevices: [0, 1])
        }
    }
}

/// The bound the scheduler keeps (ModelScheduler.partition) is the one the GPU
/// plan was sized for: every part of a 32 x 512 request fits a plan made for
/// max_batch_size 32 and max_batch_tokens 8192, and the whole would not.
@Suite struct EncoderPlanBudgetTests {
    @Test func everyScheduledPartOfA32By512RequestFitsThePlan() throws {
        let plan = try EncoderPlan(shape: EncoderPlanTests.distilbert, maxBatchSize: 32, maxBatchTokens: 8192)
        let lengths = [Int](repeating: 512, count: 32)
        let parts = try ModelScheduler.partition(rows: 32, tokens: { lengths[$0] }, maxRows: 32, maxTokens: 8192, cost: .packed)
        #expect(parts.count == 2)
        for part in parts {
            try plan.check(starts: (0...part.count).map { $0 * 512 })
        }
        #expect(throws: InferenceError.self) { try plan.check(starts: (0...32).map { $0 * 512 }) }
    }
}
