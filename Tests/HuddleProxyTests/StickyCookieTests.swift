// The pure parts of sticky cookies: the HMAC and base64url under the value, the value table built with the snapshot,
// the Set-Cookie line, where ServerChoice sends a request that carries a cookie, and what the router reads from it.
@testable import HuddleProxy
import HuddleBalancing
import HuddleConfig
import HuddleHTTP
import XCTest

final class StickyCookieTests: XCTestCase {
    func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    func testHMACSHA256MatchesRFC4231() {
        // RFC 4231, test cases 1 and 2.
        XCTAssertEqual(hex(StickyCookies.hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8))),
                       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        XCTAssertEqual(hex(StickyCookies.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))),
                       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    func testBase64URLIsRFC4648Section5WithoutPadding() {
        // RFC 4648 §10 vectors, padding dropped.
        let vectors = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors { XCTAssertEqual(StickyCookies.base64URL(Array(plain.utf8)), encoded, plain) }
        // The two characters that differ from standard base64: 62 and 63 are "-" and "_", not "+" and "/".
        XCTAssertEqual(StickyCookies.base64URL([0xfb, 0xff, 0xbf]), "-_-_")
        XCTAssertEqual(StickyCookies.base64URL([0xfb, 0xff]), "-_8")
    }

    func testAValueIsTheTruncatedHMACOfTheIdentityAndShowsNoAddress() {
        let key = Array("0123456789abcdef0123".utf8)
        let v = StickyCookies.value(key: key, identity: "10.0.0.7:8080")
        XCTAssertEqual(v.count, StickyCookies.valueLength)
        XCTAssertEqual(v, StickyCookies.base64URL(StickyCookies.hmacSHA256(key: key, message: Array("10.0.0.7:8080".utf8)).prefix(12)))
        XCTAssertTrue(v.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F },
                      "URL- and cookie-safe: \(v)")
        XCTAssertFalse(v.contains("10.0") || v.contains("8080"))
        XCTAssertEqual(StickyCookies.value(key: key, identity: "10.0.0.7:8080"), v, "the same key and identity: the same value (replicas agree)")
        XCTAssertNotEqual(StickyCookies.value(key: Array("0123456789abcdef0124".utf8), identity: "10.0.0.7:8080"), v, "another key")
        XCTAssertNotEqual(StickyCookies.value(key: key, identity: "10.0.0.8:8080"), v, "another server")
        // Checked against the same computation done by openssl (printf %s web-a | openssl dgst -sha256 -hmac KEY ...).
        XCTAssertEqual(StickyCookies.value(key: key, identity: "web-a"), "keASUa28GWc3-cRB")
    }

    func testSetCookieLineCarriesTheConfiguredAttributes() {
        var c = StickyCookieConfig(name: "SRV", location: SourceLocation(file: "t", line: 1, column: 1))
        XCTAssertEqual(StickyCookies.setCookieLine(c, value: "v"), "Set-Cookie: SRV=v; Path=/\r\n", "a session cookie")
        c.maxAge = 3_600_000
        c.secure = true
        c.httpOnly = true
        c.sameSite = .lax
        XCTAssertEqual(StickyCookies.setCookieLine(c, value: "v"), "Set-Cookie: SRV=v; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax\r\n")
        c.maxAge = 1500
        XCTAssertTrue(StickyCookies.setCookieLine(c, value: "v").contains("Max-Age=1;"), "whole seconds")
    }

    func testTheTableFindsEveryServerAndNothingElse() {
        let c = StickyCookieConfig(name: "SRV", location: SourceLocation(file: "t", line: 1, column: 1))
        for count in [1, 2, 5, 100] {
            let ids = (0..<count).map { "server-\($0)" }
            let t = StickyCookies(config: c, key: Array("k".utf8), identities: ids)
            for (i, v) in t.values.enumerated() {
                XCTAssertEqual(Array(v.utf8).withUnsafeBytes { t.serverIndex(value: $0) }, i, "\(count) servers, #\(i)")
                // Tampering with any one character makes it no server's.
                for pos in [0, 7, 8, 15] {
                    var b = Array(v.utf8)
                    b[pos] = b[pos] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
                    XCTAssertEqual(b.withUnsafeBytes { t.serverIndex(value: $0) }, -1, "tampered at \(pos)")
                }
                XCTAssertEqual(Array(v.utf8.dropLast()).withUnsafeBytes { t.serverIndex(value: $0) }, -1, "too short")
                XCTAssertEqual(Array((v + "A").utf8).withUnsafeBytes { t.serverIndex(value: $0) }, -1, "too long")
            }
            XCTAssertEqual(Array("AAAAAAAAAAAAAAAA".utf8).withUnsafeBytes { t.serverIndex(value: $0) }, -1)
            XCTAssertEqual(Set(t.values).count, count, "distinct values")
        }
        XCTAssertEqual(StickyCookies(config: c, key: [], identities: []).values, [])
    }

    // MARK: the router reads the cookie

    let runtime: RuntimeConfig = {
        let c = try! ConfigParser.parse(text: """
        upstream web {
            server 127.0.0.1:9201 name=w1;
            server 127.0.0.1:9202 name=w2;
            server 127.0.0.1:9203 name=w3;
            server 127.0.0.1:9204 name=w4 down;
            sticky cookie SRV key="sixteen-byte-key-for-tests";
        }
        upstream plain { server 127.0.0.1:9301; }
        server {
            listen 127.0.0.1:8080;
            route /plain/ { upstream plain; }
            route / { upstream web; }
        }
        """, file: "sticky.conf")
        return try! RuntimeConfig.build(c, generation: 1, previous: nil, log: { _ in })
    }()
    var web: UpstreamRuntime { runtime.upstream(named: "web")! }

    func plan(_ request: String) -> ForwardPlan? {
        var parser = HTTPRequestParser()
        var head = HTTPRequestHead()
        let bytes = Array(request.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { parser.parse($0, into: &head) }, .complete)
        if case .forward(let p) = bytes.withUnsafeBytes({ RequestRouter.decide(block: runtime.serverBlocks[0], head: head, bytes: $0) }) { return p }
        return nil
    }

    func testTheRouterFindsTheServerTheCookieNames() throws {
        let values = try XCTUnwrap(web.sticky).values
        XCTAssertEqual(values.count, 4)
        XCTAssertEqual(values[1], StickyCookies.value(key: Array("sixteen-byte-key-for-tests".utf8), identity: "w2"), "made with the configured key")
        XCTAssertEqual(plan("GET / HTTP/1.1\r\nHost: x\r\nCookie: SRV=\(values[1])\r\n\r\n")?.stickyServer, 1)
        XCTAssertEqual(plan("GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; SRV=\"\(values[2])\"; b=2\r\n\r\n")?.stickyServer, 2, "quoted, among others")
        XCTAssertEqual(plan("GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: SRV=\(values[0])\r\n\r\n")?.stickyServer, 0, "a second Cookie header")
        XCTAssertEqual(plan("GET / HTTP/1.1\r\nHost: x\r\n\r\n")?.stickyServer, -1, "no cookie")
        XCTAssertEqual(plan("GET / HTTP/1.1\r\nHost: x\r\nCookie: srv=\(values[1])\r\n\r\n")?.stickyServer, -1, "names are case-sensitive")
        XCTAssertEqual(plan("GET / HTTP/1.1\r\nHost: x\r\nCookie: SRV=127.0.0.1:9202\r\n\r\n")?.stickyServer, -1, "an address is no value")
        XCTAssertEqual(plan("GET /plain/ HTTP/1.1\r\nHost: x\r\nCookie: SRV=\(values[1])\r\n\r\n")?.stickyServer, -1,
                       "an upstream without sticky ignores it")
    }

    // MARK: ServerChoice

    var rng = FastRandom(seed: 3)

    func choose(sticky: Int, excluded: [Int] = []) -> String? {
        var rr = SmoothRoundRobin(weights: web.servers.map(\.weight))
        let c = ServerChoice.choose(upstream: web, key: nil, keyHash: 0, upgrade: false, excluded: excluded, nowMs: 1000,
                                    rng: &rng, roundRobin: &rr, sticky: sticky)
        guard let c else { return nil }
        let name = c.server.identity
        XCTAssertEqual(web.servers[c.index].identity, name, "the index names the chosen server")
        return name
    }

    func testACookieWinsWhileItsServerTakesTrafficOnly() {
        for _ in 0..<20 { XCTAssertEqual(choose(sticky: 2), "w3") }
        // Down in the config: balanced among the others.
        for _ in 0..<20 { XCTAssertNotEqual(choose(sticky: 3), "w4") }
        // Already failed on this exchange (a retry): elsewhere.
        for _ in 0..<20 { XCTAssertNotEqual(choose(sticky: 2, excluded: [web.servers[2].uid]), "w3") }
        // Draining, unhealthy or ejected: elsewhere; back to it once it takes traffic again.
        let w3 = web.servers[2]
        w3.health.update(set: .draining, reason: "test", nowWallMs: 0)
        for _ in 0..<20 { XCTAssertNotEqual(choose(sticky: 2), "w3") }
        w3.health.update(clear: .draining, reason: "test", nowWallMs: 0)
        XCTAssertEqual(choose(sticky: 2), "w3")
        // Out of range (a snapshot with fewer servers) is no preference.
        XCTAssertNotNil(choose(sticky: 99))
        var seen: Set<String> = []
        for _ in 0..<200 { seen.insert(choose(sticky: -1) ?? "-") }
        XCTAssertEqual(seen, ["w1", "w2", "w3"], "no cookie: balanced as usual")
    }
}
