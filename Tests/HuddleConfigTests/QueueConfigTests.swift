// `server ... max_conns=N`, `queue_timeout` in an upstream and `priority` in a route: what parses into the model, and
// every error with its line, column and wording.

import XCTest
@testable import HuddleConfig

final class QueueConfigTests: XCTestCase {
    func upstream(_ lines: String) -> String {
        "upstream web {\n    \(lines)\n}\nserver { listen 80; route / { upstream web; } }"
    }

    func inRoute(_ line: String) -> String {
        minimalUpstream + "server {\n    listen 80;\n    route /api/ {\n        upstream web;\n        \(line)\n    }\n}"
    }

    func testMaxConnsAndQueueTimeoutParse() throws {
        let u = try XCTUnwrap(parseForTesting(upstream("server 127.0.0.1:9001 max_conns=2;\n    server 127.0.0.1:9002;\n    queue_timeout 750ms;"))?.upstreams.first)
        XCTAssertEqual(u.servers.map(\.maxConns), [2, 0], "absent: unlimited")
        XCTAssertEqual(u.queueTimeout, 750)
        XCTAssertEqual(u.effectiveQueueTimeout, 750)
        XCTAssertTrue(u.hasMaxConns)
        let plain = try XCTUnwrap(parseForTesting(upstream("server 127.0.0.1:9001 max_conns=0;\n    connect_timeout 3s;"))?.upstreams.first)
        XCTAssertEqual(plain.servers[0].maxConns, 0)
        XCTAssertFalse(plain.hasMaxConns, "max_conns=0 is no cap")
        XCTAssertNil(plain.queueTimeout)
        XCTAssertEqual(plain.effectiveQueueTimeout, 3000, "without queue_timeout, connect_timeout (HAProxy's timeout queue)")
        let resolved = try XCTUnwrap(parseForTesting(upstream("server app.internal:80 resolve max_conns=7;"))?.upstreams.first)
        XCTAssertEqual(resolved.servers[0].maxConns, 7)
    }

    func testMaxConnsAndQueueTimeoutErrors() {
        assertSingleError(upstream("server 127.0.0.1:9001 max_conns=many;"), at: (2, 37),
                          contains: "expected a whole number for \"max_conns\", found \"many\"")
        assertSingleError(upstream("server 127.0.0.1:9001 max_conns=-1;"), at: (2, 37),
                          contains: "expected a whole number for \"max_conns\", found \"-1\"")
        assertSingleError(upstream("server 127.0.0.1:9001 max_conns=2000000;"), at: (2, 37),
                          contains: "\"max_conns\" must be between 0 and 1000000, found 2000000")
        assertSingleError(upstream("server 127.0.0.1:9001 maxconn=2;"), at: (2, 27), contains: "maxconn")
        assertSingleError(upstream("server 127.0.0.1:9001;\n    queue_timeout soon;"), at: (3, 19),
                          contains: "expected a duration such as 250ms, 2s, 5m or 1h, found \"soon\"")
        assertSingleError(upstream("server 127.0.0.1:9001;\n    queue_timeout 0s;"), at: (3, 19),
                          contains: "\"queue_timeout\" must be longer than 0, found \"0s\"")
        assertSingleError(upstream("server 127.0.0.1:9001;\n    queue_timeout 2h;"), at: (3, 19), contains: "queue_timeout is at most 1h, found \"2h\"")
        assertSingleError(upstream("server 127.0.0.1:9001;\n    queue_timeout 1s;\n    queue_timeout 2s;"), at: (4, 5),
                          contains: "duplicate \"queue_timeout\"")
        assertSingleError(upstream("server 127.0.0.1:9001;\n    queue_timeout;"), at: (3, 5), contains: "\"queue_timeout\" takes 1 argument")
        assertSingleError(minimalUpstream + "server { listen 80; route / { upstream web; queue_timeout 1s; } }", at: (2, 45),
                          contains: "\"queue_timeout\" is not allowed in route block (it belongs in an upstream block)")
    }

    func testPriorityParses() throws {
        func priority(_ line: String) -> RoutePriority? { parseForTesting(inRoute(line))?.servers.first?.routes.first?.priority }
        XCTAssertEqual(priority("priority 10;"), .fixed(10))
        XCTAssertEqual(priority("priority -5;"), .fixed(-5))
        XCTAssertEqual(priority("priority 2047;"), .fixed(2047))
        XCTAssertEqual(priority("priority header X-Priority;"), .header("X-Priority"))
        XCTAssertEqual(parseForTesting(minimalUpstream + "server { listen 80; route / { upstream web; } }")?.servers.first?.routes.first?.priority,
                       .fixed(0), "0 by default")
    }

    func testPriorityErrors() {
        assertSingleError(inRoute("priority high;"), at: (6, 18),
                          contains: "expected a whole number from -2047 to 2047 such as 10 (higher is served first), or \"header NAME\", for \"priority\", found \"high\"")
        assertSingleError(inRoute("priority 3000;"), at: (6, 18), contains: "\"priority\" must be between -2047 and 2047, found 3000")
        assertSingleError(inRoute("priority -2048;"), at: (6, 18), contains: "\"priority\" must be between -2047 and 2047, found -2048")
        assertSingleError(inRoute("priority header;"), at: (6, 18), contains: "found \"header\"")
        assertSingleError(inRoute("priority cookie X;"), at: (6, 18), contains: "expected one of header for \"priority\", found \"cookie\"")
        assertSingleError(inRoute("priority header \"X Y\";"), at: (6, 25), contains: "expected a header name made of letters, digits")
        assertSingleError(inRoute("priority;"), at: (6, 9), contains: "\"priority\" takes 1 to 2 arguments, found 0")
        assertSingleError(inRoute("priority 1;\n        priority 2;"), at: (7, 9), contains: "duplicate \"priority\"")
        assertSingleError(upstream("server 127.0.0.1:9001;\n    priority 1;"), at: (3, 5),
                          contains: "\"priority\" is not allowed in upstream block (it belongs in a route block)")
    }
}
