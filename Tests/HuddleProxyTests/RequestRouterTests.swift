// Routing decisions and the forwarded head, from parsed request bytes: no sockets.
@testable import HuddleProxy
import HuddleConfig
import HuddleHTTP
@testable import HuddleIO
import XCTest

final class RequestRouterTests: XCTestCase {
    let runtime: RuntimeConfig = {
        let c = try! ConfigParser.parse(text: """
        upstream web { server 127.0.0.1:9001; }
        upstream chat { balance hash; server 127.0.0.1:9101; group_linger 0s; }
        server {
            listen 127.0.0.1:8080;
            max_body_size 100;
            route /rooms/ { upstream chat; group_key path 2; group_key query room; }
            route /ws/ { upstream chat; group_key header X-Group; group_key_missing balance; }
            route /api/ { upstream web; }
            route / { upstream web; }
        }
        """, file: "router.conf")
        return try! RuntimeConfig.build(c, generation: 1, previous: nil, log: { _ in })
    }()

    func decide(_ request: String) -> (RoutingDecision, HTTPRequestHead) {
        var parser = HTTPRequestParser()
        var head = HTTPRequestHead()
        let bytes = Array(request.utf8)
        let r = bytes.withUnsafeBytes { parser.parse($0, into: &head) }
        XCTAssertEqual(r, .complete, request)
        let d = bytes.withUnsafeBytes { RequestRouter.decide(block: runtime.serverBlocks[0], head: head, bytes: $0) }
        return (d, head)
    }

    func route(_ request: String) -> ForwardPlan? {
        if case .forward(let p) = decide(request).0 { return p }
        return nil
    }

    func answer(_ request: String) -> LocalAnswer? {
        if case .answer(let a) = decide(request).0 { return a }
        return nil
    }

    let ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

