// gzip on the in-memory network: compressed exchanges end with everything back at rest (the zlib pool included),
// failures mid-compression release the stream, a slow client stops the reads from the backend, and a stream that
// pauses is flushed to the client at once.
@testable import HuddleProxy
import HuddleSys
import XCTest

final class GzipExchangeTests: XCTestCase {
    func harness(gzip: String = "gzip on min_length=100 level=5 types=text/plain,application/json;") throws -> ExchangeHarness {
        try ExchangeHarness(config: """
        upstream app {
            server 127.0.0.1:9001;
            response_timeout 2s;
            retries 0;
            keepalive 8;
        }
        server {
            listen 127.0.0.1:8080;
            \(gzip)
            route / { upstream app; }
        }
        """)
    }

    let get = "GET /x HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n"

    /// The client's request reached the (single) backend; returns it.
    func backendGotRequest(_ h: ExchangeHarness, _ n: Int = 0, file: StaticString = #filePath, line: UInt = #line) -> MemoryConnection? {
        let ok = h.run { h.backend(n).map { GzipTesting.find($0.fromProxy.bytes, "\r\n\r\n", from: 0) != nil } ?? false }
        XCTAssertTrue(ok, "the request reached the backend", file: file, line: line)
        guard ok, let b = h.backend(n) else { return nil }
        _ = b.receive()
        return b
    }

    /// Reads the client's side until a complete chunked response is there; returns head and decoded payload.
    func receiveChunked(_ h: ExchangeHarness, _ c: MemoryConnection, seconds: Double = 5) -> (head: String, payload: [UInt8])? {
        var got: [UInt8] = []
        var result: (String, [UInt8])? = nil
        h.run(for: seconds) {
            got += c.receive()
            if let s = GzipTesting.split(got), let d = GzipTesting.dechunk(s.body), d.complete {
                result = (s.head, d.payload)
                return true
            }
            return false
        }
        return result
    }

    func testACompressedExchangeCompletesWithEverythingAtRest() throws {
        let h = try harness()
        let c = h.client()
        let body = GzipTesting.jsonLike(200_000)
        for round in 0..<2 {
            c.send(get)
            let b = try XCTUnwrap(backendGotRequest(h))
            b.send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nETag: \"v1\"\r\n\r\n")
            // The body in uneven pieces, with the loop running between them.
            var off = 0
            var step = 1
            while off < body.count {
                let n = min(body.count - off, step * 7919 % 30000 + 1)
                b.send(Array(body[off..<(off + n)]))
                off += n
                step += 1
                h.run(for: 0.01)
            }
            let r = try XCTUnwrap(receiveChunked(h, c), "round \(round): a complete chunked response")
            XCTAssertTrue(r.head.hasPrefix("HTTP/1.1 200 OK\r\n"), r.head)
            XCTAssertTrue(r.head.contains("\r\nContent-Encoding: gzip"), r.head)
            XCTAssertTrue(r.head.contains("\r\nTransfer-Encoding: chunked"), r.head)
            XCTAssertTrue(r.head.contains("\r\nVary: Accept-Encoding"), r.head)
            XCTAssertTrue(r.head.contains("\r\nETag: W/\"v1\""), r.head)
            XCTAssertFalse(r.head.lowercased().contains("content-length"), r.head)
            XCTAssertEqual(GzipTesting.gunzip(r.payload), body, "round \(round): inflates to the backend's body")
            XCTAssertLessThan(r.payload.count, body.count / 3, "it is compressed")
            XCTAssertTrue(h.run { h.worker.upstreamPool.idleCount == 1 }, "the backend connection is pooled again")
            XCTAssertEqual(h.net.backendConnections.count, 1, "and reused")
            XCTAssertFalse(c.proxyClosed, "keep-alive")
            h.assertAtRest()
            XCTAssertEqual(h.worker.gzipStreams.cachedCount, 1, "the stream was reset and kept, once")
        }
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testAChunkedBackendBodyIsDecodedThenCompressed() throws {
        let h = try harness()
        let c = h.client()
        c.send(get)
        let b = try XCTUnwrap(backendGotRequest(h))
        let text = GzipTesting.jsonLike(50_000)
        var wire = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var off = 0
        var i = 0
        while off < text.count {
            let n = min(text.count - off, [1, 17, 300, 4096, 9000][i % 5])
            wire += Array("\(String(n, radix: 16));ext=\(i)\r\n".utf8) + text[off..<(off + n)] + Array("\r\n".utf8)
            off += n
            i += 1
        }
        wire += Array("0\r\nX-Trailer: t\r\n\r\n".utf8)
        // Delivered in odd splits so chunk lines and data straddle reads.
        var k = 0
        while k < wire.count {
            let n = min(wire.count - k, 1 + (k * 31) % 5003)
            b.send(Array(wire[k..<(k + n)]))
            k += n
            h.run(for: 0.005)
        }
        let r = try XCTUnwrap(receiveChunked(h, c))
        XCTAssertTrue(r.head.contains("Content-Encoding: gzip"), r.head)
        XCTAssertEqual(GzipTesting.gunzip(r.payload), text)
        XCTAssertTrue(h.run { h.worker.upstreamPool.idleCount == 1 }, "a chunked body read to its end leaves the connection reusable")
        h.assertAtRest()
    }

