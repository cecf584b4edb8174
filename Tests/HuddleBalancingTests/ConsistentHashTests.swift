// The production consistent hash: golden placements, balance, minimal disruption, weights and eligibility.

import HuddleBalancing
import Foundation
import XCTest

final class ConsistentHashTests: XCTestCase {
    static let keys = (0..<10_000).map { StableHash.hash64("group-\($0)") }
    static func identities(_ n: Int) -> [String] { (0..<n).map { "10.0.0.\($0 + 1):8080" } }
    static let all: @Sendable (Int) -> Bool = { _ in true }

    /// Computed once, outside Swift, by an independent script of the formula in docs/HASHING.md (libxxhash for XXH64,
    /// libm's log for ln) and pasted: the same key must reach the same server in every process and every release.
    static let golden: [(key: String, equal: String, weighted: String)] = [
        ("room-0", "10.0.0.9:8080", "10.0.0.9:8080"),
        ("room-1", "10.0.0.6:8080", "10.0.0.10:8080"),
        ("room-2", "10.0.0.3:8080", "10.0.0.3:8080"),
        ("room-3", "10.0.0.6:8080", "10.0.0.6:8080"),
        ("room-4", "10.0.0.4:8080", "10.0.0.10:8080"),
        ("room-5", "10.0.0.1:8080", "10.0.0.2:8080"),
        ("room-6", "10.0.0.5:8080", "10.0.0.5:8080"),
        ("room-7", "10.0.0.6:8080", "10.0.0.6:8080"),
        ("room-8", "10.0.0.5:8080", "10.0.0.5:8080"),
        ("room-9", "10.0.0.5:8080", "10.0.0.5:8080"),
        ("room-10", "10.0.0.3:8080", "10.0.0.3:8080"),
        ("room-11", "10.0.0.5:8080", "10.0.0.5:8080"),
        ("room-12", "10.0.0.4:8080", "10.0.0.4:8080"),
        ("room-13", "10.0.0.3:8080", "10.0.0.3:8080"),
        ("room-14", "10.0.0.3:8080", "10.0.0.10:8080"),
        ("lobby", "10.0.0.3:8080", "10.0.0.3:8080"),
        ("", "10.0.0.6:8080", "10.0.0.6:8080"),
        ("ünïcödé", "10.0.0.5:8080", "10.0.0.5:8080"),
        (String(repeating: "a", count: 100), "10.0.0.2:8080", "10.0.0.3:8080"),
        ("user:42/chat", "10.0.0.4:8080", "10.0.0.4:8080"),
    ]

    func testGoldenTable() {
        let ids = Self.identities(10)
        let equal = ConsistentHash(identities: ids, weights: Array(repeating: 1, count: 10))
        let weighted = ConsistentHash(identities: ids, weights: [1, 2, 3, 1, 2, 3, 1, 2, 3, 5])
        for row in Self.golden {
            let keyHash = StableHash.hash64(row.key)
            XCTAssertEqual(ids[equal.owner(keyHash: keyHash, isEligible: Self.all)!], row.equal, "key \(row.key)")
            XCTAssertEqual(ids[weighted.owner(keyHash: keyHash, isEligible: Self.all)!], row.weighted, "key \(row.key)")
        }
    }

    func owners(_ hash: ConsistentHash, isEligible: (Int) -> Bool = all) -> [String] {
        Self.keys.map { hash.identities[hash.owner(keyHash: $0, isEligible: isEligible)!] }
    }

    func testTenEqualServersWithinTenPercentOfTheMean() {
        let hash = ConsistentHash(identities: Self.identities(10), weights: Array(repeating: 1, count: 10))
        var counts: [String: Int] = [:]
        for o in owners(hash) { counts[o, default: 0] += 1 }
        XCTAssertEqual(counts.count, 10)
        XCTAssertLessThanOrEqual(Double(counts.values.max()!) / 1_000, 1.10)
    }

    func testAddingAnEleventhServerMovesAboutAnEleventhOnlyToIt() {
        let before = owners(ConsistentHash(identities: Self.identities(10), weights: Array(repeating: 1, count: 10)))
        let after = owners(ConsistentHash(identities: Self.identities(11), weights: Array(repeating: 1, count: 11)))
        let moved = Self.keys.indices.filter { before[$0] != after[$0] }
        let share = Double(moved.count) / Double(Self.keys.count)
        XCTAssertGreaterThanOrEqual(share, 0.08)
        XCTAssertLessThanOrEqual(share, 0.105)
        XCTAssertTrue(moved.allSatisfy { after[$0] == "10.0.0.11:8080" })
    }

