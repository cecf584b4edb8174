// HTTP/1.1 proxying through the real huddle binary, with curl and raw sockets as clients and real backends.
import Foundation
import Glibc
import HuddleDemo
import XCTest

final class HTTPProxyTests: HuddleTestCase {
    var backends: [DemoBackend] = []

    override func tearDown() {
        super.tearDown()   // the end-of-test invariant check, while the backends still run; stops huddle
        for b in backends { b.stop() }
        backends.removeAll()
    }

    private func backend(_ name: String) throws -> DemoBackend {
        let b = try Harness.startBackend(name)
        backends.append(b)
        return b
    }

    private func stats(_ b: DemoBackend) throws -> [String: Any] {
        let r = try Harness.curl(["http://127.0.0.1:\(b.boundAddresses[0].port)/stats"])
        return (try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]) ?? [:]
    }

    private func simpleConfig(_ servers: [DemoBackend], extraUpstream: String = "", extraServer: String = "") -> String {
        let lines = servers.map { "    server 127.0.0.1:\($0.boundAddresses[0].port) name=\($0.name);" }.joined(separator: "\n")
        return """
        access_log stderr format=json;
        upstream app {
        \(lines)
            keepalive 16;
        \(extraUpstream)
        }
        server {
            listen 127.0.0.1:{PORT};
        \(extraServer)
            route / { upstream app; }
        }
        """
    }

    func testKeepAliveIsReusedOnBothSides() throws {
        let b = try backend("ka")
        let h = try HuddleProcess(config: simpleConfig([b]))
        // One curl invocation with 20 URLs reuses its client connection; Huddle should reuse one backend connection.
        let urls = (0..<20).map { "\(h.url)/?n=\($0)" }
        let r = try Harness.curl(["-w", "%{num_connects}\n", "-o", "/dev/null"] + urls)
        let connects = r.text.split(separator: "\n").compactMap { Int($0) }.reduce(0, +)
        XCTAssertEqual(connects, 1, "curl opened more than one client connection: \(r.text)")
        let s = try stats(b)
        XCTAssertEqual(s["requests"] as? Int, 21, "backend saw \(s)")   // 20 + the /stats request itself
        // The /stats request came directly, not through Huddle: one connection from Huddle, one from the stats curl.
        XCTAssertEqual(s["connections_accepted"] as? Int, 2, "backend connections: \(s)")
    }

    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let b = try backend("pipe")
        let h = try HuddleProcess(config: simpleConfig([b]))
        let c = try RawClient(port: h.port)
        var req = ""
        for i in 1...5 { req += "GET /headers?n=\(i) HTTP/1.1\r\nHost: x\r\n\r\n" }
        req += "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        c.send(req)
        let all = c.readAll().text
        var last = -1
        for i in 1...5 {
            guard let r = all.range(of: "GET /headers?n=\(i) HTTP/1.1") else {
                XCTFail("response \(i) missing in:\n\(all)")
                return
            }
            let pos = all.distance(from: all.startIndex, to: r.lowerBound)
            XCTAssertGreaterThan(pos, last, "response \(i) out of order")
            last = pos
        }
        XCTAssertEqual(Array(all.utf8).occurrences(of: "HTTP/1.1 200 OK"), 6)
    }

    func testChunkedUploadAndDownloadOf50MBKeepTheirChecksum() throws {
        let b = try backend("big")
        let h = try HuddleProcess(config: simpleConfig([b]))
        let dir = Harness.temporaryDirectory()
        let size = 50 * 1024 * 1024
        var data = Data(count: size)
        data.withUnsafeMutableBytes { (p: UnsafeMutableRawBufferPointer) in
            var x: UInt32 = 2463534242
            for i in 0..<size {
                x ^= x << 13; x ^= x >> 17; x ^= x << 5
                p[i] = UInt8(truncatingIfNeeded: x)
            }
        }
        let input = dir.appendingPathComponent("in.bin")
        let output = dir.appendingPathComponent("out.bin")
        try data.write(to: input)
        // Upload chunked; the backend streams it back chunked.
        let up = try Harness.curl(["-f", "-H", "Transfer-Encoding: chunked", "-H", "Expect:", "--data-binary", "@\(input.path)",
                                   "-o", output.path, "\(h.url)/echo"], timeout: 120)
        XCTAssertEqual(up.status, 0, up.stderr)
        let echoed = try Data(contentsOf: output)
        XCTAssertEqual(echoed.count, size)
        XCTAssertTrue(echoed == data, "echoed body differs from the upload")
        // Download chunked: byte i is i % 251.
        let down = try Harness.curl(["-f", "--raw", "-D", dir.appendingPathComponent("h.txt").path, "-o", output.path,
                                     "\(h.url)/bytes/\(size)?chunked=1"], timeout: 120)
        XCTAssertEqual(down.status, 0)
        let headers = try String(contentsOf: dir.appendingPathComponent("h.txt"), encoding: .utf8).lowercased()
        XCTAssertTrue(headers.contains("transfer-encoding: chunked"), headers)
        let got = try Harness.curl(["-f", "-o", output.path, "\(h.url)/bytes/\(size)?chunked=1"], timeout: 120)
        XCTAssertEqual(got.status, 0)
        let body = try Data(contentsOf: output)
        XCTAssertEqual(body.count, size)
        var ok = true
        body.withUnsafeBytes { (p: UnsafeRawBufferPointer) in
            for i in 0..<size where p[i] != UInt8(i % 251) {
                ok = false
                break
            }
        }
        XCTAssertTrue(ok, "downloaded bytes differ from the pattern")
    }

    func testDeadBackendAnswers502AndRetryLandsOnALiveOne() throws {
        let live = try backend("live")
        let deadPort = Harness.freePort()
        let config = """
        upstream app {
            server 127.0.0.1:\(deadPort) name=dead;
            server 127.0.0.1:\(live.boundAddresses[0].port) name=live;
            retries 1;
        }
        upstream gone {
            server 127.0.0.1:\(deadPort);
            retries 1;
        }
        server {
            listen 127.0.0.1:{PORT};
            route /gone/ { upstream gone; }
            route / { upstream app; }
        }
        """
        let h = try HuddleProcess(config: config)
        for i in 0..<20 {
            let r = try Harness.curl(["-w", "\n%{http_code}", "\(h.url)/?i=\(i)"])
            XCTAssertTrue(r.text.hasSuffix("200"), "request \(i): \(r.text)")
            XCTAssertTrue(r.text.contains("hello from live"))
        }
        XCTAssertTrue(h.log.contains("retrying on another server"), h.log)
        let r = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "\(h.url)/gone/x"])
        XCTAssertEqual(r.text, "502")
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("127.0.0.1:\(deadPort): connect failed") && h.log.contains("answering 502") }, h.log)
    }

    func testHungBackendAnswers504() throws {
        let b = try backend("slow")
        let h = try HuddleProcess(config: simpleConfig([b], extraUpstream: "    response_timeout 1s;"))
        let r = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "\(h.url)/hang"], timeout: 30)
        XCTAssertEqual(r.text, "504")
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("response_timeout reached") }, h.log)
        // The next request is served normally.
        let ok = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "\(h.url)/"])
        XCTAssertEqual(ok.text, "200")
    }

    func testOversizedHeadersGet431() throws {
        let b = try backend("big-head")
        let h = try HuddleProcess(config: simpleConfig([b], extraServer: "    max_header_size 8k;"))
        let big = String(repeating: "a", count: 10_000)
        let r = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "-H", "X-Big: \(big)", "\(h.url)/"])
        XCTAssertEqual(r.text, "431")
        let s = try stats(b)
        XCTAssertEqual(s["requests"] as? Int, 1, "the oversized request must not reach the backend")
    }

    func testSlowLorisIsClosedAfterHeaderTimeoutWhileOthersAreServed() throws {
        let b = try backend("loris")
        let h = try HuddleProcess(config: simpleConfig([b], extraServer: "    header_timeout 1s;"))
        let slow = try RawClient(port: h.port, receiveTimeoutSeconds: 20)
        slow.send("GET / HTTP/1.1\r\nHost: x\r\nX-A: ")
        // Others are served while the slow client dribbles.
        for _ in 0..<5 {
            let r = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "\(h.url)/"])
            XCTAssertEqual(r.text, "200")
            slow.send("a")
        }
        let (closed, bytes) = slow.waitForClose()
        XCTAssertTrue(closed, "slow client was not disconnected")
        XCTAssertTrue(bytes.text.hasPrefix("HTTP/1.1 408"), bytes.text)
        XCTAssertTrue(h.log.contains("header_timeout"), h.log)
    }

    /// A client that sends one byte of its head every 200 ms, forever. A header timer restarted by every byte would
    /// never fire against it; header_timeout bounds the whole head, so it gets 408 and a close after about 1 s.
    func testTricklingLorisGets408AtHeaderTimeoutDespiteSteadyBytes() throws {
        let b = try backend("trickle")
        let h = try HuddleProcess(config: simpleConfig([b], extraServer: "    header_timeout 1s;"))
        let head = Array("GET /trickle HTTP/1.1\r\nHost: x\r\nUser-Agent: trickle\r\nX-Trickle: ".utf8)
        let t0 = Date()
        let c = try RawClient(port: h.port)
        var sent = 0
        var answer: [UInt8] = []
        var closed = false
        // Only the assertion below bounds the time; the loop watches longer so a late close is reported with its time.
        let giveUp = t0.addingTimeInterval(8)
        while !closed && Date() < giveUp {
            var pfd = pollfd(fd: c.fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 200) > 0 {
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = buf.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 { answer += buf[0..<n] } else if n == 0 || errno == ECONNRESET { closed = true }
                continue
            }
            // Nothing arrived for 200 ms: the next byte (after the head's start, the value grows forever).
            if answer.isEmpty {
                c.send([sent < head.count ? head[sent] : UInt8(ascii: "a")])
                sent += 1
            }
        }
        let elapsed = Date().timeIntervalSince(t0)
        XCTAssertTrue(closed, "the trickling client was not disconnected within \(elapsed)s (\(sent) bytes sent); got \(answer.text.debugDescription)")
        XCTAssertTrue(answer.text.hasPrefix("HTTP/1.1 408"), answer.text)
        XCTAssertLessThan(elapsed, 3, "header_timeout 1s: the 408 and close came after \(elapsed)s")
        XCTAssertGreaterThan(elapsed, 0.8, "closed after \(elapsed)s, before header_timeout: for another reason?")
        XCTAssertGreaterThanOrEqual(sent, 4, "the client kept sending bytes until the timeout")
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("header_timeout") }, h.log)
        print("trickling client: \(sent) bytes, one per 200 ms; 408 and close after \(String(format: "%.2f", elapsed))s")
    }

    func testRequestSmugglingAttemptsAreRejectedBeforeTheBackend() throws {
        let b = try backend("smuggle")
        let h = try HuddleProcess(config: simpleConfig([b]))
        let cases: [(String, String)] = [
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "400"),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"),
            ("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", "400"),
            ("GET / HTTP/1.1\r\n\r\n", "400"),
            ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505"),
            ("GET /\(String(repeating: "a", count: 9000)) HTTP/1.1\r\nHost: x\r\n\r\n", "414"),
        ]
        for (req, status) in cases {
            let c = try RawClient(port: h.port)
            c.send(req)
            let resp = c.readAll().text
            XCTAssertTrue(resp.hasPrefix("HTTP/1.1 \(status)"), "for \(req.debugDescription) got \(resp)")
            XCTAssertTrue(resp.lowercased().contains("connection: close"))
        }
        let s = try stats(b)
        XCTAssertEqual(s["requests"] as? Int, 1, "a rejected request reached the backend: \(s)")
    }

    func testForwardedHeadersAndHopByHopRemoval() throws {
        let b = try backend("hdr")
        let h = try HuddleProcess(config: simpleConfig([b]))
        let r = try Harness.curl(["-H", "Connection: keep-alive, X-Secret", "-H", "X-Secret: 1", "-H", "Keep-Alive: timeout=5",
                                  "-H", "X-Forwarded-For: 10.0.0.1", "-H", "X-Request-Id: abc123", "-H", "Proxy-Connection: x",
                                  "-H", "TE: trailers", "\(h.url)/headers"])
        let text = r.text.lowercased()
        XCTAssertTrue(text.contains("x-forwarded-for: 10.0.0.1, 127.0.0.1"), r.text)
        XCTAssertTrue(text.contains("x-forwarded-proto: http"), r.text)
        XCTAssertTrue(text.contains("x-forwarded-host: 127.0.0.1:\(h.port)"), r.text)
        XCTAssertTrue(text.contains("x-request-id: abc123"), r.text)
        for gone in ["x-secret:", "keep-alive:", "proxy-connection:", "te:", "connection:"] {
            XCTAssertFalse(text.contains("\n" + gone), "\(gone) was forwarded:\n\(r.text)")
        }
        // Without an incoming id one is generated.
        let r2 = try Harness.curl(["\(h.url)/headers"])
        XCTAssertNotNil(r2.text.range(of: "X-Request-Id: [0-9a-f]{32}", options: .regularExpression), r2.text)
    }

    func testHeadAnd204And304AreFramedWithoutBodies() throws {
        let b = try backend("frame")
        let h = try HuddleProcess(config: simpleConfig([b]))
        // All on one connection: a framing mistake would corrupt the responses that follow.
        let c = try RawClient(port: h.port)
        c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /status/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/304 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let all = c.readAll().text
        XCTAssertEqual(Array(all.utf8).occurrences(of: "HTTP/1.1 "), 4, all)
        XCTAssertTrue(all.contains("HTTP/1.1 204"), all)
        XCTAssertTrue(all.contains("HTTP/1.1 304"), all)
        XCTAssertTrue(all.hasSuffix("hello from frame\n"), all)
        XCTAssertEqual(Array(all.utf8).occurrences(of: "hello from frame"), 1, "HEAD must not carry a body:\n\(all)")
    }

    func testNoRouteGives404AndMissingBodyLimit413() throws {
        let b = try backend("route")
        let config = """
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server {
            listen 127.0.0.1:{PORT};
            max_body_size 1k;
            route /echo { upstream app; }
        }
        """
        let h = try HuddleProcess(config: config)
        let r = try Harness.curl(["-w", "\n%{http_code}", "\(h.url)/elsewhere"])
        XCTAssertTrue(r.text.hasSuffix("404"), r.text)
        XCTAssertTrue(r.text.contains("no route"), r.text)
        let big = String(repeating: "x", count: 4096)
        let r2 = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "--data", big, "\(h.url)/echo"])
        XCTAssertEqual(r2.text, "413")
        let r3 = try Harness.curl(["--data", "small", "\(h.url)/echo"])
        XCTAssertEqual(r3.text, "small")
        // A chunked body has no length up front: the limit is enforced as the chunks arrive.
        let r4 = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "-H", "Transfer-Encoding: chunked", "--data", big, "\(h.url)/echo"])
        XCTAssertEqual(r4.text, "413")
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("request body exceeds max_body_size") }, h.log)
        // The proxy is fine afterwards.
        XCTAssertEqual(try Harness.curl(["--data", "again", "\(h.url)/echo"]).text, "again")
    }

    func testP2CSpreadsRequestsOverBackends() throws {
        let bs = try (0..<3).map { try backend("p\($0)") }
        let h = try HuddleProcess(config: simpleConfig(bs), workers: 2)
        let urls = (0..<60).map { "\(h.url)/?n=\($0)" }
        _ = try Harness.curl(["-o", "/dev/null"] + urls)
        var total = 0
        for b in bs {
            let n = (try stats(b)["requests"] as? Int ?? 1) - 1
            XCTAssertGreaterThan(n, 0, "backend \(b.name) got no requests")
            total += n
        }
        XCTAssertEqual(total, 60)
    }

    func testAccessLogIsJSONWithRequestFields() throws {
        let b = try backend("log")
        let h = try HuddleProcess(config: simpleConfig([b]))
        _ = try Harness.curl(["-H", "X-Request-Id: rid-42", "\(h.url)/some/path?q=1"])
        XCTAssertTrue(Harness.waitFor(5) { h.log.contains("rid-42") })
        let line = h.log.split(separator: "\n").first { $0.contains("rid-42") }.map(String.init) ?? ""
        let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["status"] as? Int, 200)
        XCTAssertEqual(obj?["method"] as? String, "GET")
        XCTAssertEqual(obj?["path"] as? String, "/some/path?q=1")
        XCTAssertEqual(obj?["upstream"] as? String, "127.0.0.1:\(b.boundAddresses[0].port)")
        XCTAssertNotNil(obj?["total_time_ms"])
    }

    /// Requests Huddle answers itself are logged too, with their status: operators look for 4xx in the access log.
    func testLocallyAnsweredRequestsAreAccessLogged() throws {
        let b = try backend("log-local")
        let h = try HuddleProcess(config: """
        access_log stderr format=json;
        upstream app { balance hash; server 127.0.0.1:\(b.boundAddresses[0].port); }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream app; group_key header X-Room; }
        }
        """)
        _ = try Harness.curl(["-H", "X-Request-Id: nf-1", "\(h.url)/nowhere"])
        _ = try Harness.curl(["-H", "X-Request-Id: nokey-1", "\(h.url)/rooms/"])
        let c = try RawClient(port: h.port)
        c.send("GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        XCTAssertTrue(c.readAll().text.hasPrefix("HTTP/1.1 400"))
        func line(_ marker: String) -> [String: Any]? {
            guard let l = h.log.split(separator: "\n").first(where: { $0.contains(marker) }) else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any]
        }
        // The unparseable request: a line with its status and the client, empty request fields.
        func unparseable() -> [String: Any]? {
            h.log.split(separator: "\n").filter { $0.hasPrefix("{") }.compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }.first { ($0["status"] as? Int) == 400 && ($0["method"] as? String) == "" }
        }
        // Each line is flushed at the end of its loop turn, possibly after the client saw the answer: wait for all three.
        XCTAssertTrue(Harness.waitFor(5) { line("nf-1") != nil && line("nokey-1") != nil && unparseable() != nil }, h.log)
        XCTAssertEqual(line("nf-1")?["status"] as? Int, 404)
        XCTAssertEqual(line("nf-1")?["path"] as? String, "/nowhere")
        XCTAssertEqual(line("nokey-1")?["status"] as? Int, 400)
        let bad = unparseable()
        XCTAssertNotNil(bad, h.log)
        XCTAssertEqual(bad?["client"] as? String, "127.0.0.1")
    }
}

