// Cache-Control (RFC 9111 §5.2) and HTTP-date (RFC 9110 §5.6.7) as tables: the directives read from raw field values,
// and the three date forms to Unix seconds.

import HuddleHTTP
import XCTest

final class CacheControlTests: XCTestCase {
    func parse(_ values: [String]) -> CacheControl {
        var cc = CacheControl()
        let joined = values.joined(separator: "\n")
        var ranges: [Range<Int>] = []
        var start = 0
        for v in values {
            ranges.append(start..<(start + v.utf8.count))
            start += v.utf8.count + 1
        }
        Array(joined.utf8).withUnsafeBytes { bytes in
            for r in ranges { cc.add(r, in: bytes) }
        }
        return cc
    }

    func testDirectives() {
        let a = parse(["max-age=60, s-maxage=30, public"])
        XCTAssertEqual(a.maxAge, 60)
        XCTAssertEqual(a.sMaxAge, 30)
        XCTAssertTrue(a.isPublic)
        XCTAssertFalse(a.noStore)

        let b = parse(["No-Store", "PRIVATE"])
        XCTAssertTrue(b.noStore, "names are case-insensitive, lines combine")
        XCTAssertTrue(b.isPrivate)

        let c = parse(["no-cache=\"Set-Cookie, X-Foo\", must-revalidate"])
        XCTAssertTrue(c.noCache, "no-cache with field names (a comma inside the quotes does not split)")
        XCTAssertTrue(c.mustRevalidate)
        XCTAssertNil(c.maxAge, "X-Foo\" inside quotes is not a directive")

        let d = parse(["private=\"Authorization\", proxy-revalidate, stale-if-error=600, no-transform"])
        XCTAssertTrue(d.isPrivate)
        XCTAssertTrue(d.proxyRevalidate)
        XCTAssertEqual(d.staleIfError, 600)
        XCTAssertTrue(d.noTransform)

        let e = parse(["max-age=\"120\""])
        XCTAssertEqual(e.maxAge, 120, "a quoted delta-seconds is accepted")

        let f = parse(["max-age=10, max-age=99"])
        XCTAssertEqual(f.maxAge, 10, "the first of a repeated directive counts")

        let g = parse(["max-age=abc"])
        XCTAssertEqual(g.maxAge, 0, "an unreadable max-age makes the response stale, never fresh")

        let h = parse(["max-age=99999999999999999999"])
        XCTAssertEqual(h.maxAge, CacheControl.deltaSecondsCap, "overlong delta-seconds is 2^31")

        let i = parse(["  ,, max-age = 5 ,unknown-ext=\"a,b\", only-if-cached, min-fresh=3"])
        XCTAssertEqual(i.maxAge, 5, "OWS around = and empty elements")
        XCTAssertTrue(i.onlyIfCached)
        XCTAssertEqual(i.minFresh, 3)

        XCTAssertFalse(parse([""]).any)
        XCTAssertTrue(parse(["x-unknown"]).any)
    }

    func date(_ s: String, now: Int64 = 1_790_000_000) -> Int64? {
        Array(s.utf8).withUnsafeBytes { HTTPDate.parse($0, 0..<$0.count, nowSeconds: now) }
    }

    func testHTTPDates() {
        // RFC 9110 §5.6.7's example, in its three forms.
        XCTAssertEqual(date("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_777)
        XCTAssertEqual(date("Sunday, 06-Nov-94 08:49:37 GMT"), 784_111_777)
        XCTAssertEqual(date("Sun Nov  6 08:49:37 1994"), 784_111_777)
        XCTAssertEqual(date(" Sun, 06 Nov 1994 08:49:37 GMT "), 784_111_777, "OWS around the value")
        XCTAssertEqual(date("Thu, 01 Jan 1970 00:00:00 GMT"), 0)
        XCTAssertEqual(date("Tue, 29 Feb 2028 23:59:59 GMT"), 1_835_481_599)
        // A two-digit year that would be more than 50 years ahead (of 2026 here) is in the past century.
        XCTAssertEqual(date("Tuesday, 01-Jan-80 00:00:00 GMT", now: 1_790_000_000), 315_532_800)
        XCTAssertEqual(date("Monday, 01-Jan-35 00:00:00 GMT", now: 1_790_000_000), 2_051_222_400)
        XCTAssertEqual(date("Sunday, 06-Nov-94 08:49:37 GMT", now: 0), 784_111_777, "1994 from 1970's point of view")
        for bad in ["", "0", "-1", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
                    "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:00:00 GMT", "tomorrow"] {
            XCTAssertNil(date(bad), bad)
        }
        XCTAssertEqual(HTTPDate.format(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(HTTPDate.format(0), "Thu, 01 Jan 1970 00:00:00 GMT")
        for t: Int64 in [1, 86_399, 951_782_400, 1_835_481_599, 4_102_444_800] {
            let s = HTTPDate.format(t)
            XCTAssertEqual(date(s), t, s)
        }
    }
}
