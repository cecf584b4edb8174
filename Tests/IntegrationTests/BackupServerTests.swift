// `backup` servers, as in HAProxy and nginx: no traffic while a primary server of the upstream is available; all of it
// while none is (down, ejected, draining or disabled); back to the primaries when one returns. Backends are
// peers/health_backend.py (stdlib Python), which count what reaches them and name themselves in X-Backend.
import Foundation
import Glibc
import XCTest

final class BackupServerTests: HealthTestCase {
    private func config(_ list: [HealthBackend], backups: Set<String>, balance: String = "p2c", route: String = "route / { upstream web; }") -> String {
        let lines = list.map { "    server \($0.address) name=\($0.name)\(backups.contains($0.name) ? " backup" : "");" }.joined(separator: "\n")
        return """
        workers 2;
        admin 127.0.0.1:{ADMIN} { token "secret"; }
        upstream web {
            balance \(balance);
        \(lines)
            health_check /healthz interval=200ms timeout=200ms rise=2 fall=2;
            connect_timeout 500ms; response_timeout 2s; retries 2;
        }
        server { listen 127.0.0.1:{PORT}; \(route) }

        """
    }

    private func adminPost(_ h: HuddleProcess, _ target: String) -> ParsedResponse? {
        guard let c = try? RawClient(port: h.adminPort, receiveTimeoutSeconds: 5) else { return nil }
        c.send("POST \(target) HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer secret\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return ParsedResponse.parseAll(c.readAll()).first
    }

    /// Who answered `count` requests to `path`-prefixed URLs: backend name -> requests; a non-200 is recorded as "status N".
    private func spread(_ h: HuddleProcess, _ path: String, count: Int) -> [String: Int] {
        var seen: [String: Int] = [:]
        for i in 0..<count {
            let r = get(h, "\(path)\(i)")
            seen[r.status == 200 ? (r.backend ?? "?") : "status \(r.status)", default: 0] += 1
        }
        return seen
    }

    func testBackupTakesTrafficOnlyWhileEveryPrimaryIsOutAndRetriesGoThere() throws {
        let list = try startBackends(["a", "b", "c"])
        let (a, b, c) = (list[0], list[1], list[2])
        let h = try HuddleProcess(config: config(list, backups: ["c"]))
        XCTAssertTrue(Harness.waitFor(5) { list.allSatisfy { ($0.counts()?.healthz ?? 0) >= 1 } }, "the backup is probed too")
        XCTAssertEqual(servers(h)["web/c"]?["backup"] as? Bool, true)
        XCTAssertEqual(servers(h)["web/a"]?["backup"] as? Bool, false)
        XCTAssertFalse(h.log.contains("backup is accepted but not used"), h.log)

        // Both primaries up: the backup gets nothing, both primaries share the load.
        var seen = spread(h, "/primaries/", count: 40)
        XCTAssertNil(seen["c"], "the backup took traffic while the primaries were up: \(seen)")
        XCTAssertGreaterThan(seen["a"] ?? 0, 0, "\(seen)")
        XCTAssertGreaterThan(seen["b"] ?? 0, 0, "\(seen)")
        XCTAssertEqual(c.counts()?.requests, 0)

        // One primary out: still no backup traffic.
        a.setMode("healthz-fail")
        XCTAssertNotNil(waitForState(h, "a", "unhealthy", timeout: 5), "\(states(h))")
        seen = spread(h, "/one-primary/", count: 20)
        XCTAssertEqual(seen, ["b": 20], "one primary left takes everything; the backup nothing")

        // Every primary out: the backup takes all of it, and nothing is refused.
        b.setMode("healthz-fail")
        XCTAssertNotNil(waitForState(h, "b", "unhealthy", timeout: 5), "\(states(h))")
        seen = spread(h, "/backup/", count: 20)
        XCTAssertEqual(seen, ["c": 20], "with every primary out the backup serves")

        // A primary back: the backup stops taking traffic at once.
        b.setMode("ok")
        XCTAssertNotNil(waitForState(h, "b", "healthy", timeout: 5), "\(states(h))")
        let backupBefore = c.counts()?.requests ?? -1
        seen = spread(h, "/primary-back/", count: 20)
        XCTAssertEqual(seen, ["b": 20], "the returning primary takes the traffic back")
        XCTAssertEqual(c.counts()?.requests, backupBefore, "the backup got requests after a primary came back")

        // A request that fails to connect to the last primary (killed before the checks notice) is retried on the
        // backup: the backup tier opens for the retry, since the one primary left was tried.
        b.stop()
        let r = get(h, "/retry")
        XCTAssertEqual(r.status, 200, "\(r)")
        XCTAssertEqual(r.backend, "c", "\(r)")
    }

    func testDrainingEveryPrimaryPlacesKeysOnTheBackupsByHashAndEnablingOneBringsThemBack() throws {
        let list = try startBackends(["p1", "p2", "k1", "k2"])
        let h = try HuddleProcess(config: config(list, backups: ["k1", "k2"], balance: "hash",
                                                 route: "route /rooms/ { upstream web; group_key path 2; }"))
        func lookup(_ key: String) -> String? {
            guard let text = Invariants.adminGet(h, "/api/lookup?upstream=web&key=\(key)"),
                  let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
            return o["server"] as? String
        }
        let keys = (0..<40).map { "room\($0)" }
        func owners() -> [String: String] { Dictionary(uniqueKeysWithValues: keys.map { ($0, lookup($0) ?? "none") }) }
        /// Keyed requests for the first 10 keys are answered by the server `expected` names for each.
        func assertRequestsFollow(_ expected: [String: String], _ suffix: String, _ why: String, line: UInt = #line) {
            for k in keys.prefix(10) {
                let r = get(h, "/rooms/\(k)/\(suffix)")
                XCTAssertEqual(r.status, 200, "\(r)", line: line)
                XCTAssertEqual(r.backend, expected[k], why, line: line)
            }
        }

        let before = owners()
        XCTAssertEqual(Set(before.values), ["p1", "p2"], "keys map to primaries only")
        assertRequestsFollow(before, "x", "a keyed request goes where /api/lookup says")

        for p in ["p1", "p2"] {
            let address = list.first { $0.name == p }!.address
            XCTAssertEqual(adminPost(h, "/api/servers/drain?upstream=web&address=\(address)")?.status, 200)
        }
        XCTAssertNotNil(waitForState(h, "p2", "draining", timeout: 2))
        let onBackups = owners()
        XCTAssertEqual(Set(onBackups.values), ["k1", "k2"], "with every primary draining, the hash spreads keys over the backups")
        assertRequestsFollow(onBackups, "y", "a keyed request follows the backup owner")
        XCTAssertEqual(owners(), onBackups, "asked again, the backup placement is the same")

        // One primary enabled again: every key is back on it, none left on a backup.
        let p1 = list.first { $0.name == "p1" }!.address
        XCTAssertEqual(adminPost(h, "/api/servers/enable?upstream=web&address=\(p1)")?.status, 200)
        XCTAssertNotNil(waitForState(h, "p1", "healthy", timeout: 2))
        XCTAssertEqual(Set(owners().values), ["p1"], "with one primary back, it owns every key")
        let k1Before = list[2].counts()?.requests ?? -1
        let k2Before = list[3].counts()?.requests ?? -1
        assertRequestsFollow(Dictionary(uniqueKeysWithValues: keys.map { ($0, "p1") }), "z", "the returning primary takes every key")
        XCTAssertEqual(list[2].counts()?.requests, k1Before)
        XCTAssertEqual(list[3].counts()?.requests, k2Before)
    }
}
