import InferenceCore
import Testing
@testable import Scheduler

/// How a request is cut so no batch passes max_batch_size or max_batch_tokens.
@Suite struct TokenBudgetTests {
    func parts(_ tokens: [Int], maxRows: Int = 32, budget: Int? = 8192, cost: TokenCost = .packed) throws -> [Range<Int>] {
        try ModelScheduler.partition(rows: tokens.count, tokens: { tokens[$0] }, maxRows: maxRows, maxTokens: budget, cost: cost)
    }

    @Test func a32By512RequestSplitsIntoTwoBatchesOf16() throws {
        #expect(try parts([Int](repeating: 512, count: 32)) == [0..<16, 16..<32])
    }

    @Test func realCountsDecideNotTheLongestRow() throws {
        // Packed: 4 rows of 3000 then short ones; each part keeps to 8192 real tokens.
        #expect(try parts([3000, 3000, 3000, 100, 100, 5000]) == [0..<2, 2..<5, 5..<6])
        // Padded: rows x longest.
        #expect(try parts([100, 2000, 100, 100, 100], budget: 4000, cost: .padded) == [0..<2, 2..<5])
    }

    @Test func rowsAloneBoundWithoutABudget() throws {
        #expect(try parts([Int](repeating: 1, count: 10), maxRows: 4, budget: nil) == [0..<4, 4..<8, 8..<10])
        #expect(try parts([7, 7], maxRows: 4, budget: nil) == [0..<2])
    }

    @Test func aRowLargerThanTheBudgetIsRefusedWithItsIndex() throws {
        #expect(throws: InferenceError.invalidArgument("row 1 of the request has 600 tokens, more than the model's max_batch_tokens of 512")) {
            _ = try parts([10, 600], budget: 512)
        }
    }

    @Test func everyPartFits() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let tokens = (0..<Int.random(in: 1...64, using: &generator)).map { _ in Int.random(in: 1...512, using: &generator) }
            let cut = try parts(tokens, maxRows: 16, budget: 2048)
            #expect(cut.first?.lowerBound == 0 && cut.last?.upperBound == tokens.count)
            for (a, b) in zip(cut, cut.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            for part in cut {
                #expect(part.count <= 16 && tokens[part].reduce(0, +) <= 2048)
            }
        }
    }
}