final class DescriptorExhaustionTests: HuddleTestCase {
    /// With a tiny open-file limit, accept hits EMFILE: Huddle logs once, pauses accepting (no busy loop, no crash),
    /// and serves again once descriptors free up.
    func testRunningOutOfDescriptorsPausesAcceptingAndRecovers() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else { throw XCTSkip("prlimit not installed") }
        let b = try Harness.startBackend("fd")
        defer { b.stop() }
        // prlimit execs huddle: same pid, so the end-of-test check counts huddle's own descriptors.
        let h = try HuddleProcess(config: """
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); keepalive 0; }
        server { listen 127.0.0.1:{PORT}; route / { upstream app; } }
        """, launcher: ["/usr/bin/prlimit", "--nofile=48:48"])
        do {
            var clients: [RawClient] = []
            for _ in 0..<60 { clients.append(try RawClient(port: h.port, receiveTimeoutSeconds: 2)) }
            XCTAssertTrue(Harness.waitFor(10) { h.log.contains("pausing accepts") }, h.log)
            XCTAssertTrue(h.process.isRunning, "huddle died on EMFILE")
        }
        // Once the idle connections are gone, requests are served again.
        var status = ""
        Harness.waitFor(15) {
            status = (try? Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "--max-time", "2", "\(h.url)/"]).text) ?? ""
            return status == "200"
        }
        XCTAssertEqual(status, "200", h.log)
        XCTAssertEqual(h.log.components(separatedBy: "pausing accepts").count - 1, 1, "the pause should be logged once: \(h.log)")
    }
}
