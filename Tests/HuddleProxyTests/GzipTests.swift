// gzip, the pure parts: the decision table, what is read off the heads, the head rewrite, and the chunk encoder
// round-tripped through zlib's inflate across many small writes and flushes; the stream pool's bookkeeping.
@testable import HuddleIO
@testable import HuddleProxy
import HuddleConfig
import HuddleHTTP
import XCTest

final class GzipPolicyTests: XCTestCase {
    static let accepting = GzipRequestFacts(acceptsGzip: true, hasRange: false)

    struct Row {
        var name: String
        var type = true, encoded = false, noTransform = false
        var status = 200
        var method = HTTPMethod.get
        var framing = BodyFraming.contentLength(5000)
        var length: Int64? = 5000
        var request = GzipPolicyTests.accepting
        var http10 = false
        var compress: Bool
        var vary: Bool
    }

    let rows: [Row] = [
        Row(name: "a listed type, long enough, client accepts", compress: true, vary: true),
        Row(name: "type not listed", type: false, compress: false, vary: false),
        Row(name: "already encoded by the backend", encoded: true, compress: false, vary: false),
        Row(name: "Cache-Control: no-transform", noTransform: true, compress: false, vary: false),
        Row(name: "HEAD: never compressed, but says Vary like its GET", method: .head, framing: .none, compress: false, vary: true),
        Row(name: "204", status: 204, framing: .none, length: nil, compress: false, vary: false),
        Row(name: "304", status: 304, framing: .none, compress: false, vary: false),
        Row(name: "206 Partial Content", status: 206, compress: false, vary: false),
        Row(name: "request with Range (backend ignored it: 200)", request: GzipRequestFacts(acceptsGzip: true, hasRange: true), compress: false, vary: true),
        Row(name: "client without gzip", request: GzipRequestFacts(acceptsGzip: false, hasRange: false), compress: false, vary: true),
        Row(name: "below min_length", framing: .contentLength(100), length: 100, compress: false, vary: false),
        Row(name: "exactly min_length", framing: .contentLength(1024), length: 1024, compress: true, vary: true),
        Row(name: "empty body", framing: .contentLength(0), length: 0, compress: false, vary: false),
        Row(name: "chunked, length unknown: compressed", framing: .chunked, length: nil, compress: true, vary: true),
        Row(name: "until close, length unknown: compressed", framing: .untilClose, length: nil, compress: true, vary: true),
        Row(name: "HTTP/1.0 client: not compressed (no chunked framing for it)", http10: true, compress: false, vary: true),
        Row(name: "404 page", status: 404, compress: true, vary: true),
        Row(name: "500 page", status: 500, compress: true, vary: true),
        Row(name: "CONNECT", method: .connect, framing: .untilClose, length: nil, compress: false, vary: false),
    ]

    func testTheDecisionTable() {
        for r in rows {
            let d = GzipPolicy.decide(typeListed: r.type, encoded: r.encoded, noTransform: r.noTransform, status: r.status,
                                      method: r.method, framing: r.framing, contentLength: r.length, minLength: 1024,
                                      request: r.request, clientIsHTTP10: r.http10)
            XCTAssertEqual(d, GzipDecision(compress: r.compress, vary: r.vary), r.name)
        }
    }

    func withBytes<T>(_ s: String, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        Array(s.utf8).withUnsafeBytes(body)
    }

    func requestFacts(_ raw: String) -> GzipRequestFacts {
        withBytes(raw) { b in
            var p = HTTPRequestParser(maxHeaderSize: 8192)
            var head = HTTPRequestHead()
            guard case .complete = p.parse(b, into: &head) else { XCTFail("bad request \(raw)"); return GzipRequestFacts() }
            return GzipRequestFacts.read(head, b)
        }
    }

