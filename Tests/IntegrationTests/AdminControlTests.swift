// The admin port's changes (drain, enable, reload) and their token rules, the health object of /api/backends, and the
// port's keep-alive connections, against a running huddle.
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

final class AdminControlTests: HuddleTestCase {
    private func config(_ servers: [UInt16], token: String?, extra: String = "") -> String {
        let admin = token.map { "admin 127.0.0.1:{ADMIN} { token \"\($0)\"; }" } ?? "admin 127.0.0.1:{ADMIN};"
        return """
        \(admin)
        upstream app {
            balance round_robin;
            \(extra)
            \(servers.map { "server 127.0.0.1:\($0);" }.joined(separator: "\n    "))
        }
        server { listen 127.0.0.1:{PORT}; route / { upstream app; } }
        """
    }

    private let changes = ["/api/servers/drain", "/api/servers/enable", "/api/reload"]

    /// With no token configured, every change is refused with 403, whatever Authorization says, and nothing changes.
    func testChangesAreForbiddenWithoutAConfiguredToken() throws {
        let b = try Harness.startBackend("nt")
        defer { b.stop() }
        let address = "127.0.0.1:\(b.boundAddresses[0].port)"
        let h = try HuddleProcess(config: config([b.boundAddresses[0].port], token: nil))
        for path in changes {
            for token in [nil, "anything"] as [String?] {
                let r = try Admin.request(h, "POST", "\(path)?upstream=app&address=\(address)", token: token)
                XCTAssertEqual(r.status, 403, "\(path) token \(token ?? "none")")
                XCTAssertNotNil(Admin.json(r)?["error"] as? String, String(decoding: r.body, as: UTF8.self))
            }
        }
        XCTAssertEqual(Admin.server(h, "app", address)?["state"] as? String, "healthy")
        let info = try XCTUnwrap(Admin.json(try Admin.request(h, "GET", "/api/config")))
        XCTAssertEqual(info["generation"] as? Int, 1, "a refused reload must not reload")
    }

    /// With a token: missing or wrong is 401 (with WWW-Authenticate) before any parameter is looked at; right is 200
    /// (the scheme is case-insensitive); then bad parameters are 400 and unknown names 404, and GET is 405.
    func testTokenRulesThenParameterErrors() throws {
        let b = try Harness.startBackend("tk")
        defer { b.stop() }
        let address = "127.0.0.1:\(b.boundAddresses[0].port)"
        let h = try HuddleProcess(config: config([b.boundAddresses[0].port], token: "s3cret"))
        for path in changes {
            for headers in [[], ["Authorization: Bearer wrong"], ["Authorization: Bearer s3cretX"], ["Authorization: Bearer s3cre"],
                            ["Authorization: Basic czNjcmV0"], ["Authorization: s3cret"]] {
                // An unknown upstream too: without the token, names are not even looked up.
                for target in ["\(path)?upstream=app&address=\(address)", "\(path)?upstream=nope&address=x"] {
                    let r = try Admin.request(h, "POST", target, headers: headers)
                    XCTAssertEqual(r.status, 401, "\(target) \(headers)")
                    XCTAssertEqual(r.value("WWW-Authenticate")?.hasPrefix("Bearer"), true, "\(target) \(headers)")
                    XCTAssertNotNil(Admin.json(r)?["error"], "\(target) \(headers)")
                }
            }
        }
        XCTAssertEqual(Admin.server(h, "app", address)?["state"] as? String, "healthy", "a refused drain must not drain")

        let drained = try Admin.request(h, "POST", "/api/servers/drain?upstream=app&address=\(address)", headers: ["Authorization: bearer s3cret"])
        XCTAssertEqual(drained.status, 200, String(decoding: drained.body, as: UTF8.self))
        let o = try XCTUnwrap(Admin.json(drained))
        XCTAssertEqual(o["upstream"] as? String, "app")
        XCTAssertEqual(o["server"] as? String, address)
        XCTAssertEqual(o["state"] as? String, "draining")
        XCTAssertEqual(Admin.server(h, "app", address)?["state"] as? String, "draining")

        let bad: [(String, Int)] = [
            ("/api/servers/enable", 400), ("/api/servers/enable?upstream=app", 400), ("/api/servers/enable?address=\(address)", 400),
            ("/api/servers/enable?upstream=&address=\(address)", 400),
            ("/api/servers/enable?upstream=nope&address=\(address)", 404), ("/api/servers/enable?upstream=app&address=127.0.0.1:1", 404),
        ]
        for (target, status) in bad {
            let r = try Admin.request(h, "POST", target, token: "s3cret")
            XCTAssertEqual(r.status, status, target)
            XCTAssertNotNil(Admin.json(r)?["error"] as? String, target)
        }
        XCTAssertEqual(Admin.server(h, "app", address)?["state"] as? String, "draining", "bad requests change nothing")
        for path in changes {
            let r = try Admin.request(h, "GET", "\(path)?upstream=app&address=\(address)", token: "s3cret")
            XCTAssertEqual(r.status, 405, path)
            XCTAssertEqual(r.value("Allow"), "POST", path)
        }
        let enabled = try Admin.request(h, "POST", "/api/servers/enable?upstream=app&address=\(address)", token: "s3cret")
        XCTAssertEqual(enabled.status, 200)
        XCTAssertEqual(Admin.json(enabled)?["state"] as? String, "healthy")
        let reload = try Admin.request(h, "POST", "/api/reload", token: "s3cret")
        XCTAssertEqual(reload.status, 200, String(decoding: reload.body, as: UTF8.self))
        XCTAssertEqual(Admin.json(reload)?["generation"] as? Int, 2)
    }

