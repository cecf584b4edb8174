// The migration driver as the process wires it (Proxy.attachControlLoop), the control loop driven on the test thread:
// after a reload adds a server it waits membership_settle, then moves exactly the groups the new server owns, at the
// configured rate, posting each old placement to the workers once; a drain moves the drained server's groups.
@testable import HuddleProxy
import HuddleBalancing
import HuddleConfig
import HuddleIO
import HuddleSys
import HuddleSync
import XCTest

final class MigrationDriverTests: XCTestCase {
    static func configText(servers: Int) -> String {
        let list = (1...servers).map { "    server 127.0.0.1:\(9400 + $0) name=s\($0);" }.joined(separator: "\n")
        return """
        error_log stderr level=error;
        upstream chat {
            balance hash;
            rebalance migrate rate=20;
            membership_settle 300ms;
        \(list)
        }
        server { listen 127.0.0.1:0; route /rooms/ { upstream chat; group_key path 2; } }
        """
    }

    final class Held {
        var membership: GroupMembership?
        init(_ m: consuming GroupMembership?) { membership = m }
    }

    @discardableResult
    private func run(_ loop: EventLoop, _ seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Sys.monotonicMs() + Int64(seconds * 1000)
        while Sys.monotonicMs() < deadline {
            if condition() { return true }
            loop.runOnce(maxWaitMs: 10)
        }
        return condition()
    }

    func testAddedServerSettlesThenOnlyItsGroupsMoveAtTheRateEachOnce() throws {
        let proxy = try Proxy(config: ConfigParser.parse(text: Self.configText(servers: 4), file: "m.conf"))
        let loop = try EventLoop(id: -1)
        // The workers' side, played here: every posted batch of evicted placements, with when it came.
        let posted = Locked<[(ms: Int64, placements: Set<UInt64>)]>([])
        proxy.migrator.add(loop: loop) { p in posted.withLock { $0.append((Sys.monotonicMs(), p)) } }
        proxy.attachControlLoop(loop)
        let u4 = proxy.runtime.upstream(named: "chat")!
        // 100 groups of 2 members.
        var members: [Held] = []
        var placements: [String: UInt64] = [:]
        var rng = FastRandom(seed: 3)
        for i in 0..<100 {
            let key = Array("room\(i)".utf8)
            for _ in 0..<2 {
                var rr = SmoothRoundRobin(weights: u4.servers.map(\.weight))
                var c = ServerChoice.choose(upstream: u4, key: key, keyHash: StableHash.hash64(key), upgrade: true, excluded: [],
                                            nowMs: Sys.monotonicMs(), rng: &rng, roundRobin: &rr)!
                placements["room\(i)"] = c.membership?.placement
                members.append(Held(c.membership.take()))
            }
        }
        run(loop, 0.3) { false }
        XCTAssertTrue(posted.withLock { $0.isEmpty }, "nothing moves while nothing changes")

        let five = ConsistentHash(identities: ["s1", "s2", "s3", "s4", "s5"], weights: [1, 1, 1, 1, 1])
        let moving = Set((0..<100).map { "room\($0)" }.filter { five.owner(keyHash: StableHash.hash64($0), isEligible: { _ in true }) == 4 })
        XCTAssertGreaterThan(moving.count, 10)
        let reloadMs = Sys.monotonicMs()
        guard case .success = proxy.reload(try ConfigParser.parse(text: Self.configText(servers: 5), file: "m.conf")) else { return XCTFail("reload") }
        let u = proxy.runtime.upstream(named: "chat")!
        XCTAssertTrue(run(loop, 10) { posted.withLock { $0.flatMap(\.placements).count } >= moving.count }, "the moves were posted")
        run(loop, 0.3) { false }
        let batches = posted.withLock { $0 }
        let evicted = batches.flatMap(\.placements)
        XCTAssertEqual(evicted.count, moving.count, "each moved once")
        XCTAssertEqual(Set(evicted), Set(moving.map { placements[$0]! }), "exactly the groups the new server owns")
        XCTAssertGreaterThanOrEqual(batches[0].ms - reloadMs, 280, "membership_settle (300 ms) first")
        // 20 per second: one at once, then one every 50 ms.
        let span = Double(batches.last!.ms - batches[0].ms) / 1000
        let rate = Double(moving.count - 1) / span
        XCTAssertEqual(rate, 20, accuracy: 6, "moves per second: \(moving.count) in \(span) s")
        XCTAssertEqual(u.groups.migrations, moving.count)
        XCTAssertEqual(u.groups.misplaced(nowMs: Sys.monotonicMs(), limit: 0).count, 0)
        let status = proxy.migrationStatus(upstream: "chat")
        XCTAssertEqual(status?.misplacedAtChange, moving.count)
        XCTAssertEqual(status?.movedSinceChange, moving.count)
        XCTAssertEqual(status?.pending, 0)
        for key in moving {
            let k = Array(key.utf8)
            XCTAssertEqual(u.groups.lookup(key: k, keyHash: StableHash.hash64(k), nowMs: Sys.monotonicMs())?.server, "s5", key)
        }

        // Drain s1: its groups (those still with members) move; nothing else does.
        posted.withLock { $0.removeAll() }
        let onS1 = (0..<100).map { "room\($0)" }.filter { !moving.contains($0) && u.lookup(key: Array($0.utf8), nowMs: Sys.monotonicMs())?.identity == "s1" }
        XCTAssertEqual(try proxy.adminAction(.drain, upstream: "chat", server: "s1").get(), .draining)
        XCTAssertTrue(run(loop, 10) { posted.withLock { $0.flatMap(\.placements).count } >= onS1.count })
        run(loop, 0.3) { false }
        XCTAssertEqual(Set(posted.withLock { $0.flatMap(\.placements) }), Set(onS1.map { placements[$0]! }))
        XCTAssertTrue(u.servers[0].drainComplete, "no tunnel or request on the drained server")
        members.removeAll()
        proxy.shutdown(timeoutMs: 0)
    }
}
