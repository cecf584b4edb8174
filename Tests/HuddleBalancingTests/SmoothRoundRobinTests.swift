// Smooth weighted round robin: nginx's exact sequence, skipping ineligible and weight-0 servers.

import HuddleBalancing
import XCTest

final class SmoothRoundRobinTests: XCTestCase {
    func testNginxSequenceForWeights511() {
        var rr = SmoothRoundRobin(weights: [5, 1, 1])
        let names = ["a", "b", "c"]
        let sequence = (0..<14).map { _ in names[rr.pick(isEligible: { _ in true })!] }
        XCTAssertEqual(sequence.joined(separator: " "), "a a b a c a a a a b a c a a")
    }

    func testEqualWeightsRotate() {
        var rr = SmoothRoundRobin(weights: [1, 1, 1])
        XCTAssertEqual((0..<6).map { _ in rr.pick(isEligible: { _ in true })! }, [0, 1, 2, 0, 1, 2])
    }

    func testIneligibleServerIsSkippedAndTheRestKeepTheirRatio() {
        var rr = SmoothRoundRobin(weights: [5, 1, 1])
        let picks = (0..<12).map { _ in rr.pick(isEligible: { $0 != 0 })! }
        XCTAssertEqual(picks, [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2])
        // Back to all eligible: a has not accumulated credit while it was out, so no burst of a's beyond its share.
        let after = (0..<7).map { _ in rr.pick(isEligible: { _ in true })! }
        XCTAssertEqual(after.filter { $0 == 0 }.count, 5)
    }

    func testWeightZeroIsNeverPickedAndNoneEligibleIsNil() {
        var rr = SmoothRoundRobin(weights: [0, 2, 1])
        let picks = (0..<30).map { _ in rr.pick(isEligible: { _ in true })! }
        XCTAssertFalse(picks.contains(0))
        XCTAssertEqual(picks.filter { $0 == 1 }.count, 20)
        XCTAssertNil(rr.pick(isEligible: { _ in false }))
        var zero = SmoothRoundRobin(weights: [0, 0])
        XCTAssertNil(zero.pick(isEligible: { _ in true }))
        var empty = SmoothRoundRobin(weights: [])
        XCTAssertNil(empty.pick(isEligible: { _ in true }))
    }
}
