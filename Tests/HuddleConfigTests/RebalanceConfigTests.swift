// `rebalance migrate [rate=N] | keep` and `membership_settle D`: defaults, values, and errors with file, line and column.
import XCTest
@testable import HuddleConfig

final class RebalanceConfigTests: XCTestCase {
    func hashUpstream(_ lines: String) -> String {
        "upstream chat {\n    balance hash;\n    server 127.0.0.1:9001;\n    \(lines)\n}\nserver { listen 8080; route / { upstream chat; group_key path 1; } }"
    }

    func testDefaultsAreMigrateAtTwentyPerSecondAndFiveSecondsOfSettle() {
        guard let c = parseForTesting(hashUpstream("")) else { return }
        XCTAssertEqual(c.upstreams[0].rebalance, .migrate(rate: 20))
        XCTAssertEqual(c.upstreams[0].membershipSettle, 5000)
    }

    func testValues() {
        XCTAssertEqual(parseForTesting(hashUpstream("rebalance migrate rate=5;"))?.upstreams[0].rebalance, .migrate(rate: 5))
        XCTAssertEqual(parseForTesting(hashUpstream("rebalance migrate rate=0.5;"))?.upstreams[0].rebalance, .migrate(rate: 0.5))
        XCTAssertEqual(parseForTesting(hashUpstream("rebalance migrate;"))?.upstreams[0].rebalance, .migrate(rate: 20))
        XCTAssertEqual(parseForTesting(hashUpstream("rebalance keep;"))?.upstreams[0].rebalance, .keep)
        XCTAssertEqual(parseForTesting(hashUpstream("membership_settle 250ms;"))?.upstreams[0].membershipSettle, 250)
        XCTAssertEqual(parseForTesting(hashUpstream("membership_settle 0;"))?.upstreams[0].membershipSettle, 0)
        XCTAssertEqual(RebalanceMode.keep.rate, nil)
        XCTAssertFalse(RebalanceMode.keep.isMigrate)
    }

    func testErrorsNameFileLineAndColumn() {
        assertSingleError(hashUpstream("rebalance move;"), at: (4, 15), contains: "expected one of migrate, keep for \"rebalance\", found \"move\"")
        assertSingleError(hashUpstream("rebalance keep rate=3;"), at: (4, 25), contains: "\"rate\" applies to rebalance migrate")
        assertSingleError(hashUpstream("rebalance migrate rate=0;"), at: (4, 28), contains: "expected groups per second above 0 and at most 100000")
        assertSingleError(hashUpstream("rebalance migrate rate=fast;"), at: (4, 28), contains: "found \"fast\"")
        assertSingleError(hashUpstream("rebalance migrate rate=200000;"), at: (4, 28), contains: "at most 100000")
        assertSingleError(hashUpstream("rebalance migrate speed=3;"), at: (4, 23), contains: "speed")
        assertSingleError(hashUpstream("membership_settle soon;"), at: (4, 23), contains: "expected a duration such as 250ms")
        assertSingleError(hashUpstream("membership_settle 2h;"), at: (4, 23), contains: "membership_settle is at most 1h")
        assertSingleError("upstream web {\n  server 127.0.0.1:1;\n  rebalance keep;\n}", at: (3, 3),
                          contains: "rebalance needs balance hash (upstream \"web\" uses p2c)")
        assertSingleError("upstream web {\n  server 127.0.0.1:1;\n  membership_settle 1s;\n}", at: (3, 3),
                          contains: "membership_settle needs balance hash (upstream \"web\" uses p2c)")
    }
}
