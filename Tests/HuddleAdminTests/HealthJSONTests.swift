// The health object of /api/backends, from a real server's health record.
@testable import HuddleAdmin
import Foundation
import HuddleConfig
import HuddleJSON
import HuddleProxy
import XCTest

final class HealthJSONTests: XCTestCase {
    private func runtime() throws -> RuntimeConfig {
        let config = try ConfigParser.parse(text: """
        upstream app {
            health_check /healthz interval=1s rise=2 fall=2;
            passive_health failures=2 ejection=10s max_ejected=50%;
            server 127.0.0.1:9 name=a;
            server 127.0.0.1:10 name=b;
        }
        upstream plain { server 127.0.0.1:11; }
        server { listen 127.0.0.1:1; route / { upstream app; } }
        """, file: "t.conf")
        return try RuntimeConfig.build(config, generation: 1, previous: nil, log: { _ in })
    }

    private func health(_ s: ServerRuntime, _ u: UpstreamRuntime, _ clock: AdminClock) throws -> [String: Any] {
        var w = JSONWriter()
        HealthJSON.write(s, upstream: u.config, clock: clock, to: &w)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: Any], w.text)
    }

    func testBeforeAnyProbe() throws {
        let rt = try runtime()
        let plain = rt.upstreams[1]
        let h = try health(plain.servers[0], plain, AdminClock(monotonicMs: 5_000, wallMs: 1_700_000_000_000))
        XCTAssertEqual(h["active_checks"] as? Bool, false)
        XCTAssertEqual(h["passive_checks"] as? Bool, false)
        for k in ["last_check", "last_check_at", "last_check_detail", "ejected_until"] { XCTAssertTrue(h[k] is NSNull, k) }
        XCTAssertEqual(h["consecutive_failures"] as? Int, 0)
        XCTAssertEqual(h["ejections"] as? Int, 0)
        XCTAssertEqual(h["causes"] as? [String], [])
        XCTAssertEqual(h["reason"] as? String, "configured")
    }

    func testProbeStreakAndEjectionWithItsEndOnTheWallClock() throws {
        let rt = try runtime()
        let u = rt.upstreams[0]
        let a = u.servers[0]
        var counter = ActiveCheckCounter(rise: 2, fall: 2, startDown: false)
        _ = counter.record(success: false)
        a.health.recordProbe(ok: false, detail: "connect failed: Connection refused", counter: counter, nowWallMs: 1_700_000_000_123)
        // Two failures on real traffic at monotonic 5 000 ms: ejected for 10 s, until monotonic 15 000.
        a.health.recordFailure(cause: "connect refused", nowMs: 5_000, nowWallMs: 1_700_000_000_200)
        a.health.recordFailure(cause: "connect refused", nowMs: 5_000, nowWallMs: 1_700_000_000_200)
        XCTAssertEqual(a.state, .ejected)
        let h = try health(a, u, AdminClock(monotonicMs: 6_000, wallMs: 1_700_000_001_000))
        XCTAssertEqual(h["last_check"] as? String, "failed")
        XCTAssertEqual((h["last_check_at"] as? NSNumber)?.int64Value, 1_700_000_000_123)
        XCTAssertEqual(h["last_check_detail"] as? String, "connect failed: Connection refused")
        XCTAssertEqual(h["consecutive_check_failures"] as? Int, 1)
        XCTAssertEqual(h["consecutive_check_successes"] as? Int, 0)
        XCTAssertEqual(h["consecutive_failures"] as? Int, 2)
        XCTAssertEqual(h["ejections"] as? Int, 1)
        XCTAssertEqual((h["ejected_until"] as? NSNumber)?.int64Value, 1_700_000_001_000 + 9_000, "monotonic 15 000 seen at 6 000")
        XCTAssertEqual(h["causes"] as? [String], ["ejected"])
        XCTAssertTrue((h["reason"] as? String ?? "").contains("2 failures in a row"), "\(h)")
        XCTAssertEqual((h["since"] as? NSNumber)?.int64Value, 1_700_000_000_200)

        // Drained on top: the state is the strongest cause, the causes list both.
        a.health.update(set: .draining, reason: "drained", nowWallMs: 1_700_000_002_000)
        let d = try health(a, u, AdminClock(monotonicMs: 7_000, wallMs: 1_700_000_002_000))
        XCTAssertEqual(d["causes"] as? [String], ["ejected", "draining"])
        XCTAssertEqual(d["reason"] as? String, "drained")
        XCTAssertEqual(a.state, .draining)
    }
}
