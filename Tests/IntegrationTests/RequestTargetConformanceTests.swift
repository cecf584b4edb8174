// Request-target, Host, version, Via and Forwarded as the backend sees them, observed by an independent backend
// (peers/raw_backend.py) that records each forwarded request.
// RFC 9112 §3.2 (request-target forms), §3.2.1-§3.2.4, §3.3 (target URI reconstruction); RFC 9110 §7.2 (Host),
// §7.6.3 (Via), §15.5.6 (405 needs Allow); RFC 7239 (Forwarded).
import Foundation
import Glibc
import XCTest

final class RequestTargetConformanceTests: HuddleTestCase {
    private var backend: PythonPeer!
    private var huddle: HuddleProcess!

    override func setUpWithError() throws {
        backend = try PythonPeer(script: "raw_backend.py", recordDirectory: true)
        // Also on [::1] (same port) for the IPv6 Forwarded case.
        huddle = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN};
        upstream app { server 127.0.0.1:\(backend.port) name=raw; keepalive 0; }
        server {
            listen 127.0.0.1:{PORT};
            listen [::1]:{PORT};
            route / { upstream app; }
        }
        """, withAdmin: true)
    }

    override func tearDown() {
        super.tearDown()   // the end-of-test invariant check (skipped when the test failed); stops huddle
        huddle = nil
        backend?.stop()
    }

    /// Sends one request (which should ask for Connection: close or be HTTP/1.0) and returns the parsed answers.
    private func send(_ raw: String, ipv6: Bool = false) throws -> [ParsedResponse] {
        let bytes: [UInt8]
        if ipv6 {
            bytes = try IPv6Client.exchange(port: huddle.port, Array(raw.utf8))
        } else {
            let c = try RawClient(port: huddle.port, receiveTimeoutSeconds: 5)
            c.send(raw)
            bytes = c.readAll()
        }
        return ParsedResponse.parseAll(bytes, headRequest: raw.hasPrefix("HEAD "))
    }

    /// The request the backend recorded for a 200 echo (its "conn"/"index" identify it).
    private func forwarded(_ r: [ParsedResponse], _ context: String = "", file: StaticString = #filePath, line: UInt = #line) -> PythonPeer.Request? {
        guard let first = r.first, first.status == 200, let json = first.json else {
            XCTFail("\(context.isEmpty ? "" : "[\(context.debugDescription)] ")expected a 200 echo from the backend, got \(r.map { "\($0.status) \(String(decoding: $0.body, as: UTF8.self))" })", file: file, line: line)
            return nil
        }
        return PythonPeer.Request(object: json)
    }

    private func assertRejected(_ raw: String, _ status: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = backend.totalBytesReceived
        let r = try send(raw)
        XCTAssertEqual(r.first?.status, status, "for \(raw.debugDescription)", file: file, line: line)
        backend.waitUntilAllConnectionsClosed()
        XCTAssertEqual(backend.totalBytesReceived, before, "the backend received bytes of \(raw.debugDescription)", file: file, line: line)
    }

    // MARK: request-target forms (RFC 9112 §3.2)

    func testOriginFormIsForwardedVerbatim() throws {
        let r = try send("GET /a/b%20c;p?x=1&y=%2F&z HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n")
        guard let req = forwarded(r) else { return }
        XCTAssertEqual(req.method, "GET")
        XCTAssertEqual(req.target, "/a/b%20c;p?x=1&y=%2F&z")
        XCTAssertEqual(req.version, "HTTP/1.1")
        XCTAssertEqual(req.values("Host"), ["example.test:8080"])
    }

    /// Huddle speaks HTTP/1.1 to backends whatever the client spoke (RFC 9110 §2.5: a proxy sends its own version).
    func testHTTP10RequestIsForwardedAsHTTP11() throws {
        let r = try send("GET /ten HTTP/1.0\r\nHost: h10.example\r\n\r\n")
        guard let req = forwarded(r) else { return }
        XCTAssertEqual(req.version, "HTTP/1.1")
        XCTAssertEqual(req.values("Host"), ["h10.example"])
        XCTAssertTrue(r.first?.value("Connection")?.lowercased() == "close", "an HTTP/1.0 client without keep-alive gets close")
    }

    /// RFC 9112 §3.2: Host is required in HTTP/1.1 only; an HTTP/1.0 request without it is valid. Forwarded as
    /// HTTP/1.1 it MUST carry a Host: the target URI's authority, reconstructed per RFC 9112 §3.3 from the server's
    /// default name and the incoming port, i.e. the address the client connected to.
    func testHTTP10RequestWithoutHostIsForwardedWithAHost() throws {
        let r = try send("GET /ten HTTP/1.0\r\n\r\n")
        XCTAssertEqual(r.first?.status, 200, "got \(r.map { "\($0.status) \(String(decoding: $0.body, as: UTF8.self))" })")
        backend.waitUntilAllConnectionsClosed()
        let req = backend.requests().last
        XCTAssertNil(req?.error, "the backend refused what Huddle forwarded: \(req?.error ?? "")")
        XCTAssertEqual(req?.values("Host"), ["127.0.0.1:\(huddle.port)"])
    }

    func testAbsoluteFormIsForwardedInOriginForm() throws {
        let cases: [(String, String, String)] = [
            ("GET http://a.example:8080/p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\n", "/p?q=1", "a.example:8080"),
            // The scheme is case-insensitive (RFC 9110 §4.2.3).
            ("GET HTTP://a.example/P HTTP/1.1\r\nHost: a.example\r\n", "/P", "a.example"),
            ("GET http://[::1]:81/v6 HTTP/1.1\r\nHost: [::1]:81\r\n", "/v6", "[::1]:81"),
        ]
        for (head, target, host) in cases {
            let r = try send(head + "Connection: close\r\n\r\n")
            guard let req = forwarded(r, head) else { continue }
            XCTAssertEqual(req.target, target, head)
            XCTAssertEqual(req.values("Host"), [host], head)
        }
    }

    /// RFC 9112 §3.2.1: an absolute-form target with an empty path is the path "/" (sent as "/"). Today Huddle routes
    /// on the empty path, which matches no route prefix (404), although it would forward it as "/".
    func testAbsoluteFormWithAnEmptyPathIsRoutedAndForwardedAsSlash() throws {
        for (head, target) in [("GET http://a.example HTTP/1.1\r\nHost: a.example\r\n", "/"),
                               ("GET http://a.example?x=1 HTTP/1.1\r\nHost: a.example\r\n", "/?x=1")] {
            let r = try send(head + "Connection: close\r\n\r\n")
            guard let req = forwarded(r, head) else { continue }
            XCTAssertEqual(req.target, target, head)
            XCTAssertEqual(req.values("Host"), ["a.example"], head)
        }
    }

    /// RFC 9112 §3.2.2: a proxy receiving absolute-form MUST ignore the received Host and replace it with the host
    /// information of the request-target. Today Huddle forwards the client's Host unchanged.
    func testAbsoluteFormAuthorityReplacesADifferentHost() throws {
        let r = try send("GET http://a.example/p HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
        guard let req = forwarded(r) else { return }
        XCTAssertEqual(req.target, "/p")
        XCTAssertEqual(req.values("Host"), ["a.example"], "the absolute-form authority must replace the Host header")
        XCTAssertEqual(req.values("X-Forwarded-Host"), ["a.example"], "X-Forwarded-Host should name the effective authority")
    }

    /// RFC 9112 §3.2: absolute-form does not exempt an HTTP/1.1 request from sending Host.
    func testAbsoluteFormWithoutHostInHTTP11Is400() throws {
        try assertRejected("GET http://a.example/p HTTP/1.1\r\nConnection: close\r\n\r\n", 400)
    }

    /// RFC 9112 §3.2.4: `OPTIONS *` is forwarded as `*`; and the last proxy MUST turn an OPTIONS absolute-form with an
    /// empty path and no query into `*`. Today `OPTIONS *` matches no route (404) and `OPTIONS http://h` becomes `/`.
    func testOptionsAsteriskIsForwardedAsAsterisk() throws {
        var r = try send("OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if let req = forwarded(r) {
            XCTAssertEqual(req.method, "OPTIONS")
            XCTAssertEqual(req.target, "*")
        }
        r = try send("OPTIONS http://a.example HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        if let req = forwarded(r) { XCTAssertEqual(req.target, "*", "OPTIONS absolute-form with an empty path") }
        // A non-empty path stays a path.
        r = try send("OPTIONS http://a.example/ HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        if let req = forwarded(r) { XCTAssertEqual(req.target, "/") }
    }

    /// RFC 9112 §3.2.4: asterisk-form is only for OPTIONS.
    func testAsteriskFormWithAnotherMethodIs400() throws {
        try assertRejected("GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400)
        try assertRejected("POST * HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 400)
    }

    /// RFC 9112 §3.2.3: authority-form is only for CONNECT, which Huddle does not tunnel: 405, and RFC 9110 §15.5.6
    /// says a 405 MUST carry Allow (the methods that are supported). Today the Allow header is missing.
    func testConnectGets405WithAllow() throws {
        let before = backend.totalBytesReceived
        let r = try send("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
        XCTAssertEqual(r.first?.status, 405)
        XCTAssertEqual(r.first?.value("Connection")?.lowercased(), "close")
        let allow = r.first?.value("Allow")
        XCTAssertNotNil(allow, "405 without Allow: \(r.first?.headers ?? [])")
        if let allow {
            let methods = allow.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }
            XCTAssertTrue(methods.contains("GET"), allow)
            XCTAssertFalse(methods.contains("CONNECT"), allow)
        }
        XCTAssertEqual(backend.totalBytesReceived, before)
        try assertRejected("GET a.example:443 HTTP/1.1\r\nHost: a.example:443\r\nConnection: close\r\n\r\n", 400)
    }

    // MARK: Host (RFC 9112 §3.2, RFC 9110 §7.2)

    func testHostRules() throws {
        try assertRejected("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400)                       // missing
        try assertRejected("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\nConnection: close\r\n\r\n", 400)   // repeated
        try assertRejected("GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n", 400)
        try assertRejected("GET / HTTP/1.1\r\nHost: user@a\r\nConnection: close\r\n\r\n", 400)
        try assertRejected("GET / HTTP/1.1\r\nHost: a:http\r\nConnection: close\r\n\r\n", 400)
        try assertRejected("GET / HTTP/1.1\r\nHost: a:1:2\r\nConnection: close\r\n\r\n", 400)
        try assertRejected("GET /a#frag HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 400)        // fragment (§3.2)
        // Valid ones are forwarded unchanged.
        for host in ["a.example", "a.example:8080", "[::1]:8080", "192.0.2.1"] {
            let r = try send("GET /h HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
            if let req = forwarded(r) { XCTAssertEqual(req.values("Host"), [host]) }
        }
    }

    // MARK: Via (RFC 9110 §7.6.3)

    /// "A proxy MUST send an appropriate Via header field ... in each message that it forwards. An HTTP-to-HTTP gateway
    /// MUST send an appropriate Via header field in each inbound request message." Huddle is such a gateway; each
    /// intermediary appends `received-protocol received-by` (the version it received, "1.0" or "1.1") after the
    /// existing entries. Today Huddle adds no Via.
    func testViaIsAppendedToRequests() throws {
        let by = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+(:[0-9]+)?"
        var r = try send("GET /via HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if let req = forwarded(r) {
            let entries = Self.listElements(req.values("Via"))
            XCTAssertEqual(entries.count, 1, "\(req.values("Via"))")
            XCTAssertNotNil(entries.last?.range(of: "^1\\.1 \(by)$", options: .regularExpression), "\(entries)")
        }
        r = try send("GET /via HTTP/1.1\r\nHost: x\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1)\r\nConnection: close\r\n\r\n")
        if let req = forwarded(r) {
            let entries = Self.listElements(req.values("Via"))
            XCTAssertEqual(Array(entries.prefix(2)), ["1.0 fred", "1.1 p.example (Apache/1.1)"], "earlier entries must be kept in order")
            XCTAssertEqual(entries.count, 3, "\(entries)")
            XCTAssertNotNil(entries.last?.range(of: "^1\\.1 \(by)$", options: .regularExpression), "\(entries)")
        }
        r = try send("GET /via HTTP/1.0\r\nHost: x\r\n\r\n")
        if let req = forwarded(r) {
            let entries = Self.listElements(req.values("Via"))
            XCTAssertNotNil(entries.last?.range(of: "^1\\.0 \(by)$", options: .regularExpression),
                            "an HTTP/1.0 request is received-protocol 1.0: \(entries)")
        }
    }

    // MARK: X-Forwarded-For and Forwarded (RFC 7239)

    /// What we want: Huddle appends one element `for=<client>;proto=http;host=<Host>` after any elements the client
    /// sent (kept, in order; as added field lines or one combined line), with RFC 7239 syntax: values that are not
    /// tokens (IPv6, host:port) in quotes, IPv6 as "[...]". Today Huddle only passes the client's header through.
    func testForwardedGetsAnElementAppended() throws {
        var r = try send("GET /fwd HTTP/1.1\r\nHost: app.example:8080\r\nConnection: close\r\n\r\n")
        if let req = forwarded(r) {
            let elements = Self.forwardedElements(req.values("Forwarded"))
            XCTAssertNotNil(elements, "Forwarded is not RFC 7239 syntax: \(req.values("Forwarded"))")
            XCTAssertEqual(elements?.count, 1, "\(req.values("Forwarded"))")
            XCTAssertEqual(elements?.last?["for"], "127.0.0.1")
            XCTAssertEqual(elements?.last?["proto"], "http")
            XCTAssertEqual(elements?.last?["host"], "app.example:8080")
            XCTAssertEqual(req.values("X-Forwarded-For"), ["127.0.0.1"])
        }
        // The client's elements are kept in order, then ours.
        r = try send("GET /fwd HTTP/1.1\r\nHost: app.example\r\nForwarded: for=192.0.2.60;proto=https;by=203.0.113.43\r\n"
                     + "Forwarded: for=\"[2001:db8:cafe::17]:4711\"\r\nX-Forwarded-For: 192.0.2.60, 2001:db8:cafe::17\r\nConnection: close\r\n\r\n")
        if let req = forwarded(r) {
            let elements = Self.forwardedElements(req.values("Forwarded"))
            XCTAssertNotNil(elements, "Forwarded is not RFC 7239 syntax: \(req.values("Forwarded"))")
            XCTAssertEqual(elements?.count, 3, "\(req.values("Forwarded"))")
            XCTAssertEqual(elements?.first?["for"], "192.0.2.60")
            XCTAssertEqual(elements?.first?["by"], "203.0.113.43")
            XCTAssertEqual(elements?.dropFirst().first?["for"], "[2001:db8:cafe::17]:4711")
            XCTAssertEqual(elements?.last?["for"], "127.0.0.1")
            XCTAssertEqual(elements?.last?["host"], "app.example")
            XCTAssertEqual(Self.listElements(req.values("X-Forwarded-For")), ["192.0.2.60", "2001:db8:cafe::17", "127.0.0.1"])
        }
        // An IPv6 client is quoted and bracketed (RFC 7239 §6).
        r = try send("GET /fwd6 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n", ipv6: true)
        if let req = forwarded(r) {
            let raw = req.values("Forwarded").joined(separator: ", ")
            XCTAssertTrue(raw.contains("for=\"[::1]\""), "IPv6 must be written for=\"[::1]\": \(raw)")
            XCTAssertEqual(Self.forwardedElements(req.values("Forwarded"))?.last?["for"], "[::1]")
            XCTAssertEqual(Self.listElements(req.values("X-Forwarded-For")), ["::1"])
        }
    }

    // MARK: list and RFC 7239 parsing (strict: nil on any syntax error)

    /// Comma-separated elements of all field lines, trimmed (RFC 9110 §5.6.1; quotes are respected).
    static func listElements(_ lines: [String]) -> [String] {
        lines.flatMap { splitOutsideQuotes($0, ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    static func splitOutsideQuotes(_ s: String, _ sep: Character) -> [String] {
        var out: [String] = []
        var cur = ""
        var quoted = false
        var escaped = false
        for ch in s {
            if escaped { cur.append(ch); escaped = false; continue }
            if quoted && ch == "\\" { cur.append(ch); escaped = true; continue }
            if ch == "\"" { quoted.toggle() }
            if ch == sep && !quoted { out.append(cur); cur = "" } else { cur.append(ch) }
        }
        out.append(cur)
        return out
    }

    static func isToken(_ s: Substring) -> Bool {
        !s.isEmpty && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "!#$%&'*+-.^_`|~".contains($0)) }
    }

    /// RFC 7239 §4: `1#forwarded-element`, each `forwarded-pair *( ";" forwarded-pair )`, value = token / quoted-string.
    /// Returns the elements as lowercased-name -> unquoted value, or nil if anything is malformed.
    static func forwardedElements(_ lines: [String]) -> [[String: String]]? {
        var out: [[String: String]] = []
        for element in listElements(lines) {
            var pairs: [String: String] = [:]
            for pair in splitOutsideQuotes(element, ";") {
                let p = pair.trimmingCharacters(in: .whitespaces)
                guard let eq = p.firstIndex(of: "=") else { return nil }
                let name = p[..<eq]
                var value = p[p.index(after: eq)...]
                guard isToken(name) else { return nil }
                if value.first == "\"" {
                    guard value.count >= 2, value.last == "\"" else { return nil }
                    value = value.dropFirst().dropLast()
                    var unescaped = ""
                    var esc = false
                    for ch in value {
                        if esc { unescaped.append(ch); esc = false } else if ch == "\\" { esc = true } else if ch == "\"" { return nil } else { unescaped.append(ch) }
                    }
                    pairs[name.lowercased()] = unescaped
                } else {
                    guard isToken(value) else { return nil }
                    pairs[name.lowercased()] = String(value)
                }
            }
            out.append(pairs)
        }
        return out
    }
}

/// A blocking IPv6 loopback client: connect to [::1]:port, send, read to EOF.
enum IPv6Client {
    static func exchange(port: UInt16, _ bytes: [UInt8], timeoutSeconds: Int = 5) throws -> [UInt8] {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NSError(domain: "ipv6", code: Int(errno)) }
        defer { close(fd) }
        var addr = sockaddr_in6()
        addr.sin6_family = sa_family_t(AF_INET6)
        addr.sin6_port = port.bigEndian
        addr.sin6_addr = in6addr_loopback
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard r == 0 else { throw NSError(domain: "ipv6 connect", code: Int(errno)) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            off += n
        }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }
}
