// Group migration with real processes: Huddle(s) in front of demo backends, 200 groups x 10 Python WebSocket members
// that come and go on their own and reconnect on Close 1012 after a small random delay (as the demo page does).
// Wholeness is judged from the backends' own view: which backend holds members of which chat room, sampled every 20 ms.
import Foundation
import Glibc
import HuddleDemo
import XCTest

final class GroupMigrationTests: HuddleTestCase {
    /// Under ThreadSanitizer (CI's third pass) every huddle is several times slower: a smaller population, the same
    /// assertions. Otherwise the 200 groups x 10 members asked for.
    static let underTSan = ProcessInfo.processInfo.environment["TSAN_OPTIONS"] != nil
    static let groupCount = underTSan ? 80 : 200
    static let members = underTSan ? 5 : 10
    static let token = "migrate-token"
    static var groupNames: [String] { (0..<groupCount).map { String(format: "g%03d", $0) } }
    /// Time allowances are multiplied by this under ThreadSanitizer (CI runs the suite once with it: every huddle is
    /// several times slower there).
    static let slack: Double = underTSan ? 3 : 1

    /// b1...bn, each a demo backend (chat rooms on /rooms/NAME/ws) on its own loopback port.
    static func startBackends(_ n: Int) throws -> [DemoBackend] {
        var started: [DemoBackend] = []
        do {
            for i in 1...n { started.append(try Harness.startBackend("b\(i)")) }
        } catch {
            for b in started { b.stop() }
            throw error
        }
        return started
    }

    static func config(_ servers: [DemoBackend], rate: Double, settle: String) -> String {
        let lines = servers.map { "    server 127.0.0.1:\($0.boundAddresses[0].port) name=\($0.name);" }.joined(separator: "\n")
        return config(serverLines: lines, rate: rate, settle: settle)
    }

    /// The same upstream with other `server` lines (a `resolve` one, say) and top-level directives before it (`resolver`).
    static func config(serverLines lines: String, preamble: String = "", rate: Double, settle: String) -> String {
        return """
        \(preamble)admin 127.0.0.1:{ADMIN} { token "\(token)"; }
        upstream chat {
            balance hash;
            rebalance migrate rate=\(rate);
            membership_settle \(settle);
            group_linger 5s;
            health_check /healthz interval=1s timeout=2s rise=2 fall=3;
        \(lines)
        }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream chat; group_key path 2; }
        }

        """
    }

    /// What one change did, as the report prints it.
    struct ChangeReport: CustomStringConvertible {
        var name: String
        var wholeAfter: Double
        var longestSplit: Double
        var splitGroup: String?
        var groupsSplit: Int
        var movedReconnects: Int
        var otherReconnects: Int
        var migrations: Int
        var description: String {
            "\(name): every group whole again after \(String(format: "%.2f", wholeAfter)) s; longest split \(String(format: "%.3f", longestSplit)) s"
                + " (\(splitGroup ?? "-")), \(groupsSplit) group(s) ever split; reconnects: \(movedReconnects) after Close 1012, \(otherReconnects) after other ends;"
                + " migrations counted by Huddle: \(migrations)"
        }
    }

