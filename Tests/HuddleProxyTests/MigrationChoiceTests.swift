// The data path's side of migration: a new member of a misplaced group moves it at once and names the placement to
// close; a server a reload adds takes groups only after membership_settle; the Close frames a migration sends.
@testable import HuddleProxy
import HuddleBalancing
import HuddleConfig
import HuddleSys
import XCTest

final class MigrationChoiceTests: XCTestCase {
    static func configText(servers: Int, extra: String = "") -> String {
        let list = (1...servers).map { "    server 127.0.0.1:\(9100 + $0) name=s\($0);" }.joined(separator: "\n")
        return """
        upstream chat {
            balance hash;
            group_linger 30s;
        \(extra.contains("membership_settle") ? "" : "    membership_settle 5s;")
        \(extra)
        \(list)
        }
        server { listen 127.0.0.1:0; route /rooms/ { upstream chat; group_key path 2; } }
        """
    }

    static func runtime(_ servers: Int, extra: String = "", previous: RuntimeConfig? = nil) throws -> RuntimeConfig {
        try RuntimeConfig.build(ConfigParser.parse(text: configText(servers: servers, extra: extra), file: "m.conf"),
                                generation: (previous?.generation ?? 0) + 1, previous: previous, log: { _ in })
    }

    struct Joined {
        var server: String
        var evicted: UInt64?
        var placement: UInt64?
    }

    /// A member's place in its group, held until the test drops it.
    final class Held {
        var membership: GroupMembership?
        init(_ m: consuming GroupMembership?) { membership = m }
    }

    /// One member joins (the membership is kept in `keep` so it stays counted).
    func join(_ u: UpstreamRuntime, _ key: String, now: Int64, keep: inout [Held]) -> Joined? {
        var rng = FastRandom(seed: 1)
        var rr = SmoothRoundRobin(weights: u.servers.map(\.weight))
        let k = Array(key.utf8)
        guard var c = ServerChoice.choose(upstream: u, key: k, keyHash: StableHash.hash64(k), upgrade: true, excluded: [], nowMs: now,
                                          rng: &rng, roundRobin: &rr) else { return nil }
        let j = Joined(server: c.server.identity, evicted: c.evicted?.placement, placement: c.membership?.placement)
        keep.append(Held(c.membership.take()))
        return j
    }

    /// Keys the fifth server owns once it takes groups.
    func keysMovingToS5() -> [String] {
        let five = ConsistentHash(identities: ["s1", "s2", "s3", "s4", "s5"], weights: [1, 1, 1, 1, 1])
        return (0..<1000).map { "room\($0)" }.filter { five.owner(keyHash: StableHash.hash64($0), isEligible: { _ in true }) == 4 }
    }
    func keyMovingToS5() -> String { keysMovingToS5()[0] }