    /// A drained server shows `draining`, gets no new requests (counted on the backend itself), and its open WebSocket
    /// tunnel keeps working; enabling it brings requests back.
    func testDrainKeepsTunnelsAndStopsNewRequestsEnableBringsThemBack() throws {
        let a = try Harness.startBackend("da")
        let b = try Harness.startBackend("db")
        defer { a.stop(); b.stop() }
        let backends = [a, b]
        let h = try HuddleProcess(config: config(backends.map { $0.boundAddresses[0].port }, token: "t0ken"), workers: 2)
        let proxy = SocketAddress(ip: "127.0.0.1", port: h.port)!

        let ws = try DemoWebSocketClient(address: proxy, path: "/ws")
        try ws.send(text: "__whoami")
        guard case .text(let name) = try ws.receive() else { return XCTFail("no name from the tunnel's backend") }
        let target = try XCTUnwrap(backends.first { $0.name == name })
        let other = try XCTUnwrap(backends.first { $0.name != name })
        let address = "127.0.0.1:\(target.boundAddresses[0].port)"

        let r = try Admin.request(h, "POST", "/api/servers/drain?upstream=app&address=\(address)", token: "t0ken")
        XCTAssertEqual(r.status, 200, String(decoding: r.body, as: UTF8.self))
        let s = try XCTUnwrap(Admin.server(h, "app", address))
        XCTAssertEqual(s["state"] as? String, "draining")
        XCTAssertEqual(s["tunnels"] as? Int, 1, "\(s)")
        let health = try XCTUnwrap(s["health"] as? [String: Any])
        XCTAssertEqual(health["causes"] as? [String], ["draining"])
        XCTAssertTrue((health["reason"] as? String ?? "").contains("drained"), "\(health)")

        let before = Admin.requestsServed(by: target)
        let client = try DemoHTTPClient(address: proxy)
        for i in 0..<20 {
            let resp = try client.request("GET", "/")
            XCTAssertEqual(resp.status, 200)
            XCTAssertEqual(resp.header("X-Backend"), other.name, "request \(i) went to the drained server")
        }
        XCTAssertEqual(Admin.requestsServed(by: target), before, "the drained backend counted new requests")
        try ws.send(text: "still here")
        XCTAssertEqual(try ws.receive(), .text("still here"), "the tunnel to the drained server must stay up")
        XCTAssertEqual(Admin.server(h, "app", address)?["state"] as? String, "draining")
        // A reload that keeps the server keeps it drained.
        let reload = try Admin.request(h, "POST", "/api/reload", token: "t0ken")
        XCTAssertEqual(Admin.json(reload)?["generation"] as? Int, 2, String(decoding: reload.body, as: UTF8.self))
        XCTAssertEqual(Admin.server(h, "app", address)?["state"] as? String, "draining")
        XCTAssertEqual(try client.request("GET", "/").header("X-Backend"), other.name)

        let e = try Admin.request(h, "POST", "/api/servers/enable?upstream=app&address=\(address)", token: "t0ken")
        XCTAssertEqual(e.status, 200)
        XCTAssertEqual(Admin.json(e)?["state"] as? String, "healthy")
        var toTarget = 0
        for _ in 0..<10 where try client.request("GET", "/").header("X-Backend") == target.name { toTarget += 1 }
        XCTAssertGreaterThanOrEqual(toTarget, 4, "round robin over two servers: about half the requests go back to the enabled one")
        XCTAssertGreaterThanOrEqual(Admin.requestsServed(by: target), before + toTarget)
        try ws.send(text: "and now")
        XCTAssertEqual(try ws.receive(), .text("and now"))
        try ws.close()
        client.close()
    }

