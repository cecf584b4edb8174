// Bounded loads: place() keeps every server within ceil(F × its weighted share) and otherwise follows the hash.

import HuddleBalancing
import XCTest

final class ConsistentHashPlaceTests: XCTestCase {
    static let factor = 1.25

    /// Places groups one by one (each adds one to its server's load) and checks, at every placement, the documented
    /// rule: with T the eligible servers' total load and cap_i = ceil(F × (T + 1) × w_i / W), the chosen server had
    /// load < cap_i before the placement (so ≤ ceil(F × mean) after it), and it is the first server of the key's
    /// preference order with that room. Returns how many groups did not go to their hash owner.
    @discardableResult
    func placeAll(_ hash: ConsistentHash, keys: [UInt64], factor: Double, eligible: @escaping (Int) -> Bool,
                  load: inout [Int], file: StaticString = #filePath, line: UInt = #line) -> Int {
        let weights = hash.weights
        let totalWeight = Double(weights.indices.filter { weights[$0] > 0 && eligible($0) }.map { weights[$0] }.reduce(0, +))
        var spilled = 0
        for key in keys {
            let current = load
            let total = weights.indices.filter { weights[$0] > 0 && eligible($0) }.map { current[$0] }.reduce(0, +)
            func cap(_ i: Int) -> Int { Int((max(factor, 1) * Double(total + 1) * Double(weights[i]) / totalWeight).rounded(.up)) }
            guard let chosen = hash.place(keyHash: key, factor: factor, isEligible: eligible, load: { current[$0] }) else {
                XCTFail("no server placed", file: file, line: line)
                return spilled
            }
            XCTAssertTrue(eligible(chosen), file: file, line: line)
            XCTAssertLessThan(current[chosen], cap(chosen), "over its cap before placement", file: file, line: line)
            let expected = hash.preferenceOrder(keyHash: key, limit: weights.count).first { eligible($0) && current[$0] < cap($0) }
            XCTAssertEqual(chosen, expected, file: file, line: line)
            if chosen != hash.owner(keyHash: key, isEligible: eligible) { spilled += 1 }
            load[chosen] += 1
        }
        return spilled
    }

    func testUniformKeysStayWithinTheBoundAtEveryPlacement() {
        let hash = ConsistentHash(identities: (0..<10).map { "s\($0)" }, weights: Array(repeating: 1, count: 10))
        let keys = (0..<10_000).map { StableHash.hash64("group-\($0)") }
        var load = [Int](repeating: 0, count: 10)
        placeAll(hash, keys: keys, factor: Self.factor, eligible: { _ in true }, load: &load)
        XCTAssertEqual(load.reduce(0, +), 10_000)
        XCTAssertLessThanOrEqual(load.max()!, 1_250)
    }

    func testHotOwnerSpillsToTheNextChoiceAndNoFurther() {
        let hash = ConsistentHash(identities: (0..<10).map { "s\($0)" }, weights: Array(repeating: 1, count: 10))
        // Half of the groups hash to s0: without the bound s0 would take over five times its share.
        let candidates = (0..<80_000).map { StableHash.hash64("group-\($0)") }
        let hot = candidates.filter { hash.owner(keyHash: $0, isEligible: { _ in true }) == 0 }.prefix(5_000)
        let cold = candidates.filter { hash.owner(keyHash: $0, isEligible: { _ in true }) != 0 }.prefix(5_000)
        XCTAssertEqual(hot.count, 5_000)
        let keys = zip(hot, cold).flatMap { [$0, $1] }
        var load = [Int](repeating: 0, count: 10)
        let spilled = placeAll(hash, keys: keys, factor: Self.factor, eligible: { _ in true }, load: &load)
        XCTAssertGreaterThan(spilled, 3_000)
        XCTAssertLessThanOrEqual(load[0], 1_250)
        XCTAssertGreaterThanOrEqual(load[0], 1_240, "the hot owner is filled up to its cap, not kept below it")
    }

    func testWeightsAndIneligibleServersShapeTheCaps() {
        let hash = ConsistentHash(identities: ["a", "b", "c", "d", "e"], weights: [1, 2, 3, 4, 0])
        let keys = (0..<6_000).map { StableHash.hash64("weighted-\($0)") }
        var load = [Int](repeating: 0, count: 5)
        // d is out: the caps are shares of a, b and c's weight (6) and d never receives a group.
        placeAll(hash, keys: keys, factor: Self.factor, eligible: { $0 != 3 }, load: &load)
        XCTAssertEqual(load[3], 0)
        XCTAssertEqual(load[4], 0)
        XCTAssertLessThanOrEqual(load[2], Int((1.25 * 6_000 * 3 / 6).rounded(.up)))
    }

    func testFactorBelowOneActsAsOneAndFillsServersEvenly() {
        let hash = ConsistentHash(identities: (0..<7).map { "s\($0)" }, weights: Array(repeating: 1, count: 7))
        let keys = (0..<700).map { StableHash.hash64("tight-\($0)") }
        var load = [Int](repeating: 0, count: 7)
        placeAll(hash, keys: keys, factor: 0.5, eligible: { _ in true }, load: &load)
        XCTAssertEqual(load, Array(repeating: 100, count: 7))
    }

    func testUnboundedFactorIsTheOwnerAndNoEligibleIsNil() {
        let hash = ConsistentHash(identities: ["a", "b", "c"], weights: [1, 1, 1])
        for n in 0..<200 {
            let key = StableHash.hash64("k\(n)")
            let owner = hash.owner(keyHash: key, isEligible: { _ in true })
            XCTAssertEqual(hash.place(keyHash: key, factor: .infinity, isEligible: { _ in true }, load: { $0 == owner ? 1_000_000 : 0 }), owner)
            XCTAssertEqual(hash.place(keyHash: key, factor: .nan, isEligible: { _ in true }, load: { $0 == owner ? 1_000_000 : 0 }), owner)
            XCTAssertNotEqual(hash.place(keyHash: key, factor: 1.25, isEligible: { _ in true }, load: { $0 == owner ? 1_000_000 : 0 }), owner)
        }
        XCTAssertNil(hash.place(keyHash: 1, factor: 1.25, isEligible: { _ in false }, load: { _ in 0 }))
    }
}