    func testAddedServerTakesGroupsOnlyAfterSettleAndThenAMisplacedGroupMovesWithItsNextMember() throws {
        let before = try Self.runtime(4)
        let key = keyMovingToS5()
        var members: [Held] = []
        let now = Sys.monotonicMs()
        let first = join(before.upstream(named: "chat")!, key, now: now, keep: &members)!
        _ = join(before.upstream(named: "chat")!, key, now: now, keep: &members)
        XCTAssertNotEqual(first.server, "s5")

        let after = try Self.runtime(5, previous: before)
        let u = after.upstream(named: "chat")!
        let s5 = u.servers.first { $0.identity == "s5" }!
        XCTAssertGreaterThan(s5.groupsFromMs.load(ordering: .relaxed), now + 4000, "a server a reload adds settles for membership_settle")
        XCTAssertEqual(before.upstream(named: "chat")!.servers[0].groupsFromMs.load(ordering: .relaxed), 0, "servers of the first config do not")
        let hash = StableHash.hash64(Array(key.utf8))
        XCTAssertEqual(u.groupOwner(keyHash: hash, nowMs: now).map { u.servers[$0].identity }, first.server, "not yet: still settling")
        XCTAssertEqual(u.lookup(key: Array(key.utf8), nowMs: now)?.identity, first.server)
        // A new group that s5 will own goes elsewhere while it settles.
        let fresh = join(u, keysMovingToS5()[1], now: now, keep: &members)
        XCTAssertNotNil(fresh)
        XCTAssertNotEqual(fresh?.server, "s5")
        let later = now + 6000
        XCTAssertEqual(u.groupOwner(keyHash: hash, nowMs: later).map { u.servers[$0].identity }, "s5", "settled")

        // Unmarked, the live group keeps its server: a member joins it there.
        XCTAssertEqual(join(u, key, now: later, keep: &members)?.server, first.server)
        // The control loop's scan marks it (the view changed); the next member moves it at once.
        let epoch = u.groups.bumpEpoch()
        let eligible = u.groupEligibility(nowMs: later)
        let marked = u.groups.scan(nowMs: later) { kh, server, placed, _ in
            let si = u.servers.firstIndex { $0.identity == server }
            return GroupPlacement.isMisplaced(server: si, serverEligible: si.map { eligible[$0] } ?? false,
                                              owner: u.hash.owner(keyHash: kh, isEligible: { eligible[$0] }), placedEpoch: placed, epoch: epoch)
        }
        // Both groups s5 owns now are misplaced: the old one, and the one placed elsewhere while s5 settled.
        XCTAssertEqual(Set(marked.map { String(decoding: $0.key, as: UTF8.self) }), [key, keysMovingToS5()[1]])
        let mover = join(u, key, now: later, keep: &members)!
        XCTAssertEqual(mover.server, "s5")
        XCTAssertEqual(mover.evicted, first.placement, "the old members are to be closed")
        XCTAssertEqual(u.groups.migrations, 1)
        let follower = join(u, key, now: later, keep: &members)!
        XCTAssertEqual(follower.server, "s5")
        XCTAssertNil(follower.evicted)
        XCTAssertEqual(u.groups.lookup(key: Array(key.utf8), keyHash: hash, nowMs: later)?.members, 2, "only the new placement's members count")
        // Old members leaving (their tunnels closed with 1012) change nothing.
        members.removeAll()
        XCTAssertEqual(u.groups.lookup(key: Array(key.utf8), keyHash: hash, nowMs: later)?.members, 0)
        XCTAssertEqual(u.groups.lookup(key: Array(key.utf8), keyHash: hash, nowMs: later)?.server, "s5")
    }

    func testKeepModeJoinsAMarkedGroupWhereItIs() throws {
        let before = try Self.runtime(4, extra: "rebalance keep;")
        let key = keyMovingToS5()
        var members: [Held] = []
        let first = join(before.upstream(named: "chat")!, key, now: 0, keep: &members)!
        let u = try Self.runtime(5, extra: "rebalance keep; membership_settle 0;", previous: before).upstream(named: "chat")!
        u.groups.bumpEpoch()
        XCTAssertEqual(u.groups.scan(nowMs: Sys.monotonicMs()) { _, _, _, _ in true }.count, 1)
        let next = join(u, key, now: Sys.monotonicMs(), keep: &members)!
        XCTAssertEqual(next.server, first.server)
        XCTAssertNil(next.evicted)
        XCTAssertEqual(u.groups.migrations, 0)
    }

    func testCloseFramesOfAMigration() {
        XCTAssertEqual(TunnelCloseReason.groupMoved.code, 1012)
        XCTAssertEqual(TunnelCloseReason.shutdown.code, 1001)
        XCTAssertEqual(closeFrame(code: 1012), [0x88, 0x02, 0x03, 0xF4])
        let masked = maskedCloseFrame(code: 1012, key: 0x1122_3344)
        XCTAssertEqual(masked, [0x88, 0x82, 0x11, 0x22, 0x33, 0x44, 0x03 ^ 0x11, 0xF4 ^ 0x22])
    }
}