    /// Waits until every group is whole on `expected` (backends' view) and, for each Huddle given, /api/groups shows no
    /// misplaced group. Returns the time it first held.
    private func waitConverged(_ watch: GroupWatch, _ expected: [String: String], huddles: [HuddleProcess], timeout: Double) -> Double? {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            guard let t = watch.waitUntilWhole(on: expected, timeout: deadline - monotonicSeconds()) else { return nil }
            if huddles.allSatisfy({ GroupAdmin.misplaced($0) == 0 }) { return t }
            usleep(100_000)
        }
        return nil
    }

    /// Only groups whose placement changed moved: every other group was seen on its one server only during [from, to].
    func assertOnlyMovedGroupsMoved(_ watch: GroupWatch, before: [String: String], after: [String: String], from: Double, to: Double,
                                    file: StaticString = #filePath, line: UInt = #line) {
        var strays: [String] = []
        for g in watch.groups where before[g] == after[g] {
            for c in watch.history(g, from: from, to: to) where !c.backends.isSubset(of: [before[g]!]) {
                strays.append("\(g) (owner \(before[g]!)) seen on \(c.backends.sorted())")
                break
            }
        }
        XCTAssertTrue(strays.isEmpty, "groups whose owner did not change moved: \(strays.prefix(10))", file: file, line: line)
    }

    /// Each moved group went from its old server to its new one once: only those two servers, and once it was whole on the
    /// new one it never had a member on the old one again.
    func assertMovedOnce(_ watch: GroupWatch, before: [String: String], after: [String: String], from: Double, to: Double,
                         file: StaticString = #filePath, line: UInt = #line) {
        var problems: [String] = []
        for g in watch.groups where before[g] != after[g] {
            let old = before[g]!, new = after[g]!
            var wholeOnNew = false
            for c in watch.history(g, from: from, to: to) {
                if !c.backends.isSubset(of: [old, new]) { problems.append("\(g) \(old)->\(new) seen on \(c.backends.sorted())"); break }
                if c.backends == [new] { wholeOnNew = true }
                if wholeOnNew && c.backends.contains(old) { problems.append("\(g) \(old)->\(new) went back to \(old)"); break }
            }
        }
        XCTAssertTrue(problems.isEmpty, "moved groups that did not move exactly once: \(problems.prefix(10))", file: file, line: line)
    }

    // MARK: one Huddle: add by reload, kill, drain

    func testMigrationMovesOnlyMisplacedGroupsAtThePaceAndEndsThemWhole() throws {
        let rate = 10.0
        let settle = 0.5
        let backends = try Self.startBackends(5)
        defer { for b in backends { b.stop() } }
        let names = backends.map(\.name)
        let groups = Self.groupNames
        let h = try HuddleProcess(config: Self.config(Array(backends[0..<4]), rate: rate, settle: "500ms"), workers: 2)
        let owners4 = hashOwners(groups, servers: Array(names[0..<4]))
        XCTAssertEqual(try WebSocketGroupTests.lookup(admin: h.adminURL, keys: groups.count, format: "g{:03d}"), groups.map { owners4[$0]! },
                       "Huddle places groups by the same pure function")

        let watch = GroupWatch(groups: groups, backends: backends)
        defer { watch.stop() }
        let churn = try ChurnClient(urls: ["ws://127.0.0.1:\(h.port)"], groups: Self.groupCount, members: Self.members)
        defer { churn.stop() }
        XCTAssertTrue(Harness.waitFor(30 * Self.slack) { churn.count("connected") >= Self.groupCount * Self.members * 3 / 4 },
                      "members connect: \(churn.status) \(churn.stderrText.suffix(1000))")
        guard watch.waitUntilWhole(on: owners4, timeout: 20 * Self.slack) != nil else {
            return XCTFail("groups not whole on their owners before any change: \(watch.misfits(owners4).prefix(10))")
        }
        XCTAssertEqual(GroupAdmin.migrationsTotal(h), 0, "nothing moves while nothing changes")
        var reports: [ChangeReport] = []

        // 1. A fifth backend, added by reload: only the groups it now owns move, at the pace, each once, whole.
        let owners5 = hashOwners(groups, servers: names)
        let moving = groups.filter { owners4[$0] != owners5[$0] }
        XCTAssertTrue((Self.groupCount / 10...Self.groupCount * 35 / 100).contains(moving.count), "about 1/5 of the groups change owner: \(moving.count)")
        let r0 = churn.reconnects
        let m0 = GroupAdmin.migrationsTotal(h)
        let t0 = monotonicSeconds()
        try GroupAdmin.reload(h, template: Self.config(backends, rate: rate, settle: "500ms"), workers: 2)
        // The migrations over time, for the pace.
        var counts: [(t: Double, total: Int, paced: Int)] = []
        var converged: Double? = nil
        let deadline = t0 + settle + Double(moving.count) / rate + 20 * Self.slack
        while monotonicSeconds() < deadline {
            let m = GroupAdmin.migration(h)
            counts.append((monotonicSeconds(), (m["migrations_total"] as? Int ?? 0) - m0, m["moved_since_change"] as? Int ?? 0))
            if counts.last!.total > 0, let t = watch.waitUntilWhole(on: owners5, timeout: 0.3), GroupAdmin.misplaced(h) == 0 {
                converged = t
                break
            }
            usleep(100_000)
        }
        guard let done = converged else {
            return XCTFail("after adding b5, groups not whole on their new owners: \(watch.misfits(owners5).prefix(10)); /api/groups \(GroupAdmin.groups(h, top: 5) ?? [:])")
        }
        assertOnlyMovedGroupsMoved(watch, before: owners4, after: owners5, from: t0, to: done)
        assertMovedOnce(watch, before: owners4, after: owners5, from: t0, to: done)
        let migrated = GroupAdmin.migrationsTotal(h) - m0
        XCTAssertLessThanOrEqual(migrated, moving.count, "no group moved twice (Huddle's count)")
        XCTAssertGreaterThanOrEqual(migrated, moving.count * 3 / 4, "the misplaced groups were migrated, not left to empty")
        let m = GroupAdmin.migration(h)
        let paced = m["moved_since_change"] as? Int ?? -1
        // The pace: moves the control loop started, from the first to the last, against the configured rate; a new member
        // of a misplaced group moves it at once, outside the pace.
        let pacedTimes = counts.enumerated().filter { $0.offset > 0 && $0.element.paced > counts[$0.offset - 1].paced }.map(\.element)
        var pacedRate = 0.0
        if let first = pacedTimes.first, let last = pacedTimes.last, last.t > first.t {
            pacedRate = Double(last.paced - first.paced) / (last.t - first.t)
        }
        let firstMove = counts.first { $0.total > 0 }?.t ?? t0
        print("migration pace: \(moving.count) groups changed owner; \(migrated) migrated in \(String(format: "%.2f", done - firstMove)) s after the first move"
              + " (\(String(format: "%.2f", firstMove - t0)) s after the reload; settle \(settle) s), \(paced) by the paced control loop"
              + " (measured \(String(format: "%.1f", pacedRate))/s against rate=\(rate)), \(migrated - paced) at once by a joining member")
        XCTAssertLessThanOrEqual(Double(paced), rate * (done - t0) + 3, "paced migrations never outrun rate=\(rate)")
        if pacedTimes.count >= 5 { XCTAssertLessThanOrEqual(pacedRate, rate * 1.5, "the paced rate") }
        XCTAssertGreaterThanOrEqual(firstMove - t0, settle * 0.8, "the new server waits membership_settle before taking groups")
        usleep(800_000)   // stragglers of this change reconnect before the next one starts: counted here
        let r1 = churn.reconnects
        let split1 = watch.longestSplit(from: t0, to: done)
        reports.append(ChangeReport(name: "add b5 by reload", wholeAfter: done - t0, longestSplit: split1.seconds, splitGroup: split1.group,
                                    groupsSplit: split1.groupsSplit, movedReconnects: r1.moved - r0.moved, otherReconnects: r1.other - r0.other,
                                    migrations: migrated))

        // 2. b2 killed: its groups move to their next choice, every other group stays.
        let survivors = names.filter { $0 != "b2" }
        let ownersKill = hashOwners(groups, servers: survivors)
        let m1 = GroupAdmin.migrationsTotal(h)
        let t1 = monotonicSeconds()
        backends[1].stop()
        guard let done2 = waitConverged(watch, ownersKill, huddles: [h], timeout: 25 * Self.slack) else {
            return XCTFail("after killing b2, groups not whole: \(watch.misfits(ownersKill).prefix(10))")
        }
        assertOnlyMovedGroupsMoved(watch, before: owners5, after: ownersKill, from: t1, to: done2)
        usleep(800_000)
        let r2 = churn.reconnects
        let split2 = watch.longestSplit(from: t1, to: done2)
        reports.append(ChangeReport(name: "kill b2", wholeAfter: done2 - t1, longestSplit: split2.seconds, splitGroup: split2.group,
                                    groupsSplit: split2.groupsSplit, movedReconnects: r2.moved - r1.moved, otherReconnects: r2.other - r1.other,
                                    migrations: GroupAdmin.migrationsTotal(h) - m1))

        // 3. b3 drained: its groups migrate at the pace; the drain is complete when its last tunnel closed.
        let left = survivors.filter { $0 != "b3" }
        let ownersDrain = hashOwners(groups, servers: left)
        let onB3 = groups.filter { ownersKill[$0] == "b3" }.count
        let m2 = GroupAdmin.migrationsTotal(h)
        let t2 = monotonicSeconds()
        let drained = try Admin.request(h, "POST", "/api/servers/drain?upstream=chat&server=b3", token: Self.token)
        XCTAssertEqual(drained.status, 200, drained.body.text)
        guard let done3 = waitConverged(watch, ownersDrain, huddles: [h], timeout: Double(onB3) / rate + 20 * Self.slack) else {
            return XCTFail("after draining b3, groups not whole: \(watch.misfits(ownersDrain).prefix(10))")
        }
        assertOnlyMovedGroupsMoved(watch, before: ownersKill, after: ownersDrain, from: t2, to: done3)
        assertMovedOnce(watch, before: ownersKill, after: ownersDrain, from: t2, to: done3)
        XCTAssertTrue(Harness.waitFor(5 * Self.slack) {
            let s = Admin.server(h, "chat", "127.0.0.1:\(backends[2].boundAddresses[0].port)")
            return s?["state"] as? String == "draining" && s?["drain_complete"] as? Bool == true && s?["tunnels"] as? Int == 0
        }, "b3 stays draining, its drain complete once its last tunnel closed: \(Admin.server(h, "chat", "127.0.0.1:\(backends[2].boundAddresses[0].port)") ?? [:])")
        XCTAssertTrue(h.log.contains("server b3: drain complete"), "the end of the drain is logged")
        usleep(800_000)
        let r3 = churn.reconnects
        let split3 = watch.longestSplit(from: t2, to: done3)
        reports.append(ChangeReport(name: "drain b3 (\(onB3) groups)", wholeAfter: done3 - t2, longestSplit: split3.seconds, splitGroup: split3.group,
                                    groupsSplit: split3.groupsSplit, movedReconnects: r3.moved - r2.moved, otherReconnects: r3.other - r2.other,
                                    migrations: GroupAdmin.migrationsTotal(h) - m2))

        let metrics = try Harness.curl(["\(h.adminURL)/metrics"]).text
        XCTAssertTrue(metrics.contains("huddle_group_migrations_total{upstream=\"chat\"} \(GroupAdmin.migrationsTotal(h))"), "the counter in /metrics")
        churn.stop()
        XCTAssertEqual(churn.count("connect_errors"), 0, "members always found a server: \(churn.status)")
        print("migration test (1 huddle, 2 workers, \(Self.groupCount) groups x \(Self.members) members, \(watch.samples) samples of the backends):")
        for r in reports { print("  " + r.description) }
    }

    // MARK: three replicas with no shared state

    func testThreeReplicasPlaceAlikeAndHealSplitsAfterChanges() throws {
        let rate = 20.0
        let settle = 1.0
        let backends = try Self.startBackends(5)
        defer { for b in backends { b.stop() } }
        let names = backends.map(\.name)
        let groups = Self.groupNames
        let template4 = Self.config(Array(backends[0..<4]), rate: rate, settle: "1s")
        let replicas = try (0..<3).map { _ in try HuddleProcess(config: template4, workers: 1) }
        let owners4 = hashOwners(groups, servers: Array(names[0..<4]))
        for r in replicas {
            XCTAssertEqual(try WebSocketGroupTests.lookup(admin: r.adminURL, keys: groups.count, format: "g{:03d}"), groups.map { owners4[$0]! },
                           "replica \(r.port) places like the others")
        }
        let watch = GroupWatch(groups: groups, backends: backends)
        defer { watch.stop() }
        // Members of each group join through any replica, as behind an L4 balancer.
        let churn = try ChurnClient(urls: replicas.map { "ws://127.0.0.1:\($0.port)" }, groups: Self.groupCount, members: Self.members, seed: 2)
        defer { churn.stop() }
        XCTAssertTrue(Harness.waitFor(30 * Self.slack) { churn.count("connected") >= Self.groupCount * Self.members * 3 / 4 },
                      "members connect: \(churn.status) \(churn.stderrText.suffix(1000))")
        let tRamp = monotonicSeconds()
        guard watch.waitUntilWhole(on: owners4, timeout: 20 * Self.slack) != nil else {
            return XCTFail("groups not whole across replicas before any change: \(watch.misfits(owners4).prefix(10))")
        }
        // Steady state: 3 replicas, no shared state, and still no group ever split.
        usleep(1_000_000)
        let steady = watch.longestSplit(from: tRamp + 0.5, to: monotonicSeconds())
        XCTAssertEqual(steady.groupsSplit, 0, "a group split while nothing changed: \(steady)")
        var reports: [ChangeReport] = []

        // 1. b5 added: the three replicas reload a few hundred milliseconds apart (as a deploy tool would).
        let owners5 = hashOwners(groups, servers: names)
        let moving = groups.filter { owners4[$0] != owners5[$0] }
        let template5 = Self.config(backends, rate: rate, settle: "1s")
        let r0 = churn.reconnects
        let m0 = replicas.map(GroupAdmin.migrationsTotal).reduce(0, +)
        let t0 = monotonicSeconds()
        for (i, r) in replicas.enumerated() {
            if i > 0 { usleep(300_000) }
            try GroupAdmin.reload(r, template: template5, workers: 1)
        }
        let spread = monotonicSeconds() - t0
        let budget = spread + settle + Double(moving.count) / rate
        guard let done = waitConverged(watch, owners5, huddles: replicas, timeout: budget + 15 * Self.slack) else {
            return XCTFail("after adding b5 to all replicas, groups not whole: \(watch.misfits(owners5).prefix(10))")
        }
        XCTAssertLessThanOrEqual(done - t0, budget + 5 * Self.slack, "whole again within the reload spread + membership_settle + migration time (\(budget) s) and slack")
        assertOnlyMovedGroupsMoved(watch, before: owners4, after: owners5, from: t0, to: done)
        usleep(800_000)   // stragglers of this change reconnect before the next one starts: counted here
        let r1 = churn.reconnects
        let split1 = watch.longestSplit(from: t0, to: done)
        reports.append(ChangeReport(name: "add b5 (reloads spread over \(String(format: "%.2f", spread)) s, \(moving.count) groups change owner)",
                                    wholeAfter: done - t0, longestSplit: split1.seconds, splitGroup: split1.group, groupsSplit: split1.groupsSplit,
                                    movedReconnects: r1.moved - r0.moved, otherReconnects: r1.other - r0.other,
                                    migrations: replicas.map(GroupAdmin.migrationsTotal).reduce(0, +) - m0))

        // 2. b2 killed: each replica finds out by itself (its tunnels end, connects fail, health checks fail).
        let ownersKill = hashOwners(groups, servers: names.filter { $0 != "b2" })
        let m1 = replicas.map(GroupAdmin.migrationsTotal).reduce(0, +)
        let t1 = monotonicSeconds()
        backends[1].stop()
        guard let done2 = waitConverged(watch, ownersKill, huddles: replicas, timeout: 25 * Self.slack) else {
            return XCTFail("after killing b2, groups not whole: \(watch.misfits(ownersKill).prefix(10))")
        }
        assertOnlyMovedGroupsMoved(watch, before: owners5, after: ownersKill, from: t1, to: done2)
        XCTAssertLessThanOrEqual(done2 - t1, 10 * Self.slack, "whole again within the health checks' fall time + reconnects and slack")
        usleep(800_000)
        let r2 = churn.reconnects
        let split2 = watch.longestSplit(from: t1, to: done2)
        reports.append(ChangeReport(name: "kill b2", wholeAfter: done2 - t1, longestSplit: split2.seconds, splitGroup: split2.group,
                                    groupsSplit: split2.groupsSplit, movedReconnects: r2.moved - r1.moved, otherReconnects: r2.other - r1.other,
                                    migrations: replicas.map(GroupAdmin.migrationsTotal).reduce(0, +) - m1))
        churn.stop()
        XCTAssertEqual(churn.count("connect_errors"), 0, "members always found a server: \(churn.status)")
        print("replica test (3 huddles, 1 worker each, \(Self.groupCount) groups x \(Self.members) members through any replica, \(watch.samples) samples):")
        for r in reports { print("  " + r.description) }
    }
}
