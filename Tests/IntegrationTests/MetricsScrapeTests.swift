// /metrics read by an independent parser (PyPI prometheus-client's text parser, the reference Python implementation of
// the exposition format): families, types and help, and counters that move exactly as known traffic says.
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

/// One parsed family: `prometheus_client` names a counter's family without `_total`; samples keep their full names.
struct ScrapedFamily {
    var name: String
    var type: String
    var help: String
    var samples: [(name: String, labels: [String: String], value: Double)]

    func value(_ sample: String, _ labels: [String: String]) -> Double? {
        samples.first { $0.name == sample && $0.labels == labels }?.value
    }
}

enum PrometheusParser {
    /// Parses `text` with `prometheus_client.parser.text_string_to_metric_families`.
    static let script = """
    import json, math, sys
    from prometheus_client.parser import text_string_to_metric_families
    out = []
    for f in text_string_to_metric_families(sys.stdin.read()):
        out.append({"name": f.name, "type": f.type, "help": f.documentation,
                    "samples": [[s.name, s.labels, s.value if math.isfinite(s.value) else repr(s.value)] for s in f.samples]})
    print(json.dumps(out))
    """

    /// Installs prometheus-client with pip when python3 cannot import it (CI: `.ci/run` installs it up front).
    static func ensureInstalled() throws {
        let check = try Harness.run("/usr/bin/env", ["python3", "-c", "import prometheus_client.parser"])
        if check.status == 0 { return }
        print("MetricsScrapeTests: installing prometheus-client with pip")
        var r = try Harness.run("/usr/bin/env", ["python3", "-m", "pip", "install", "-q", "prometheus-client"], timeout: 300)
        if r.status != 0 {
            r = try Harness.run("/usr/bin/env", ["python3", "-m", "pip", "install", "-q", "--break-system-packages", "prometheus-client"], timeout: 300)
        }
        let again = try Harness.run("/usr/bin/env", ["python3", "-c", "import prometheus_client.parser"])
        guard again.status == 0 else {
            throw HarnessError("python3 cannot import prometheus_client and `python3 -m pip install prometheus-client` failed: \(r.stderr)")
        }
    }

    static func parse(_ text: String) throws -> [ScrapedFamily] {
        let r = try Harness.run("/usr/bin/env", ["python3", "-c", script], stdin: Data(text.utf8))
        guard r.status == 0 else { throw HarnessError("prometheus_client rejected /metrics: \(r.stderr)\n\(text)") }
        guard let list = try JSONSerialization.jsonObject(with: r.stdout) as? [[String: Any]] else {
            throw HarnessError("parser output is not JSON: \(r.text)")
        }
        return list.map { f in
            let samples = (f["samples"] as? [[Any]] ?? []).map { s -> (String, [String: String], Double) in
                let v: Double
                if let n = s[2] as? NSNumber { v = n.doubleValue } else { v = Double(s[2] as? String ?? "") ?? .nan }
                return (s[0] as? String ?? "", s[1] as? [String: String] ?? [:], v)
            }
            return ScrapedFamily(name: f["name"] as? String ?? "", type: f["type"] as? String ?? "", help: f["help"] as? String ?? "",
                                 samples: samples)
        }
    }
}

