// The discovery directives: `resolver`, `server ... resolve [service]`, `reload_on_change`, and their errors.
import XCTest
@testable import HuddleConfig

final class DiscoveryConfigTests: XCTestCase {
    func testDefaults() throws {
        let c = try XCTUnwrap(parseForTesting("upstream web { server web.ns.svc.cluster.local:80 resolve; }"))
        XCTAssertNil(c.resolver)
        XCTAssertFalse(c.reloadOnChange)
        XCTAssertTrue(c.usesDiscovery)
        XCTAssertEqual(ResolverConfig.defaultHold, 60_000)
    }

    func testEveryDiscoveryDirective() throws {
        let c = try XCTUnwrap(parseForTesting("""
            resolver 10.96.0.10 127.0.0.1:5353 fd00::a [fd00::b]:54 valid=30s hold=2m timeout=500ms;
            reload_on_change on;
            upstream web {
                server web.ns.svc.cluster.local.:8080 resolve name=web;
                server _http._tcp.chat.ns.svc.cluster.local resolve service;
                server _ws._tcp.chat resolve service name=ws down;
            }
            """))
        let r = try XCTUnwrap(c.resolver)
        XCTAssertEqual(r.nameservers.map(\.description), ["10.96.0.10:53", "127.0.0.1:5353", "[fd00::a]:53", "[fd00::b]:54"])
        XCTAssertEqual(r.valid, 30_000)
        XCTAssertEqual(r.hold, 120_000)
        XCTAssertEqual(r.timeout, 500)
        XCTAssertTrue(c.reloadOnChange)
        let s = c.upstreams[0].servers
        XCTAssertEqual(s.map(\.identity), ["web", "_http._tcp.chat.ns.svc.cluster.local", "ws"])
        XCTAssertEqual(s.map(\.named), [true, false, true])
        XCTAssertEqual(s.map(\.service), [false, true, true])
        XCTAssertTrue(s.allSatisfy(\.resolve))
        XCTAssertEqual(s[0].address.host, "web.ns.svc.cluster.local.")
        XCTAssertEqual(s[1].address.host, "_http._tcp.chat.ns.svc.cluster.local")
        XCTAssertTrue(s[2].down)
        XCTAssertFalse(try XCTUnwrap(parseForTesting("reload_on_change off;")).reloadOnChange)
    }

    func testErrors() {
        let cases: [(String, (Int, Int), String)] = [
            ("resolver dns.local;", (1, 10), "expected a nameserver IP address such as 10.96.0.10, 127.0.0.1:5353 or [fd00::a]:53, found \"dns.local\""),
            ("resolver 10.0.0.1:0;", (1, 10), "expected a nameserver IP address"),
            ("resolver 10.0.0.1 valid=0s;", (1, 25), "\"valid\" must be between 1s and 5m, found \"0s\""),
            ("resolver 10.0.0.1 valid=10m;", (1, 25), "\"valid\" must be between 1s and 5m, found \"10m\""),
            ("resolver 10.0.0.1 hold=2d;", (1, 24), "\"hold\" must be between 0 and 1d, found \"2d\""),
            ("resolver 10.0.0.1 timeout=10ms;", (1, 27), "\"timeout\" must be between 100ms and 30s, found \"10ms\""),
            // A word with "=" that is not an option is taken for one more nameserver, and refused as one.
            ("resolver 10.0.0.1 ttl=5s;", (1, 19), "expected a nameserver IP address such as 10.96.0.10, 127.0.0.1:5353 or [fd00::a]:53, found \"ttl=5s\""),
            ("resolver 10.0.0.1;\nresolver 10.0.0.2;", (2, 1), "duplicate \"resolver\""),
            ("reload_on_change yes;", (1, 18), "expected one of on, off for \"reload_on_change\", found \"yes\""),
            ("upstream u { server 10.0.0.1:80 resolve; }", (1, 21), "\"resolve\" needs a DNS name, and \"10.0.0.1\" is an IP address"),
            ("upstream u { server _http._tcp.web service; }", (1, 36), "\"service\" needs \"resolve\""),
            ("upstream u { server _http._tcp.web:80 resolve service; }", (1, 21), "expected an SRV name such as _http._tcp.web.default.svc.cluster.local (no port: the records give it), found \"_http._tcp.web:80\""),
            ("upstream u { server _http._tcp.web resolve service weight=2; }", (1, 59), "\"weight\" does not apply to \"service\""),
            ("upstream u { server web.local resolve; }", (1, 21), "expected a backend address"),
        ]
        for (text, at, fragment) in cases {
            assertSingleError(text, at: at, contains: fragment)
        }
    }
}
