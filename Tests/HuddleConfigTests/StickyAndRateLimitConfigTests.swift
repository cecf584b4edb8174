// `sticky cookie ...` in an upstream and `rate_limit ...` in a route: what parses into the model, and every error with
// its line, column and wording.

import XCTest
@testable import HuddleConfig

final class StickyAndRateLimitConfigTests: XCTestCase {
    func inUpstream(_ line: String, balance: String = "p2c") -> String {
        "upstream web {\n    balance \(balance);\n    server 127.0.0.1:9001;\n    \(line)\n}\nserver { listen 80; route / { upstream web; } }"
    }

    func inRoute(_ line: String, groupKey: Bool = false) -> String {
        minimalUpstream + "server {\n    listen 80;\n    route /api/ {\n        upstream web;\(groupKey ? " group_key path 2;" : "")\n        \(line)\n    }\n}"
    }

    // MARK: sticky

    func testStickyCookieParsesWithDefaultsAndEveryOption() throws {
        let plain = try XCTUnwrap(parseForTesting(inUpstream("sticky cookie HUDDLE_SRV;"))?.upstreams.first?.sticky)
        XCTAssertEqual(plain.name, "HUDDLE_SRV")
        XCTAssertNil(plain.maxAge, "a session cookie by default")
        XCTAssertFalse(plain.secure)
        XCTAssertFalse(plain.httpOnly)
        XCTAssertNil(plain.sameSite)
        XCTAssertNil(plain.key, "no key: one is made at start")
        XCTAssertEqual(plain.location.line, 4)

        let full = try XCTUnwrap(parseForTesting(inUpstream(
            "sticky cookie srv max_age=1h30m secure httponly samesite=none key=\"a long secret, 32 characters ok\";",
            balance: "round_robin"))?.upstreams.first?.sticky)
        XCTAssertEqual(full.maxAge, 5_400_000)
        XCTAssertTrue(full.secure)
        XCTAssertTrue(full.httpOnly)
        XCTAssertEqual(full.sameSite, CookieSameSite.none)
        XCTAssertEqual(full.key, "a long secret, 32 characters ok")
        XCTAssertEqual(parseForTesting(inUpstream("sticky cookie s samesite=strict;"))?.upstreams.first?.sticky?.sameSite, .strict)
        XCTAssertEqual(parseForTesting(inUpstream("sticky cookie s samesite=lax;"))?.upstreams.first?.sticky?.sameSite, .lax)
        XCTAssertNil(parseForTesting(minimalUpstream + "server { listen 80; route / { upstream web; } }")?.upstreams.first?.sticky)
    }

    func testStickyErrors() {
        assertSingleError(inUpstream("sticky header X;"), at: (4, 12), contains: "expected one of cookie for \"sticky\", found \"header\"")
        assertSingleError(inUpstream("sticky cookie;"), at: (4, 5), contains: "\"sticky\" takes 2 arguments, found 1")
        assertSingleError(inUpstream("sticky cookie \"a b\";"), at: (4, 19), contains: "expected a cookie name made of letters, digits")
        assertSingleError(inUpstream("sticky cookie s max_age=500ms;"), at: (4, 29), contains: "\"max_age\" must be at least 1s")
        assertSingleError(inUpstream("sticky cookie s max_age=soon;"), at: (4, 29), contains: "expected a duration such as 250ms")
        assertSingleError(inUpstream("sticky cookie s samesite=sometimes;"), at: (4, 30), contains: "expected one of strict, lax, none for \"samesite\"")
        assertSingleError(inUpstream("sticky cookie s samesite=none;"), at: (4, 30), contains: "samesite=none needs \"secure\" as well")
        assertSingleError(inUpstream("sticky cookie s key=short;"), at: (4, 25), contains: "expected a secret of at least 16 characters for \"key\"")
        XCTAssertEqual(parseForTesting(inUpstream("sticky cookie s key=\"sixteen chars ok\";"))?.upstreams.first?.sticky?.key,
                       "sixteen chars ok", "16 characters, spaces allowed")
        assertSingleError(inUpstream("sticky cookie s secure secure;"), at: (4, 28), contains: "duplicate \"secure\" for \"sticky\"")
        assertSingleError(inUpstream("sticky cookie s max_age=1h httpsonly;"), at: (4, 32), contains: "did you mean \"httponly\"?")
        assertSingleError(inUpstream("sticky cookie s;\n    sticky cookie t;"), at: (5, 5), contains: "duplicate \"sticky\"")
        assertSingleError(inUpstream("sticky cookie s;", balance: "hash"), at: (4, 5),
                          contains: "sticky cookie applies to balanced requests, but upstream \"web\" uses balance hash")
        assertSingleError(minimalUpstream + "server { listen 80; route / { upstream web; sticky cookie s; } }", at: (2, 45),
                          contains: "\"sticky\" is not allowed in route block (it belongs in an upstream block)")
    }