    func testRequestFactsAreReadFromTheHead() {
        XCTAssertEqual(requestFacts("GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip, br\r\n\r\n"), GzipRequestFacts(acceptsGzip: true, hasRange: false))
        XCTAssertEqual(requestFacts("GET / HTTP/1.1\r\nHost: h\r\nACCEPT-ENCODING: br\r\naccept-encoding: GZip\r\n\r\n"), GzipRequestFacts(acceptsGzip: true, hasRange: false))
        XCTAssertEqual(requestFacts("GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip;q=0\r\n\r\n"), GzipRequestFacts(acceptsGzip: false, hasRange: false))
        XCTAssertEqual(requestFacts("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), GzipRequestFacts(acceptsGzip: false, hasRange: false))
        XCTAssertEqual(requestFacts("GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\nAccept-Encoding: *\r\n\r\n"), GzipRequestFacts(acceptsGzip: true, hasRange: true))
    }

    func responseFacts(_ raw: String) -> (GzipResponseFacts, String?) {
        withBytes(raw) { b in
            var p = HTTPResponseParser()
            var head = HTTPResponseHead()
            guard case .complete = p.parse(b, into: &head) else { XCTFail("bad response \(raw)"); return (GzipResponseFacts(), nil) }
            let f = GzipResponseFacts.read(head, b)
            return (f, f.contentType.map { String(decoding: b[$0], as: UTF8.self) })
        }
    }

    func testResponseFactsAreReadFromTheHead() {
        var (f, type) = responseFacts("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\n\r\n")
        XCTAssertEqual(type, "text/html; charset=utf-8")
        XCTAssertFalse(f.encoded)
        XCTAssertFalse(f.hasVary)
        (f, _) = responseFacts("HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\n\r\n")
        XCTAssertFalse(f.encoded, "identity is no encoding")
        (f, _) = responseFacts("HTTP/1.1 200 OK\r\ncontent-encoding: br\r\n\r\n")
        XCTAssertTrue(f.encoded)
        (f, _) = responseFacts("HTTP/1.1 200 OK\r\nCache-Control: public, No-Transform\r\n\r\n")
        XCTAssertTrue(f.noTransform)
        (f, _) = responseFacts("HTTP/1.1 200 OK\r\nVary: Origin\r\n\r\n")
        XCTAssertTrue(f.hasVary)
        XCTAssertFalse(f.varyCoversAcceptEncoding)
        (f, _) = responseFacts("HTTP/1.1 200 OK\r\nVary: Origin\r\nvary: accept-encoding\r\n\r\n")
        XCTAssertTrue(f.varyCoversAcceptEncoding)
        (f, _) = responseFacts("HTTP/1.1 200 OK\r\nVary: *\r\n\r\n")
        XCTAssertTrue(f.varyCoversAcceptEncoding)
    }

    func testMediaTypesMatchWithoutParametersOrCase() {
        var c = GzipConfig()
        c.types = ["text/html", "application/json"]
        let g = GzipRuntime(c)
        let cases: [(String?, Bool)] = [("text/html", true), ("TEXT/HTML", true), ("text/html; charset=utf-8", true),
                                        ("text/html ;charset=utf-8", true), ("application/json", true), ("text/htm", false),
                                        ("text/html5", false), ("text/plain", false), ("application/json+x", false), (nil, false), ("", false)]
        for (value, want) in cases {
            let got: Bool = Array((value ?? "").utf8).withUnsafeBytes { b in g.lists(contentType: value.map { _ in 0..<b.count }, in: b) }
            XCTAssertEqual(got, want, value ?? "no Content-Type")
        }
        c.types = ["*"]
        XCTAssertTrue(Array("image/png".utf8).withUnsafeBytes { GzipRuntime(c).lists(contentType: 0..<$0.count, in: $0) })
        XCTAssertTrue(GzipRuntime(c).lists(contentType: nil, in: UnsafeRawBufferPointer(start: nil, count: 0)), "* matches any response")
    }

    func rewrite(_ raw: String, _ edit: GzipHeadEdit) -> String {
        withBytes(raw) { b in
            var p = HTTPResponseParser()
            var head = HTTPResponseHead()
            _ = p.parse(b, into: &head)
            let pool = BufferPool(bufferSize: 4096)
            var o = pool.acquire()
            ResponseRelay.appendFields(head.headers, b, nominated: false, gzip: edit, into: &o)
            return String(decoding: o.readableBytes, as: UTF8.self)
        }
    }

    func testTheHeadRewrite() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5000\r\nETag: \"abc\"\r\nAccept-Ranges: bytes\r\nVary: Origin\r\nX-A: 1\r\nConnection: close\r\n\r\n"
        XCTAssertEqual(rewrite(raw, GzipHeadEdit(compress: true, addVary: true)),
                       "Content-Type: text/html\r\nETag: W/\"abc\"\r\nVary: Origin, Accept-Encoding\r\nX-A: 1\r\nContent-Encoding: gzip\r\n")
        XCTAssertEqual(rewrite(raw, GzipHeadEdit(compress: false, addVary: true)),
                       "Content-Type: text/html\r\nContent-Length: 5000\r\nETag: \"abc\"\r\nAccept-Ranges: bytes\r\nVary: Origin, Accept-Encoding\r\nX-A: 1\r\n",
                       "Vary only: nothing else changes")
        XCTAssertEqual(rewrite("HTTP/1.1 200 OK\r\nETag: W/\"x\"\r\nVary: accept-encoding\r\n\r\n", GzipHeadEdit(compress: true, addVary: false)),
                       "ETag: W/\"x\"\r\nVary: accept-encoding\r\nContent-Encoding: gzip\r\n", "a weak ETag stays; a covering Vary is kept as it is")
        XCTAssertEqual(rewrite("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", GzipHeadEdit(compress: true, addVary: true)),
                       "Content-Type: text/plain\r\nVary: Accept-Encoding\r\nContent-Encoding: gzip\r\n")
        XCTAssertEqual(rewrite("HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\n\r\n", GzipHeadEdit(compress: true, addVary: true)),
                       "Vary: Accept-Encoding\r\nContent-Encoding: gzip\r\n", "identity gives way to gzip")
        XCTAssertEqual(rewrite("HTTP/1.1 200 OK\r\nVary:\r\nVary: Cookie\r\n\r\n", GzipHeadEdit(compress: false, addVary: true)),
                       "Vary: Accept-Encoding\r\nVary: Cookie\r\n", "appended to the first Vary once")
    }
}

final class GzipEncoderTests: XCTestCase {
    /// Feeds `body` in small random pieces with random flush choices, writing the ready chunks out in random small
    /// amounts; the chunked bytes must decode and inflate to exactly the body.
    func roundTrip(_ body: [UInt8], level: Int, seed: UInt64, bufferSize: Int = 16384) throws {
        let buffers = BufferPool(bufferSize: bufferSize)
        let streams = GzipStreamPool()
        var rng = SeededRandomForProxyTests(seed: seed)
        var encoder: GzipChunkEncoder? = GzipChunkEncoder(stream: streams.acquire(level: level)!, buffer: buffers.acquire())
        XCTAssertEqual(streams.outstanding, 1)
        var wire: [UInt8] = []
        var offset = 0
        var syncs = 0
        func drain() {
            while encoder.unwrapped.readyCount > 0 {
                let n = min(encoder.unwrapped.readyCount, 1 + Int(rng.next() % 5000))
                wire += UnsafeRawBufferPointer(start: encoder.unwrapped.readyPointer, count: n)
                encoder.unwrapped.wrote(n)
            }
        }
        while offset < body.count {
            let n = min(body.count - offset, 1 + Int(rng.next() % 3000))
            let flush: GzipStream.Flush = rng.next() % 4 == 0 ? .sync : .none
            var piece = offset..<(offset + n)
            while !piece.isEmpty {
                let taken = try XCTUnwrap(body[piece].withUnsafeBytes { encoder.unwrapped.compress($0, flush: flush) })
                piece = (piece.lowerBound + taken)..<piece.upperBound
                drain()
            }
            if flush == .sync {
                // Everything so far is decodable by the client now: the point of the sync flush.
                while encoder.unwrapped.unflushed {
                    _ = encoder.unwrapped.compress(UnsafeRawBufferPointer(start: nil, count: 0), flush: .sync)
                    drain()
                }
                syncs += 1
                let sofar = try XCTUnwrap(GzipTesting.dechunk(wire))
                let inflated = try XCTUnwrap(GzipTesting.inflatePrefix(sofar.payload))
                XCTAssertEqual(inflated.output.count, offset + n, "after a sync flush the client has every byte (seed \(seed))")
            }
            offset += n
        }
        while !encoder.unwrapped.finished {
            _ = try XCTUnwrap(encoder.unwrapped.compress(UnsafeRawBufferPointer(start: nil, count: 0), flush: .finish))
            drain()
        }
        drain()
        XCTAssertTrue(encoder.unwrapped.isDone)
        XCTAssertEqual(streams.outstanding, 0, "the zlib stream went back as soon as the trailer was out")
        XCTAssertEqual(streams.cachedCount, 1)
        encoder = nil
        XCTAssertEqual(buffers.outstanding, 0)
        let d = try XCTUnwrap(GzipTesting.dechunk(wire), "chunk framing")
        XCTAssertTrue(d.complete, "ends with the last chunk")
        XCTAssertEqual(d.rest, [])
        XCTAssertEqual(GzipTesting.gunzip(d.payload), body, "seed \(seed): inflates to the body")
        if body.count > 10_000 { XCTAssertGreaterThan(syncs, 0, "the run exercised sync flushes") }
    }

