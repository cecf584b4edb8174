// The cache's decisions as tables (RFC 9111): what a request may do with the cache, whether a response is stored and
// how fresh it is, its age, and conditional requests. No sockets, no clocks but the ones passed in.
@testable import HuddleProxy
import HuddleConfig
import HuddleHTTP
import XCTest

final class CachePolicyTests: XCTestCase {
    func requestFacts(_ text: String) -> CacheRequestFacts {
        var parser = HTTPRequestParser()
        var head = HTTPRequestHead()
        let bytes = Array(text.utf8)
        let r = bytes.withUnsafeBytes { parser.parse($0, into: &head) }
        XCTAssertEqual(r, .complete, text)
        return bytes.withUnsafeBytes { CacheRequestFacts.read(head, $0, upgrade: false) }
    }

    func testRequestKinds() {
        let rows: [(String, CacheRequestKind, String)] = [
            ("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", .lookup, "a plain GET"),
            ("HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n", .lookup, "HEAD"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nCache-Control: max-age=60\r\n\r\n", .lookup, "max-age>0 still looks up"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nCache-Control: no-cache\r\n\r\n", .refresh, "no-cache: go to the backend"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nCache-Control: max-age=0\r\n\r\n", .refresh, "max-age=0 is a refresh"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n", .refresh, "Pragma without Cache-Control"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nCache-Control: max-age=5\r\n\r\n", .lookup, "Cache-Control wins over Pragma"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nCache-Control: no-store\r\n\r\n", .bypass, "no-store"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: Basic eDp5\r\n\r\n", .bypass, "Authorization"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\n", .bypass, "Range"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab", .bypass, "a body"),
            ("GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", .lookup, "an empty body is no body"),
            ("OPTIONS /a HTTP/1.1\r\nHost: h\r\n\r\n", .bypass, "OPTIONS"),
            ("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", .invalidate, "POST"),
            ("DELETE /a HTTP/1.1\r\nHost: h\r\n\r\n", .invalidate, "DELETE"),
            ("PATCH /a HTTP/1.1\r\nHost: h\r\n\r\n", .invalidate, "PATCH"),
        ]
        for (text, kind, why) in rows {
            XCTAssertEqual(requestFacts(text).kind, kind, why)
        }
        let f = requestFacts("GET /a HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nCache-Control: max-age=7, min-fresh=3\r\n\r\n")
        XCTAssertNotNil(f.ifNoneMatch)
        XCTAssertEqual(f.ifModifiedSince, 784_111_777)
        XCTAssertEqual(f.maxAge, 7)
        XCTAssertEqual(f.minFresh, 3)
    }

    let now: Int64 = 1_790_000_000
    var date: String { HTTPDate.format(now) }

    func decide(_ status: Int, _ fields: [String], ttl: Int64 = 0, staleIfError: Int64 = 0) -> CacheStoreDecision {
        var config = CacheConfig(location: SourceLocation(file: "t", line: 1, column: 1))
        config.ttl = ttl
        config.staleIfError = staleIfError
        let text = "HTTP/1.1 \(status) X\r\n" + fields.map { $0 + "\r\n" }.joined() + "\r\n"
        var parser = HTTPResponseParser()
        var head = HTTPResponseHead()
        let bytes = Array(text.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { parser.parse($0, into: &head) }, .complete)
        let facts = bytes.withUnsafeBytes { CacheResponseFacts.read(head, $0, nowSeconds: now) }
        return CachePolicy.decide(status: status, facts: facts, config: config, nowSeconds: now)
    }

    func testStorageAndFreshness() {
        func stored(_ ms: Int64, _ stale: Int64 = 0) -> CacheStoreDecision { .store(lifetimeMs: ms, staleIfErrorMs: stale) }
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=60"]), stored(60_000))
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=0, s-maxage=30"]), stored(30_000), "s-maxage wins in a shared cache")
        XCTAssertEqual(decide(200, ["Date: \(date)", "Expires: \(HTTPDate.format(now + 90))"]), stored(90_000), "Expires against Date")
        XCTAssertEqual(decide(200, ["Date: \(HTTPDate.format(now - 30))", "Expires: \(HTTPDate.format(now + 90))"]), stored(120_000),
                       "Expires - Date, not Expires - now (the age covers the rest)")
        XCTAssertEqual(decide(200, ["Expires: \(HTTPDate.format(now + 10))"]), stored(10_000), "no Date: the time it arrived")
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=20", "Expires: \(HTTPDate.format(now + 900))"]), stored(20_000), "max-age wins over Expires")
        XCTAssertEqual(decide(200, ["Expires: 0"]), .dontStore(reason: "already stale"), "an invalid Expires is in the past")
        XCTAssertEqual(decide(200, ["Expires: 0"], staleIfError: 5000), stored(0, 5000), "kept for stale-if-error")
        XCTAssertEqual(decide(200, []), .dontStore(reason: "no explicit freshness and ttl=0"))
        XCTAssertEqual(decide(200, [], ttl: 5000), stored(5000), "ttl: heuristic freshness")
        XCTAssertEqual(decide(404, [], ttl: 5000), stored(5000), "404 is cacheable by default")
        XCTAssertEqual(decide(302, [], ttl: 5000), .dontStore(reason: "status 302 without explicit freshness"))
        XCTAssertEqual(decide(302, ["Cache-Control: public"], ttl: 5000), stored(5000), "public makes it cacheable")
        XCTAssertEqual(decide(302, ["Cache-Control: max-age=9"]), stored(9000), "explicit freshness makes it cacheable")
        XCTAssertEqual(decide(200, ["Cache-Control: public"], ttl: 0), .dontStore(reason: "no explicit freshness and ttl=0"))
        for (fields, reason) in [(["Cache-Control: no-store, max-age=60"], "no-store"),
                                 (["Cache-Control: private, max-age=60"], "private"),
                                 (["Cache-Control: private=\"X\", max-age=60"], "private"),
                                 (["Cache-Control: no-cache, max-age=60"], "no-cache"),
                                 (["Pragma: no-cache", "Expires: \(HTTPDate.format(now + 60))"], "no-cache"),
                                 (["Set-Cookie: a=b", "Cache-Control: max-age=60"], "Set-Cookie"),
                                 (["Vary: Accept, *", "Cache-Control: max-age=60"], "Vary: *")] {
            XCTAssertEqual(decide(200, fields), .dontStore(reason: reason), "\(fields)")
        }
        XCTAssertEqual(decide(500, ["Cache-Control: max-age=60"]), .dontStore(reason: "status 500"), "an error never replaces a stored answer")
        XCTAssertEqual(decide(206, ["Cache-Control: max-age=60"]), .dontStore(reason: "status 206"))
        XCTAssertEqual(decide(501, [], ttl: 1000), stored(1000), "501 is cacheable by default")
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=0"]), .dontStore(reason: "already stale"))
    }

    func testStaleIfErrorWindow() {
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=1, stale-if-error=60"]), .store(lifetimeMs: 1000, staleIfErrorMs: 60_000))
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=1"], staleIfError: 30_000), .store(lifetimeMs: 1000, staleIfErrorMs: 30_000),
                       "the route's default")
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=1, must-revalidate"], staleIfError: 30_000), .store(lifetimeMs: 1000, staleIfErrorMs: 0),
                       "must-revalidate forbids the default")
        XCTAssertEqual(decide(200, ["Cache-Control: s-maxage=1"], staleIfError: 30_000), .store(lifetimeMs: 1000, staleIfErrorMs: 0),
                       "s-maxage implies proxy-revalidate")
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=1, must-revalidate, stale-if-error=9"], staleIfError: 30_000),
                       .store(lifetimeMs: 1000, staleIfErrorMs: 9000), "the response's own stale-if-error wins")
        XCTAssertEqual(decide(200, ["Cache-Control: max-age=0, stale-if-error=60"]), .store(lifetimeMs: 0, staleIfErrorMs: 60_000),
                       "always revalidate, but answer stale on errors")
    }

    func testAgeAndFreshness() {
        var f = CacheResponseFacts()
        // Date 10 s before it arrived, Age 3, 2 s between request and response.
        f.date = now - 10
        f.age = 3
        XCTAssertEqual(CachePolicy.initialAgeMs(facts: f, nowSeconds: now, requestSentMs: 1000, responseMs: 3000), 10_000, "apparent age wins")
        f.date = now
        XCTAssertEqual(CachePolicy.initialAgeMs(facts: f, nowSeconds: now, requestSentMs: 1000, responseMs: 3000), 5000, "Age + response delay")
        f.date = now + 100
        f.age = nil
        XCTAssertEqual(CachePolicy.initialAgeMs(facts: f, nowSeconds: now, requestSentMs: 1000, responseMs: 1000), 0, "a Date in the future is age 0")

        let fr = CacheFreshness(responseMs: 10_000, initialAgeMs: 2000, lifetimeMs: 5000, staleIfErrorMs: 4000)
        XCTAssertEqual(fr.ageMs(nowMs: 11_000), 3000)
        XCTAssertTrue(fr.isFresh(nowMs: 12_999, maxAge: nil, minFresh: nil))
        XCTAssertFalse(fr.isFresh(nowMs: 13_000, maxAge: nil, minFresh: nil), "age 5 s of a 5 s lifetime is stale")
        XCTAssertFalse(fr.isFresh(nowMs: 11_000, maxAge: 2, minFresh: nil), "the request's max-age")
        XCTAssertTrue(fr.isFresh(nowMs: 11_000, maxAge: 3, minFresh: nil))
        XCTAssertFalse(fr.isFresh(nowMs: 11_000, maxAge: nil, minFresh: 3), "the request's min-fresh")
        XCTAssertTrue(fr.isUsableOnError(nowMs: 16_999))
        XCTAssertFalse(fr.isUsableOnError(nowMs: 17_000), "past the stale-if-error window")
        XCTAssertFalse(CacheFreshness(responseMs: 0, initialAgeMs: 0, lifetimeMs: 5000, staleIfErrorMs: 0).isUsableOnError(nowMs: 6000))
    }

    func testVaryAndConditionals() {
        var parser = HTTPResponseParser()
        var head = HTTPResponseHead()
        let bytes = Array("HTTP/1.1 200 OK\r\nVary: Accept-Language, accept-encoding\r\nVary: ACCEPT-LANGUAGE\r\nETag: W/\"v1\"\r\n\r\n".utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { parser.parse($0, into: &head) }, .complete)
        let f = bytes.withUnsafeBytes { CacheResponseFacts.read(head, $0, nowSeconds: now) }
        XCTAssertEqual(f.varyNames.map { String(decoding: $0, as: UTF8.self) }, ["accept-encoding", "accept-language"], "lower-cased, sorted, once")

        func variant(_ request: String) -> [UInt8] {
            var p = HTTPRequestParser()
            var h = HTTPRequestHead()
            let b = Array(request.utf8)
            XCTAssertEqual(b.withUnsafeBytes { p.parse($0, into: &h) }, .complete)
            return b.withUnsafeBytes { CacheVary.variantKey(f.varyNames, h, $0) }
        }
        let en = variant("GET / HTTP/1.1\r\nHost: h\r\nAccept-Language: en\r\n\r\n")
        XCTAssertEqual(en, variant("GET / HTTP/1.1\r\naccept-language: en\r\nHost: other\r\n\r\n"), "names case-insensitive, other fields ignored")
        XCTAssertNotEqual(en, variant("GET / HTTP/1.1\r\nHost: h\r\nAccept-Language: de\r\n\r\n"))
        XCTAssertNotEqual(variant("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), variant("GET / HTTP/1.1\r\nHost: h\r\nAccept-Language: \r\n\r\n"),
                          "absent is not empty")
        XCTAssertNotEqual(en, variant("GET / HTTP/1.1\r\nHost: h\r\nAccept-Language: en\r\nAccept-Encoding: gzip\r\n\r\n"))

        func matches(_ inm: String, _ etag: String?) -> Bool {
            let b = Array(inm.utf8)
            let e = etag.map { Array($0.utf8) }
            return b.withUnsafeBytes { bb in
                guard let e else { return CacheConditional.noneMatchMatches(bb, 0..<bb.count, etag: nil) }
                return e.withUnsafeBytes { CacheConditional.noneMatchMatches(bb, 0..<bb.count, etag: $0) }
            }
        }
        XCTAssertTrue(matches("\"v1\"", "\"v1\""))
        XCTAssertTrue(matches("W/\"v1\"", "\"v1\""), "weak comparison")
        XCTAssertTrue(matches("\"v0\", W/\"v1\"", "W/\"v1\""), "any in the list")
        XCTAssertFalse(matches("\"v2\"", "\"v1\""))
        XCTAssertFalse(matches("\"v1\"", nil), "no stored ETag")
        XCTAssertTrue(matches("*", nil), "* matches any stored response")
        XCTAssertFalse(matches("v1", "\"v1\""), "malformed")
    }
}