    /// The health object: the last probe's result, time and detail, streaks, and for passive health the ejection
    /// with its end; `reason` and `since` say why and since when.
    func testHealthObjectReportsProbesStreaksAndEjections() throws {
        let good = try Harness.startBackend("hg")
        defer { good.stop() }
        let dead = Harness.freePort()   // nothing listens here
        let goodAddress = "127.0.0.1:\(good.boundAddresses[0].port)"
        let deadAddress = "127.0.0.1:\(dead)"
        let start = Int64(Date().timeIntervalSince1970 * 1000)
        let h = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN};
        upstream checked {
            health_check /healthz interval=300ms timeout=200ms rise=1 fall=2;
            server \(goodAddress);
            server \(deadAddress);
        }
        upstream passive {
            balance round_robin;
            passive_health failures=2 ejection=20s max_ejected=50%;
            retries 1;
            server \(goodAddress);
            server \(deadAddress);
        }
        server {
            listen 127.0.0.1:{PORT};
            route /p/ { upstream passive; }
            route / { upstream checked; }
        }
        """)

        let down = try XCTUnwrap(Admin.waitForServer(h, "checked", deadAddress) { $0["state"] as? String == "unhealthy" })
        var hd = try XCTUnwrap(down["health"] as? [String: Any])
        XCTAssertEqual(down["state"] as? String, "unhealthy", "\(down)")
        XCTAssertEqual(hd["active_checks"] as? Bool, true)
        XCTAssertEqual(hd["last_check"] as? String, "failed", "\(hd)")
        let at = try XCTUnwrap((hd["last_check_at"] as? NSNumber)?.int64Value, "\(hd)")
        XCTAssertGreaterThanOrEqual(at, start)
        XCTAssertLessThanOrEqual(at, Int64(Date().timeIntervalSince1970 * 1000))
        XCTAssertFalse((hd["last_check_detail"] as? String ?? "").isEmpty, "\(hd)")
        XCTAssertGreaterThanOrEqual(hd["consecutive_check_failures"] as? Int ?? 0, 2, "\(hd)")
        XCTAssertEqual(hd["consecutive_check_successes"] as? Int, 0, "\(hd)")
        XCTAssertEqual(hd["causes"] as? [String], ["unhealthy"])
        XCTAssertTrue((hd["reason"] as? String ?? "").lowercased().contains("check"), "\(hd)")
        XCTAssertGreaterThanOrEqual((hd["since"] as? NSNumber)?.int64Value ?? 0, start, "\(hd)")
        XCTAssertTrue(hd["ejected_until"] is NSNull, "\(hd)")

        let up = try XCTUnwrap(Admin.waitForServer(h, "checked", goodAddress) {
            (($0["health"] as? [String: Any])?["consecutive_check_successes"] as? Int ?? 0) >= 2
        })
        let hu = try XCTUnwrap(up["health"] as? [String: Any])
        XCTAssertEqual(up["state"] as? String, "healthy")
        XCTAssertEqual(hu["last_check"] as? String, "ok", "\(hu)")
        XCTAssertTrue((hu["last_check_detail"] as? String ?? "").hasPrefix("200"), "\(hu)")
        XCTAssertEqual(hu["consecutive_check_failures"] as? Int, 0)
        XCTAssertEqual(hu["causes"] as? [String], [])
        // A later probe is later: the time moves.
        let nextCheck = Admin.waitForServer(h, "checked", goodAddress) {
            ((($0["health"] as? [String: Any])?["last_check_at"] as? NSNumber)?.int64Value ?? 0) > ((hu["last_check_at"] as? NSNumber)?.int64Value ?? 0)
        }
        XCTAssertNotNil(nextCheck.flatMap { ($0["health"] as? [String: Any])?["last_check_at"] as? NSNumber })

        // No active checks in `passive`: nothing probed. Requests there meet the dead server (connect refused, retried
        // on the good one) until it is ejected.
        let p0 = try XCTUnwrap(Admin.server(h, "passive", deadAddress)?["health"] as? [String: Any])
        XCTAssertEqual(p0["active_checks"] as? Bool, false)
        XCTAssertTrue(p0["last_check"] is NSNull, "\(p0)")
        XCTAssertTrue(p0["last_check_at"] is NSNull, "\(p0)")
        XCTAssertEqual(p0["passive_checks"] as? Bool, true)
        let client = try DemoHTTPClient(address: SocketAddress(ip: "127.0.0.1", port: h.port)!)
        var ejected: [String: Any]? = nil
        for _ in 0..<20 {
            XCTAssertEqual(try client.request("GET", "/p/").status, 200)
            ejected = Admin.server(h, "passive", deadAddress)
            if ejected?["state"] as? String == "ejected" { break }
        }
        client.close()
        let e = try XCTUnwrap(ejected)
        XCTAssertEqual(e["state"] as? String, "ejected", "\(e)")
        hd = try XCTUnwrap(e["health"] as? [String: Any])
        XCTAssertEqual(hd["ejections"] as? Int, 1, "\(hd)")
        XCTAssertEqual(hd["causes"] as? [String], ["ejected"])
        XCTAssertGreaterThanOrEqual(hd["consecutive_failures"] as? Int ?? 0, 2, "\(hd)")
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let until = try XCTUnwrap((hd["ejected_until"] as? NSNumber)?.int64Value, "\(hd)")
        XCTAssertGreaterThan(until, now + 15_000, "ejection=20s: it ends about 20 s from now")
        XCTAssertLessThanOrEqual(until, now + 20_500)
        XCTAssertTrue((hd["reason"] as? String ?? "").contains("failures in a row"), "\(hd)")
        XCTAssertEqual(Admin.server(h, "passive", goodAddress)?["state"] as? String, "healthy", "max_ejected 50% of two: one")
    }

    // MARK: keep-alive

    private func readResponses(_ c: RawClient, count: Int, head: Bool = false) -> [ParsedResponse] {
        var got: [ParsedResponse] = []
        _ = c.read { bytes in
            got = ParsedResponse.parseAll(bytes, headRequest: head)
            // Complete when `count` heads are in and the last body is whole.
            guard got.count >= count, let last = got.last, let cl = last.value("Content-Length").flatMap(Int.init) else { return false }
            return head || last.body.count == cl
        }
        return got
    }

    /// Several requests on one connection, pipelined in one write, answered in order; a small body is read and
    /// skipped; HEAD gets no body; `Connection: close` is answered and the connection closed.
    func testKeepAlivePipeliningAndConnectionClose() throws {
        let b = try Harness.startBackend("ka")
        defer { b.stop() }
        let h = try HuddleProcess(config: config([b.boundAddresses[0].port], token: nil))
        let c = try RawClient(port: h.adminPort, receiveTimeoutSeconds: 10)
        c.send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /api/config HTTP/1.1\r\nHost: a\r\n\r\n")
        var rs = readResponses(c, count: 2)
        XCTAssertEqual(rs.map(\.status), [200, 200])
        XCTAssertEqual(rs.first.map { String(decoding: $0.body, as: UTF8.self) }, "ok\n")
        XCTAssertEqual(rs.last.flatMap(Admin.json)?["generation"] as? Int, 1, "answers in request order")
        XCTAssertEqual(rs.map { $0.value("Connection") }, ["keep-alive", "keep-alive"])

        // The same connection again: a POST with a body (refused: no token), then a pipelined HEAD behind it.
        c.send("POST /api/reload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello worldHEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        // The HEAD answer has a Content-Length but no body: done once its head is in.
        let two = c.read { $0.occurrences(of: "HTTP/1.1 ") >= 2 && $0.suffix(4).elementsEqual("\r\n\r\n".utf8) }
        guard let split = two.indices.dropFirst().first(where: { two[$0...].starts(with: Array("HTTP/1.1 200".utf8)) }) else {
            return XCTFail("no HEAD answer after the 403: \(two.escapedForDisplay)")
        }
        let refused = ParsedResponse.parseAll(Array(two[..<split]))
        XCTAssertEqual(refused.map(\.status), [403], two.escapedForDisplay)
        XCTAssertNotNil(refused.first.flatMap(Admin.json)?["error"], "the body was skipped, not parsed as a request")
        let headAnswer = ParsedResponse.parseAll(Array(two[split...]), headRequest: true)
        XCTAssertEqual(headAnswer.map(\.status), [200], two.escapedForDisplay)
        XCTAssertEqual(headAnswer.first?.value("Content-Length"), "3")

        c.send("GET /api/backends HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        let (closed, rest) = c.waitForClose()
        XCTAssertTrue(closed, "Connection: close must close the connection")
        rs = ParsedResponse.parseAll(rest)
        XCTAssertEqual(rs.map(\.status), [200], rest.escapedForDisplay)
        XCTAssertEqual(rs.first?.value("Connection"), "close")
        XCTAssertNotNil(rs.first.flatMap(Admin.json)?["upstreams"])

        // HTTP/1.0 without keep-alive closes after its answer.
        let old = try RawClient(port: h.adminPort, receiveTimeoutSeconds: 10)
        old.send("GET /healthz HTTP/1.0\r\n\r\n")
        let (oldClosed, oldBytes) = old.waitForClose()
        XCTAssertTrue(oldClosed)
        XCTAssertEqual(ParsedResponse.parseAll(oldBytes).map(\.status), [200])
    }

    /// A client that pipelines many requests and does not read holds only its own connection: the control loop keeps
    /// answering others at once, and the first client later gets every answer, in order. An idle connection (here one
    /// stuck halfway through a request head) is closed after the idle timeout, not before.
    func testSlowAndIdleClientsDoNotHoldTheControlLoop() throws {
        let b = try Harness.startBackend("sl")
        defer { b.stop() }
        let h = try HuddleProcess(config: config([b.boundAddresses[0].port], token: nil))
        let stalled = try RawClient(port: h.adminPort, receiveTimeoutSeconds: 15)
        stalled.send("GET /heal")
        let stalledAt = Date()

        // Pipelined /metrics (large answers) and /api/lookup (which names its key, so the order shows), not read yet.
        let greedy = try RawClient(port: h.adminPort, receiveTimeoutSeconds: 10)
        let n = 400
        var burst = ""
        for i in 0..<n {
            burst += i % 2 == 0 ? "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n" : "GET /api/lookup?upstream=app&key=k\(i) HTTP/1.1\r\nHost: a\r\n\r\n"
        }
        greedy.send(burst)

        // Meanwhile, other connections are answered promptly.
        for _ in 0..<5 {
            let t = Date()
            XCTAssertEqual(Invariants.adminGet(h, "/healthz"), "ok\n")
            XCTAssertLessThan(Date().timeIntervalSince(t), 1.0, "the admin port stalled behind a client that does not read")
        }

        // The last request is a lookup of k\(n - 1): its answer ends the stream (checked cheaply on the tail).
        let end = Array("\"key\":\"k\(n - 1)\"".utf8)
        let bytes = greedy.read { b in b.last == 0x0A && b.suffix(300).firstRange(of: end) != nil }
        let rs = ParsedResponse.parseAll(bytes)
        XCTAssertEqual(rs.count, n, "every pipelined request is answered (\(bytes.count) bytes)")
        for (i, r) in rs.enumerated() {
            XCTAssertEqual(r.status, 200)
            if i % 2 == 0 {
                XCTAssertTrue(String(decoding: r.body, as: UTF8.self).contains("# TYPE huddle_requests_total counter"), "answer \(i)")
            } else {
                XCTAssertEqual(Admin.json(r)?["key"] as? String, "k\(i)", "answer \(i) out of order")
            }
        }
        XCTAssertGreaterThan(bytes.count, 1 << 20, "the answers exceed the 1 MiB the port queues for one client")

        let (closed, partial) = stalled.waitForClose()
        let waited = Date().timeIntervalSince(stalledAt)
        XCTAssertTrue(closed, "an idle connection must be closed")
        XCTAssertTrue(partial.isEmpty, partial.escapedForDisplay)
        XCTAssertGreaterThan(waited, 4.0, "closed before the 5 s idle timeout")
        XCTAssertLessThan(waited, 9.0, "not closed near the 5 s idle timeout")
    }
}