    func testRoundTripsAcrossManySmallWritesAndFlushes() throws {
        let json = GzipTesting.jsonLike(300_000)
        for seed in UInt64(1)...6 { try roundTrip(json, level: 5, seed: seed) }
        try roundTrip(json, level: 1, seed: 7)
        try roundTrip(json, level: 9, seed: 8)
        // Incompressible input: the output is larger than the input, chunks fill and close mid-input.
        var rng = SeededRandomForProxyTests(seed: 9)
        let noise = (0..<100_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try roundTrip(noise, level: 5, seed: 10)
        // A small buffer: many full chunks.
        try roundTrip(json, level: 5, seed: 11, bufferSize: 512)
        try roundTrip([], level: 5, seed: 12)
    }

    func testDroppingAnEncoderMidStreamGivesTheStreamBack() throws {
        let buffers = BufferPool(bufferSize: 16384)
        let streams = GzipStreamPool()
        var encoder: GzipChunkEncoder? = GzipChunkEncoder(stream: streams.acquire(level: 5)!, buffer: buffers.acquire())
        let json = GzipTesting.jsonLike(50_000)
        _ = json.withUnsafeBytes { encoder.unwrapped.compress($0, flush: .none) }
        XCTAssertEqual(streams.outstanding, 1)
        encoder = nil
        XCTAssertEqual(streams.outstanding, 0)
        XCTAssertEqual(buffers.outstanding, 0)
        // The reset stream is reused, and starts a fresh gzip member.
        var again: GzipChunkEncoder? = GzipChunkEncoder(stream: streams.acquire(level: 5)!, buffer: buffers.acquire())
        XCTAssertEqual(streams.cachedCount, 0, "the cached stream was taken")
        var wire: [UInt8] = []
        _ = Array("hello".utf8).withUnsafeBytes { again.unwrapped.compress($0, flush: .finish) }
        wire += UnsafeRawBufferPointer(start: again.unwrapped.readyPointer, count: again.unwrapped.readyCount)
        again.unwrapped.wrote(again.unwrapped.readyCount)
        XCTAssertTrue(again.unwrapped.isDone)
        again = nil
        XCTAssertEqual(GzipTesting.gunzip(try XCTUnwrap(GzipTesting.dechunk(wire)).payload), Array("hello".utf8))
    }

    func testThePoolIsTrimmedToItsRecentPeak() throws {
        let streams = GzipStreamPool()
        var a = streams.acquire(level: 1), b = streams.acquire(level: 5), c = streams.acquire(level: 5), d = streams.acquire(level: 9)
        XCTAssertEqual(streams.outstanding, 4)
        XCTAssertTrue(a != nil && b != nil && c != nil && d != nil)
        a = nil; b = nil; c = nil; d = nil
        XCTAssertEqual(streams.outstanding, 0)
        XCTAssertEqual(streams.cachedCount, 4)
        streams.trim(keep: 1)
        XCTAssertEqual(streams.cachedCount, 4, "the burst's peak (4) is kept for one more period")
        streams.trim(keep: 1)
        XCTAssertEqual(streams.cachedCount, 1, "then only `keep` stay")
    }
}

/// SplitMix64 for these tests.
struct SeededRandomForProxyTests {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
