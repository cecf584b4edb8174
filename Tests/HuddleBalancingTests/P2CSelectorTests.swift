// Power of two choices: eligibility and weight-0 are absolute, the load rule is exact, and loads stay even.

import HuddleBalancing
import XCTest

final class P2CSelectorTests: XCTestCase {
    func testNeverPicksWeightZeroOrIneligible() {
        let weights = [3, 0, 1, 2, 0, 5, 1, 1, 4, 2]
        let p2c = P2CSelector(weights: weights)
        var rng = FastRandom(seed: 1)
        for round in 0..<5_000 {
            // A different random eligible subset each round, from empty to full: exercises rejection and scan paths.
            let mask = rng.next() & 0x3FF
            let eligible: (Int) -> Bool = { mask & (1 << UInt64($0)) != 0 }
            let expectedSome = weights.indices.contains { weights[$0] > 0 && eligible($0) }
            let picked = p2c.pick(using: &rng, isEligible: eligible, load: { ($0 * 7 + round) % 5 })
            if let picked {
                XCTAssertTrue(eligible(picked), "round \(round): ineligible \(picked)")
                XCTAssertGreaterThan(weights[picked], 0, "round \(round): weight-0 \(picked)")
            } else {
                XCTAssertFalse(expectedSome, "round \(round): nil while an eligible server exists")
            }
        }
    }

    /// The alias table is exact: summed over all columns, server i owns exactly `n × w_i` of the `n × total` tickets.
    func testAliasTableGivesEveryServerExactlyItsWeight() {
        var rng = FastRandom(seed: 9)
        var cases: [[Int]] = [[1], [1, 3], [5, 1, 1], [0, 4, 0, 1], [7, 7, 7], [1, 1000, 2]]
        for _ in 0..<50 { cases.append((0..<Int.random(in: 1...40, using: &rng)).map { _ in Int.random(in: 0...9, using: &rng) }) }
        for weights in cases {
            let total = weights.reduce(0, +)
            guard total > 0 else { continue }
            let (threshold, alias) = P2CSelector.aliasTableForTesting(weights)
            var tickets = [Int](repeating: 0, count: weights.count)
            for c in weights.indices {
                XCTAssertTrue((0...total).contains(threshold[c]))
                tickets[c] += threshold[c]
                tickets[alias[c]] += total - threshold[c]
            }
            XCTAssertEqual(tickets, weights.map { $0 * weights.count }, "weights \(weights)")
        }
    }

    func testSingleEligibleIsReturnedAndNoneIsNil() {
        let p2c = P2CSelector(weights: [1, 1, 1, 1])
        var rng = FastRandom(seed: 2)
        for _ in 0..<100 {
            XCTAssertEqual(p2c.pick(using: &rng, isEligible: { $0 == 2 }, load: { _ in 1_000 }), 2)
            XCTAssertNil(p2c.pick(using: &rng, isEligible: { _ in false }, load: { _ in 0 }))
        }
        XCTAssertNil(P2CSelector(weights: [0, 0]).pick(using: &rng, isEligible: { _ in true }, load: { _ in 0 }))
        XCTAssertNil(P2CSelector(weights: []).pick(using: &rng, isEligible: { _ in true }, load: { _ in 0 }))
        // Eligible but weight 0 is still never drawn.
        XCTAssertNil(P2CSelector(weights: [0, 1]).pick(using: &rng, isEligible: { $0 == 0 }, load: { _ in 0 }))
    }

    func testLowerLoadPerWeightWinsAndExactTiesAreRandom() {
        // Two servers are always both drawn, so the rule alone decides.
        let p2c = P2CSelector(weights: [1, 3])
        var rng = FastRandom(seed: 3)
        let loads = [1, 2] // 1/1 vs 2/3: server 1 is less loaded per unit of weight.
        for _ in 0..<200 {
            XCTAssertEqual(p2c.pick(using: &rng, isEligible: { _ in true }, load: { loads[$0] }), 1)
        }
        let tied = [1, 3] // 1×3 == 3×1
        var counts = [0, 0]
        for _ in 0..<2_000 { counts[p2c.pick(using: &rng, isEligible: { _ in true }, load: { tied[$0] })!] += 1 }
        XCTAssertEqual(counts[0], 1_000, accuracy: 150)
    }

    func testDrawsStayUniformOverTheEligibleWhenMostAreOut() {
        // Two eligible of ten forces the exact scan path; with equal loads each should win half the time.
        let p2c = P2CSelector(weights: Array(repeating: 1, count: 10))
        var rng = FastRandom(seed: 4)
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<4_000 {
            counts[p2c.pick(using: &rng, isEligible: { $0 == 3 || $0 == 8 }, load: { _ in 0 })!] += 1
        }
        XCTAssertEqual(counts[3] + counts[8], 4_000)
        XCTAssertEqual(counts[3], 2_000, accuracy: 250)
    }

    /// Each pick adds one in-flight request to the chosen server; once 200 are in flight, every pick is followed by one
    /// random earlier request completing. After warm-up, at every step, max/mean of in-flight per unit of weight ≤ 1.3.
    func testInFlightStaysEvenUnderChurn() {
        let result = simulate(weights: Array(repeating: 1, count: 10), picks: 100_000, seed: 5)
        XCTAssertLessThanOrEqual(result.worstMaxOverMean, 1.3)
    }

    func testWeightedOneToThreeGetsOneToThreeOfTheTraffic() {
        let weights = [1, 3, 1, 3, 1, 3, 1, 3, 1, 3]
        let result = simulate(weights: weights, picks: 100_000, seed: 6)
        let light = weights.indices.filter { weights[$0] == 1 }.map { result.picks[$0] }.reduce(0, +)
        let heavy = weights.indices.filter { weights[$0] == 3 }.map { result.picks[$0] }.reduce(0, +)
        XCTAssertEqual(Double(heavy) / Double(light), 3, accuracy: 0.15)
    }

    struct Simulation {
        var picks: [Int]
        var worstMaxOverMean: Double
    }

    func simulate(weights: [Int], picks: Int, seed: UInt64) -> Simulation {
        let p2c = P2CSelector(weights: weights)
        var rng = FastRandom(seed: seed)
        var load = [Int](repeating: 0, count: weights.count)
        var inFlight: [Int] = []
        var result = Simulation(picks: [Int](repeating: 0, count: weights.count), worstMaxOverMean: 0)
        let totalWeight = Double(weights.reduce(0, +))
        for step in 0..<picks {
            let server = p2c.pick(using: &rng, isEligible: { _ in true }, load: { load[$0] })!
            load[server] += 1
            result.picks[server] += 1
            inFlight.append(server)
            if inFlight.count > 200 {
                let done = Int.random(in: 0..<inFlight.count, using: &rng)
                load[inFlight[done]] -= 1
                inFlight.swapAt(done, inFlight.count - 1)
                inFlight.removeLast()
            }
            if step >= 1_000 {
                let mean = Double(inFlight.count) / totalWeight
                let worst = weights.indices.map { Double(load[$0]) / Double(weights[$0]) }.max()!
                result.worstMaxOverMean = max(result.worstMaxOverMean, worst / mean)
            }
        }
        return result
    }
}
