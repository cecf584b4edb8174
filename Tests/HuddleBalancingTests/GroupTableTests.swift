// The group table: pinning, moves only when a server becomes unusable, linger and expiry, reports, and concurrency.

import Foundation
import HuddleBalancing
import Synchronization
import XCTest

final class GroupTableTests: XCTestCase {
    static func key(_ s: String) -> (bytes: [UInt8], hash: UInt64) { (Array(s.utf8), StableHash.hash64(s)) }

    func join(_ table: GroupTable, _ name: String, at now: Int64 = 0, usable: (String) -> Bool = { _ in true },
              place: () -> String?) -> GroupTable.Member? {
        let k = Self.key(name)
        return table.join(key: k.bytes, keyHash: k.hash, nowMs: now, isUsable: usable, place: place)
    }

    func leave(_ table: GroupTable, _ name: String, server: String, at now: Int64 = 0, linger: Int64 = 5_000) {
        let k = Self.key(name)
        table.leave(key: k.bytes, keyHash: k.hash, server: server, nowMs: now, lingerMs: linger)
    }

    func lookup(_ table: GroupTable, _ name: String, at now: Int64 = 0) -> (server: String, members: Int)? {
        let k = Self.key(name)
        return table.lookup(key: k.bytes, keyHash: k.hash, nowMs: now)
    }

    func testFirstMemberPlacesLaterMembersFollow() {
        let table = GroupTable()
        var placements = 0
        let first = join(table, "room-1") { placements += 1; return "a" }
        XCTAssertEqual(first?.server, "a")
        XCTAssertEqual(first?.members, 1)
        XCTAssertEqual(first?.isNewGroup, true)
        let second = join(table, "room-1") { placements += 1; return "b" }
        XCTAssertEqual(second?.server, "a")
        XCTAssertEqual(second?.members, 2)
        XCTAssertEqual(second?.isNewGroup, false)
        XCTAssertEqual(placements, 1)
        XCTAssertEqual(lookup(table, "room-1")?.server, "a")
        XCTAssertEqual(lookup(table, "room-1")?.members, 2)
        XCTAssertNil(lookup(table, "room-2"))
        XCTAssertNil(join(table, "room-2") { nil }, "nothing to place on")
        XCTAssertNil(lookup(table, "room-2"))
    }

    /// A group placed by the hash (or spilled by bounded loads) stays put when a new server becomes the key's owner.
    func testPlacedGroupNeverMovesWhenTheHashOwnerChanges() {
        let table = GroupTable()
        let before = ConsistentHash(identities: (0..<10).map { "s\($0)" }, weights: Array(repeating: 1, count: 10))
        let after = ConsistentHash(identities: (0..<11).map { "s\($0)" }, weights: Array(repeating: 1, count: 11))
        // Keys that the 11th server takes over, so their owner really changes.
        let moving = (0..<2_000).map { "group-\($0)" }.filter {
            after.owner(keyHash: StableHash.hash64($0), isEligible: { _ in true }) == 10
        }
        XCTAssertGreaterThan(moving.count, 100)
        var placedOn: [String: String] = [:]
        for name in moving {
            let k = Self.key(name)
            placedOn[name] = join(table, name) { before.owner(keyHash: k.hash, isEligible: { _ in true }).map { "s\($0)" } }?.server
        }
        for name in moving {
            let k = Self.key(name)
            for _ in 0..<3 {
                let member = join(table, name) { after.owner(keyHash: k.hash, isEligible: { _ in true }).map { "s\($0)" } }
                XCTAssertEqual(member?.server, placedOn[name])
                XCTAssertNotEqual(member?.server, "s10")
            }
        }
        // A bounded-load spill is just as sticky: the owner is overloaded at first, then idle, and still not chosen.
        let hash = ConsistentHash(identities: ["x", "y", "z"], weights: [1, 1, 1])
        let k = Self.key("spilled")
        let owner = hash.owner(keyHash: k.hash, isEligible: { _ in true })!
        let spill = join(table, "spilled") {
            hash.place(keyHash: k.hash, factor: 1.25, isEligible: { _ in true }, load: { $0 == owner ? 50 : 0 })
                .map { hash.identities[$0] }
        }
        XCTAssertNotEqual(spill?.server, hash.identities[owner])
        let later = join(table, "spilled") {
            hash.place(keyHash: k.hash, factor: 1.25, isEligible: { _ in true }, load: { _ in 0 }).map { hash.identities[$0] }
        }
        XCTAssertEqual(later?.server, spill?.server)
    }

    func testUnusableServerMovesTheGroupAndStragglersLeavingAreIgnored() {
        let table = GroupTable()
        _ = join(table, "room") { "a" }
        _ = join(table, "room") { "a" }
        let moved = join(table, "room", usable: { $0 != "a" }) { "b" }
        XCTAssertEqual(moved?.server, "b")
        XCTAssertEqual(moved?.members, 1)
        XCTAssertEqual(moved?.isNewGroup, true)
        XCTAssertEqual(moved?.previousServer, "a")
        leave(table, "room", server: "a") // a member still on the old server disconnects
        XCTAssertEqual(lookup(table, "room")?.server, "b")
        XCTAssertEqual(lookup(table, "room")?.members, 1)
        // If nothing can take it, the group is left as it was.
        XCTAssertNil(join(table, "room", usable: { _ in false }) { nil })
        XCTAssertEqual(lookup(table, "room")?.members, 1)
    }

