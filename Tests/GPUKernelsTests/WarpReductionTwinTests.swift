import GPUKernels
import Testing

/// The reductions every twin relies on really add in the GPU's order.
@Suite struct WarpReductionTwinTests {
    /// 1e8 has an ulp of 8 in Float, so adding 1s to it one at a time loses
    /// them all, while the butterfly first pairs the 1s among themselves.
    @Test func warpSumIsTheButterflyNotALeftToRightSum() {
        var lanes = [Float](repeating: 1, count: 32)
        lanes[0] = 1e8
        // Offset 16: lane 0 = 1e8 + 1 -> 1e8; lanes 1...15 = 2.
        // Offset 8:  lane 0 = 1e8 + 2 -> 1e8; lanes 1...7 = 4.
        // Offset 4:  lane 0 = 1e8 + 4, a tie, to even -> 1e8; lanes 1...3 = 8.
        // Offset 2:  lane 0 = 1e8 + 8 = 100000008 exactly; lane 1 = 16.
        // Offset 1:  100000008 + 16 = 100000024 exactly.
        #expect(WarpReduction.warpSum(lanes) == 100_000_024)
        let leftToRight = lanes.reduce(Float(0), +)
        #expect(leftToRight == 100_000_000)
        #expect(WarpReduction.warpSum(lanes) != leftToRight)
    }

    @Test func warpSumPairsLanesSixteenApartFirst() {
        var lanes = [Float](repeating: 1, count: 32)
        lanes[0] = 1e8
        lanes[16] = -1e8
        // Offset 16 cancels the two big values before any 1 meets them: 30 exactly.
        #expect(WarpReduction.warpSum(lanes) == 30)
        #expect(lanes.reduce(Float(0), +) == 15)
    }

    @Test func everyLaneEndsWithTheSameBits() {
        var random = SplitMix64(seed: 1)
        for _ in 0..<20 {
            let lanes = random.normals(32, scale: 1000)
            let out = WarpReduction.warpSumLanes(lanes)
            #expect(Set(out.map(\.bitPattern)).count == 1)
        }
    }

    /// Warp partials are added ((p0 + p1) + p2) ... + p7: each 4 added to 1e8
    /// is a tie that rounds back to 1e8, where the exact sum rounds to 1e8 + 32.
    @Test func blockSumAddsWarpPartialsInWarpOrder() {
        var threads = [Float](repeating: 0, count: 256)
        threads[0] = 1e8
        for warp in 1..<8 { threads[warp * 32] = 4 }
        #expect(WarpReduction.blockSum(threads) == 1e8)
        #expect(Float(threads.reduce(0.0) { $0 + Double($1) }) == 100_000_032)
    }

    @Test func blockSumOfSmallIntegersIsExact() {
        let threads = (0..<256).map { Float($0) }
        #expect(WarpReduction.blockSum(threads) == 32_640)
    }

    @Test func stridedPartialsVisitEachThreadsSliceInAscendingOrder() {
        var visits: [[Int]] = Array(repeating: [], count: 256)
        let partials = WarpReduction.stridedPartials(count: 600) { acc, i in
            visits[i % 256].append(i)
            return acc + 1
        }
        #expect(visits[0] == [0, 256, 512])
        #expect(visits[88] == [88, 344])
        #expect(visits[255] == [255, 511])
        #expect(partials[87] == 3 && partials[88] == 2)
    }

    @Test func warpMaxAndFmaxfIgnoreNaN() {
        var lanes = (0..<32).map { Float($0) - 40 }
        lanes[7] = .nan
        lanes[19] = -1.5
        #expect(WarpReduction.warpMax(lanes) == -1.5)
        #expect(WarpReduction.cudaFmaxf(.nan, 2) == 2)
        #expect(WarpReduction.cudaFmaxf(2, .nan) == 2)
        #expect(WarpReduction.cudaFmaxf(.nan, .nan).isNaN)
        #expect(WarpReduction.cudaFmaxf(0, -0.0).sign == .plus)
        #expect(WarpReduction.cudaFmaxf(-0.0, 0).sign == .plus)
        #expect(WarpReduction.cudaFmaxf(-.infinity, -3) == -3)
    }
}