    func testRemovingAServerMovesOnlyItsKeys() {
        let ids = Self.identities(10)
        let before = owners(ConsistentHash(identities: ids, weights: Array(repeating: 1, count: 10)))
        // Removed from the set *and* renumbered: identities, not indices, decide.
        let remaining = ids.filter { $0 != "10.0.0.4:8080" }.reversed()
        let after = owners(ConsistentHash(identities: Array(remaining), weights: Array(repeating: 1, count: 9)))
        for k in Self.keys.indices {
            if before[k] == "10.0.0.4:8080" {
                XCTAssertNotEqual(after[k], "10.0.0.4:8080")
            } else {
                XCTAssertEqual(after[k], before[k], "key \(k) moved though its server stayed")
            }
        }
    }

    func testOneToTwoWeightsSplitOneToTwo() {
        let hash = ConsistentHash(identities: ["light", "heavy"], weights: [1, 2])
        let heavy = owners(hash).filter { $0 == "heavy" }.count
        let ratio = Double(heavy) / Double(Self.keys.count - heavy)
        XCTAssertEqual(ratio, 2, accuracy: 0.1) // ±5%
    }

    func testIneligibleServersKeysGoToTheirNextChoiceOnly() {
        for weights in [Array(repeating: 1, count: 10), [1, 2, 3, 1, 2, 3, 1, 2, 3, 5]] {
            let hash = ConsistentHash(identities: Self.identities(10), weights: weights)
            let before = Self.keys.map { hash.owner(keyHash: $0, isEligible: Self.all)! }
            let down = 6
            var movedCount = 0
            for (k, key) in Self.keys.enumerated() {
                let now = hash.owner(keyHash: key, isEligible: { $0 != down })!
                if before[k] == down {
                    XCTAssertEqual(now, hash.preferenceOrder(keyHash: key, limit: 2)[1])
                    movedCount += 1
                } else {
                    XCTAssertEqual(now, before[k])
                }
            }
            XCTAssertGreaterThan(movedCount, 0)
        }
    }

    /// owner() skips the ln of servers that provably cannot win; it must agree with the full ranking every time.
    func testOwnerIsTheFirstEligibleOfThePreferenceOrder() {
        var rng = FastRandom(seed: 11)
        let weights = (0..<40).map { _ in Int.random(in: 0...6, using: &rng) }
        let hash = ConsistentHash(identities: Self.identities(40), weights: weights)
        for key in Self.keys.prefix(3_000) {
            let mask = rng.next()
            let eligible: (Int) -> Bool = { mask & (1 << UInt64($0)) != 0 || $0 >= 40 }
            let order = hash.preferenceOrder(keyHash: key, limit: 40)
            XCTAssertEqual(order.count, weights.filter { $0 > 0 }.count)
            XCTAssertEqual(hash.owner(keyHash: key, isEligible: eligible), order.first(where: eligible))
        }
    }

    func testWeightZeroOwnsNothingAndNoEligibleIsNil() {
        let hash = ConsistentHash(identities: ["a", "b", "c"], weights: [1, 0, 1])
        XCTAssertFalse(owners(hash).contains("b"))
        XCTAssertNil(hash.owner(keyHash: 1, isEligible: { $0 == 1 }))
        XCTAssertNil(hash.owner(keyHash: 1, isEligible: { _ in false }))
        XCTAssertNil(ConsistentHash(identities: [], weights: []).owner(keyHash: 1, isEligible: Self.all))
        XCTAssertEqual(hash.preferenceOrder(keyHash: 1, limit: 10).sorted(), [0, 2])
        XCTAssertEqual(hash.preferenceOrder(keyHash: 1, limit: 1).count, 1)
    }

    func testRepeatedIdentityStillGetsItsShare() {
        let hash = ConsistentHash(identities: ["a", "b", "a"], weights: [1, 1, 1])
        var counts = [0, 0, 0]
        for key in Self.keys { counts[hash.owner(keyHash: key, isEligible: Self.all)!] += 1 }
        for c in counts { XCTAssertEqual(c, 3_333, accuracy: 300) }
    }

    func testNaturalLogMatchesLibm() {
        var rng = FastRandom(seed: 12)
        var samples: [Double] = [1, 0.5, 0x1p-54, 0.7071067811865476, 0.7071067811865475, 1 - 0x1p-53]
        for _ in 0..<10_000 { samples.append((Double(rng.next() >> 11) + 0.5) * 0x1p-53) }
        for x in samples {
            let ours = ConsistentHash.naturalLogForTesting(x)
            let libm = Foundation.log(x)
            XCTAssertEqual(ours, libm, accuracy: max(abs(libm), 1e-300) * 1e-15, "x = \(x)")
        }
    }
}
