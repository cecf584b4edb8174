// Helpers for the admin-port tests: one request on its own connection, /api/backends by server, /metrics samples.
import Foundation
import Glibc
import HuddleDemo
import XCTest

enum Admin {
    /// One request on a fresh connection (`Connection: close`); the whole answer, parsed.
    static func request(_ h: HuddleProcess, _ method: String, _ target: String, token: String? = nil,
                        headers: [String] = []) throws -> ParsedResponse {
        let c = try RawClient(port: h.adminPort, receiveTimeoutSeconds: 10)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        for line in headers { head += line + "\r\n" }
        c.send(head + "\r\n")
        let bytes = c.readAll()
        guard let r = ParsedResponse.parseAll(bytes, headRequest: method == "HEAD").first else {
            throw HarnessError("no answer to \(method) \(target): \(bytes.escapedForDisplay)")
        }
        return r
    }

    static func json(_ r: ParsedResponse) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
    }

    /// /api/backends' servers keyed "UPSTREAM ADDRESS", and the answer's `now`.
    static func servers(_ h: HuddleProcess) -> (now: Int64, servers: [String: [String: Any]])? {
        guard let text = Invariants.adminGet(h, "/api/backends"),
              let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let now = (o["now"] as? NSNumber)?.int64Value,
              let ups = o["upstreams"] as? [[String: Any]] else { return nil }
        var out: [String: [String: Any]] = [:]
        for u in ups {
            for s in (u["servers"] as? [[String: Any]]) ?? [] {
                out["\(u["name"] as? String ?? "?") \(s["address"] as? String ?? "?")"] = s
            }
        }
        return (now, out)
    }

    static func server(_ h: HuddleProcess, _ upstream: String, _ address: String) -> [String: Any]? {
        servers(h)?.servers["\(upstream) \(address)"]
    }

    /// Polls /api/backends until `condition` holds for the server; returns its last reading.
    @discardableResult
    static func waitForServer(_ h: HuddleProcess, _ upstream: String, _ address: String, seconds: Double = 10,
                              _ condition: ([String: Any]) -> Bool) -> [String: Any]? {
        var last: [String: Any]? = nil
        _ = Harness.waitFor(seconds) {
            last = server(h, upstream, address)
            return last.map(condition) ?? false
        }
        return last
    }

    /// Requests a demo backend has answered, from its own counters (not Huddle's).
    static func requestsServed(by b: DemoBackend) -> Int {
        let o = try? JSONSerialization.jsonObject(with: Data(b.statsJSON.utf8)) as? [String: Any]
        return o?["requests"] as? Int ?? -1
    }
}
