// PROXY protocol on the in-memory network: a proxy_protocol listener's header sets the client for X-Forwarded-For,
// Forwarded and the access log, a connection without one is closed unanswered, and send_proxy_protocol's backend
// connections start with the client's header and are never reused for another client.
@testable import HuddleProxy
import HuddleSys
import XCTest

final class ProxyProtocolExchangeTests: XCTestCase {
    func harness(upstreamExtra: String = "", keepalive: Int = 8, headerTimeout: String = "2s") throws -> ExchangeHarness {
        try ExchangeHarness(config: """
        upstream app {
            server 127.0.0.1:9001;
            keepalive \(keepalive);
            \(upstreamExtra)
        }
        server {
            listen 127.0.0.1:8080;
            header_timeout \(headerTimeout);
            route / { upstream app; }
        }
        """)
    }

    let get = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    /// Waits for a complete request head on `b` and returns (and consumes) what the proxy wrote there.
    func backendReceived(_ h: ExchangeHarness, _ b: MemoryConnection) -> String {
        XCTAssertTrue(h.run { String(decoding: b.fromProxy.bytes, as: UTF8.self).hasSuffix("\r\n\r\n") })
        return b.receiveText()
    }

    /// Answers on `b` and waits for the client to have the whole answer.
    func answer(_ h: ExchangeHarness, _ b: MemoryConnection, to c: MemoryConnection) {
        b.send(ok)
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.hasSuffix("ok") })
        XCTAssertEqual(got.statusCode, 200)
    }

    // MARK: receiving

    func testTheHeaderNamesTheClientForForwardingAndTheAccessLog() throws {
        let h = try harness()
        let c = h.client(proxyProtocol: true)
        // The header and the request in one write: the request's bytes stay buffered after the header.
        c.send("PROXY TCP4 203.0.113.7 10.0.0.1 51000 8080\r\n" + get)
        XCTAssertTrue(h.run { h.backend(0) != nil })
        let head = backendReceived(h, h.backend(0)!)
        XCTAssertTrue(head.hasPrefix("GET /x HTTP/1.1\r\n"), head)
        XCTAssertTrue(head.contains("\r\nX-Forwarded-For: 203.0.113.7\r\n"), head)
        XCTAssertTrue(head.contains("\r\nForwarded: for=203.0.113.7;proto=http;"), head)
        XCTAssertFalse(head.contains("127.0.0.1"), "the socket's peer is not the client: \(head)")
        answer(h, h.backend(0)!, to: c)
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.worker.accessLog.flush()
        XCTAssertTrue(h.log.contains("\n203.0.113.7 - - [") || h.log.hasPrefix("203.0.113.7 - - ["), h.log)
        h.assertAtRest()
    }

    func testAV2HeaderInPiecesThenTheRequestLater() throws {
        let h = try harness()
        let c = h.client(proxyProtocol: true)
        // TCP over IPv6: 2001:db8::7 port 4242 -> ::1 port 8080, one TLV (NOOP).
        let header: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x21, 0x00, 39,
                               0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
                               0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x10, 0x92, 0x1F, 0x90, 0x04, 0x00, 0x00]
        for piece in [header[0..<5], header[5..<13], header[13..<30], header[30...]] {
            c.send(Array(piece))
            h.run(for: 0.02)
            XCTAssertFalse(c.proxyClosed)
            XCTAssertNil(h.backend(0), "nothing happens before the header is complete and a request follows")
        }
        c.send(get)
        XCTAssertTrue(h.run { h.backend(0) != nil })
        let head = backendReceived(h, h.backend(0)!)
        XCTAssertTrue(head.contains("\r\nX-Forwarded-For: 2001:db8::7\r\n"), head)
        XCTAssertTrue(head.contains("\r\nForwarded: for=\"[2001:db8::7]\";"), head)
        answer(h, h.backend(0)!, to: c)
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testLocalAndUnknownKeepTheSocketsPeer() throws {
        let local: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00]
        for header in [local, Array("PROXY UNKNOWN\r\n".utf8)] {
            let h = try harness()
            let c = h.client(proxyProtocol: true)
            c.send(header + Array(get.utf8))
            XCTAssertTrue(h.run { h.backend(0) != nil })
            let head = backendReceived(h, h.backend(0)!)
            XCTAssertTrue(head.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"), head)
            answer(h, h.backend(0)!, to: c)
            c.finish()
            XCTAssertTrue(h.run { c.proxyClosed })
            h.assertAtRest()
        }
    }

    func testARequestWithoutAHeaderIsClosedUnanswered() throws {
        let h = try harness()
        let c = h.client(proxyProtocol: true)
        c.send(get)
        XCTAssertTrue(h.run { c.proxyClosed })
        XCTAssertTrue(c.fromProxy.bytes.isEmpty, "no HTTP answer: \(c.receiveText())")
        XCTAssertNil(h.backend(0))
        XCTAssertTrue(h.log.contains("client 127.0.0.1:40000: invalid PROXY protocol header on a proxy_protocol listener: does not start with a PROXY protocol v1 or v2 signature (at byte 0"), h.log)
        h.assertAtRest()
    }

    func testAnIncompleteHeaderTimesOut() throws {
        let h = try harness(headerTimeout: "150ms")
        let c = h.client(proxyProtocol: true)
        c.send("PROXY TCP4 1.2.3.4 ")
        XCTAssertTrue(h.run { c.proxyClosed })
        XCTAssertTrue(c.fromProxy.bytes.isEmpty, "no 408: \(c.receiveText())")
        XCTAssertTrue(h.log.contains("no complete PROXY protocol header within header_timeout (150ms, 19 bytes received); closing"), h.log)
        h.assertAtRest()
    }

    func testAPlainListenerTakesAPROXYLineAsABadRequest() throws {
        let h = try harness()
        let c = h.client()
        c.send("PROXY TCP4 203.0.113.7 10.0.0.1 51000 8080\r\n" + get)
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return c.proxyClosed })
        XCTAssertEqual(got.statusCode, 400, "without the flag the line is not trusted: \(got)")
        h.assertAtRest()
    }

    // MARK: sending

    func testSendProxyConnectionsArePrivateToTheirClient() throws {
        let h = try harness(upstreamExtra: "send_proxy_protocol v1;")
        let a = h.client(proxyProtocol: true)
        a.send("PROXY TCP4 198.51.100.1 10.0.0.1 1111 8080\r\n" + get)
        XCTAssertTrue(h.run { h.backend(0) != nil })
        let first = backendReceived(h, h.backend(0)!)
        XCTAssertTrue(first.hasPrefix("PROXY TCP4 198.51.100.1 10.0.0.1 1111 8080\r\nGET /x HTTP/1.1\r\n"), first)
        answer(h, h.backend(0)!, to: a)
        XCTAssertEqual(h.worker.upstreamPool.idleCount, 0, "not in the shared pool")

        // A's next request reuses A's connection, without a second header.
        a.send(get)
        let second = backendReceived(h, h.backend(0)!)
        XCTAssertTrue(second.hasPrefix("GET /x HTTP/1.1\r\n"), second)
        XCTAssertEqual(h.net.backendConnections.count, 1)
        answer(h, h.backend(0)!, to: a)

        // B never gets A's connection (idle right now): a new one, with B's header.
        let b = h.client(proxyProtocol: true)
        b.send("PROXY TCP4 198.51.100.2 10.0.0.1 2222 8080\r\n" + get)
        XCTAssertTrue(h.run { h.backend(1) != nil })
        XCTAssertTrue(h.backend(0)!.fromProxy.bytes.isEmpty, "B's request went to A's connection")
        let fromB = backendReceived(h, try XCTUnwrap(h.backend(1)))
        XCTAssertTrue(fromB.hasPrefix("PROXY TCP4 198.51.100.2 10.0.0.1 2222 8080\r\nGET /x HTTP/1.1\r\n"), fromB)
        answer(h, h.backend(1)!, to: b)

        // Closing a client closes its backend connection; the other one's stays.
        a.finish()
        XCTAssertTrue(h.run { a.proxyClosed && h.backend(0)!.proxyClosed })
        XCTAssertFalse(h.backend(1)!.proxyClosed)
        b.finish()
        XCTAssertTrue(h.run { b.proxyClosed && h.backend(1)!.proxyClosed })
        h.assertAtRest()
    }

    func testAPrivateConnectionTheServerClosedIsReplacedWithANewHeader() throws {
        let h = try harness(upstreamExtra: "send_proxy_protocol v2;")
        let a = h.client(proxyProtocol: true)
        a.send("PROXY TCP4 198.51.100.1 10.0.0.1 1111 8080\r\n" + get)
        XCTAssertTrue(h.run { h.backend(0) != nil })
        let v2: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C,
                           198, 51, 100, 1, 10, 0, 0, 1, 0x04, 0x57, 0x1F, 0x90]
        XCTAssertTrue(h.run { h.backend(0)!.fromProxy.bytes.count > v2.count })
        XCTAssertEqual(Array(h.backend(0)!.fromProxy.bytes.prefix(v2.count)), v2)
        _ = backendReceived(h, h.backend(0)!)
        answer(h, h.backend(0)!, to: a)
        // The server closes the idle connection: it is dropped, and the next request opens a new one with the header.
        h.backend(0)!.finish()
        XCTAssertTrue(h.run { h.backend(0)!.proxyClosed })
        a.send(get)
        XCTAssertTrue(h.run { h.backend(1) != nil })
        _ = try XCTUnwrap(h.backend(1))
        XCTAssertTrue(h.run { h.backend(1)!.fromProxy.bytes.count > v2.count })
        XCTAssertEqual(Array(h.backend(1)!.fromProxy.bytes.prefix(v2.count)), v2)
        _ = backendReceived(h, h.backend(1)!)
        answer(h, h.backend(1)!, to: a)
        a.finish()
        XCTAssertTrue(h.run { a.proxyClosed && h.backend(1)!.proxyClosed })
        h.assertAtRest()
    }

    func testWithoutKnownAddressesTheHeaderSaysUnknown() throws {
        // The in-memory socket has no local address: v1 says UNKNOWN, as the specification has senders do.
        let h = try harness(upstreamExtra: "send_proxy_protocol v1;", keepalive: 0)
        let c = h.client()
        c.send(get)
        XCTAssertTrue(h.run { h.backend(0) != nil })
        let head = backendReceived(h, h.backend(0)!)
        XCTAssertTrue(head.hasPrefix("PROXY UNKNOWN\r\nGET /x HTTP/1.1\r\n"), head)
        answer(h, h.backend(0)!, to: c)
        XCTAssertTrue(h.run { h.backend(0)!.proxyClosed }, "keepalive 0: not kept, even privately")
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }
}
