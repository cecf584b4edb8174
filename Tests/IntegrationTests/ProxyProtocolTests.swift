// The PROXY protocol against the real binary. Receiving (`listen ... proxy_protocol`): headers built here, byte by
// byte from the specification, set the client in the access log line, X-Forwarded-For and Forwarded as
// peers/raw_backend.py receives them; anything else is closed unanswered with a reason in the log; a listener without
// the flag is unaffected. Sending (`send_proxy_protocol`): raw_backend.py --proxy-protocol reads each connection's
// header with its own parser and records every byte, so the exact header and which connection carried which client's
// requests are checked from outside Huddle.
import Foundation
import Glibc
import XCTest

final class ProxyProtocolTests: HuddleTestCase {
    private var backend: PythonPeer!
    private var huddle: HuddleProcess!
    /// A second listen address of the same server block, without proxy_protocol.
    private var plainPort: UInt16 = 0

    private func start(sendProxy: String? = nil, headerTimeout: String = "10s", upstreamExtra: String = "") throws {
        backend = try PythonPeer(script: "raw_backend.py", arguments: sendProxy == nil ? [] : ["--proxy-protocol"], recordDirectory: true)
        plainPort = Harness.freePort()
        huddle = try HuddleProcess(config: """
        upstream app {
            server 127.0.0.1:\(backend.port) name=raw;
            \(sendProxy.map { "send_proxy_protocol \($0);" } ?? "")
            \(upstreamExtra)
        }
        server {
            listen 127.0.0.1:{PORT} proxy_protocol;
            listen 127.0.0.1:\(plainPort);
            header_timeout \(headerTimeout);
            route / { upstream app; }
        }
        """)
    }

    override func tearDown() {
        super.tearDown()   // the end-of-test invariant check, while the backend still runs; stops huddle
        huddle = nil
        backend?.stop()
    }

