// The admin port against a running huddle: per-worker figures published without asking the workers, and reload
// answers that stay valid JSON whatever the error says.
import Foundation
import Glibc
import HuddleDemo
import XCTest

final class AdminPortTests: HuddleTestCase {
    private func json(_ url: String, _ extra: [String] = []) throws -> [String: Any] {
        let r = try Harness.curl(extra + [url])
        return try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], r.text)
    }

    private func metric(_ text: String, _ name: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    /// Per-worker figures from /api/workers: (client connections summed, every worker's (stale, age_ms)).
    private func workers(_ h: HuddleProcess) -> (clients: Int, workers: [(stale: Bool, ageMs: Int)])? {
        guard let o = try? json("\(h.adminURL)/api/workers"), let list = o["workers"] as? [[String: Any]] else { return nil }
        var clients = 0
        var ws: [(Bool, Int)] = []
        for w in list {
            guard let c = w["client_connections"] as? Int, let s = w["stale"] as? Bool, let a = w["age_ms"] as? Int else { return nil }
            clients += c
            ws.append((s, a))
        }
        return (clients, ws)
    }

    func testIdleClientConnectionsAreCountedAndIdleWorkersAreNotStale() throws {
        let b = try Harness.startBackend("stats")
        defer { b.stop() }
        let h = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN};
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream app; } }
        """, workers: 2, withAdmin: true)
        XCTAssertEqual(workers(h)?.workers.count, 2)

        // Seven idle client connections (connected, nothing sent), spread by the kernel over both workers.
        var clients = try (0..<7).map { _ in try RawClient(port: h.port) }
        var text = ""
        XCTAssertTrue(Harness.waitFor(10) {
            text = (try? Harness.curl(["\(h.adminURL)/metrics"]).text) ?? ""
            return self.metric(text, "huddle_client_connections") == 7
        }, text)
        XCTAssertEqual(workers(h)?.clients, 7)
        XCTAssertTrue(text.contains("huddle_worker_stats_age_seconds{worker=\"0\"} "), text)
        XCTAssertTrue(text.contains("huddle_worker_stats_age_seconds{worker=\"1\"} "), text)
        let page = try Harness.curl(["-i", "\(h.adminURL)/"]).text
        XCTAssertTrue(page.hasPrefix("HTTP/1.1 200"), page)
        XCTAssertTrue(page.lowercased().contains("content-type: text/html"), page)
        XCTAssertTrue(page.contains("<h2>Upstream <code>app</code>"), page)
        XCTAssertTrue(page.contains("127.0.0.1:\(b.boundAddresses[0].port)"), page)
        XCTAssertEqual(page.components(separatedBy: "<tr><td>").count - 1, 3, "one server row and two worker rows:\n\(page)")

        // Nothing happens on the workers now: for longer than the stale threshold (2 s) they only wake for their
        // housekeeping timer, and that must keep their figures fresh and unchanged.
        let idleUntil = Date().addingTimeInterval(3.5)
        var polls = 0
        while Date() < idleUntil {
            let w = try XCTUnwrap(workers(h))
            XCTAssertEqual(w.clients, 7)
            for (i, x) in w.workers.enumerated() {
                XCTAssertFalse(x.stale, "idle worker \(i) reported stale (age \(x.ageMs) ms)")
                XCTAssertLessThanOrEqual(x.ageMs, 2000, "worker \(i)")
            }
            polls += 1
            usleep(200_000)
        }
        XCTAssertGreaterThan(polls, 5)

        // Closing three: the figures follow.
        clients.removeLast(3)
        XCTAssertTrue(Harness.waitFor(10) { self.workers(h)?.clients == 4 })
        text = (try? Harness.curl(["\(h.adminURL)/metrics"]).text) ?? ""
        XCTAssertEqual(metric(text, "huddle_client_connections"), 4, text)
        XCTAssertEqual(metric(text, "huddle_tunnels"), 0, text)
        _ = clients
    }

    /// A reload whose errors carry a double quote, a backslash and a tab (in the message and in the file's path)
    /// still answers valid JSON naming file, line and column; then a good file reloads.
    func testReloadErrorsAreValidJSONWithTheirPosition() throws {
        let b = try Harness.startBackend("rl")
        defer { b.stop() }
        let good = """
        admin 127.0.0.1:{ADMIN} { token "s3cret"; }
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream app; } }
        """
        let h = try HuddleProcess(config: good, withAdmin: true, directoryName: "conf \"quoted\"\tdir")
        let auth = ["-X", "POST", "-H", "Authorization: Bearer s3cret"]
        // A token is configured, and none is sent: 401 (403 is for a port with no token configured at all).
        let denied = try Harness.curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "\(h.adminURL)/api/reload"])
        XCTAssertEqual(denied.text, "401")

        let text = try String(contentsOf: h.configURL, encoding: .utf8)
        // Line 4 (workers is line 1), column 5: an unknown directive named a"b.
        let broken = text.replacingOccurrences(of: "upstream app {", with: "upstream app {\n    \"a\\\"b\" 1;")
        try broken.write(to: h.configURL, atomically: true, encoding: .utf8)
        let lines = broken.split(separator: "\n", omittingEmptySubsequences: false)
        let lineNumber = try XCTUnwrap(lines.firstIndex { $0.contains("\"a\\\"b\"") }) + 1

        let r = try Harness.curl(auth + ["-w", "\n%{http_code}", "\(h.adminURL)/api/reload"])
        let parts = r.text.components(separatedBy: "\n")
        XCTAssertEqual(parts.last, "400", r.text)
        let body = Data(parts.dropLast().joined(separator: "\n").utf8)
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: body) as? [String: Any], r.text)
        XCTAssertEqual(o["ok"] as? Bool, false)
        let p = try XCTUnwrap((o["problems"] as? [[String: Any]])?.first, r.text)
        XCTAssertEqual(p["file"] as? String, h.configURL.path)
        XCTAssertEqual(p["line"] as? Int, lineNumber)
        XCTAssertEqual(p["column"] as? Int, 5)
        XCTAssertTrue((p["message"] as? String)?.contains("a\\\"b") ?? false, "\(p)")
        let errors = try XCTUnwrap(o["errors"] as? [String])
        XCTAssertTrue(errors.first?.hasPrefix("\(h.configURL.path):\(lineNumber):5: error: ") ?? false, "\(errors)")

        // The failure is on record, and the running configuration stays.
        let info = try json("\(h.adminURL)/api/config")
        XCTAssertEqual(info["generation"] as? Int, 1)
        XCTAssertTrue((info["result"] as? String)?.hasPrefix("failed: ") ?? false, "\(info)")
        let metrics = try Harness.curl(["\(h.adminURL)/metrics"]).text
        XCTAssertTrue(metrics.contains("huddle_reloads_total{result=\"failed\"} 1\n"), metrics)
        XCTAssertEqual(try Harness.curl(["\(h.url)/"]).text, "hello from rl\n")

        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        let ok = try json("\(h.adminURL)/api/reload", auth)
        XCTAssertEqual(ok["ok"] as? Bool, true)
        XCTAssertEqual(ok["generation"] as? Int, 2)
    }
}
