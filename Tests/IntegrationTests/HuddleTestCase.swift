// The base class of every integration test: each HuddleProcess a test starts is checked at the end of the test.
//
// tearDown (after the test body returned, so its local clients are closed) runs Invariants.assertQuiescent on every
// registered HuddleProcess that is still running: in_flight and active_connections 0 for every server, no buffers or
// pipes in use, no client connections or tunnels, descriptors back to the baseline taken when it came up (plus pooled
// backend connections and cached pipes). Then it stops them. Skipped when:
//   - the test already failed (the failure itself matters; a check on top would only add noise),
//   - the test stopped huddle itself (stop(), SIGTERM...): a process that exited without being asked is a failure,
//   - the test opted out with HuddleProcess.quiescenceCheckNotWanted(because:) (rare; the reason is printed).
// Subclasses that override tearDown call super.tearDown() first, before stopping their backends.
import Foundation
import Glibc
import XCTest

class HuddleTestCase: XCTestCase {
    /// The test case running now (XCTest runs one at a time); HuddleProcess registers with it.
    nonisolated(unsafe) private(set) static var current: HuddleTestCase?

    private struct Registered {
        var process: HuddleProcess
        var file: StaticString
        var line: UInt
    }
    private var started: [Registered] = []
    private var tornDown = false

    func register(_ h: HuddleProcess, file: StaticString, line: UInt) {
        started.append(Registered(process: h, file: file, line: line))
    }

    override func invokeTest() {
        Self.current = self
        started = []
        tornDown = false
        super.invokeTest()
        if !tornDown && !started.isEmpty {
            XCTFail("\(type(of: self)).tearDown did not call super.tearDown(): the end-of-test invariant check did not run")
            checkAndStopAll()
        }
        Self.current = nil
    }

    override func tearDown() {
        tornDown = true
        checkAndStopAll()
        super.tearDown()
    }

    private func checkAndStopAll() {
        let list = started
        started = []
        defer { for r in list { r.process.stop() } }
        let failed = (testRun?.totalFailureCount ?? 0) > 0
        let skipped = testRun?.hasBeenSkipped ?? false
        for r in list {
            let h = r.process
            if let reason = h.quiescenceOptOut {
                print("\(name): end-of-test invariant check skipped for huddle pid \(h.pid) (\(r.file):\(r.line)): \(reason)")
                continue
            }
            guard h.process.isRunning else {
                if !h.exitExpected && !failed {
                    XCTFail("huddle (started at \(r.file):\(r.line)) exited on its own with status \(h.process.terminationStatus)"
                            + " (\(h.process.terminationReason == .uncaughtSignal ? "signal" : "exit")); log tail:\n\(h.log.suffix(3000))",
                            file: r.file, line: r.line)
                }
                continue
            }
            if failed || skipped { continue }
            Invariants.assertQuiescent(h, file: r.file, line: r.line)
        }
    }
}
