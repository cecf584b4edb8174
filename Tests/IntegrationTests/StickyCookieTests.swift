// Sticky cookies through the real huddle binary: a curl cookie jar keeps 100 requests on one backend (counted by the
// backends themselves), a stopped server's clients move with a rewritten cookie, a tampered cookie is ignored, the
// value is the documented HMAC (checked with openssl) and never an address, two huddle processes with the same key
// agree, and WebSocket upgrades follow the cookie and get it on the 101.
import Foundation
import HuddleDemo
import HuddleSys
import XCTest

final class StickyCookieTests: HuddleTestCase {
    static let key = "integration-test-key-0123456789"
    var backends: [DemoBackend] = []

    override func tearDown() {
        super.tearDown()   // the end-of-test invariant check, while the backends still run; stops huddle
        for b in backends { b.stop() }
        backends.removeAll()
    }

    func startBackends(_ n: Int) throws {
        backends = try (1...n).map { try Harness.startBackend("s\($0)") }
    }

    /// Three servers named s1...s3, p2c, sticky cookie HUDDLE_SRV.
    func config(attributes: String = "max_age=1h httponly") -> String {
        let servers = backends.map { "    server 127.0.0.1:\($0.boundAddresses[0].port) name=\($0.name);" }.joined(separator: "\n")
        return """
        upstream app {
        \(servers)
            sticky cookie HUDDLE_SRV \(attributes) key="\(Self.key)";
        }
        server {
            listen 127.0.0.1:{PORT};
            route / { upstream app; }
        }
        """
    }