    func testABodyEndedByCloseIsChunkedAndTheClientConnectionStays() throws {
        let h = try harness()
        let c = h.client()
        c.send(get)
        let b = try XCTUnwrap(backendGotRequest(h))
        let text = GzipTesting.jsonLike(30_000)
        b.send(Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n".utf8) + text)
        h.run(for: 0.05)
        b.finish()
        let r = try XCTUnwrap(receiveChunked(h, c))
        XCTAssertEqual(GzipTesting.gunzip(r.payload), text)
        XCTAssertFalse(r.head.contains("Connection: close"), "chunks delimit the body: the client may keep its connection\n\(r.head)")
        XCTAssertTrue(h.run { b.proxyClosed })
        XCTAssertFalse(c.proxyClosed)
        h.assertAtRest()
        // And the connection carries the next request.
        c.send("GET /y HTTP/1.1\r\nHost: h\r\n\r\n")
        let b2 = try XCTUnwrap(backendGotRequest(h, 1))
        b2.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\n" + String(repeating: "y", count: 200))
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.hasSuffix(String(repeating: "y", count: 200)) })
        XCTAssertTrue(got.contains("Content-Length: 200"), "no Accept-Encoding: passed through as it is\n\(got)")
        XCTAssertTrue(got.contains("Vary: Accept-Encoding"), got)
        h.assertAtRest()
    }

    /// A stream that pauses (server-sent events, progress output) reaches the client at each pause.
    func testAPausedStreamIsFlushedToTheClient() throws {
        let h = try harness()
        let c = h.client()
        c.send(get)
        let b = try XCTUnwrap(backendGotRequest(h))
        b.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        var wire: [UInt8] = []
        var expected: [UInt8] = []
        for i in 0..<5 {
            let event = Array("event \(i): \(String(repeating: "x", count: i * 10))\n".utf8)
            expected += event
            b.send(Array("\(String(event.count, radix: 16))\r\n".utf8) + event + Array("\r\n".utf8))
            // Without more from the backend, what the client holds decodes to every event so far.
            let ok = h.run(for: 3) {
                wire += c.receive()
                guard let s = GzipTesting.split(wire), let d = GzipTesting.dechunk(s.body),
                      let inflated = GzipTesting.inflatePrefix(d.payload) else { return false }
                return inflated.output == expected
            }
            XCTAssertTrue(ok, "event \(i) reached the client while the backend paused")
        }
        b.send("0\r\n\r\n")
        XCTAssertTrue(h.run {
            wire += c.receive()
            return GzipTesting.split(wire).flatMap { GzipTesting.dechunk($0.body) }?.complete ?? false
        })
        let d = try XCTUnwrap(GzipTesting.dechunk(try XCTUnwrap(GzipTesting.split(wire)).body))
        XCTAssertEqual(GzipTesting.gunzip(d.payload), expected)
        h.assertAtRest()
    }

    func testAClientResetMidCompressionReleasesTheStream() throws {
        let h = try harness()
        let c = h.client()
        c.fromProxy.capacity = 4096   // a slow reader: the proxy's writes block
        c.send(get)
        let b = try XCTUnwrap(backendGotRequest(h))
        let body = GzipTesting.jsonLike(2_000_000)
        b.send(Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        XCTAssertTrue(h.run { c.fromProxy.bytes.count == 4096 })
        XCTAssertEqual(h.worker.gzipStreams.outstanding, 1, "compressing")
        c.reset()
        XCTAssertTrue(h.run { c.proxyClosed })
        XCTAssertTrue(b.proxyClosed, "a backend connection with a response half read cannot be reused")
        XCTAssertEqual(h.worker.gzipStreams.outstanding, 0)
        h.assertAtRest()
    }

    func testABackendResetMidCompressionReleasesTheStream() throws {
        let h = try harness()
        let c = h.client()
        c.send(get)
        let b = try XCTUnwrap(backendGotRequest(h))
        b.send(Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n".utf8) + GzipTesting.jsonLike(20_000))
        XCTAssertTrue(h.run { c.fromProxy.bytes.count > 0 })
        b.reset()
        XCTAssertTrue(h.run { c.proxyClosed }, "a response that began can only be cut")
        h.assertAtRest()
    }

    /// The compressed output waits in one bounded buffer: a client that does not read stops the reads from the
    /// backend, and the rest of the body stays with the backend until the client reads again.
    func testASlowClientStopsTheReadsFromTheBackend() throws {
        let h = try harness()
        let c = h.client()
        c.fromProxy.capacity = 2048
        c.send(get)
        let b = try XCTUnwrap(backendGotRequest(h))
        var rng = SeededRandomForProxyTests(seed: 3)
        // Barely compressible, so the output is as large as the input.
        let body = (0..<3_000_000).map { _ in UInt8(ascii: "a") &+ UInt8(rng.next() % 26) }
        b.send(Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        XCTAssertTrue(h.run { c.fromProxy.bytes.count == 2048 })
        h.run(for: 0.2)
        let unread = b.toProxy.bytes.count
        XCTAssertGreaterThan(unread, body.count - 200_000, "Huddle stopped reading: it holds at most a few buffers of the body")
        // The client's input, the forwarded head, the response head, the backend's input, and the chunk buffer.
        XCTAssertLessThanOrEqual(h.worker.loop.buffers.outstanding, 5)
        // The client reads again: everything arrives, intact.
        c.fromProxy.capacity = 1 << 22
        var got: [UInt8] = []
        var payload: [UInt8]? = nil
        XCTAssertTrue(h.run(for: 20) {
            got += c.receive()
            if let s = GzipTesting.split(got), let d = GzipTesting.dechunk(s.body), d.complete { payload = d.payload; return true }
            return false
        })
        XCTAssertEqual(payload.flatMap(GzipTesting.gunzip), body)
        h.assertAtRest()
    }

    /// A connection compressing a long body lets the worker's other connections run between slices: a small
    /// response asked for later is answered while the long one is still being compressed.
    func testALongCompressionDoesNotHoldTheWorker() throws {
        let h = try harness()
        let a = h.client()
        a.fromProxy.capacity = 1 << 30
        a.send(get)
        let ba = try XCTUnwrap(backendGotRequest(h, 0))
        let body = GzipTesting.jsonLike(4_000_000)
        let b = h.client()
        b.send(get)
        let bb = try XCTUnwrap(backendGotRequest(h, 1))
        let small = GzipTesting.jsonLike(5000)
        // The whole long body is waiting at once, and its readiness is delivered first: without slices, A's pump
        // would compress all of it before B's turn comes.
        ba.send(Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        bb.send(Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(small.count)\r\n\r\n".utf8) + small)
        // One delivery of the pending readiness (A's first): A compresses a slice and yields, B is answered whole.
        h.net.deliver()
        var gotA = a.receive()
        let gotB = b.receive()
        func complete(_ got: [UInt8]) -> Bool { GzipTesting.split(got).flatMap { GzipTesting.dechunk($0.body) }?.complete ?? false }
        XCTAssertTrue(complete(gotB), "B's small response is out")
        XCTAssertFalse(complete(gotA), "while A's 4 MB are still being compressed")
        XCTAssertTrue(h.run(for: 20) {
            gotA += a.receive()
            return complete(gotA)
        })
        XCTAssertEqual(GzipTesting.split(gotA).flatMap { GzipTesting.dechunk($0.body) }.flatMap { GzipTesting.gunzip($0.payload) }, body)
        XCTAssertEqual(GzipTesting.split(gotB).flatMap { GzipTesting.dechunk($0.body) }.flatMap { GzipTesting.gunzip($0.payload) }, small)
        h.assertAtRest()
    }

    func testResponsesThatAreNotCompressed() throws {
        let h = try harness()
        let c = h.client()
        let text = String(repeating: "plain text ", count: 200)
        let cases: [(request: String, response: String, vary: Bool, why: String)] = [
            ("HEAD /x HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(text.utf8.count)\r\n\r\n", true, "HEAD"),
            ("GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)", true, "no Accept-Encoding"),
            (get, "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)", false, "type not listed"),
            (get, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 50\r\n\r\n" + String(repeating: "s", count: 50), false, "below min_length"),
            (get, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: br\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)", false, "encoded"),
            (get, "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n", false, "204"),
            (get, "HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\n\r\n", false, "304"),
            (get, "HTTP/1.1 206 Partial Content\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-199/5000\r\nContent-Length: 200\r\n\r\n" + String(repeating: "r", count: 200), false, "206"),
            ("GET /x HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\nRange: bytes=0-10\r\n\r\n",
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)", true, "request with Range"),
        ]
        for (i, k) in cases.enumerated() {
            c.send(k.request)
            let b = try XCTUnwrap(backendGotRequest(h, 0), k.why)
            b.send(k.response)
            var got = ""
            let expected = k.response.replacingOccurrences(of: "Content-Encoding: br\r\n", with: "")
            let bodyPart = String(expected[expected.range(of: "\r\n\r\n")!.upperBound...])
            XCTAssertTrue(h.run { got += c.receiveText(); return got.contains("\r\n\r\n") && got.hasSuffix(bodyPart) }, "case \(i) \(k.why): \(got)")
            XCTAssertFalse(got.contains("Content-Encoding: gzip"), "\(k.why): \(got)")
            XCTAssertFalse(got.contains("Transfer-Encoding"), "\(k.why): \(got)")
            XCTAssertEqual(got.contains("Vary: Accept-Encoding"), k.vary, "\(k.why): \(got)")
            XCTAssertTrue(h.run { h.worker.upstreamPool.idleCount == 1 }, k.why)
            XCTAssertEqual(h.worker.gzipStreams.outstanding, 0, k.why)
            XCTAssertEqual(h.worker.gzipStreams.cachedCount, 0, "\(k.why): no stream was ever taken")
        }
        XCTAssertEqual(h.net.backendConnections.count, 1)
        h.assertAtRest()
    }

    func testAnHTTP10ClientGetsTheIdentityBody() throws {
        let h = try harness()
        let c = h.client()
        c.send("GET /x HTTP/1.0\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n")
        let b = try XCTUnwrap(backendGotRequest(h))
        let text = String(repeating: "ten ", count: 500)
        b.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)")
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.hasSuffix(text) })
        XCTAssertFalse(got.contains("gzip"), got)
        XCTAssertTrue(got.contains("Vary: Accept-Encoding"), got)
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testGzipOffChangesNothing() throws {
        let h = try harness(gzip: "")
        let c = h.client()
        c.send(get)
        let b = try XCTUnwrap(backendGotRequest(h))
        let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2000\r\n\r\n" + String(repeating: "o", count: 2000)
        b.send(response)
        var got = ""
        XCTAssertTrue(h.run { got += c.receiveText(); return got.hasSuffix(String(repeating: "o", count: 2000)) })
        XCTAssertEqual(got, response)
        h.assertAtRest()
    }
}
