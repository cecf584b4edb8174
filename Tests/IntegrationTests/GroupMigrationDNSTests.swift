// Group migration when the fifth backend is found through DNS rather than written into a reload: the Kubernetes
// headless-service pattern (one A record per pod, every pod on the same port of its own loopback address, dnsmasq with
// TTL 1 s), the same 200 groups x 10 churning members, the same assertions as the reload case.
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

extension GroupMigrationTests {
    func testAFifthBackendFoundThroughDNSMovesOnlyItsGroupsAtThePace() throws {
        let rate = 10.0
        let settle = 0.5
        let port = Harness.freePort()
        let ips = (2...6).map { "127.0.0.\($0)" }
        var backends: [DemoBackend] = []
        defer { for b in backends { b.stop() } }
        for (i, ip) in ips.enumerated() {
            backends.append(try DemoBackend.start(DemoBackendOptions(name: "b\(i + 1)", listen: [SocketAddress(ip: ip, port: port)!])))
        }
        // A discovered server is named IP:PORT, and that name is what the placement function hashes (docs/HASHING.md).
        let identities = ips.map { "\($0):\(port)" }
        let backendOf = Dictionary(uniqueKeysWithValues: zip(identities, backends.map(\.name)))
        let service = "chat.ns.svc.cluster.local"
        let dns = try DNSMasq(hosts: ips[0..<4].map { ($0, service) })
        defer { dns.stop() }
        let template = Self.config(serverLines: "    server \(service):\(port) resolve;", preamble: "resolver 127.0.0.1:\(dns.port);\n",
                                   rate: rate, settle: "500ms")
        let h = try HuddleProcess(config: template, workers: 2)
        let groups = Self.groupNames
        let placed4 = hashOwners(groups, servers: Array(identities[0..<4]))
        let owners4 = placed4.mapValues { backendOf[$0]! }
        XCTAssertEqual(try WebSocketGroupTests.lookup(admin: h.adminURL, keys: groups.count, format: "g{:03d}"), groups.map { placed4[$0]! },
                       "Huddle places groups by the same pure function, over the discovered servers' names; log:\n\(h.log.suffix(2000))")

        let watch = GroupWatch(groups: groups, backends: backends)
        defer { watch.stop() }
        let churn = try ChurnClient(urls: ["ws://127.0.0.1:\(h.port)"], groups: Self.groupCount, members: Self.members, seed: 3)
        defer { churn.stop() }
        XCTAssertTrue(Harness.waitFor(30 * Self.slack) { churn.count("connected") >= Self.groupCount * Self.members * 3 / 4 },
                      "members connect: \(churn.status) \(churn.stderrText.suffix(1000))")
        guard watch.waitUntilWhole(on: owners4, timeout: 20 * Self.slack) != nil else {
            return XCTFail("groups not whole on their owners before any change: \(watch.misfits(owners4).prefix(10))")
        }
        XCTAssertEqual(GroupAdmin.migrationsTotal(h), 0, "nothing moves while nothing changes (DNS answers the same 4 every second)")

        // The fifth A record: only the groups it now owns move, at the pace, each once, whole.
        let placed5 = hashOwners(groups, servers: identities)
        let owners5 = placed5.mapValues { backendOf[$0]! }
        let moving = groups.filter { owners4[$0] != owners5[$0] }
        XCTAssertTrue(moving.allSatisfy { owners5[$0] == "b5" }, "a server added only takes groups")
        // About 1/5 change owner. The names hash with a random port, so unlike the reload case (fixed names) the count
        // varies from run to run: 1/5 is checked on 10,000 keys (standard deviation 0.4%), the groups' own count within
        // 4.5 standard deviations of a binomial (fails 1 run in 90,000; the reload case's 8...28 would fail 1 in 170 for 80 groups).
        let keys = (0..<10_000).map { "k\($0)" }
        let (k4, k5) = (hashOwners(keys, servers: Array(identities[0..<4])), hashOwners(keys, servers: identities))
        let share = Double(keys.filter { k4[$0] != k5[$0] }.count) / Double(keys.count)
        XCTAssertEqual(share, 0.2, accuracy: 0.02, "a fifth server takes about 1/5 of the keys")
        let expected = Double(Self.groupCount) / 5, sd = (Double(Self.groupCount) * 0.2 * 0.8).squareRoot()
        XCTAssertLessThanOrEqual(abs(Double(moving.count) - expected), 4.5 * sd, "about 1/5 of the groups change owner: \(moving.count)")
        XCTAssertFalse(moving.isEmpty, "some group changes owner")
        let r0 = churn.reconnects
        let m0 = GroupAdmin.migrationsTotal(h)
        let t0 = monotonicSeconds()
        try dns.setHosts(ips.map { ($0, service) })
        // The migrations over time, for the pace; when Huddle first showed the new server, and whether it was seen
        // settling (the migration status is the control loop's, up to a tick older than the server list).
        var counts: [(t: Double, total: Int, paced: Int)] = []
        var seen: (t: Double, total: Int)? = nil
        var sawSettling = false
        var converged: Double? = nil
        let deadline = t0 + 2.5 * Self.slack + settle + Double(moving.count) / rate + 20 * Self.slack
        while monotonicSeconds() < deadline {
            let g = GroupAdmin.groups(h) ?? [:]
            let now = monotonicSeconds()
            let m = g["migration"] as? [String: Any] ?? [:]
            let total = (m["migrations_total"] as? Int ?? m0) - m0
            counts.append((now, total, m["moved_since_change"] as? Int ?? 0))
            if seen == nil, let servers = (g["totals"] as? [String: Any])?["servers"] as? [String: Any], servers[identities[4]] != nil {
                seen = (now, total)
            }
            if total == 0 && (m["settling"] as? [[String: Any]] ?? []).contains(where: { $0["server"] as? String == identities[4] }) {
                sawSettling = true
            }
            if total > 0, let t = watch.waitUntilWhole(on: owners5, timeout: 0.3), GroupAdmin.misplaced(h) == 0 {
                converged = t
                break
            }
            usleep(50_000)
        }
        guard let found = seen else {
            return XCTFail("Huddle never showed \(identities[4]) from DNS; log:\n\(h.log.suffix(2000))")
        }
        guard let done = converged else {
            return XCTFail("after the fifth A record, groups not whole on their new owners: \(watch.misfits(owners5).prefix(10)); /api/groups \(GroupAdmin.groups(h, top: 5) ?? [:])")
        }
        XCTAssertLessThanOrEqual(found.t - t0, 2.5 * Self.slack, "the new A record is seen within the TTL (1 s) + 1 s")
        XCTAssertTrue(sawSettling, "the discovered server first waits membership_settle, and is shown settling")
        XCTAssertEqual(found.total, 0, "no group moved before the new server was settled")
        assertOnlyMovedGroupsMoved(watch, before: owners4, after: owners5, from: t0, to: done)
        assertMovedOnce(watch, before: owners4, after: owners5, from: t0, to: done)
        let migrated = GroupAdmin.migrationsTotal(h) - m0
        XCTAssertLessThanOrEqual(migrated, moving.count, "no group moved twice (Huddle's count)")
        XCTAssertGreaterThanOrEqual(migrated, moving.count * 3 / 4, "the misplaced groups were migrated, not left to empty")
        let paced = GroupAdmin.migration(h)["moved_since_change"] as? Int ?? -1
        // The pace, as in the reload case: the moves the control loop started, from the first to the last, against rate=;
        // a new member of a misplaced group moves it at once, outside the pace.
        let pacedTimes = counts.enumerated().filter { $0.offset > 0 && $0.element.paced > counts[$0.offset - 1].paced }.map(\.element)
        var pacedRate = 0.0
        if let first = pacedTimes.first, let last = pacedTimes.last, last.t > first.t {
            pacedRate = Double(last.paced - first.paced) / (last.t - first.t)
        }
        let firstMove = counts.first { $0.total > 0 }?.t ?? t0
        print("DNS migration pace: \(moving.count) groups changed owner (\(String(format: "%.1f", share * 100))% of 10,000 keys); b5 (\(identities[4])) seen \(String(format: "%.2f", found.t - t0)) s after"
              + " the A record was added\(sawSettling ? ", shown settling" : ""); first move \(String(format: "%.2f", firstMove - found.t)) s after that"
              + " (settle \(settle) s); \(migrated) migrated in \(String(format: "%.2f", done - firstMove)) s after the first move, \(paced) by the paced"
              + " control loop (measured \(String(format: "%.1f", pacedRate))/s against rate=\(rate)), \(migrated - paced) at once by a joining member;"
              + " whole on the new owners \(String(format: "%.2f", done - t0)) s after the DNS change")
        XCTAssertLessThanOrEqual(Double(paced), rate * (done - found.t) + 3, "paced migrations never outrun rate=\(rate)")
        if pacedTimes.count >= 5 { XCTAssertLessThanOrEqual(pacedRate, rate * 1.5, "the paced rate") }
        // Both instants are seen at most one poll late (50 ms plus two admin calls; longer under TSan): the settle less
        // the longest poll is the least the gap between them can show.
        let firstIndex = counts.firstIndex { $0.total > 0 } ?? 0
        let longestPoll = zip(counts.prefix(firstIndex + 1), counts.prefix(firstIndex + 1).dropFirst()).map { $1.t - $0.t }.max() ?? 0
        XCTAssertGreaterThanOrEqual(firstMove - found.t, settle - longestPoll, "the new server waits membership_settle before taking groups")
        XCTAssertLessThanOrEqual(done - t0, 2.5 * Self.slack + settle + Double(moving.count) / rate + 10 * Self.slack,
                                 "whole again within discovery + membership_settle + migration time and slack")
        XCTAssertEqual(try WebSocketGroupTests.lookup(admin: h.adminURL, keys: groups.count, format: "g{:03d}"), groups.map { placed5[$0]! },
                       "Huddle's placement now includes the discovered fifth server")
        usleep(800_000)   // stragglers of this change reconnect: counted here
        let r1 = churn.reconnects
        let split = watch.longestSplit(from: t0, to: done)
        let report = ChangeReport(name: "add b5 by DNS", wholeAfter: done - t0, longestSplit: split.seconds, splitGroup: split.group,
                                  groupsSplit: split.groupsSplit, movedReconnects: r1.moved - r0.moved, otherReconnects: r1.other - r0.other,
                                  migrations: migrated)
        XCTAssertEqual(GroupAdmin.misplaced(h), 0, "misplaced stays 0")
        XCTAssertTrue(h.log.contains("added \(identities[4])"), "the discovery is logged: \(h.log.suffix(2000))")
        churn.stop()
        XCTAssertEqual(churn.count("connect_errors"), 0, "members always found a server: \(churn.status)")
        print("DNS migration test (1 huddle, 2 workers, \(Self.groupCount) groups x \(Self.members) members, \(watch.samples) samples of the backends):")
        print("  " + report.description)
    }
}