final class MetricsScrapeTests: HuddleTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try PrometheusParser.ensureInstalled()
    }

    private func scrape(_ h: HuddleProcess) throws -> [String: ScrapedFamily] {
        let text = try XCTUnwrap(Invariants.adminGet(h, "/metrics"), "GET /metrics failed")
        let families = try PrometheusParser.parse(text)
        var byName: [String: ScrapedFamily] = [:]
        for f in families {
            XCTAssertNil(byName[f.name], "family \(f.name) appears twice")
            byName[f.name] = f
        }
        return byName
    }

    /// Polls /metrics until `condition` holds (counters are recorded as each exchange ends, which can be just after
    /// the client has its answer); returns the last scrape.
    private func scrape(_ h: HuddleProcess, until condition: ([String: ScrapedFamily]) -> Bool) throws -> [String: ScrapedFamily] {
        var last: [String: ScrapedFamily] = [:]
        var failure: Error?
        _ = Harness.waitFor(10) {
            do { last = try self.scrape(h) } catch { failure = error; return true }
            return condition(last)
        }
        if let failure { throw failure }
        return last
    }

    func testFamiliesTypesAndCountersAfterKnownTraffic() throws {
        let a = try Harness.startBackend("ma")
        let b = try Harness.startBackend("mb")
        defer { a.stop(); b.stop() }
        let pa = a.boundAddresses[0].port, pb = b.boundAddresses[0].port
        let good = """
        admin 127.0.0.1:{ADMIN} { token "m3trics"; }
        upstream app {
            balance round_robin;
            health_check /healthz interval=200ms timeout=500ms;
            server 127.0.0.1:\(pa) name=a;
            server 127.0.0.1:\(pb) name=b;
        }
        upstream chat { balance hash; server 127.0.0.1:\(pa) name=chat-a; }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream chat; group_key path 2; }
            route / { upstream app; }
        }
        """
        let h = try HuddleProcess(config: good)

        // Before traffic: every family with its type and help, and no metric for what does not exist yet.
        var m = try scrape(h)
        let types: [String: String] = [
            "huddle_requests": "counter", "huddle_request_duration_seconds": "histogram", "huddle_server_up": "gauge",
            "huddle_health_transitions": "counter", "huddle_reloads": "counter", "huddle_tunnels_active": "gauge",
            "huddle_groups_active": "gauge", "huddle_health_probes": "counter", "huddle_server_tunnels": "gauge",
            "huddle_server_requests": "counter", "huddle_server_failures": "counter", "huddle_server_in_flight": "gauge",
            "huddle_server_active_connections": "gauge", "huddle_groups": "gauge", "huddle_client_connections": "gauge",
            "huddle_tunnels": "gauge", "huddle_backend_connections": "gauge", "huddle_buffers_in_use": "gauge",
            "huddle_buffers_cached": "gauge", "huddle_pipes_in_use": "gauge", "huddle_pipes_cached": "gauge",
            "huddle_worker_stats_age_seconds": "gauge", "huddle_group_migrations": "counter", "huddle_groups_misplaced": "gauge",
        ]
        for (name, type) in types {
            XCTAssertEqual(m[name]?.type, type, "family \(name)")
            XCTAssertFalse(m[name]?.help.isEmpty ?? true, "family \(name) has no help")
        }
        for name in m.keys {
            XCTAssertTrue(name.hasPrefix("huddle_"), name)
        }
        let codes = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        for server in ["a", "b"] {
            for code in codes {
                XCTAssertEqual(m["huddle_requests"]?.value("huddle_requests_total", ["upstream": "app", "server": server, "code": code]), 0)
            }
        }
        XCTAssertEqual(m["huddle_request_duration_seconds"]?.value("huddle_request_duration_seconds_count", ["upstream": "app"]), 0)

        // b drained first, so the traffic all goes to a.
        XCTAssertEqual(try Admin.request(h, "POST", "/api/servers/drain?upstream=app&address=127.0.0.1:\(pb)", token: "m3trics").status, 200)
        m = try scrape(h)
        XCTAssertEqual(m["huddle_server_up"]?.value("huddle_server_up", ["upstream": "app", "server": "b"]), 0)
        XCTAssertEqual(m["huddle_server_up"]?.value("huddle_server_up", ["upstream": "app", "server": "a"]), 1)
        XCTAssertEqual(m["huddle_health_transitions"]?.value("huddle_health_transitions_total", ["upstream": "app", "server": "b", "to": "draining"]), 1)

        // 3 answers 200 and 1 answer 502.
        let client = try DemoHTTPClient(address: SocketAddress(ip: "127.0.0.1", port: h.port)!)
        for _ in 0..<3 { XCTAssertEqual(try client.request("GET", "/").status, 200) }
        XCTAssertEqual(try client.request("GET", "/status/502").status, 502)
        client.close()
        let app = ["upstream": "app"]
        m = try scrape(h) { $0["huddle_request_duration_seconds"]?.value("huddle_request_duration_seconds_count", app) == 4 }
        let requests = try XCTUnwrap(m["huddle_requests"])
        XCTAssertEqual(requests.value("huddle_requests_total", ["upstream": "app", "server": "a", "code": "2xx"]), 3)
        XCTAssertEqual(requests.value("huddle_requests_total", ["upstream": "app", "server": "a", "code": "5xx"]), 1)
        for code in ["1xx", "3xx", "4xx"] {
            XCTAssertEqual(requests.value("huddle_requests_total", ["upstream": "app", "server": "a", "code": code]), 0, code)
        }
        for code in codes {
            XCTAssertEqual(requests.value("huddle_requests_total", ["upstream": "app", "server": "b", "code": code]), 0, "drained b, \(code)")
        }
        let histogram = try XCTUnwrap(m["huddle_request_duration_seconds"])
        XCTAssertEqual(histogram.value("huddle_request_duration_seconds_count", app), 4)
        let buckets = histogram.samples.filter { $0.name == "huddle_request_duration_seconds_bucket" && $0.labels["upstream"] == "app" }
        XCTAssertEqual(buckets.last?.labels["le"], "+Inf")
        XCTAssertEqual(buckets.last?.value, 4)
        XCTAssertGreaterThan(buckets.count, 5)
        XCTAssertEqual(buckets.map(\.value), buckets.map(\.value).sorted(), "buckets are cumulative")
        let bounds = buckets.dropLast().compactMap { Double($0.labels["le"] ?? "") }
        XCTAssertEqual(bounds.count, buckets.count - 1)
        XCTAssertEqual(bounds, bounds.sorted())
        let sum = try XCTUnwrap(histogram.value("huddle_request_duration_seconds_sum", app))
        XCTAssertGreaterThan(sum, 0)
        XCTAssertLessThan(sum, 4 * 5, "four loopback requests take well under 5 s each")

        // A WebSocket in a group: a tunnel and a group; its 101 is a 1xx of chat-a.
        let ws = try DemoWebSocketClient(address: SocketAddress(ip: "127.0.0.1", port: h.port)!, path: "/rooms/metrics-room/ws")
        m = try scrape(h) { $0["huddle_tunnels_active"]?.value("huddle_tunnels_active", [:]) == 1 }
        XCTAssertEqual(m["huddle_tunnels_active"]?.value("huddle_tunnels_active", [:]), 1)
        XCTAssertEqual(m["huddle_groups_active"]?.value("huddle_groups_active", ["upstream": "chat"]), 1)
        XCTAssertEqual(m["huddle_server_tunnels"]?.value("huddle_server_tunnels", ["upstream": "chat", "server": "chat-a"]), 1)
        XCTAssertEqual(m["huddle_requests"]?.value("huddle_requests_total", ["upstream": "chat", "server": "chat-a", "code": "1xx"]), 1)
        try ws.close()
        _ = try? ws.readUntilClosed()
        ws.disconnect()
        m = try scrape(h) { $0["huddle_tunnels_active"]?.value("huddle_tunnels_active", [:]) == 0 }
        XCTAssertEqual(m["huddle_tunnels_active"]?.value("huddle_tunnels_active", [:]), 0)
        XCTAssertEqual(m["huddle_server_tunnels"]?.value("huddle_server_tunnels", ["upstream": "chat", "server": "chat-a"]), 0)

        // Probes: two servers every 200 ms; the counter moves.
        let probes = try XCTUnwrap(m["huddle_health_probes"]?.value("huddle_health_probes_total", [:]))
        XCTAssertGreaterThan(probes, 0)
        m = try scrape(h) { ($0["huddle_health_probes"]?.value("huddle_health_probes_total", [:]) ?? 0) > probes }
        XCTAssertGreaterThan(m["huddle_health_probes"]?.value("huddle_health_probes_total", [:]) ?? 0, probes)

        // Enable b: a transition to healthy. Reloads: one that fails, then one that works.
        XCTAssertEqual(try Admin.request(h, "POST", "/api/servers/enable?upstream=app&address=127.0.0.1:\(pb)", token: "m3trics").status, 200)
        let text = try String(contentsOf: h.configURL, encoding: .utf8)
        try (text + "\nnot_a_directive 1;\n").write(to: h.configURL, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Admin.request(h, "POST", "/api/reload", token: "m3trics").status, 400)
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Admin.request(h, "POST", "/api/reload", token: "m3trics").status, 200)
        m = try scrape(h)
        let transitions = try XCTUnwrap(m["huddle_health_transitions"])
        XCTAssertEqual(transitions.value("huddle_health_transitions_total", ["upstream": "app", "server": "b", "to": "healthy"]), 1)
        XCTAssertEqual(transitions.value("huddle_health_transitions_total", ["upstream": "app", "server": "b", "to": "draining"]), 1)
        for to in ["healthy", "unhealthy", "ejected", "draining", "disabled"] {
            XCTAssertEqual(transitions.value("huddle_health_transitions_total", ["upstream": "app", "server": "a", "to": to]), 0, to)
        }
        XCTAssertEqual(m["huddle_server_up"]?.value("huddle_server_up", ["upstream": "app", "server": "b"]), 1)
        XCTAssertEqual(m["huddle_reloads"]?.value("huddle_reloads_total", ["result": "ok"]), 1)
        XCTAssertEqual(m["huddle_reloads"]?.value("huddle_reloads_total", ["result": "failed"]), 1)
        // Counters survive a reload that keeps the servers.
        XCTAssertEqual(m["huddle_requests"]?.value("huddle_requests_total", ["upstream": "app", "server": "a", "code": "2xx"]), 3)
        XCTAssertEqual(m["huddle_request_duration_seconds"]?.value("huddle_request_duration_seconds_count", app), 4)
    }
}
