// What the migration and replica tests observe: the backends' own view of where each group's members are (sampled
// from the demo backends' chat rooms every 20 ms), a churning Python client population, and the admin port's figures.
import Foundation
import Glibc
import HuddleBalancing
import HuddleDemo
import HuddleSync
import XCTest

/// Seconds on a monotonic clock.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Samples which backends hold members of each group, from the backends themselves (their chat rooms), and keeps
/// every change as a timeline per group. A group is split while two or more backends hold members of it.
final class GroupWatch: @unchecked Sendable {
    struct Change {
        var t: Double
        var backends: Set<String>
    }

    // SAFETY: every field below is guarded by `lock`.
    private let lock = Locked<State>(State())
    private struct State {
        var backends: [DemoBackend] = []
        var timelines: [String: [Change]] = [:]
        var running = true
        var samples = 0
    }
    private var thread: Thread?
    let groups: [String]
    let periodMicros: UInt32

    init(groups: [String], backends: [DemoBackend], periodMs: Int = 20) {
        self.groups = groups
        periodMicros = UInt32(periodMs * 1000)
        lock.withLock { $0.backends = backends }
        let t = Thread { [weak self] in
            while let s = self, s.sampleOnce() { usleep(s.periodMicros) }
        }
        thread = t
        t.start()
    }

    /// The backends to look at from now on (one added, one stopped).
    func setBackends(_ b: [DemoBackend]) { lock.withLock { $0.backends = b } }

    func stop() { lock.withLock { $0.running = false } }
    deinit { stop() }

    /// One sample; false once stopped.
    private func sampleOnce() -> Bool {
        let backends = lock.withLock { $0.running ? $0.backends : nil }
        guard let backends else { return false }
        let t = monotonicSeconds()
        var where_: [String: Set<String>] = [:]
        for b in backends where !b.isStopped {
            for (room, n) in b.roomMembers() where n > 0 { where_[room, default: []].insert(b.name) }
        }
        lock.withLock { st in
            st.samples += 1
            for g in groups {
                let now = where_[g] ?? []
                if st.timelines[g]?.last?.backends != now { st.timelines[g, default: []].append(Change(t: t, backends: now)) }
            }
        }
        return true
    }

    var samples: Int { lock.withLock { $0.samples } }

    /// The latest sampled backends of every group.
    func current() -> [String: Set<String>] {
        lock.withLock { st in st.timelines.mapValues { $0.last?.backends ?? [] } }
    }

    /// Waits until the latest sample has every group whole on `expected[g]` and not empty (with 10 members that come and
    /// go, a group is empty with a probability of about 1e-9), for 100 ms; returns when that first held, or nil at the
    /// deadline.
    func waitUntilWhole(on expected: [String: String], timeout: Double) -> Double? {
        let deadline = monotonicSeconds() + timeout
        var firstOK: Double? = nil
        while monotonicSeconds() < deadline {
            let c = current()
            let ok = groups.allSatisfy { g in c[g] == [expected[g] ?? "?"] }
            if ok {
                if let f = firstOK, monotonicSeconds() - f >= 0.1 { return f }
                if firstOK == nil { firstOK = monotonicSeconds() }
            } else {
                firstOK = nil
            }
            usleep(20_000)
        }
        return nil
    }

    /// Groups not whole on their expected backend in the latest sample, for failure messages.
    func misfits(_ expected: [String: String]) -> [String] {
        let c = current()
        return groups.compactMap { g in
            let s = c[g] ?? []
            return s == [expected[g] ?? "?"] ? nil : "\(g): \(s.sorted()) (want \(expected[g] ?? "?"))"
        }
    }

    /// Split episodes (two or more backends at once) that overlap [from, to]: group, start, end (ongoing ones end at
    /// `to`).
    func splits(from: Double, to: Double) -> [(group: String, start: Double, end: Double)] {
        let tl = lock.withLock { $0.timelines }
        var out: [(String, Double, Double)] = []
        for (g, changes) in tl {
            for (i, c) in changes.enumerated() where c.backends.count >= 2 {
                let end = i + 1 < changes.count ? changes[i + 1].t : to
                // Consecutive split samples with different sets are one episode: merge.
                if let last = out.last, last.0 == g, abs(last.2 - c.t) < 1e-9 {
                    out[out.count - 1].2 = end
                } else {
                    out.append((g, c.t, end))
                }
            }
        }
        return out.filter { $0.2 >= from && $0.1 <= to }.map { (group: $0.0, start: $0.1, end: $0.2) }
    }

