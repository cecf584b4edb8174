// The pure parts of group migration: what is misplaced, the pace, settling, and the table's marks, moves and evictions.
import HuddleBalancing
import XCTest

final class GroupMigrationRulesTests: XCTestCase {
    static func key(_ s: String) -> (bytes: [UInt8], hash: UInt64) { (Array(s.utf8), StableHash.hash64(s)) }

    // MARK: placement and misplacement

    func testEligibleServersAreAvailableSettledAndWeightedElseEveryAvailableOne() {
        XCTAssertEqual(GroupPlacement.eligible(available: [true, true, false, true], settled: [true, false, true, true], weights: [1, 1, 1, 0]),
                       [true, false, false, false])
        // Nothing settled: settling never refuses a group, every available server takes them.
        XCTAssertEqual(GroupPlacement.eligible(available: [true, true, false], settled: [false, false, true], weights: [1, 2, 1]),
                       [true, true, false])
        XCTAssertEqual(GroupPlacement.eligible(available: [false, false], settled: [true, true], weights: [1, 1]), [false, false])
    }

    func testMisplacementRule() {
        // Gone from the config, or no longer taking groups: always misplaced.
        XCTAssertTrue(GroupPlacement.isMisplaced(server: nil, serverEligible: false, owner: 0, placedEpoch: 5, epoch: 5))
        XCTAssertTrue(GroupPlacement.isMisplaced(server: 1, serverEligible: false, owner: 0, placedEpoch: 5, epoch: 5))
        // Placed under the current view: it stays where that placement put it (a retry's choice, a spill).
        XCTAssertFalse(GroupPlacement.isMisplaced(server: 1, serverEligible: true, owner: 0, placedEpoch: 5, epoch: 5))
        // Placed under an older view: misplaced exactly when the owner differs.
        XCTAssertTrue(GroupPlacement.isMisplaced(server: 1, serverEligible: true, owner: 0, placedEpoch: 4, epoch: 5))
        XCTAssertFalse(GroupPlacement.isMisplaced(server: 0, serverEligible: true, owner: 0, placedEpoch: 4, epoch: 5))
        // Placed away from an owner that failed: not moved back to it while it still fails, whatever the view.
        XCTAssertFalse(GroupPlacement.isMisplaced(server: 1, serverEligible: true, owner: 0, placedEpoch: 4, epoch: 5, avoided: 0, ownerFailing: true))
        XCTAssertFalse(GroupPlacement.isMisplaced(server: 1, serverEligible: true, owner: 0, placedEpoch: 5, epoch: 5, avoided: 0, ownerFailing: true))
        // Once the owner has recovered (a success ended its failure streak), back to it, even under the same view.
        XCTAssertTrue(GroupPlacement.isMisplaced(server: 1, serverEligible: true, owner: 0, placedEpoch: 5, epoch: 5, avoided: 0, ownerFailing: false))
        XCTAssertTrue(GroupPlacement.isMisplaced(server: 1, serverEligible: true, owner: 2, placedEpoch: 4, epoch: 5, avoided: 0, ownerFailing: true))
    }

