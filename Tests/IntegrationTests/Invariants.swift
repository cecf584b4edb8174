// End-of-test invariants for a running huddle: once traffic stops, every counter goes back to rest.
//
// HuddleTestCase runs the check on every HuddleProcess at the end of every test (HuddleProcess always has an admin
// port and takes its descriptor baseline once it is up). A test may also check at a point of its own:
//   Invariants.assertQuiescent(h)                                 // against h.descriptorBaseline
//
// Checked, polling up to `timeout` seconds for them to settle:
//   - /api/backends: in_flight 0 and active_connections 0 for every server of every upstream (a negative value
//     fails at once: a count released twice never comes back);
//   - /metrics: huddle_buffers_in_use 0, huddle_pipes_in_use 0, huddle_gzip_streams_in_use 0, huddle_client_connections 0,
//     huddle_tunnels 0, and the cache's huddle_cache_waiters, huddle_cache_fills_led, huddle_cache_fills and
//     huddle_cache_sending 0;
//   - /proc/PID/fd: back to the baseline, plus what pools legitimately keep open: idle keep-alive backend
//     connections (huddle_backend_connections) and cached splice pipes (two descriptors each, huddle_pipes_cached).
import Foundation
import Glibc
import XCTest

enum Invariants {
    /// Open descriptors of a process (entries of /proc/PID/fd).
    static func descriptorCount(_ pid: Int32) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    /// The descriptor count at rest: taken after one admin request, so the control loop is known to be up.
    static func descriptorBaseline(_ h: HuddleProcess, file: StaticString = #filePath, line: UInt = #line) -> Int {
        _ = adminGet(h, "/healthz")
        var last = -1
        var stable = 0
        // Two equal readings in a row: nothing is still opening.
        Harness.waitFor(3) {
            let n = descriptorCount(h.pid)
            stable = n == last ? stable + 1 : 0
            last = n
            return stable >= 2
        }
        // A process always holds its listeners, epoll and log descriptors: 0 would mean /proc is unreadable.
        XCTAssertGreaterThan(last, 3, "cannot count /proc/\(h.pid)/fd", file: file, line: line)
        return last
    }

    /// GET on the admin port over a plain socket (no curl process per poll); returns the body, nil on failure.
    static func adminGet(_ h: HuddleProcess, _ path: String) -> String? {
        guard let c = try? RawClient(port: h.adminPort, receiveTimeoutSeconds: 3) else { return nil }
        c.send("GET \(path) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        let bytes = c.readAll()
        guard let r = ParsedResponse.parseAll(bytes).first, r.status == 200 else { return nil }
        return String(decoding: r.body, as: UTF8.self)
    }

    struct ServerCounters: CustomStringConvertible {
        var upstream: String
        var name: String
        var address: String
        var inFlight: Int
        var activeConnections: Int
        var description: String { "\(upstream)/\(name) (\(address)): in_flight \(inFlight), active_connections \(activeConnections)" }
    }

    static func serverCounters(_ h: HuddleProcess) -> [ServerCounters]? {
        guard let text = adminGet(h, "/api/backends"),
              let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let ups = obj["upstreams"] as? [[String: Any]] else { return nil }
        var out: [ServerCounters] = []
        for u in ups {
            for s in (u["servers"] as? [[String: Any]]) ?? [] {
                out.append(ServerCounters(upstream: u["name"] as? String ?? "?", name: s["name"] as? String ?? "?",
                                          address: s["address"] as? String ?? "?", inFlight: s["in_flight"] as? Int ?? -999,
                                          activeConnections: s["active_connections"] as? Int ?? -999))
            }
        }
        return out
    }

    /// Unlabelled gauges of /metrics (`huddle_x 3`).
    static func metrics(_ h: HuddleProcess) -> [String: Int]? {
        guard let text = adminGet(h, "/metrics") else { return nil }
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.contains("{") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = Int(parts[1]) { out[String(parts[0])] = v }
        }
        return out
    }

    /// Fails the calling test unless huddle settles back to rest within `timeout` seconds, descriptors compared with
    /// the baseline the process recorded when it came up.
    static func assertQuiescent(_ h: HuddleProcess, timeout: Double = 5, file: StaticString = #filePath, line: UInt = #line) {
        assertQuiescent(h, descriptorBaseline: h.descriptorBaseline, timeout: timeout, file: file, line: line)
    }

    /// Fails the calling test unless huddle settles back to rest within `timeout` seconds (see the file comment).
    /// `descriptorBaseline` nil skips the descriptor check.
    static func assertQuiescent(_ h: HuddleProcess, descriptorBaseline: Int?, timeout: Double = 5,
                                file: StaticString = #filePath, line: UInt = #line) {
        var problems: [String] = []
        var permanent = false
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            problems = []
            guard h.process.isRunning else {
                XCTFail("huddle is not running; log:\n\(h.log.suffix(3000))", file: file, line: line)
                return
            }
            if let servers = serverCounters(h) {
                for s in servers where s.inFlight != 0 || s.activeConnections != 0 {
                    problems.append("server \(s)")
                    // A gauge below zero was released twice: it will never settle, so stop waiting.
                    if s.inFlight < 0 || s.activeConnections < 0 { permanent = true }
                }
            } else {
                problems.append("GET /api/backends failed")
            }
            let m = metrics(h)
            if let m {
                for name in ["huddle_buffers_in_use", "huddle_pipes_in_use", "huddle_gzip_streams_in_use", "huddle_client_connections", "huddle_tunnels",
                             "huddle_cache_waiters", "huddle_cache_fills_led", "huddle_cache_fills", "huddle_cache_sending"] {
                    let v = m[name]
                    if v != 0 { problems.append("\(name) \(v.map(String.init) ?? "missing")") }
                    if let v, v < 0 { permanent = true }
                }
            } else {
                problems.append("GET /metrics failed")
            }
            if let base = descriptorBaseline, let m {
                let pooled = (m["huddle_backend_connections"] ?? 0) + 2 * (m["huddle_pipes_cached"] ?? 0)
                let now = descriptorCount(h.pid)
                if now != base + pooled {
                    problems.append("open descriptors \(now), expected \(base + pooled) (baseline \(base) + \(m["huddle_backend_connections"] ?? 0) pooled backend connections + 2 x \(m["huddle_pipes_cached"] ?? 0) cached pipes)")
                }
            }
            if problems.isEmpty || permanent { break }
            usleep(10_000)
        } while Date() < deadline
        if !problems.isEmpty {
            XCTFail("huddle did not return to rest\(permanent ? " (a gauge went negative: released twice)" : " within \(timeout)s"):\n  "
                    + problems.joined(separator: "\n  ") + "\nlog tail:\n\(h.log.suffix(2000))", file: file, line: line)
        }
    }
}