    /// The longest split overlapping [from, to] (seconds), and how many groups were ever split then.
    func longestSplit(from: Double, to: Double) -> (seconds: Double, group: String?, groupsSplit: Int) {
        let s = splits(from: from, to: to)
        let longest = s.max { ($0.end - $0.start) < ($1.end - $1.start) }
        return (longest.map { $0.end - $0.start } ?? 0, longest?.group, Set(s.map(\.group)).count)
    }

    /// The sets of backends `group` was seen on during [from, to], in order (the one in force at `from` first).
    func history(_ group: String, from: Double, to: Double) -> [Change] {
        let changes = lock.withLock { $0.timelines[group] ?? [] }
        var out: [Change] = []
        if let before = changes.last(where: { $0.t <= from }) { out.append(before) }
        out += changes.filter { $0.t > from && $0.t <= to }
        return out
    }
}

/// The churning Python client (`ws_group_client.py churn`) as a background process: members that come and go, each
/// reconnecting through any of the given Huddle replicas, following Close 1012 after a small random delay.
final class ChurnClient {
    let process = Process()
    let statusURL: URL
    let outURL: URL
    let errURL: URL

    init(urls: [String], groups: Int, members: Int, format: String = "g{:03d}", stay: Double = 8, away: Double = 1,
         ramp: Double = 3, duration: Double = 110, seed: Int = 1) throws {
        let dir = Harness.temporaryDirectory()
        statusURL = dir.appendingPathComponent("churn-status.json")
        outURL = dir.appendingPathComponent("churn.out")
        errURL = dir.appendingPathComponent("churn.err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        var args = ["python3", WebSocketGroupTests.script, "churn", "--groups", String(groups), "--members", String(members),
                    "--format", format, "--stay", String(stay), "--away", String(away), "--ramp", String(ramp),
                    "--duration", String(duration), "--seed", String(seed), "--status", statusURL.path]
        for u in urls { args += ["--url", u] }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// The counters the client last wrote (every 200 ms).
    var status: [String: Any] {
        guard let d = try? Data(contentsOf: statusURL), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [:] }
        return o
    }

    func count(_ key: String) -> Int { status[key] as? Int ?? 0 }

    /// Reconnects so far: every end the client did not choose (1012 moves, 1001, others).
    var reconnects: (moved: Int, other: Int) {
        let s = status
        let others = (s["other_closes"] as? [String: Any] ?? [:]).values.compactMap { $0 as? Int }.reduce(0, +)
        return (s["moved_closes"] as? Int ?? 0, others + (s["shutdown_closes"] as? Int ?? 0))
    }

    var stderrText: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

    /// SIGTERM: every member closes; waits for the process (at most 20 s, then SIGKILL).
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        if !Harness.waitFor(20, { !self.process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

enum GroupAdmin {
    /// `/api/groups?upstream=chat` as JSON.
    static func groups(_ h: HuddleProcess, upstream: String = "chat", top: Int = 0) -> [String: Any]? {
        guard let text = Invariants.adminGet(h, "/api/groups?upstream=\(upstream)&top=\(top)") else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    }

    static func migration(_ h: HuddleProcess) -> [String: Any] { groups(h)?["migration"] as? [String: Any] ?? [:] }
    static func misplaced(_ h: HuddleProcess) -> Int? { groups(h)?["misplaced"] as? Int }
    static func migrationsTotal(_ h: HuddleProcess) -> Int { migration(h)["migrations_total"] as? Int ?? -1 }

    /// The config generation (/api/config).
    static func generation(_ h: HuddleProcess) -> Int {
        guard let text = Invariants.adminGet(h, "/api/config"),
              let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return -1 }
        return o["generation"] as? Int ?? -1
    }

    /// Rewrites the config file from `template` (with this process's ports) and sends SIGHUP; waits for the new
    /// generation.
    static func reload(_ h: HuddleProcess, template: String, workers: Int) throws {
        let before = generation(h)
        var text = template.replacingOccurrences(of: "{PORT}", with: String(h.port)).replacingOccurrences(of: "{ADMIN}", with: String(h.adminPort))
        if !text.contains("workers ") { text = "workers \(workers);\n" + text }
        try text.write(to: h.configURL, atomically: true, encoding: .utf8)
        h.signal(SIGHUP)
        guard Harness.waitFor(10, { generation(h) > before }) else { throw HarnessError("reload did not apply; log:\n\(h.log.suffix(2000))") }
    }
}

/// The pure placement function (the same code Huddle runs: rendezvous hash over server names, equal weights).
func hashOwners(_ groups: [String], servers: [String]) -> [String: String] {
    let h = ConsistentHash(identities: servers, weights: Array(repeating: 1, count: servers.count))
    var out: [String: String] = [:]
    for g in groups { out[g] = h.owner(keyHash: StableHash.hash64(g), isEligible: { _ in true }).map { servers[$0] } }
    return out
}
