// Cost per pick of the selectors and per join/leave of the group table; prints figures only with HUDDLE_BENCH=1.

import HuddleBalancing
import XCTest

/// Not run by default (benchmarks live outside `swift test`'s normal run): the figures are quoted in docs/HASHING.md.
/// `HUDDLE_BENCH=1 swift test -c release --filter SelectorBenchmarkTests`
final class SelectorBenchmarkTests: XCTestCase {
    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["HUDDLE_BENCH"] == "1" else {
            throw XCTSkip("set HUDDLE_BENCH=1 to measure")
        }
    }

    /// Best of 5 runs of `iterations` calls, in ns per call.
    func nanos(_ iterations: Int, _ body: (Int) -> Int) -> Double {
        var best = Double.infinity
        var sink = 0
        for _ in 0..<5 {
            let start = ContinuousClock.now
            for i in 0..<iterations { sink &+= body(i) }
            let d = ContinuousClock.now - start
            best = min(best, (Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9) / Double(iterations))
        }
        if sink == Int.min { print(sink) }
        return best
    }

    func testSelectorCosts() {
        var lines: [String] = []
        for n in [10, 100] {
            let load = (0..<n).map { $0 % 7 }
            var rng = FastRandom(seed: 1)
            let p2c = P2CSelector(weights: Array(repeating: 1, count: n))
            let p2cWeighted = P2CSelector(weights: (0..<n).map { $0 % 3 + 1 })
            let uniform = nanos(1_000_000) { _ in p2c.pick(using: &rng, isEligible: { _ in true }, load: { load[$0] })! }
            let weighted = nanos(1_000_000) { _ in p2cWeighted.pick(using: &rng, isEligible: { _ in true }, load: { load[$0] })! }
            let halfDown = nanos(1_000_000) { _ in p2c.pick(using: &rng, isEligible: { $0 & 1 == 0 }, load: { load[$0] })! }
            var rr = SmoothRoundRobin(weights: (0..<n).map { $0 % 3 + 1 })
            let smooth = nanos(1_000_000) { _ in rr.pick(isEligible: { _ in true })! }
            lines.append(String(format: "%d servers: p2c %.1f ns, p2c weighted %.1f ns, p2c half ineligible %.1f ns, smooth rr %.1f ns",
                                n, uniform, weighted, halfDown, smooth))
        }
        let table = GroupTable()
        let keys = (0..<10_000).map { (Array("group-\($0)".utf8), StableHash.hash64("group-\($0)")) }
        let joinLeave = nanos(100_000) { i in
            let (bytes, hash) = keys[i % keys.count]
            let m = table.join(key: bytes, keyHash: hash, nowMs: 0, isUsable: { _ in true }, place: { "10.0.0.1:8080" })!
            table.leave(key: bytes, keyHash: hash, server: m.server, nowMs: 0, lingerMs: 5_000)
            return m.members
        }
        lines.append(String(format: "group table join + leave (one thread, 10,000 groups): %.0f ns", joinLeave))
        print(lines.joined(separator: "\n"))
    }
}