    func testRoutesAndKeys() {
        XCTAssertEqual(route("GET /api/v1 HTTP/1.1\r\nHost: x\r\n\r\n").map { String(decoding: $0.route.prefix, as: UTF8.self) }, "/api/")
        XCTAssertEqual(route("GET /apix HTTP/1.1\r\nHost: x\r\n\r\n").map { String(decoding: $0.route.prefix, as: UTF8.self) }, "/")
        let p = route("GET /rooms/lob%20by/x HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(p?.groupKey, Array("lob by".utf8))
        XCTAssertNotEqual(p?.groupKeyHash, 0)
        XCTAssertEqual(route("GET /rooms/?room=a+b HTTP/1.1\r\nHost: x\r\n\r\n")?.groupKey, Array("a b".utf8), "query fallback, form-decoded")
        XCTAssertNil(route("GET /ws/ HTTP/1.1\r\nHost: x\r\n\r\n")?.groupKey, "balance: no key is fine")
        XCTAssertEqual(route("GET /ws/ HTTP/1.1\r\nHost: x\r\nx-group: g1\r\n\r\n")?.groupKey, Array("g1".utf8))
    }

    func testLocalAnswers() {
        XCTAssertEqual(answer("GET /rooms/ HTTP/1.1\r\nHost: x\r\n\r\n")?.status, 400, "a keyed route without a key")
        XCTAssertEqual(answer("POST /rooms/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")?.close, true, "with a body it also closes")
        XCTAssertEqual(answer("POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")?.status, 413)
        XCTAssertNil(answer("POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"), "exactly the limit is fine")
        let connect = answer("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
        XCTAssertEqual(connect?.status, 405)
        XCTAssertTrue(connect?.extraHeaders.description.hasPrefix("Allow: ") ?? false)
    }

    func testUpgrades() {
        XCTAssertEqual(route("GET /rooms/a HTTP/1.1\r\nHost: x\r\n" + ws + "\r\n")?.upgrade, .webSocket)
        XCTAssertEqual(route("GET /rooms/a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")?.upgrade, UpgradeKind.none,
                       "an upgrade the route does not allow is dropped, the request forwarded")
        XCTAssertEqual(answer("GET /rooms/a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")?.status, 400,
                       "a WebSocket handshake without its key and version")
    }

    func testRootFormsRouteAsSlash() {
        XCTAssertNotNil(route("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"))
        XCTAssertNotNil(route("GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n"))
    }

    /// The forwarded head: target form, effective Host, and the headers this hop adds.
    func forwarded(_ request: String, ip: String = "10.1.2.3", ipv6: Bool = false) -> String {
        let (d, head) = decide(request)
        guard case .forward(let plan) = d else { XCTFail("not forwarded"); return "" }
        let pool = BufferPool(bufferSize: 4096)
        var out = pool.acquire()
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { b in
            Array(ip.utf8).withUnsafeBytes { ipb in
                ForwardedHead.write(into: &out, head: head, bytes: b, upgrade: plan.upgrade != .none, clientIP: ipb, clientIsIPv6: ipv6,
                                    proto: "http", logFields: true, fallbackHost: { Array("127.0.0.1:8080".utf8) },
                                    newRequestId: { $0.append("0123456789abcdef0123456789abcdef") })
            }
        }
        return String(decoding: out.readableBytes, as: UTF8.self)
    }

    func testForwardedHead() {
        let f = forwarded("GET http://a.example:81?x=1 HTTP/1.1\r\nHost: b.example\r\nConnection: keep-alive, X-Drop\r\nKeep-Alive: 5\r\nX-Drop: secret\r\nX-Keep: 1\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\nVia: 1.0 fred\r\nForwarded: for=1.1.1.1\r\n\r\n")
        XCTAssertTrue(f.hasPrefix("GET /?x=1 HTTP/1.1\r\nHost: a.example:81\r\n"), f)
        XCTAssertEqual(f.components(separatedBy: "Host: ").count - 1, 2, "Host and X-Forwarded-Host only: \(f)")
        XCTAssertFalse(f.contains("b.example"), "the absolute-form authority replaced the client's Host")
        for dropped in ["Keep-Alive", "TE:", "keep-alive, X-Drop", "X-Drop: secret"] { XCTAssertFalse(f.contains(dropped), "\(dropped) is hop-by-hop") }
        XCTAssertTrue(f.contains("X-Keep: 1\r\n"), "a header the Connection header does not name is kept")
        XCTAssertTrue(f.contains("X-Forwarded-For: 1.1.1.1, 10.1.2.3\r\n"), f)
        XCTAssertTrue(f.contains("X-Forwarded-Host: a.example:81\r\n"), f)
        XCTAssertTrue(f.contains("Forwarded: for=1.1.1.1\r\n"), "the client's element is kept")
        XCTAssertTrue(f.contains("Forwarded: for=10.1.2.3;proto=http;host=\"a.example:81\"\r\n"), f)
        XCTAssertTrue(f.contains("Via: 1.0 fred\r\n") && f.contains("Via: 1.1 huddle\r\n"), f)
        XCTAssertTrue(f.range(of: "Via: 1.0 fred")!.lowerBound < f.range(of: "Via: 1.1 huddle")!.lowerBound, "ours comes last")
        XCTAssertTrue(f.contains("X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"))
        XCTAssertTrue(f.hasSuffix("\r\n\r\n"))
    }

    func testForwardedHeadForOtherForms() {
        XCTAssertTrue(forwarded("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").hasPrefix("OPTIONS * HTTP/1.1\r\nHost: x\r\n"))
        XCTAssertTrue(forwarded("OPTIONS http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n").hasPrefix("OPTIONS * HTTP/1.1\r\n"))
        XCTAssertTrue(forwarded("OPTIONS http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n").hasPrefix("OPTIONS / HTTP/1.1\r\n"))
        let h10 = forwarded("GET /p HTTP/1.0\r\n\r\n")
        XCTAssertTrue(h10.hasPrefix("GET /p HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"), h10)
        XCTAssertTrue(h10.contains("Via: 1.0 huddle\r\n"), h10)
        let v6 = forwarded("GET / HTTP/1.1\r\nHost: x\r\n\r\n", ip: "::1", ipv6: true)
        XCTAssertTrue(v6.contains("Forwarded: for=\"[::1]\";proto=http;host=\"x\"\r\n"), v6)
        let up = forwarded("GET /rooms/a HTTP/1.1\r\nHost: x\r\n" + ws + "\r\n")
        XCTAssertTrue(up.contains("Upgrade: websocket\r\n") && up.contains("Connection: Upgrade\r\n"), up)
    }
}