    // MARK: headers, built from the specification

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// A v2 PROXY header over TCP: addresses as raw bytes (4 or 16 each), ports big-endian.
    static func v2(_ src: [UInt8], _ dst: [UInt8], _ sport: UInt16, _ dport: UInt16, tlvs: [UInt8] = []) -> [UInt8] {
        let block = src + dst + [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)] + tlvs
        return v2Signature + [0x21, src.count == 4 ? 0x11 : 0x21, UInt8(block.count >> 8), UInt8(block.count & 0xFF)] + block
    }

    static let v2Local: [UInt8] = v2Signature + [0x20, 0x00, 0x00, 0x00]

    static func ipv6(_ text: String) -> [UInt8] {
        var a = in6_addr()
        precondition(inet_pton(AF_INET6, text, &a) == 1)
        return withUnsafeBytes(of: &a) { Array($0) }
    }

    /// The access-log line of `target`, once huddle has written it.
    private func accessLogLine(_ target: String) -> String? {
        var found: String?
        Harness.waitFor(5) {
            found = huddle.log.split(separator: "\n").map(String.init).first { $0.contains("\"GET \(target) HTTP/1.1\"") }
            return found != nil
        }
        return found
    }

    /// One request on a new connection to `port`, after `preface`; returns the response.
    private func request(_ target: String, after preface: [UInt8], port: UInt16? = nil) throws -> ParsedResponse? {
        let c = try RawClient(port: port ?? huddle.port, receiveTimeoutSeconds: 5)
        c.send(preface + Array("GET \(target) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".utf8))
        return ParsedResponse.parseAll(c.waitForClose().bytes).first
    }

    // MARK: receiving

    func testHeadersOfBothVersionsSetTheClientEverywhere() throws {
        try start()
        let cases: [(name: String, header: [UInt8], ip: String, forwardedFor: String)] = [
            ("v1-tcp4", Array("PROXY TCP4 203.0.113.50 192.0.2.10 40001 443\r\n".utf8), "203.0.113.50", "for=203.0.113.50;"),
            ("v1-tcp6", Array("PROXY TCP6 2001:db8::50 2001:db8::1 40002 443\r\n".utf8), "2001:db8::50", "for=\"[2001:db8::50]\";"),
            ("v2-tcp4", Self.v2([198, 51, 100, 60], [192, 0, 2, 10], 40003, 443), "198.51.100.60", "for=198.51.100.60;"),
            ("v2-tcp6", Self.v2(Self.ipv6("2001:db8:0:1::60"), Self.ipv6("2001:db8::1"), 40004, 443, tlvs: [0x04, 0x00, 0x02, 0xAA, 0xBB]),
             "2001:db8:0:1::60", "for=\"[2001:db8:0:1::60]\";"),
            // LOCAL and UNKNOWN carry no client: the socket's peer (this test, on loopback) is the client.
            ("v2-local", Self.v2Local, "127.0.0.1", "for=127.0.0.1;"),
            ("v1-unknown", Array("PROXY UNKNOWN\r\n".utf8), "127.0.0.1", "for=127.0.0.1;"),
        ]
        for k in cases {
            let target = "/\(k.name)"
            XCTAssertEqual(try request(target, after: k.header)?.status, 200, k.name)
            let r = backend.requests().first { $0.target == target }
            XCTAssertEqual(r?.values("X-Forwarded-For"), [k.ip], k.name)
            XCTAssertTrue(r?.values("Forwarded").first?.hasPrefix(k.forwardedFor) ?? false, "\(k.name): \(r?.values("Forwarded") ?? [])")
            let line = accessLogLine(target)
            XCTAssertTrue(line?.hasPrefix("\(k.ip) - - [") ?? false, "\(k.name): access log line \(line ?? "missing")")
        }
    }

    func testAnythingButAValidHeaderIsClosedUnanswered() throws {
        try start()
        let cases: [(name: String, bytes: [UInt8], reason: String)] = [
            ("plain HTTP", Array("GET / HTTP/1.1\r\nHost: t\r\n\r\n".utf8), "does not start with a PROXY protocol v1 or v2 signature (at byte 0"),
            ("TLS hello", [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03], "does not start with a PROXY protocol v1 or v2 signature (at byte 0"),
            ("port out of range", Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n".utf8),
             "v1 port is not a decimal number from 0 to 65535 without leading zeros (at byte 29"),
            ("octal-looking address", Array("PROXY TCP4 010.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n".utf8),
             "v1 address is not a valid address of the announced family (at byte 11"),
            ("v2 version 1", Self.v2Signature + [0x11, 0x11, 0x00, 0x0C] + [UInt8](repeating: 1, count: 12), "v2 version is not 2 (at byte 12"),
            ("v2 TLV past the end", Self.v2([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, tlvs: [0x01, 0x00, 0x09, 0x41]), "v2 TLV runs past the end of the header (at byte 28"),
        ]
        for k in cases {
            let c = try RawClient(port: huddle.port, receiveTimeoutSeconds: 5)
            c.send(k.bytes)
            let (closed, reply) = c.waitForClose()
            XCTAssertTrue(closed, k.name)
            XCTAssertEqual(reply, [], "\(k.name): answered \(reply.escapedForDisplay)")
            XCTAssertTrue(Harness.waitFor(5) { self.huddle.log.contains("invalid PROXY protocol header on a proxy_protocol listener: \(k.reason)") },
                          "\(k.name): log tail:\n\(huddle.log.suffix(1500))")
        }
        XCTAssertEqual(backend.connections().count, 0, "nothing reached the backend")
    }

    /// The header arrives in pieces (each write its own segment: TCP_NODELAY on the client and a pause between writes
    /// so the pieces are separate reads for Huddle), and so does the request after it.
    func testAHeaderSplitAcrossWritesWorks() throws {
        try start()
        let headers: [(String, [UInt8], String)] = [
            ("split-v2", Self.v2([192, 0, 2, 77], [192, 0, 2, 10], 50000, 443), "192.0.2.77"),
            ("split-v1", Array("PROXY TCP6 2001:db8::77 2001:db8::1 50001 443\r\n".utf8), "2001:db8::77"),
        ]
        for (name, header, ip) in headers {
            let c = try RawClient(port: huddle.port, receiveTimeoutSeconds: 5)
            var one: Int32 = 1
            setsockopt(c.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let request = Array("GET /\(name) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".utf8)
            let cuts = [0, 1, 7, 13, 15, header.count]
            for i in 0..<(cuts.count - 1) {
                c.send(Array(header[cuts[i]..<cuts[i + 1]]))
                usleep(30_000)
            }
            c.send(Array(request[0..<10]))
            usleep(30_000)
            c.send(Array(request[10...]))
            let responses = ParsedResponse.parseAll(c.waitForClose().bytes)
            XCTAssertEqual(responses.map(\.status), [200], name)
            XCTAssertEqual(backend.requests().first { $0.target == "/\(name)" }?.values("X-Forwarded-For"), [ip], name)
        }
    }

    func testAnIncompleteHeaderIsClosedAfterHeaderTimeout() throws {
        try start(headerTimeout: "1s")
        let c = try RawClient(port: huddle.port, receiveTimeoutSeconds: 6)
        let started = Date()
        c.send("PROXY TCP4 192.0.2.1 ")
        let (closed, reply) = c.waitForClose()
        XCTAssertTrue(closed)
        XCTAssertEqual(reply, [], "no 408 on a PROXY listener: \(reply.escapedForDisplay)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 4)
        XCTAssertTrue(Harness.waitFor(5) { self.huddle.log.contains("no complete PROXY protocol header within header_timeout (1000ms, 21 bytes received); closing") },
                      huddle.log.suffix(1500).description)
    }

    func testAListenerWithoutTheFlagIsUnaffected() throws {
        try start()
        XCTAssertEqual(try request("/plain", after: [], port: plainPort)?.status, 200)
        XCTAssertEqual(backend.requests().first { $0.target == "/plain" }?.values("X-Forwarded-For"), ["127.0.0.1"])
        XCTAssertTrue(accessLogLine("/plain")?.hasPrefix("127.0.0.1 - - [") ?? false)
        // A PROXY line there is an ordinary (malformed) request, not a claim about the client.
        let refused = try request("/claimed", after: Array("PROXY TCP4 203.0.113.99 192.0.2.10 1 2\r\n".utf8), port: plainPort)
        XCTAssertEqual(refused?.status, 400)
        XCTAssertFalse(backend.requests().contains { $0.target == "/claimed" })
        XCTAssertFalse(huddle.log.contains("203.0.113.99"), "the unflagged listener used the claimed address")
    }

    // MARK: sending

    /// A keep-alive client connection: its requests one at a time, on one socket.
    final class KeepAliveClient {
        let raw: RawClient
        init(port: UInt16, preface: [UInt8]) throws {
            raw = try RawClient(port: port, receiveTimeoutSeconds: 5)
            raw.send(preface)
        }
        var localPort: UInt16 {
            var a = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(raw.fd, $0, &len) } }
            return UInt16(bigEndian: a.sin_port)
        }
        func get(_ target: String) -> Int? {
            raw.send("GET \(target) HTTP/1.1\r\nHost: t\r\n\r\n")
            let bytes = raw.read { ParsedResponse.parseAll($0).first.map { !$0.body.isEmpty } ?? false }
            return ParsedResponse.parseAll(bytes).first?.status
        }
    }

    /// Which backend connection carried each target, and that connection's bytes.
    private func connection(of target: String) -> PythonPeer.Connection? {
        guard let id = backend.requests().first(where: { $0.target == target })?.conn else { return nil }
        return backend.connections().first { $0.id == id }
    }

    private func assertStarts(_ conn: PythonPeer.Connection?, with header: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let conn else { return XCTFail("\(what): no backend connection", file: file, line: line) }
        XCTAssertEqual(Array(conn.bytes.prefix(header.count)).escapedForDisplay, header.escapedForDisplay, what, file: file, line: line)
        // The header opens the connection and appears nowhere else on it.
        let signature = header.first == 0x50 ? Array("PROXY ".utf8) : Self.v2Signature
        var count = 0
        var i = 0
        while let at = conn.bytes.firstRange(of: signature, startingAt: i) { count += 1; i = at + 1 }
        XCTAssertEqual(count, 1, "\(what): \(count) headers on one connection", file: file, line: line)
    }

    func testSendProxyV1ConnectionsArePrivateToTheirClient() throws {
        try start(sendProxy: "v1")
        let a = try KeepAliveClient(port: huddle.port, preface: Array("PROXY TCP4 198.51.100.1 192.0.2.10 1111 443\r\n".utf8))
        XCTAssertEqual(a.get("/a1"), 200)
        XCTAssertEqual(a.get("/a2"), 200)
        // A is idle and open, its backend connection waiting: B and C must not get it.
        let b = try KeepAliveClient(port: huddle.port, preface: Array("PROXY TCP6 2001:db8::2 2001:db8::1 2222 443\r\n".utf8))
        XCTAssertEqual(b.get("/b1"), 200)
        let c = try KeepAliveClient(port: plainPort, preface: [])
        XCTAssertEqual(c.get("/c1"), 200)
        XCTAssertEqual(a.get("/a3"), 200)
        XCTAssertEqual(b.get("/b2"), 200)

        let ca = connection(of: "/a1"), cb = connection(of: "/b1"), cc = connection(of: "/c1")
        XCTAssertEqual(Set(["/a1", "/a2", "/a3"].compactMap { connection(of: $0)?.id }).count, 1, "A's requests share A's connection")
        XCTAssertEqual(connection(of: "/b2")?.id, cb?.id, "B's requests share B's connection")
        XCTAssertEqual(Set([ca?.id, cb?.id, cc?.id].compactMap { $0 }).count, 3, "one connection per client")
        XCTAssertEqual(backend.connections().count, 3)
        assertStarts(ca, with: Array("PROXY TCP4 198.51.100.1 192.0.2.10 1111 443\r\n".utf8), "A")
        assertStarts(cb, with: Array("PROXY TCP6 2001:db8::2 2001:db8::1 2222 443\r\n".utf8), "B")
        assertStarts(cc, with: Array("PROXY TCP4 127.0.0.1 127.0.0.1 \(c.localPort) \(plainPort)\r\n".utf8), "C, from its socket")
        // The backend's own reading of the headers agrees.
        let proxyOfB = backend.requests().first { $0.target == "/b2" }?.object["proxy"] as? [String: Any]
        XCTAssertEqual(proxyOfB?["src"] as? String, "2001:db8::2")
        XCTAssertEqual(proxyOfB?["sport"] as? Int, 2222)

        // A backend connection closes with its client connection.
        a.raw.shutdownWrite()
        XCTAssertTrue(a.raw.waitForClose().closed)
        XCTAssertTrue(Harness.waitFor(5) { self.backend.connections().first { $0.id == ca?.id }?.closed != nil }, "A's backend connection outlived A")
        XCTAssertNil(backend.connections().first { $0.id == cb?.id }?.closed, "B's connection closed with A")
    }

    func testSendProxyV2ExactBytes() throws {
        try start(sendProxy: "v2")
        // In through v1 over TCP6: out as v2 over TCP6, same addresses.
        let a = try KeepAliveClient(port: huddle.port, preface: Array("PROXY TCP6 2001:db8::a 2001:db8::1 4000 443\r\n".utf8))
        XCTAssertEqual(a.get("/a1"), 200)
        // In through LOCAL: the socket's own addresses.
        let l = try KeepAliveClient(port: huddle.port, preface: Self.v2Local)
        XCTAssertEqual(l.get("/l1"), 200)
        // In through the plain listener.
        let c = try KeepAliveClient(port: plainPort, preface: [])
        XCTAssertEqual(c.get("/c1"), 200)
        XCTAssertEqual(a.get("/a2"), 200)

        assertStarts(connection(of: "/a1"), with: Self.v2(Self.ipv6("2001:db8::a"), Self.ipv6("2001:db8::1"), 4000, 443), "A")
        assertStarts(connection(of: "/l1"), with: Self.v2([127, 0, 0, 1], [127, 0, 0, 1], l.localPort, huddle.port), "LOCAL client")
        assertStarts(connection(of: "/c1"), with: Self.v2([127, 0, 0, 1], [127, 0, 0, 1], c.localPort, plainPort), "plain client")
        XCTAssertEqual(connection(of: "/a2")?.id, connection(of: "/a1")?.id)
        XCTAssertEqual(backend.connections().count, 3)
    }

    /// A server that needs the header on every connection would fail probes without one: HTTP probes send v2 LOCAL
    /// (the probe is Huddle's own connection), or for v1 a line naming the probe's own connection.
    func testHealthProbesSendAHeaderToo() throws {
        for version in ["v2", "v1"] {
            try start(sendProxy: version, upstreamExtra: "health_check /hc interval=200ms timeout=1s;")
            var probe: [String: Any]?
            XCTAssertTrue(Harness.waitFor(10) {
                probe = self.backend.requests().first { $0.target == "/hc" }?.object["proxy"] as? [String: Any]
                return probe != nil
            }, "\(version): no probe reached the backend with a header; records: \(backend.connections().map { $0.bytes.escapedForDisplay })")
            if version == "v2" {
                XCTAssertEqual(probe?["command"] as? String, "LOCAL")
                XCTAssertEqual(probe?["length"] as? Int, 0)
            } else {
                XCTAssertEqual(probe?["family"] as? String, "TCP4")
                XCTAssertEqual(probe?["src"] as? String, "127.0.0.1")
                XCTAssertEqual(probe?["dst"] as? String, "127.0.0.1")
                XCTAssertEqual(probe?["dport"] as? Int, Int(backend.port))
            }
            XCTAssertFalse(huddle.log.contains("raw: healthy -> unhealthy"), huddle.log.suffix(1500).description)
            huddle.stop()
            backend.stop()
        }
    }
}
