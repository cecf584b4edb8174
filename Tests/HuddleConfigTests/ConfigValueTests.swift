// Tests for the value parsers: durations, sizes, percentages, numbers and addresses, including edge cases.

import XCTest
@testable import HuddleConfig

final class ConfigValueTests: XCTestCase {
    func testDurations() {
        let cases: [(String, Milliseconds?)] = [
            ("250ms", 250), ("2s", 2000), ("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000),
            ("30", 30_000), ("0", 0), ("0ms", 0), ("1m30s", 90_000), ("1h5m10s250ms", 3_910_250),
            ("", nil), ("-1s", nil), ("2x", nil), ("s", nil), ("1.5s", nil), ("1s1m", nil), ("1s1s", nil),
            ("1ms1s", nil), ("1 s", nil), ("2S", nil), ("1m30", nil), ("ms", nil), ("+1s", nil),
            // Overflow: bare seconds, a unit multiplication and a sum past Int64 milliseconds.
            ("9223372036854775807", nil), ("9223372036854776d", nil), ("106751991167d8h", nil), ("106751991167d7h", 9_223_372_036_854_000_000),
            ("99999999999999999999999ms", nil),
            ("9223372036854775807ms", Int64.max),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(ConfigValue.duration(text[...]), expected, "duration(\(text))")
        }
    }

    func testSizes() {
        let cases: [(String, Int64?)] = [
            ("0", 0), ("512", 512), ("16k", 16_384), ("16K", 16_384), ("10m", 10_485_760), ("1g", 1 << 30),
            ("1G", 1 << 30), ("", nil), ("k", nil), ("-1k", nil), ("1kb", nil), ("1.5k", nil), ("1t", nil),
            (" 1k", nil), ("8589934592g", nil), ("9223372036854775807", Int64.max), ("9223372036854775808", nil),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(ConfigValue.size(text[...]), expected, "size(\(text))")
        }
    }

    func testPercentages() {
        let cases: [(String, Int?)] = [
            ("0%", 0), ("50%", 50), ("100%", 100), ("101%", nil), ("50", nil), ("%", nil), ("", nil),
            ("-5%", nil), ("5.5%", nil), ("99999999999999999999%", nil), ("50%%", nil),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(ConfigValue.percent(text[...]), expected, "percent(\(text))")
        }
    }

    func testIntegersAndDecimals() {
        XCTAssertEqual(ConfigValue.integer("42"), 42)
        XCTAssertEqual(ConfigValue.integer("0"), 0)
        XCTAssertNil(ConfigValue.integer(""))
        XCTAssertNil(ConfigValue.integer("-1"))
        XCTAssertNil(ConfigValue.integer("+1"))
        XCTAssertNil(ConfigValue.integer("1e3"))
        XCTAssertNil(ConfigValue.integer("99999999999999999999"))
        XCTAssertEqual(ConfigValue.decimal("1.25"), 1.25)
        XCTAssertEqual(ConfigValue.decimal("2"), 2)
        XCTAssertNil(ConfigValue.decimal("nan"))
        XCTAssertNil(ConfigValue.decimal("inf"))
        XCTAssertNil(ConfigValue.decimal("1e5"))
        XCTAssertNil(ConfigValue.decimal("1.2.3"))
        XCTAssertNil(ConfigValue.decimal("."))
        XCTAssertNil(ConfigValue.decimal("-1.5"))
    }

    func testListenAddresses() {
        let cases: [(String, String?)] = [
            ("0.0.0.0:8080", "0.0.0.0:8080"), ("127.0.0.1:80", "127.0.0.1:80"), ("[::1]:8080", "[::1]:8080"),
            ("[::]:443", "[::]:443"), ("localhost:8080", "localhost:8080"), ("*:8080", "0.0.0.0:8080"),
            ("8080", "0.0.0.0:8080"), ("127.0.0.1:0", "127.0.0.1:0"), ("[fe80::1%eth0]:80", "[fe80::1%eth0]:80"),
            ("[::ffff:10.0.0.1]:80", "[::ffff:10.0.0.1]:80"), ("[2001:db8:0:0:0:0:0:1]:80", "[2001:db8:0:0:0:0:0:1]:80"),
            ("", nil), ("65536", nil), ("127.0.0.1:65536", nil), ("127.0.0.1", nil), ("127.0.0.1:", nil),
            (":8080", nil), ("::1:8080", nil), ("[::1]", nil), ("[::1]8080", nil), ("[1:2:3:4:5:6:7:8:9]:80", nil),
            ("[1::2::3]:80", nil), ("[12345::1]:80", nil), ("256.0.0.1:80", nil), ("1.2.3:80", nil),
            ("bad host:80", nil), ("-bad:80", nil), ("host:-1", nil), ("host:80a", nil), ("[::1]:99999", nil),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(ConfigValue.listenAddress(text[...])?.description, expected, "listenAddress(\(text))")
        }
        XCTAssertEqual(ConfigValue.listenAddress("[::1]:8080")?.host, "::1")
    }

    func testServerAddressesNeedAHostAndANonZeroPort() {
        XCTAssertEqual(ConfigValue.serverAddress("10.0.0.5:9001")?.description, "10.0.0.5:9001")
        XCTAssertEqual(ConfigValue.serverAddress("chat.default.svc.cluster.local:8080")?.host, "chat.default.svc.cluster.local")
        XCTAssertEqual(ConfigValue.serverAddress("[::1]:9001")?.port, 9001)
        XCTAssertNil(ConfigValue.serverAddress("9001"))
        XCTAssertNil(ConfigValue.serverAddress("*:9001"))
        XCTAssertNil(ConfigValue.serverAddress("127.0.0.1:0"))
    }

    func testEditDistanceCountsATranspositionAsOneEdit() {
        XCTAssertEqual(ConfigText.editDistance("wieght", "weight"), 1)
        XCTAssertEqual(ConfigText.editDistance("listn", "listen"), 1)
        XCTAssertEqual(ConfigText.editDistance("", "abc"), 3)
        XCTAssertEqual(ConfigText.suggestion(for: "chta", among: ["chat", "web"]), "chat")
        XCTAssertNil(ConfigText.suggestion(for: "zzzzzz", among: ["listen", "route"]))
    }

    /// The bounded distance (used for suggestions, where only 0...2 matters) stops early but never answers differently:
    /// checked against the unbounded one on every pair of strings up to 5 letters long over a three-letter alphabet.
    func testBoundedEditDistanceAgreesWithTheFullOneUpToItsLimit() {
        var words: [[Character]] = [[]]
        var frontier: [[Character]] = [[]]
        for _ in 1...5 {
            frontier = frontier.flatMap { w in ["a", "b", "c"].map { w + [$0] } }
            words += frontier
        }
        var checked = 0, cut = 0
        for (n, a) in words.enumerated() where n % 3 == 0 {
            for b in words {
                let full = ConfigText.editDistance(String(a), String(b))
                for limit in 0...2 {
                    let bounded = ConfigText.editDistance(a, b, limit: limit)
                    XCTAssertEqual(bounded, min(full, limit + 1), "\(String(a)) vs \(String(b)), limit \(limit)")
                    checked += 1
                    if full > limit { cut += 1 }
                }
            }
        }
        XCTAssertGreaterThan(cut, 1_000, "the limit was reached often enough to matter")
        XCTAssertGreaterThan(checked, 10_000)
    }
}