    /// Adding a fifth server: a scan marks exactly the live groups whose owner changed (about 1/5), drops lingering ones
    /// that are misplaced, and a second scan under the same view after the moves marks nothing (no group moves twice).
    func testScanMarksExactlyTheGroupsWhoseOwnerChangedAndEachMovesOnce() {
        let table = GroupTable()
        let four = ["s1", "s2", "s3", "s4"], five = four + ["s5"]
        let h4 = ConsistentHash(identities: four, weights: [1, 1, 1, 1])
        let h5 = ConsistentHash(identities: five, weights: [1, 1, 1, 1, 1])
        let names = (0..<2000).map { "group-\($0)" }
        var placement: [String: UInt64] = [:]
        for n in names {
            let k = Self.key(n)
            let m = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, migrate: true, keepsPin: { _, _ in true }) {
                h4.owner(keyHash: k.hash, isEligible: { _ in true }).map { four[$0] }
            }
            placement[n] = m?.placement
        }
        // Every tenth group has no members left: it lingers.
        for n in names.enumerated().filter({ $0.offset % 10 == 0 }).map(\.element) {
            let k = Self.key(n)
            table.leave(key: k.bytes, keyHash: k.hash, placement: placement[n]!, nowMs: 0, lingerMs: 60_000)
        }
        let epoch = table.bumpEpoch()
        func rule(_ keyHash: UInt64, _ server: String, _ placed: UInt64, _ avoided: String?) -> Bool {
            let owner = h5.owner(keyHash: keyHash, isEligible: { _ in true })
            return GroupPlacement.isMisplaced(server: five.firstIndex(of: server), serverEligible: true, owner: owner, placedEpoch: placed, epoch: epoch,
                                              avoided: avoided.flatMap { five.firstIndex(of: $0) })
        }
        let found = table.scan(nowMs: 1, isMisplaced: rule)
        let changed = Set(names.filter { h4.owner(keyHash: StableHash.hash64($0), isEligible: { _ in true }) != h5.owner(keyHash: StableHash.hash64($0), isEligible: { _ in true }) })
        let lingeringChanged = changed.filter { names.firstIndex(of: $0)! % 10 == 0 }
        XCTAssertEqual(Set(found.map { String(decoding: $0.key, as: UTF8.self) }), changed.subtracting(lingeringChanged))
        XCTAssertEqual(Double(changed.count) / Double(names.count), 0.2, accuracy: 0.03, "about 1/5 of the groups change owner")
        XCTAssertEqual(found.map(\.keyHash), found.map(\.keyHash).sorted(), "a stable order")
        XCTAssertEqual(table.misplaced(nowMs: 1, limit: 5).count, found.count)
        for n in lingeringChanged { XCTAssertNil(table.lookup(key: Array(n.utf8), keyHash: StableHash.hash64(n), nowMs: 1), "a lingering misplaced group is dropped") }
        // Move them all.
        var evicted: Set<UInt64> = []
        for g in found {
            let target = h5.owner(keyHash: g.keyHash, isEligible: { _ in true }).map { five[$0] }!
            guard case .moved(let e, let from, let members) = table.migrate(g, to: target, nowMs: 2, lingerMs: 5_000) else { return XCTFail("not moved") }
            XCTAssertEqual(from, g.server)
            XCTAssertEqual(members, 1)
            evicted.insert(e)
            XCTAssertEqual(table.migrate(g, to: target, nowMs: 2, lingerMs: 5_000), .gone, "a group moves once")
        }
        XCTAssertEqual(evicted.count, found.count)
        XCTAssertEqual(table.migrations, found.count)
        XCTAssertEqual(table.misplaced(nowMs: 3, limit: 5).count, 0)
        // The same view judged again: nothing is misplaced any more.
        XCTAssertTrue(table.scan(nowMs: 3, isMisplaced: rule).isEmpty)
        // A member of a moved group (old placement) leaving changes nothing; the group lingers on its new server.
        let g = found[0]
        table.leave(key: g.key, keyHash: g.keyHash, placement: g.placement, nowMs: 3, lingerMs: 5_000)
        XCTAssertEqual(table.lookup(key: g.key, keyHash: g.keyHash, nowMs: 3)?.members, 0)
        XCTAssertEqual(table.lookup(key: g.key, keyHash: g.keyHash, nowMs: 3)?.server, h5.owner(keyHash: g.keyHash, isEligible: { _ in true }).map { five[$0] })
    }

    func testMigrateLeavesAGroupWhoseServerIsTheTargetAfterAll() {
        let table = GroupTable()
        let k = Self.key("room")
        _ = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, migrate: true, keepsPin: { _, _ in true }) { "a" }
        table.bumpEpoch()
        let found = table.scan(nowMs: 0) { _, _, _, _ in true }
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(table.migrate(found[0], to: "a", nowMs: 0, lingerMs: 1000), .stays)
        XCTAssertEqual(table.misplaced(nowMs: 0, limit: 1).count, 0)
        XCTAssertEqual(table.migrations, 0)
        XCTAssertEqual(table.lookup(key: k.bytes, keyHash: k.hash, nowMs: 0)?.members, 1, "nobody was closed")
    }

    /// A new member of a marked group moves it at once (migrate) and names the old placement to close; with keep the
    /// mark changes nothing.
    func testNewMemberOfAMisplacedGroupMovesItAtOnceOnlyInMigrateMode() {
        for migrate in [true, false] {
            let table = GroupTable()
            let k = Self.key("room")
            let first = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, migrate: migrate, keepsPin: { _, _ in true }) { "old" }!
            _ = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, migrate: migrate, keepsPin: { _, _ in true }) { "old" }
            let evictionsBefore = table.evictions
            table.bumpEpoch()
            XCTAssertEqual(table.scan(nowMs: 0) { _, _, _, _ in true }.count, 1)
            let joiner = table.join(key: k.bytes, keyHash: k.hash, nowMs: 1, migrate: migrate, keepsPin: { _, _ in true }) { "new" }!
            if migrate {
                XCTAssertEqual(joiner.server, "new")
                XCTAssertEqual(joiner.members, 1, "the old members are no longer counted")
                XCTAssertEqual(joiner.evicted, first.placement)
                XCTAssertEqual(joiner.previousServer, "old")
                XCTAssertNotEqual(joiner.placement, first.placement)
                XCTAssertEqual(table.migrations, 1)
                XCTAssertGreaterThan(table.evictions, evictionsBefore, "members can tell cheaply that a placement was replaced")
                XCTAssertFalse(table.isCurrent(key: k.bytes, keyHash: k.hash, placement: first.placement))
                XCTAssertTrue(table.isCurrent(key: k.bytes, keyHash: k.hash, placement: joiner.placement))
                // The next member follows, nothing more to close.
                let next = table.join(key: k.bytes, keyHash: k.hash, nowMs: 1, migrate: true, keepsPin: { _, _ in true }) { "other" }!
                XCTAssertEqual(next.server, "new")
                XCTAssertNil(next.evicted)
            } else {
                XCTAssertEqual(joiner.server, "old")
                XCTAssertEqual(joiner.members, 3)
                XCTAssertNil(joiner.evicted)
                XCTAssertEqual(table.migrations, 0)
            }
        }
        // Marked, but the placement answers its own server: it stays, unmarked, nobody closed.
        let table = GroupTable()
        let k = Self.key("room")
        _ = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, migrate: true, keepsPin: { _, _ in true }) { "a" }
        table.bumpEpoch()
        _ = table.scan(nowMs: 0) { _, _, _, _ in true }
        let m = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, migrate: true, keepsPin: { _, _ in true }) { "a" }!
        XCTAssertEqual(m.members, 2)
        XCTAssertNil(m.evicted)
        XCTAssertEqual(table.misplaced(nowMs: 0, limit: 1).count, 0)
    }

    /// In migrate mode a live group whose server can no longer keep it is re-placed with its old members evicted;
    /// a lingering one is just re-placed.
    func testReplacingALiveGroupEvictsItsMembersInMigrateMode() {
        let table = GroupTable()
        let k = Self.key("room")
        let a = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, migrate: true, keepsPin: { _, _ in true }) { "a" }!
        let moved = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, migrate: true, keepsPin: { s, _ in s != "a" }) { "b" }!
        XCTAssertEqual(moved.evicted, a.placement)
        table.leave(key: k.bytes, keyHash: k.hash, placement: moved.placement, nowMs: 0, lingerMs: 1000)
        let again = table.join(key: k.bytes, keyHash: k.hash, nowMs: 1, migrate: true, keepsPin: { s, _ in s != "b" }) { "c" }!
        XCTAssertEqual(again.server, "c")
        XCTAssertNil(again.evicted, "nobody was left to close")
    }

    // MARK: pace

    func testPacerStartsOneAtOnceThenKeepsTheRate() {
        var p = MigrationPacer(rate: 10)
        var started = 0
        var maxAtOnce = 0
        // 3 s of 100 ms ticks with plenty pending.
        for t in stride(from: Int64(0), through: 3000, by: 100) {
            let n = p.allowance(nowMs: t, pending: 1000)
            p.spend(n)
            started += n
            maxAtOnce = max(maxAtOnce, n)
        }
        XCTAssertEqual(started, 31, "one at once, then 10 per second")
        XCTAssertLessThanOrEqual(maxAtOnce, 2)
        // A quiet spell does not bank more than a quarter second's worth (at least one).
        var q = MigrationPacer(rate: 40)
        _ = q.allowance(nowMs: 0, pending: 0)
        XCTAssertEqual(q.allowance(nowMs: 60_000, pending: 1000), 10)
        // Slow rates: one every two seconds.
        var s = MigrationPacer(rate: 0.5)
        var slow: [Int64] = []
        for t in stride(from: Int64(0), through: 6000, by: 100) {
            let n = s.allowance(nowMs: t, pending: 10)
            s.spend(n)
            if n > 0 { slow.append(t) }
        }
        XCTAssertEqual(slow, [0, 2000, 4000, 6000])
        // Nothing pending: nothing allowed.
        var e = MigrationPacer(rate: 100)
        XCTAssertEqual(e.allowance(nowMs: 0, pending: 0), 0)
    }

    // MARK: settle

    func testSettleTracker() {
        // A server of the first config: never out, never settles.
        var t = SettleTracker()
        XCTAssertNil(t.observe(available: true, nowMs: 0, settleMs: 5000, current: 0))
        // Goes out: marked, to settle when back.
        XCTAssertEqual(t.observe(available: false, nowMs: 100, settleMs: 5000, current: 0), .max)
        XCTAssertNil(t.observe(available: false, nowMs: 200, settleMs: 5000, current: .max))
        // Back: takes groups D after its return.
        XCTAssertEqual(t.observe(available: true, nowMs: 300, settleMs: 5000, current: .max), 5300)
        XCTAssertNil(t.observe(available: true, nowMs: 400, settleMs: 5000, current: 5300))
        // A server that was never available here (initial=unhealthy at start): no extra wait when it first comes up.
        var u = SettleTracker()
        XCTAssertNil(u.observe(available: false, nowMs: 0, settleMs: 5000, current: 0))
        XCTAssertNil(u.observe(available: true, nowMs: 1000, settleMs: 5000, current: 0))
        // Added by a reload (from = seen + D): keeps its time.
        var r = SettleTracker()
        XCTAssertNil(r.observe(available: true, nowMs: 0, settleMs: 5000, current: 5000))
    }
}
