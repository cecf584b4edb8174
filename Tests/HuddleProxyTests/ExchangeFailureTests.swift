// The exchange's failure paths, played byte by byte on the in-memory network: each ends with the right answer (or a
// closed client) and with every counter, buffer, pipe and connection released exactly once.
@testable import HuddleProxy
import HuddleSys
import XCTest

final class ExchangeFailureTests: XCTestCase {
    /// Two servers on 9001 and 9002, p2c, short timeouts.
    func harness(retries: Int = 1, extraServer: String = "", keepalive: Int = 0) throws -> ExchangeHarness {
        try ExchangeHarness(config: """
        upstream app {
            server 127.0.0.1:9001;
            server 127.0.0.1:9002;
            connect_timeout 200ms;
            response_timeout 300ms;
            retries \(retries);
            keepalive \(keepalive);
        }
        server {
            listen 127.0.0.1:8080;
            \(extraServer)
            route / { upstream app; }
        }
        """)
    }

    let get = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"

    // MARK: connect

    func testConnectRefusedIsRetriedOnTheOtherServer() throws {
        let h = try harness()
        var tried: [UInt16] = []
        h.net.onConnect = { a in
            tried.append(a.port)
            return tried.count == 1 ? .refuse : .accept
        }
        let c = h.client()
        c.send(get)
        XCTAssertTrue(h.run { h.backend(0) != nil })
        let b = h.backend(0)!
        XCTAssertTrue(h.run { String(decoding: b.fromProxy.bytes, as: UTF8.self).hasSuffix("\r\n\r\n") })
        XCTAssertEqual(Set(tried).count, 2, "the retry went to the other server")
        _ = b.receive()
        b.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.hasSuffix("ok") })
        XCTAssertEqual(got.statusCode, 200)
        XCTAssertEqual(h.server(tried[0]).failuresTotal.load(ordering: .relaxed), 1)
        XCTAssertTrue(h.log.contains("connect failed"), h.log)
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testConnectRefusedEverywhereAnswers502() throws {
        let h = try harness()
        h.net.onConnect = { _ in .refuse }
        let c = h.client()
        c.send(get)
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.hasSuffix("\n") && got.contains("\r\n\r\n") })
        XCTAssertEqual(got.statusCode, 502, got)
        XCTAssertFalse(c.proxyClosed, "a bodiless request's failure keeps the client connection")
        h.assertAtRest()
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testConnectTimeoutAnswers504WhenNoOtherServerAnswers() throws {
        let h = try harness()
        h.net.onConnect = { _ in .hang }
        let c = h.client()
        let start = Date()
        c.send(get)
        var got = ""
        XCTAssertTrue(h.run(for: 3) { got += c.receiveText(); return got.contains("\r\n\r\n") })
        XCTAssertEqual(got.statusCode, 504, got)
        let took = Date().timeIntervalSince(start)
        XCTAssertGreaterThan(took, 0.35, "two connect_timeouts of 200 ms ran")
        XCTAssertEqual(h.net.backendConnections.count, 2, "one attempt per server")
        XCTAssertTrue(h.net.backendConnections.allSatisfy { $0.connection.proxyCloses == 1 }, "each pending connect was closed")
        h.assertAtRest()
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    // MARK: resets

    func testResetBeforeTheResponseRetriesAnIdempotentRequest() throws {
        let h = try harness()
        let c = h.client()
        c.send(get)
        XCTAssertTrue(h.run { h.backend(0).map { !$0.fromProxy.bytes.isEmpty } ?? false })
        h.backend(0)!.reset()
        XCTAssertTrue(h.run { h.backend(1).map { !$0.fromProxy.bytes.isEmpty } ?? false }, "the GET went to the other server")
        XCTAssertNotEqual(h.net.backendConnections[0].address, h.net.backendConnections[1].address)
        h.backend(1)!.send("HTTP/1.1 204 No Content\r\n\r\n")
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.contains("\r\n\r\n") })
        XCTAssertEqual(got.statusCode, 204)
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testResetBeforeTheResponseAnswers502ToAPost() throws {
        let h = try harness()
        let c = h.client()
        c.send("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
        XCTAssertTrue(h.run { h.backend(0).map { String(decoding: $0.fromProxy.bytes, as: UTF8.self).hasSuffix("abc") } ?? false })
        h.backend(0)!.reset()
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.contains("\r\n\r\n") })
        XCTAssertEqual(got.statusCode, 502, got)
        XCTAssertEqual(h.net.backendConnections.count, 1, "a POST is never sent twice")
        XCTAssertTrue(h.run { c.proxyClosed }, "its body went out: the connection closes after the answer")
        h.assertAtRest()
    }

    func testResetMidResponseClosesTheClient() throws {
        let h = try harness()
        let c = h.client()
        c.send(get)
        XCTAssertTrue(h.run { h.backend(0).map { !$0.fromProxy.bytes.isEmpty } ?? false })
        let b = h.backend(0)!
        b.send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.hasSuffix("0123456789") })
        b.reset()
        XCTAssertTrue(h.run { c.proxyClosed }, "a response that began can only be cut")
        XCTAssertEqual(h.net.backendConnections.count, 1, "no retry once the response began")
        XCTAssertTrue(h.log.contains("while sending the response"), h.log)
        h.assertAtRest()
    }

    // MARK: timeouts

    func testResponseTimeoutAnswers504() throws {
        let h = try harness(retries: 0)
        let c = h.client()
        c.send(get)
        var got = ""
        XCTAssertTrue(h.run(for: 3) { got += c.receiveText(); return got.contains("\r\n\r\n") })
        XCTAssertEqual(got.statusCode, 504, got)
        XCTAssertTrue(h.log.contains("response_timeout reached"), h.log)
        XCTAssertTrue(h.backend(0)!.proxyClosed)
        h.assertAtRest()
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    // MARK: request bodies Huddle refuses

    func testMalformedChunkedRequestBodyAnswers400AndReleasesTheServerOnce() throws {
        let h = try harness()
        let c = h.client()
        // Head and bad body together: the body is checked before anything goes to the backend.
        c.send("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.contains("\r\n\r\n") })
        XCTAssertEqual(got.statusCode, 400, got)
        XCTAssertTrue(h.run { c.proxyClosed })
        XCTAssertTrue(h.net.backendConnections.allSatisfy { $0.connection.fromProxy.bytes.isEmpty }, "the backend got no byte of it")
        for s in h.runtime.upstreams[0].servers {
            XCTAssertEqual(s.inFlight.load(ordering: .relaxed), 0, "in_flight must not go negative (it did: released twice)")
        }
        h.assertAtRest()
    }

    func testMalformedChunkAfterTheHeadWentOutClosesBothSides() throws {
        let h = try harness()
        let c = h.client()
        c.send("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        XCTAssertTrue(h.run { h.backend(0).map { String(decoding: $0.fromProxy.bytes, as: UTF8.self).hasSuffix("hello\r\n") } ?? false })
        c.send("zz\r\n")
        XCTAssertTrue(h.run { c.proxyClosed })
        XCTAssertTrue(h.backend(0)!.proxyClosed, "the backend saw a partial request: its connection is closed")
        XCTAssertFalse(String(decoding: h.backend(0)!.fromProxy.bytes, as: UTF8.self).contains("zz"), "the bad bytes were not forwarded")
        h.assertAtRest()
    }

    func testChunkedBodyOverMaxBodySizeAnswers413() throws {
        let h = try harness(extraServer: "max_body_size 10;")
        let c = h.client()
        c.send("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n")
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.contains("\r\n\r\n") || c.proxyClosed })
        XCTAssertEqual(got.statusCode, 413, got)
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    // MARK: the client goes away

    func testClientGoneMidUpload() throws {
        let h = try harness()
        let c = h.client()
        c.send("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "a", count: 1000))
        XCTAssertTrue(h.run { h.backend(0).map { $0.fromProxy.bytes.count > 1000 } ?? false })
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        XCTAssertTrue(h.backend(0)!.proxyClosed, "the backend connection of an abandoned upload is closed, not pooled")
        XCTAssertTrue(h.log.contains("in the middle of a request body"), h.log)
        h.assertAtRest()
    }

    func testClientGoneMidDownload() throws {
        let h = try harness(keepalive: 8)
        let c = h.client()
        c.fromProxy.capacity = 4096   // a slow reader: the proxy's writes block
        c.send(get)
        XCTAssertTrue(h.run { h.backend(0).map { !$0.fromProxy.bytes.isEmpty } ?? false })
        let b = h.backend(0)!
        b.send("HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + String(repeating: "b", count: 50000))
        XCTAssertTrue(h.run { c.fromProxy.bytes.count == 4096 })
        c.reset()
        XCTAssertTrue(h.run { c.proxyClosed })
        XCTAssertTrue(b.proxyClosed, "a backend connection with a response half read cannot be reused")
        XCTAssertEqual(h.worker.upstreamPool.idleCount, 0)
        h.assertAtRest()
    }

    // MARK: the good path, for contrast: the connection is pooled

    func testCompleteExchangeReturnsTheBackendConnectionToThePool() throws {
        let h = try harness(keepalive: 8)
        let c = h.client()
        for i in 0..<3 {
            c.send(get)
            XCTAssertTrue(h.run { h.net.backendConnections.contains { !$0.connection.fromProxy.bytes.isEmpty } })
            let b = h.net.backendConnections.first { !$0.connection.fromProxy.bytes.isEmpty }!.connection
            _ = b.receive()
            b.send("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n\(i)")
            var got = ""
            XCTAssertTrue(h.run { got += c.receiveText(); return got.hasSuffix("\r\n\r\n\(i)") })
        }
        // p2c may use both servers, but each server's connection is reused rather than opened anew.
        XCTAssertEqual(Set(h.net.backendConnections.map(\.address)).count, h.net.backendConnections.count, "one connection per server")
        XCTAssertEqual(h.worker.upstreamPool.idleCount, h.net.backendConnections.count, "each is back in the pool")
        h.assertAtRest()
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }
}