    func testAKeyIsNeverEchoedInAnError() {
        let errors = errorsForTesting(inUpstream("sticky cookie s key=hunter2hunter2;"))
        XCTAssertEqual(errors.count, 1)
        XCTAssertFalse(errors.joined().contains("hunter2"), "\(errors)")
        XCTAssertTrue(errors.joined().contains("found 14 characters"), "\(errors)")
    }

    // MARK: rate_limit

    func testRateLimitParsesRatesBurstsAndKeys() throws {
        func limit(_ line: String, groupKey: Bool = false) throws -> RateLimitConfig {
            try XCTUnwrap(parseForTesting(inRoute(line, groupKey: groupKey))?.servers.first?.routes.first?.rateLimit, line)
        }
        let a = try limit("rate_limit 100/s burst=50 key=ip;")
        XCTAssertEqual(a.requests, 100)
        XCTAssertEqual(a.perMs, 1000)
        XCTAssertEqual(a.burst, 50)
        XCTAssertEqual(a.key, .ip)
        XCTAssertEqual(a.intervalMicros, 10_000)
        XCTAssertEqual(a.rateText, "100/s")
        XCTAssertEqual(a.location.line, 6)

        let b = try limit("rate_limit 6000/m;")
        XCTAssertEqual(b.intervalMicros, 10_000, "6000/m is 100/s")
        XCTAssertEqual(b.burst, 1, "default burst: requests spaced at the rate")
        XCTAssertEqual(b.key, .ip, "default key")
        XCTAssertEqual(try limit("rate_limit 3/h;").intervalMicros, 1_200_000_000)
        XCTAssertEqual(try limit("rate_limit 3/s;").intervalMicros, 333_333, "rounded to the microsecond")
        XCTAssertEqual(try limit("rate_limit 1000000/s;").intervalMicros, 1)
        XCTAssertEqual(try limit("rate_limit 10/s key=header:X-Api-Key;").key, .header("X-Api-Key"))
        XCTAssertEqual(try limit("rate_limit 10/s key=cookie:session;").key, .cookie("session"))
        XCTAssertEqual(try limit("rate_limit 10/s key=group;", groupKey: true).key, .group)
        XCTAssertNil(parseForTesting(inRoute("group_key_missing reject;"))?.servers.first?.routes.first?.rateLimit)
    }

    func testRateLimitErrors() {
        assertSingleError(inRoute("rate_limit 100;"), at: (6, 20), contains: "expected a rate such as 100/s, 6000/m or 10/h for \"rate_limit\", found \"100\"")
        assertSingleError(inRoute("rate_limit 100/d;"), at: (6, 20), contains: "expected a rate such as 100/s")
        assertSingleError(inRoute("rate_limit 0/s;"), at: (6, 20), contains: "expected a rate such as 100/s")
        assertSingleError(inRoute("rate_limit 2000000/s;"), at: (6, 20), contains: "\"rate_limit\" can be at most 1000000/s per key")
        assertSingleError(inRoute("rate_limit 100/s burst=0;"), at: (6, 32), contains: "\"burst\" must be between 1 and 1000000000, found 0")
        assertSingleError(inRoute("rate_limit 1/h burst=25;"), at: (6, 30), contains: "burst=25 at 1/h is more than a day's worth of requests")
        assertSingleError(inRoute("rate_limit 100/s key=port;"), at: (6, 30), contains: "expected ip, header:NAME, cookie:NAME or group for \"key\", found \"port\"")
        assertSingleError(inRoute("rate_limit 100/s key=header:;"), at: (6, 37), contains: "expected a header name made of letters")
        assertSingleError(inRoute("rate_limit 100/s key=cookie:a/b;"), at: (6, 37), contains: "expected a cookie name made of letters")
        assertSingleError(inRoute("rate_limit 100/s key=group;"), at: (6, 30), contains: "key=group counts requests by the route's group key, but route \"/api/\" has no group_key")
        assertSingleError(inRoute("rate_limit 100/s brust=5;"), at: (6, 26), contains: "unknown option \"brust=5\" for \"rate_limit\" (expected one of: burst=, key=); did you mean \"burst\"?")
        assertSingleError(inRoute("rate_limit 100/s;\n        rate_limit 5/s;"), at: (7, 9), contains: "duplicate \"rate_limit\"")
        assertSingleError(inUpstream("rate_limit 100/s;"), at: (4, 5), contains: "\"rate_limit\" is not allowed in upstream block (it belongs in a route block)")
    }

    func testRateValues() {
        XCTAssertEqual(ConfigValue.rate("100/s").map { [$0.requests, Int($0.perMs)] }, [100, 1000])
        XCTAssertEqual(ConfigValue.rate("6000/m").map { [$0.requests, Int($0.perMs)] }, [6000, 60_000])
        XCTAssertEqual(ConfigValue.rate("1/h").map { [$0.requests, Int($0.perMs)] }, [1, 3_600_000])
        for bad in ["", "/s", "100", "100/", "100/S", "-1/s", "1.5/s", "100/ s", "100/sec", "0/m"] {
            XCTAssertNil(ConfigValue.rate(Substring(bad)), bad)
        }
    }
}
