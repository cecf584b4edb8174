// The demo backend on port 0, driven over real loopback sockets by the demo's own blocking HTTP and WebSocket clients.
import HuddleDemo
import HuddleHTTP
import HuddleIO
import HuddleSys
import XCTest

/// SAFETY: the test's upload thread only sends while the test thread only receives; the client keeps sending
/// and receiving state apart (one descriptor, separate buffers).
private final class SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

final class DemoBackendTests: XCTestCase {
    private var backend: DemoBackend!
    private var address: SocketAddress { backend.boundAddresses[0] }

    override func setUpWithError() throws {
        backend = try DemoBackend.start(DemoBackendOptions(name: "t1", listen: [SocketAddress(ip: "127.0.0.1", port: 0)!], workers: 2))
    }

    override func tearDown() {
        backend.stop()
        backend = nil
    }

    private func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8($0 % 251) } }

    func testBoundAddressHasTheRealPort() {
        XCTAssertEqual(backend.boundAddresses.count, 1)
        XCTAssertNotEqual(address.port, 0)
    }

    func testHelloAndIdentityHeaders() throws {
        let c = try DemoHTTPClient(address: address)
        let r1 = try c.request("GET", "/anything")
        XCTAssertEqual(r1.status, 200)
        XCTAssertEqual(r1.bodyText, "hello from t1\n")
        XCTAssertEqual(r1.header("X-Backend"), "t1")
        let serial = try XCTUnwrap(r1.header("X-Backend-Connection"))
        let r2 = try c.request("HEAD", "/")
        XCTAssertEqual(r2.header("Content-Length"), "14")
        XCTAssertEqual(r2.body, [])
        XCTAssertEqual(r2.header("X-Backend-Connection"), serial, "keep-alive: same connection")
        let other = try DemoHTTPClient(address: address).request("GET", "/healthz")
        XCTAssertEqual(other.bodyText, "ok")
        XCTAssertNotEqual(other.header("X-Backend-Connection"), serial, "a new connection gets a new serial")
    }

    func testBytesWithContentLengthAndChunked() throws {
        let c = try DemoHTTPClient(address: address)
        let n = 300_001
        let plain = try c.request("GET", "/bytes/\(n)")
        XCTAssertEqual(plain.header("Content-Length"), String(n))
        XCTAssertFalse(plain.wasChunked)
        XCTAssertTrue(plain.body == pattern(n))
        let chunked = try c.request("GET", "/bytes/\(n)?chunked=1")
        XCTAssertTrue(chunked.wasChunked)
        XCTAssertTrue(chunked.body == pattern(n))
        let empty = try c.request("GET", "/bytes/0?chunked=1")
        XCTAssertEqual(empty.body, [])
        XCTAssertEqual(try c.request("GET", "/bytes/nope").status, 400)
    }

    /// /text/N: the same JSON-like corpus, from its start, whatever the framing; it repeats every 1 MiB.
    func testTextBodies() throws {
        let c = try DemoHTTPClient(address: address)
        let n = (1 << 20) + 70_000
        let plain = try c.request("GET", "/text/\(n)?type=json")
        XCTAssertEqual(plain.header("Content-Type"), "application/json")
        XCTAssertEqual(plain.body.count, n)
        XCTAssertTrue(plain.body.starts(with: Array("[{\"id\":0,\"name\":\"".utf8)))
        XCTAssertTrue(plain.body[(1 << 20)...].elementsEqual(plain.body[0..<70_000]), "period 1 MiB")
        XCTAssertGreaterThan(Set(plain.body[0..<100_000].split(separator: 10).map { Array($0) }).count, 500, "varied records, not a short pattern")
        let chunked = try c.request("GET", "/text/\(n)?chunked=1&type=html")
        XCTAssertTrue(chunked.wasChunked)
        XCTAssertEqual(chunked.header("Content-Type"), "text/html; charset=utf-8")
        XCTAssertTrue(chunked.body == plain.body)
        XCTAssertEqual(try c.request("GET", "/text/10").header("Content-Type"), "text/plain; charset=utf-8")
        XCTAssertEqual(try c.request("HEAD", "/text/10").body, [])
    }

    func testEchoWithContentLengthAndChunked() throws {
        let c = try DemoHTTPClient(address: address)
        let body = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
        let r = try c.request("POST", "/echo", body: body)
        XCTAssertEqual(r.header("Content-Length"), String(body.count))
        XCTAssertTrue(r.body == body)
        // A chunked upload (with an extension and a trailer) comes back chunked with the same payload.
        let parts: [[UInt8]] = [Array("hello ".utf8), Array(repeating: 0x41, count: 70_000), Array(" bye".utf8)]
        var raw = Array("PUT /echo HTTP/1.1\r\nHost: demo\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        for p in parts { raw += Array("\(String(p.count, radix: 16));ext=1\r\n".utf8) + p + [13, 10] }
        raw += Array("0\r\nX-Trailer: yes\r\n\r\n".utf8)
        try c.send(raw)
        let e = try c.readResponse()
        XCTAssertTrue(e.wasChunked)
        XCTAssertTrue(e.body == parts.flatMap { $0 })
        let after = try c.request("GET", "/")
        XCTAssertEqual(after.bodyText, "hello from t1\n", "the connection is still in sync after the chunked body")
    }

    func testExpectContinueAndHTTP10() throws {
        let c = try DemoHTTPClient(address: address)
        try c.send("POST /echo HTTP/1.1\r\nHost: demo\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        try c.send("ping")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyText, "ping")

        let old = try DemoHTTPClient(address: address)
        try old.send("GET / HTTP/1.0\r\n\r\n")
        let r10 = try old.readResponse()
        XCTAssertEqual(r10.bodyText, "hello from t1\n")
        XCTAssertEqual(r10.header("Connection"), "close", "HTTP/1.0 without keep-alive is answered, then closed")
        XCTAssertTrue(try old.waitForClose())

        let kept = try DemoHTTPClient(address: address)
        try kept.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertEqual(try kept.readResponse().header("Connection"), "keep-alive")
        try kept.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertEqual(try kept.readResponse().bodyText, "ok")
    }

    func testLargeBodiesRespectBackpressureAndStayInOrder() throws {
        // 8 MB is more than the loopback socket buffers hold: the server must stop on EAGAIN and resume on the
        // writable edge, and the pipelined request behind it must still be answered after it.
        let n = 8 << 20
        let c = try DemoHTTPClient(address: address)
        try c.send("GET /bytes/\(n) HTTP/1.1\r\nHost: demo\r\n\r\nGET /healthz HTTP/1.1\r\nHost: demo\r\n\r\n")
        let big = try c.readResponse()
        XCTAssertEqual(big.body.count, n)
        XCTAssertTrue(big.body == pattern(n))
        XCTAssertEqual(try c.readResponse().bodyText, "ok")

        // An echo only flows while the client reads: upload from another thread, read here.
        let upload = (0..<n).map { UInt8(truncatingIfNeeded: $0 >> 3) }
        let sender = SendableBox(c)
        try c.send("POST /echo HTTP/1.1\r\nHost: demo\r\nContent-Length: \(n)\r\n\r\n")
        let thread = LoopThread.spawn(name: "test-upload") { try? sender.value.send(upload) }
        let echoed = try c.readResponse()
        LoopThread.join(thread)
        XCTAssertEqual(echoed.body.count, n)
        XCTAssertTrue(echoed.body == upload)
    }

    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let c = try DemoHTTPClient(address: address)
        let batch = "GET /healthz HTTP/1.1\r\nHost: demo\r\n\r\n"
            + "POST /echo HTTP/1.1\r\nHost: demo\r\nContent-Length: 5\r\n\r\nabcde"
            + "GET /headers HTTP/1.1\r\nHost: demo\r\nX-Probe: 42\r\n\r\n"
            + "POST / HTTP/1.1\r\nHost: demo\r\nContent-Length: 3\r\n\r\nxyz"
            + "GET /status/404 HTTP/1.1\r\nHost: demo\r\n\r\n"
        try c.send(batch)
        let responses = try (0..<5).map { _ in try c.readResponse() }
        XCTAssertEqual(responses.map(\.status), [200, 200, 200, 200, 404])
        XCTAssertEqual(responses[0].bodyText, "ok")
        XCTAssertEqual(responses[1].bodyText, "abcde")
        XCTAssertEqual(responses[2].bodyText, "GET /headers HTTP/1.1\r\nHost: demo\r\nX-Probe: 42\r\n\r\n")
        XCTAssertEqual(responses[3].bodyText, "hello from t1\n")
        XCTAssertEqual(Set(responses.compactMap { $0.header("X-Backend-Connection") }).count, 1)
    }

    func testCloseSlowStatusAndBadRequests() throws {
        let c = try DemoHTTPClient(address: address)
        let slow = try c.request("GET", "/slow?ms=30")
        XCTAssertEqual(slow.status, 200)
        XCTAssertEqual(slow.bodyText, "waited 30 ms\n")
        let noContent = try c.request("GET", "/status/204")
        XCTAssertEqual(noContent.status, 204)
        XCTAssertNil(noContent.header("Content-Length"))
        let bye = try c.request("GET", "/close")
        XCTAssertEqual(bye.header("Connection"), "close")
        XCTAssertTrue(try c.waitForClose())

        let bad = try DemoHTTPClient(address: address)
        try bad.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        let r = try bad.readResponse()
        XCTAssertEqual(r.status, 400)
        XCTAssertEqual(r.header("Connection"), "close")
        XCTAssertTrue(try bad.waitForClose())
    }

    func testWebSocketEcho() throws {
        let ws = try DemoWebSocketClient(address: address, path: "/anything")
        XCTAssertEqual(ws.handshakeResponse.header("X-Backend"), "t1")
        try ws.send(text: "héllo")
        XCTAssertEqual(try ws.receive(), .text("héllo"))
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0) }
        try ws.send(binary: big)
        XCTAssertEqual(try ws.receive(), .binary(big))
        try ws.sendFrame(opcode: WebSocketFrame.text, payload: Array("frag".utf8), fin: false)
        try ws.sendFrame(opcode: WebSocketFrame.ping, payload: [9])   // control frames may interleave
        try ws.sendFrame(opcode: WebSocketFrame.continuation, payload: Array("men".utf8), fin: false)
        try ws.sendFrame(opcode: WebSocketFrame.continuation, payload: Array("ted".utf8), fin: true)
        XCTAssertEqual(try ws.receive(), .pong([9]))
        XCTAssertEqual(try ws.receive(), .text("fragmented"))
        try ws.send(text: "__whoami")
        XCTAssertEqual(try ws.receive(), .text("t1"))
        try ws.send(text: "__close")
        XCTAssertEqual(try ws.receive(), .close(code: 1000, reason: ""))
        XCTAssertEqual(try ws.readUntilClosed(), [], "the server closes after its Close frame")
    }

    func testWebSocketHalfCloseStillGetsWhatIsOwed() throws {
        let ws = try DemoWebSocketClient(address: address, path: "/echo")
        let payload = (0..<500_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        try ws.send(binary: payload)
        try ws.send(text: "last")
        ws.shutdownWrite()
        XCTAssertEqual(try ws.receive(), .binary(payload))
        XCTAssertEqual(try ws.receive(), .text("last"))
        XCTAssertEqual(try ws.readUntilClosed(), [])
    }

    func testWebSocketClientCloseIsEchoed() throws {
        let ws = try DemoWebSocketClient(address: address, path: "/")
        try ws.close(code: 4001)
        XCTAssertEqual(try ws.receive(), .close(code: 4001, reason: ""))
        XCTAssertEqual(try ws.readUntilClosed(), [])
    }

    func testBadHandshakeIsRefused() throws {
        let c = try DemoHTTPClient(address: address)
        try c.send("GET /x HTTP/1.1\r\nHost: demo\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 8\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 400)
    }

    func testChatRoomBroadcastsAcrossMembers() throws {
        // Several members so that, with two workers, some almost surely sit on different loops.
        var members: [DemoWebSocketClient] = []
        for i in 1...4 {
            let m = try DemoWebSocketClient(address: address, path: "/rooms/lobby/ws")
            XCTAssertEqual(try m.receive(), .text("{\"type\":\"welcome\",\"backend\":\"t1\",\"room\":\"lobby\",\"members\":\(i)}"))
            members.append(m)
        }
        let elsewhere = try DemoWebSocketClient(address: address, path: "/rooms/other/ws")
        XCTAssertEqual(try elsewhere.receive(), .text("{\"type\":\"welcome\",\"backend\":\"t1\",\"room\":\"other\",\"members\":1}"))
        try members[2].send(text: "say \"hi\"\n")
        for m in members {
            XCTAssertEqual(try m.receive(), .text("{\"type\":\"message\",\"backend\":\"t1\",\"text\":\"say \\\"hi\\\"\\n\"}"))
        }
        try elsewhere.send(text: "only here")
        XCTAssertEqual(try elsewhere.receive(), .text("{\"type\":\"message\",\"backend\":\"t1\",\"text\":\"only here\"}"),
                       "the other room's member hears only its own room")
        let stats = try DemoHTTPClient(address: address).request("GET", "/stats")
        XCTAssertTrue(stats.bodyText.contains("\"websockets_open\":5"), stats.bodyText)
        let page = try DemoHTTPClient(address: address).request("GET", "/rooms/lobby")
        XCTAssertEqual(page.header("Content-Type"), "text/html; charset=utf-8")
        XCTAssertTrue(page.bodyText.contains("served by <b>t1</b>"))
    }

    func testStatsCountConnectionsAndRequests() throws {
        let c = try DemoHTTPClient(address: address)
        _ = try c.request("GET", "/")
        _ = try c.request("GET", "/")
        let s = try DemoHTTPClient(address: address).request("GET", "/stats")
        XCTAssertEqual(s.bodyText, "{\"backend\":\"t1\",\"connections_accepted\":2,\"requests\":3,\"websockets_open\":0}")
    }
}