    /// The cookie value the documentation promises: HMAC-SHA256(key, server name), 12 bytes, base64url, computed by
    /// openssl rather than by Huddle's own code.
    func expectedValue(_ identity: String) throws -> String {
        let r = try Harness.run("/usr/bin/openssl", ["dgst", "-sha256", "-hmac", Self.key, "-binary"], stdin: Data(identity.utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.count, 32)
        return Data(r.stdout.prefix(12)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    func requests(_ b: DemoBackend) throws -> Int {
        let r = try Harness.curl(["http://127.0.0.1:\(b.boundAddresses[0].port)/stats"])
        let obj = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        return try XCTUnwrap(obj?["requests"] as? Int, r.text)
    }

    struct Answer {
        var status: Int
        var backend: String?
        var setCookie: String?
        var head: String
    }

    /// One request through curl with the cookie jar `jar` (read and written), or with `cookie` sent as is.
    func get(_ url: String, jar: URL? = nil, cookie: String? = nil) throws -> Answer {
        var args = ["-D", "-", "-o", "/dev/null"]
        if let jar { args += ["-b", jar.path, "-c", jar.path] }
        if let cookie { args += ["-H", "Cookie: \(cookie)"] }
        let r = try Harness.curl(args + [url])
        var a = Answer(status: 0, head: r.text)
        for line in r.text.components(separatedBy: "\r\n") {
            if line.hasPrefix("HTTP/1.1 ") { a.status = Int(line.dropFirst(9).prefix(3)) ?? 0 }
            let lower = line.lowercased()
            if lower.hasPrefix("x-backend:") { a.backend = line.dropFirst(10).trimmingCharacters(in: .whitespaces) }
            if lower.hasPrefix("set-cookie:") { a.setCookie = line.dropFirst(11).trimmingCharacters(in: .whitespaces) }
        }
        return a
    }

    /// HUDDLE_SRV's value in a curl (Netscape) cookie jar.
    func jarValue(_ jar: URL) -> String? {
        let text = (try? String(contentsOf: jar, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            if f.count == 7, f[5] == "HUDDLE_SRV" { return String(f[6]) }
        }
        return nil
    }

    func testAHundredRequestsWithACookieJarStayOnOneServerUntilItStops() throws {
        try startBackends(3)
        let h = try HuddleProcess(config: config())
        let jar = Harness.temporaryDirectory().appendingPathComponent("jar.txt")
        let before = try backends.map { try requests($0) }

        // The first answer sets the cookie: the value of the server that answered, with the configured attributes.
        let first = try get(h.url + "/", jar: jar)
        XCTAssertEqual(first.status, 200)
        let server = try XCTUnwrap(first.backend)
        let value = try expectedValue(server)
        XCTAssertEqual(first.setCookie, "HUDDLE_SRV=\(value); Path=/; Max-Age=3600; HttpOnly", first.head)
        for b in backends {
            let port = String(b.boundAddresses[0].port)
            XCTAssertFalse(first.head.contains(port), "the answer never shows a backend's port: \(first.head)")
        }
        XCTAssertEqual(jarValue(jar), value)

        // 99 more, one curl run each, with the jar: every one on the same server, and nothing more to set.
        for i in 2...100 {
            let a = try get(h.url + "/?n=\(i)", jar: jar)
            XCTAssertEqual(a.status, 200)
            XCTAssertEqual(a.backend, server, "request \(i)")
            XCTAssertNil(a.setCookie, "request \(i): the cookie already names the server")
        }
        // Counted by the backends themselves (each /stats request counts once).
        let after = try backends.map { try requests($0) }
        for (i, b) in backends.enumerated() {
            let served = after[i] - before[i] - 1
            XCTAssertEqual(served, b.name == server ? 100 : 0, "backend \(b.name) served \(served)")
        }

        // That server stops: the next request lands elsewhere, and its answer rewrites the cookie.
        let stopped = backends.first { $0.name == server }!
        stopped.stop()
        let moved = try get(h.url + "/", jar: jar)
        XCTAssertEqual(moved.status, 200, moved.head)
        let newServer = try XCTUnwrap(moved.backend)
        XCTAssertNotEqual(newServer, server)
        let newValue = try expectedValue(newServer)
        XCTAssertEqual(moved.setCookie, "HUDDLE_SRV=\(newValue); Path=/; Max-Age=3600; HttpOnly", moved.head)
        XCTAssertEqual(jarValue(jar), newValue, "the jar holds the rewritten cookie")
        for i in 0..<10 {
            let a = try get(h.url + "/", jar: jar)
            XCTAssertEqual(a.backend, newServer, "after the move, request \(i)")
            XCTAssertNil(a.setCookie)
        }
        // Without health checks Huddle found out by failing to connect, and retried on another server.
        XCTAssertTrue(h.log.contains("retrying on another server"), h.log)
        backends.removeAll { $0 === stopped }
    }

    func testATamperedCookieIsIgnoredAndReplaced() throws {
        try startBackends(3)
        let h = try HuddleProcess(config: config(attributes: "secure samesite=strict"))
        let values = try backends.map { try expectedValue($0.name) }
        for bad in ["AAAAAAAAAAAAAAAA", String(values[0].dropLast()) + (values[0].hasSuffix("A") ? "B" : "A"), "127.0.0.1:\(backends[0].boundAddresses[0].port)",
                    values[0] + "x", "", "%00"] {
            let a = try get(h.url + "/", cookie: "other=1; HUDDLE_SRV=\(bad)")
            XCTAssertEqual(a.status, 200, "cookie \(bad)")
            let server = try XCTUnwrap(a.backend)
            XCTAssertEqual(a.setCookie, "HUDDLE_SRV=\(try expectedValue(server)); Path=/; Secure; SameSite=Strict", "cookie \(bad): \(a.head)")
        }
        // A genuine value, as a browser would send it among others: followed, and not set again.
        for (i, b) in backends.enumerated() {
            for _ in 0..<5 {
                let a = try get(h.url + "/", cookie: "a=b; HUDDLE_SRV=\(values[i]); c=d")
                XCTAssertEqual(a.backend, b.name)
                XCTAssertNil(a.setCookie)
            }
        }
    }

    func testTwoHuddleProcessesWithTheSameKeyAgree() throws {
        try startBackends(3)
        let one = try HuddleProcess(config: config())
        let two = try HuddleProcess(config: config())
        // The value each sets for each server, learned from fresh requests (p2c spreads them over the servers).
        func valuesSet(_ h: HuddleProcess) throws -> [String: String] {
            var seen: [String: String] = [:]
            let deadline = Date().addingTimeInterval(60)
            while seen.count < backends.count && Date() < deadline {
                let a = try get(h.url + "/")
                guard let s = a.backend, let c = a.setCookie else { XCTFail("no cookie set: \(a.head)"); break }
                let v = String(c.dropFirst("HUDDLE_SRV=".count).prefix { $0 != ";" })
                if let earlier = seen[s] { XCTAssertEqual(earlier, v, "one value per server") }
                seen[s] = v
            }
            return seen
        }
        let a = try valuesSet(one)
        let b = try valuesSet(two)
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(a, b, "both processes give each server the same value")
        for (server, v) in a { XCTAssertEqual(v, try expectedValue(server)) }
        // A cookie set by one routes to the same server through the other, which sets nothing.
        for (server, v) in a {
            for h in [two, one] {
                let r = try get(h.url + "/", cookie: "HUDDLE_SRV=\(v)")
                XCTAssertEqual(r.backend, server)
                XCTAssertNil(r.setCookie)
            }
        }
    }

    func testAProcessWithoutAKeyMakesItsOwnAndSaysSo() throws {
        try startBackends(2)
        let text = config().replacingOccurrences(of: " key=\"\(Self.key)\"", with: "")
        let one = try HuddleProcess(config: text)
        let two = try HuddleProcess(config: text)
        XCTAssertTrue(one.log.contains("sticky cookie HUDDLE_SRV without key="), one.log)
        let a = try get(one.url + "/")
        let cookie = try XCTUnwrap(a.setCookie)
        let value = String(cookie.dropFirst("HUDDLE_SRV=".count).prefix { $0 != ";" })
        XCTAssertEqual(value.count, 16)
        XCTAssertNotEqual(value, try expectedValue(try XCTUnwrap(a.backend)), "not the configured key's value")
        // Within the process it still works; another process does not recognise the value and sets its own.
        for _ in 0..<5 {
            let r = try get(one.url + "/", cookie: "HUDDLE_SRV=\(value)")
            XCTAssertEqual(r.backend, a.backend)
            XCTAssertNil(r.setCookie)
        }
        let other = try get(two.url + "/", cookie: "HUDDLE_SRV=\(value)")
        XCTAssertNotNil(other.setCookie, "another process's random key gives other values")
    }

    func testWebSocketUpgradesFollowTheCookieAndGetItOnThe101() throws {
        try startBackends(3)
        let h = try HuddleProcess(config: config())
        let address = SocketAddress(ip: "127.0.0.1", port: h.port)!
        // No cookie: balanced, and the 101 sets it.
        let first = try DemoWebSocketClient(address: address, path: "/echo")
        let server = try XCTUnwrap(first.handshakeResponse.header("X-Backend"))
        XCTAssertEqual(first.handshakeResponse.header("Set-Cookie"), "HUDDLE_SRV=\(try expectedValue(server)); Path=/; Max-Age=3600; HttpOnly")
        try first.send(text: "hello")
        XCTAssertEqual(try first.receive(), .text("hello"))
        try first.close()
        first.disconnect()
        // With a cookie: that server, every time, and no Set-Cookie on the 101.
        for b in backends {
            let value = try expectedValue(b.name)
            for _ in 0..<3 {
                let c = try DemoWebSocketClient(address: address, path: "/echo", headers: [("Cookie", "HUDDLE_SRV=\(value)")])
                XCTAssertEqual(c.handshakeResponse.header("X-Backend"), b.name)
                XCTAssertNil(c.handshakeResponse.header("Set-Cookie"))
                try c.send(text: "ping \(b.name)")
                XCTAssertEqual(try c.receive(), .text("ping \(b.name)"))
                try c.close()
                c.disconnect()
            }
        }
        // A tampered one: balanced, and the 101 carries a fresh cookie.
        let t = try DemoWebSocketClient(address: address, path: "/echo", headers: [("Cookie", "HUDDLE_SRV=AAAAAAAAAAAAAAAA")])
        let ts = try XCTUnwrap(t.handshakeResponse.header("X-Backend"))
        XCTAssertEqual(t.handshakeResponse.header("Set-Cookie")?.hasPrefix("HUDDLE_SRV=\(try expectedValue(ts));"), true)
        try t.close()
        t.disconnect()
        XCTAssertTrue(Harness.waitFor(10) { (Invariants.metrics(h)?["huddle_tunnels"] ?? -1) == 0 })
    }
}