    func testLingerKeepsTheServerThenExpires() {
        let table = GroupTable()
        _ = join(table, "room", at: 0) { "a" }
        leave(table, "room", server: "a", at: 1_000, linger: 5_000)
        XCTAssertEqual(lookup(table, "room", at: 1_000)?.members, 0)
        XCTAssertEqual(table.lingering(nowMs: 1_000), 1)
        XCTAssertEqual(table.totals(nowMs: 1_000).groups, 0)

        // A reconnect within the linger time returns to the same server, whatever place() would say now.
        let back = join(table, "room", at: 5_999) { "b" }
        XCTAssertEqual(back?.server, "a")
        XCTAssertEqual(back?.isNewGroup, false)
        leave(table, "room", server: "a", at: 6_000, linger: 5_000)
        XCTAssertNotNil(lookup(table, "room", at: 10_999))
        XCTAssertNil(lookup(table, "room", at: 11_000), "expired at nowMs + lingerMs")

        // An expired group is a new group.
        let fresh = join(table, "room", at: 11_000) { "b" }
        XCTAssertEqual(fresh?.server, "b")
        XCTAssertEqual(fresh?.isNewGroup, true)
        XCTAssertNil(fresh?.previousServer)
    }

    func testSweepDropsOnlyExpiredGroupsAndZeroLingerDropsAtOnce() {
        let table = GroupTable(shards: 4)
        for i in 0..<100 { _ = join(table, "g\(i)") { "a" } }
        for i in 0..<50 { leave(table, "g\(i)", server: "a", at: 0, linger: i < 25 ? 1_000 : 10_000) }
        table.sweep(nowMs: 5_000)
        XCTAssertEqual(table.lingering(nowMs: 0), 25, "the 25 short-lingering groups are gone even as seen from before")
        XCTAssertEqual(table.totals(nowMs: 5_000).groups, 50)
        leave(table, "g99", server: "a", linger: 0)
        XCTAssertNil(lookup(table, "g99"))
        XCTAssertEqual(table.totals(nowMs: 0).groups, 49)
    }

    func testTopAndTotals() {
        let table = GroupTable()
        let sizes = ["b": 3, "a": 3, "c": 5, "d": 1, "e": 2]
        for (name, size) in sizes {
            for _ in 0..<size { _ = join(table, name, at: 7) { name == "c" ? "s2" : "s1" } }
        }
        _ = join(table, "gone") { "s1" }
        leave(table, "gone", server: "s1", linger: 60_000)

        let top = table.top(4, nowMs: 10)
        XCTAssertEqual(top.map { String(decoding: $0.key, as: UTF8.self) }, ["c", "a", "b", "e"])
        XCTAssertEqual(top.map(\.members), [5, 3, 3, 2])
        XCTAssertEqual(top.first?.server, "s2")
        XCTAssertEqual(top.first?.sinceMs, 7)
        XCTAssertEqual(table.top(100, nowMs: 10).count, 5, "lingering groups are not listed")
        XCTAssertTrue(table.top(0, nowMs: 10).isEmpty)

        let totals = table.totals(nowMs: 10)
        XCTAssertEqual(totals.groups, 5)
        XCTAssertEqual(totals.members, 14)
        XCTAssertEqual(totals.perServer["s1"]?.groups, 4)
        XCTAssertEqual(totals.perServer["s1"]?.members, 9)
        XCTAssertEqual(totals.perServer["s2"]?.groups, 1)
        XCTAssertEqual(totals.perServer["s2"]?.members, 5)
    }

    /// Eight threads join the same 200 groups in the same order at the same time, each thread's place() proposing its
    /// own server, so first members race on every group: every member of a group must still land on one server,
    /// place() must run once per group, and no join may be lost.
    func testConcurrentFirstMembersAgree() {
        let table = GroupTable(shards: 4)
        let threads = 8
        let joinsPerThread = 400
        let groups = (0..<200).map { "room-\($0)" }
        let results = Mutex<[String: Set<String>]>([:])
        let placements = Atomic<Int>(0)
        let ready = Atomic<Int>(0)
        let done = DispatchGroup()
        for t in 0..<threads {
            done.enter()
            let thread = Thread {
                var seen: [String: Set<String>] = [:]
                // Start together, so that first members really race.
                ready.add(1, ordering: .acquiringAndReleasing)
                while ready.load(ordering: .acquiring) < threads {}
                for j in 0..<joinsPerThread {
                    let name = groups[j % groups.count]
                    let k = Self.key(name)
                    let member = table.join(key: k.bytes, keyHash: k.hash, nowMs: 0, isUsable: { _ in true }) {
                        placements.add(1, ordering: .relaxed)
                        // Hand the cores to the other threads mid-placement: a join that placed outside the lock
                        // would let them place the same group too. (Widens the race window; waits for nothing.)
                        for _ in 0..<20 { sched_yield() }
                        return "server-\(t)"
                    }
                    seen[name, default: []].insert(member!.server)
                }
                results.withLock { all in
                    for (name, servers) in seen { all[name, default: []].formUnion(servers) }
                }
                done.leave()
            }
            thread.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(placements.load(ordering: .relaxed), groups.count)
        let all = results.withLock { $0 }
        XCTAssertEqual(all.count, groups.count)
        for (name, servers) in all { XCTAssertEqual(servers.count, 1, "\(name) split over \(servers)") }
        let totals = table.totals(nowMs: 0)
        XCTAssertEqual(totals.members, threads * joinsPerThread)
        XCTAssertEqual(totals.groups, groups.count)
    }
}
