// `cache` in a route: defaults, every option, and each error at its exact line and column.

import XCTest
@testable import HuddleConfig

final class CacheConfigTests: XCTestCase {
    func route(_ cache: String) -> String {
        minimalUpstream + "server {\n  listen 80;\n  route /s/ {\n    upstream web;\n    \(cache)\n  }\n}\n"
    }

    func testDefaultsAndOptions() throws {
        let plain = try XCTUnwrap(parseForTesting(route("")))
        XCTAssertNil(plain.servers[0].routes[0].cache, "no cache without the directive")

        let bare = try XCTUnwrap(parseForTesting(route("cache;")).flatMap { $0.servers[0].routes[0].cache })
        XCTAssertEqual(bare.size, 64 << 20)
        XCTAssertEqual(bare.ttl, 0)
        XCTAssertEqual(bare.maxEntry, 1 << 20)
        XCTAssertEqual(bare.staleIfError, 0)
        XCTAssertEqual(bare.collapseTimeout, 5000)
        XCTAssertTrue(bare.shared)
        XCTAssertEqual(bare.location.line, 6)

        let c = try XCTUnwrap(parseForTesting(route("cache size=2m ttl=1m30s max_entry=512k stale_if_error=1h collapse_timeout=250ms shared=off;"))
            .flatMap { $0.servers[0].routes[0].cache })
        XCTAssertEqual(c.size, 2 << 20)
        XCTAssertEqual(c.ttl, 90_000)
        XCTAssertEqual(c.maxEntry, 512 << 10)
        XCTAssertEqual(c.staleIfError, 3_600_000)
        XCTAssertEqual(c.collapseTimeout, 250)
        XCTAssertFalse(c.shared)

        let small = try XCTUnwrap(parseForTesting(route("cache size=100k;")).flatMap { $0.servers[0].routes[0].cache })
        XCTAssertEqual(small.effectiveMaxEntry, 100 << 10, "max_entry never exceeds size")
        let off = try XCTUnwrap(parseForTesting(route("cache collapse_timeout=0s;")).flatMap { $0.servers[0].routes[0].cache })
        XCTAssertEqual(off.collapseTimeout, 0, "0 turns collapsing off")
    }

    func testErrorsPointAtTheValue() {
        // Line 6 is the cache line; "    cache " is 10 columns, so the first option starts at column 11.
        assertSingleError(route("cache size=lots;"), at: (6, 16), contains: "expected a size such as 512, 16k, 10m or 1g, found \"lots\"")
        assertSingleError(route("cache size=1k;"), at: (6, 16), contains: "\"size\" must be between 64k and 1024g, found \"1k\"")
        assertSingleError(route("cache ttl=soon;"), at: (6, 15), contains: "expected a duration such as 250ms, 2s, 5m or 1h, found \"soon\"")
        assertSingleError(route("cache size=1m max_entry=2m;"), at: (6, 29),
                          contains: "\"max_entry\" (2m) must not be larger than the cache's size (1m)")
        assertSingleError(route("cache max_entry=0;"), at: (6, 21), contains: "\"max_entry\" must be between 1 byte and 1024g")
        assertSingleError(route("cache stale_if_error=-1s;"), at: (6, 26), contains: "expected a duration")
        assertSingleError(route("cache shared=yes;"), at: (6, 18), contains: "expected one of on, off for \"shared\", found \"yes\"")
        assertSingleError(route("cache sise=1m;"), at: (6, 11), contains: "unknown option \"sise=1m\" for \"cache\"")
        assertSingleError(route("cache 64m;"), at: (6, 11), contains: "unexpected argument \"64m\" for \"cache\"")
        assertSingleError(route("cache;\n    cache;"), at: (7, 5), contains: "duplicate \"cache\" (first at t.conf:6:5)")
        assertSingleError("cache size=1m;", at: (1, 1), contains: "\"cache\" is not allowed at top level (it belongs in a route block)")
    }
}
