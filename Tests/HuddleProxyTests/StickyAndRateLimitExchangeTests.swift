// Sticky cookies and rate limits on the in-memory network: where the Set-Cookie line goes (final response, a retry
// that moved the request, the 101 of a WebSocket), when it is left out, and the 429 a limited request gets; each
// exchange ends with everything back at rest.
@testable import HuddleProxy
import HuddleSys
import XCTest

final class StickyAndRateLimitExchangeTests: XCTestCase {
    static let key = "a-key-for-the-exchange-tests"

    func harness(extraRoute: String = "") throws -> ExchangeHarness {
        try ExchangeHarness(config: """
        upstream app {
            server 127.0.0.1:9001 name=one;
            server 127.0.0.1:9002 name=two;
            connect_timeout 200ms;
            retries 1;
            keepalive 0;
            sticky cookie SRV max_age=10m httponly key="\(Self.key)";
        }
        server {
            listen 127.0.0.1:8080;
            route /limited/ { upstream app; rate_limit 1/m burst=2; }
            route / { upstream app; \(extraRoute) }
        }
        """)
    }

    func value(_ identity: String) -> String { StickyCookies.value(key: Array(Self.key.utf8), identity: identity) }
    func identity(port: UInt16) -> String { port == 9001 ? "one" : "two" }

    /// Sends `request`, answers it from whichever backend got it with `response`; returns what the client got and the
    /// backend's port.
    func exchange(_ h: ExchangeHarness, _ c: MemoryConnection, _ request: String,
                  response: String = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") -> (String, UInt16) {
        let before = h.net.backendConnections.count
        c.send(request)
        XCTAssertTrue(h.run { h.net.backendConnections.count > before && String(decoding: h.net.backendConnections.last!.connection.fromProxy.bytes, as: UTF8.self).hasSuffix("\r\n\r\n") })
        let (address, b) = h.net.backendConnections.last!
        _ = b.receive()
        b.send(response)
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.contains("\r\n\r\n") && (got.hasSuffix("ok") || got.hasPrefix("HTTP/1.1 101")) })
        return (got, address.port)
    }

    func testTheResponseSetsTheCookieOfTheServerThatAnsweredAndOnlyWhenNeeded() throws {
        let h = try harness()
        let c = h.client()
        let (first, port) = exchange(h, c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(first.statusCode, 200)
        XCTAssertTrue(first.contains("\r\nSet-Cookie: SRV=\(value(identity(port: port))); Path=/; Max-Age=600; HttpOnly\r\n"), first)
        XCTAssertFalse(first.contains("127.0.0.1"), "no address in the answer")
        // The cookie comes back: the same server, and nothing to set.
        for _ in 0..<5 {
            let (again, p) = exchange(h, c, "GET / HTTP/1.1\r\nHost: h\r\nCookie: SRV=\(value(identity(port: port)))\r\n\r\n")
            XCTAssertEqual(p, port)
            XCTAssertFalse(again.contains("Set-Cookie"), again)
        }
        // A value that is no server's: balanced, and a new cookie.
        let (tampered, _) = exchange(h, c, "GET / HTTP/1.1\r\nHost: h\r\nCookie: SRV=AAAAAAAAAAAAAAAA\r\n\r\n")
        XCTAssertTrue(tampered.contains("Set-Cookie: SRV="), tampered)
        // The backend's own Set-Cookie stays, ours is added.
        let (both, p2) = exchange(h, c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                                  response: "HTTP/1.1 200 OK\r\nSet-Cookie: app=1\r\nContent-Length: 2\r\n\r\nok")
        XCTAssertTrue(both.contains("Set-Cookie: app=1\r\n") && both.contains("Set-Cookie: SRV=\(value(identity(port: p2)))"), both)
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testACookieForAServerThatFailsIsRewrittenByTheRetry() throws {
        let h = try harness()
        var tried: [UInt16] = []
        h.net.onConnect = { a in
            tried.append(a.port)
            return a.port == 9001 ? .refuse : .accept
        }
        let c = h.client()
        let (got, port) = exchange(h, c, "GET / HTTP/1.1\r\nHost: h\r\nCookie: SRV=\(value("one"))\r\n\r\n")
        XCTAssertEqual(port, 9002, "the retry went to the other server")
        XCTAssertEqual(tried, [9001, 9002], "the cookie's server was tried first")
        XCTAssertTrue(got.contains("Set-Cookie: SRV=\(value("two"));"), got)
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testTheWebSocket101CarriesTheCookie() throws {
        let h = try harness()
        let c = h.client()
        let upgrade = "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        let switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        let (got, port) = exchange(h, c, upgrade + "\r\n", response: switching)
        XCTAssertEqual(got.statusCode, 101, got)
        XCTAssertTrue(got.contains("Set-Cookie: SRV=\(value(identity(port: port)));"), got)
        c.finish()
        h.net.backendConnections.last!.connection.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()

        // With its cookie, the upgrade goes to that server, and the 101 sets nothing.
        let d = h.client()
        let other: UInt16 = port == 9001 ? 9002 : 9001
        let (again, p) = exchange(h, d, upgrade + "Cookie: SRV=\(value(identity(port: other)))\r\n\r\n", response: switching)
        XCTAssertEqual(p, other)
        XCTAssertFalse(again.contains("Set-Cookie"), again)
        d.finish()
        h.net.backendConnections.last!.connection.finish()
        XCTAssertTrue(h.run { d.proxyClosed })
        h.assertAtRest()
    }

    func testOverTheLimitAnswers429WithRetryAfterAndKeepsTheConnection() throws {
        let h = try harness()
        let c = h.client()
        for _ in 0..<2 {
            let (got, _) = exchange(h, c, "GET /limited/x HTTP/1.1\r\nHost: h\r\n\r\n")
            XCTAssertEqual(got.statusCode, 200)
        }
        let backends = h.net.backendConnections.count
        c.send("GET /limited/x HTTP/1.1\r\nHost: h\r\n\r\n")
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.contains("\r\n\r\n") && got.hasSuffix("\n") })
        XCTAssertEqual(got.statusCode, 429, got)
        // 1/m with burst=2: both tokens are gone, the next one is back a minute after the first was taken.
        let retry = got.components(separatedBy: "\r\n").first { $0.hasPrefix("Retry-After: ") }.flatMap { Int($0.dropFirst(13)) }
        XCTAssertNotNil(retry, got)
        XCTAssertTrue((59...60).contains(retry ?? 0), "about a minute: \(got)")
        XCTAssertFalse(got.contains("Set-Cookie"), "a local answer pins nobody")
        XCTAssertEqual(h.net.backendConnections.count, backends, "no backend was asked")
        XCTAssertEqual(h.runtime.rateLimiters.first?.limited.load(ordering: .relaxed), 1)
        XCTAssertFalse(c.proxyClosed, "a bodiless request keeps its connection")
        // Another route of the same client is not limited.
        let (free, _) = exchange(h, c, "GET /other HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(free.statusCode, 200)
        // A limited request with a body closes the connection (the body is not read).
        c.send("POST /limited/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
        var post = ""
        XCTAssertTrue(h.run { post += c.receiveText(); return c.proxyClosed })
        XCTAssertEqual(post.statusCode, 429)
        XCTAssertTrue(post.contains("Connection: close"), post)
        h.assertAtRest()
    }
}
