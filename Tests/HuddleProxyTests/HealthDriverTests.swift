// The health driver as the process wires it (Proxy.attachControlLoop): ejections end on time on the control loop,
// whatever the server's visible state was when it was ejected. The control loop is driven on the test thread; the
// worker reports are played by calling recordFailure as a worker would.
@testable import HuddleProxy
import HuddleConfig
import HuddleIO
import HuddleSys
import XCTest

final class HealthDriverTests: XCTestCase {
    static let configText = """
    error_log stderr level=error;
    upstream web {
        server 127.0.0.1:9301 name=a;
        server 127.0.0.1:9302 name=b;
        server 127.0.0.1:9303 name=c;
        server 127.0.0.1:9304 name=d;
        passive_health failures=1 ejection=200ms max_ejected=100% on_5xx=on;
    }
    server { listen 127.0.0.1:0; route / { upstream web; } }
    """

    /// Runs `loop` on this thread until `condition` holds or `seconds` pass.
    @discardableResult
    private func run(_ loop: EventLoop, _ seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Sys.monotonicMs() + Int64(seconds * 1000)
        while Sys.monotonicMs() < deadline {
            if condition() { return true }
            loop.runOnce(maxWaitMs: 10)
        }
        return condition()
    }

    func testEjectionsEndOnTimeWhateverTheVisibleState() throws {
        let proxy = try Proxy(config: ConfigParser.parse(text: Self.configText, file: "driver.conf"))
        let loop = try EventLoop(id: -1)
        proxy.attachControlLoop(loop)
        let servers = proxy.runtime.upstream(named: "web")!.servers
        let (a, b) = (servers[0], servers[1])
        // b is draining (its live groups still send it requests) when its failures eject it: its visible state does
        // not change, so no transition is reported; the ejection must end all the same.
        _ = proxy.adminAction(.drain, upstream: "web", server: "b")
        let t0 = Sys.monotonicMs()
        b.health.recordFailure(cause: "answered 500", nowMs: t0, nowWallMs: 0)
        XCTAssertEqual(b.health.flags, [.draining, .ejected])
        XCTAssertTrue(run(loop, 3) { !b.health.flags.contains(.ejected) }, "the ejection of a draining server never ended")
        let late = Sys.monotonicMs() - t0 - 200
        XCTAssertGreaterThanOrEqual(late, -10, "ended early")
        XCTAssertLessThan(late, 1200, "ended \(late) ms late")
        // A healthy server's ejection (a reported transition) ends on time too.
        let t1 = Sys.monotonicMs()
        a.health.recordFailure(cause: "answered 500", nowMs: t1, nowWallMs: 0)
        XCTAssertEqual(a.health.flags, .ejected)
        XCTAssertTrue(run(loop, 3) { !a.health.flags.contains(.ejected) }, "a's ejection never ended")
        XCTAssertGreaterThanOrEqual(Sys.monotonicMs() - t1, 190)
        XCTAssertLessThan(Sys.monotonicMs() - t1, 200 + 300)
        // Once enabled, b takes traffic again.
        _ = proxy.adminAction(.enable, upstream: "web", server: "b")
        XCTAssertTrue(b.isAvailable)
    }
}
