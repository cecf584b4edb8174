// Separate Huddle processes must map every group key to the same server: placement may not depend on process state.
import Foundation
import XCTest

final class LookupConsistencyTests: HuddleTestCase {
    /// Four servers; one without `name=`, so its identity is the address as written.
    static func config(servers: [(address: String, name: String?)]) -> String {
        let lines = servers.map { s in
            "        server \(s.address)\(s.name.map { " name=\($0)" } ?? "");"
        }.joined(separator: "\n")
        return """
        admin 127.0.0.1:{ADMIN};
        upstream chat {
            balance hash;
        \(lines)
        }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream chat; group_key path 2; }
        }

        """
    }

    static let servers: [(address: String, name: String?)] = [
        ("127.0.0.1:9101", "chat-a"), ("127.0.0.1:9102", "chat-b"), ("127.0.0.1:9103", "chat-c"), ("127.0.0.1:9104", nil),
    ]
    static let identities = ["chat-a", "chat-b", "chat-c", "127.0.0.1:9104"]

    func testTwoProcessesAnswerEveryLookupTheSame() throws {
        let keys = 10_000
        let config = Self.config(servers: Self.servers)
        // Different worker counts on purpose: nothing per thread or per process may leak into the answer.
        let first = try HuddleProcess(config: config, workers: 1, withAdmin: true)
        let second = try HuddleProcess(config: config, workers: 2, withAdmin: true)
        XCTAssertNotEqual(first.pid, second.pid)

        let a = try WebSocketGroupTests.lookup(admin: first.adminURL, keys: keys, format: "room-{}")
        let b = try WebSocketGroupTests.lookup(admin: second.adminURL, keys: keys, format: "room-{}")
        XCTAssertEqual(a.count, keys)
        XCTAssertEqual(b.count, keys)
        let differing = zip(a, b).enumerated().filter { $0.element.0 != $0.element.1 }
        XCTAssertEqual(differing.count, 0, "first differences: \(differing.prefix(5).map { "room-\($0.offset): \($0.element.0) vs \($0.element.1)" })")

        var counts: [String: Int] = [:]
        for s in a { counts[s, default: 0] += 1 }
        print("lookup spread over \(keys) keys: \(counts.sorted { $0.key < $1.key })")
        XCTAssertEqual(counts.keys.sorted(), Self.identities.sorted(), "answers name exactly the four servers' identities")
        // Expected 2,500 each with a standard deviation of about 43: 2,000 is more than 11 deviations away.
        for (server, n) in counts {
            XCTAssertGreaterThan(n, 2_000, "\(server) owns only \(n) of \(keys) keys")
        }
    }

    /// Placement follows identities, not the order of `server` lines nor their addresses.
    func testServerOrderAndAddressesDoNotMoveKeys() throws {
        let keys = 2_000
        let original = try HuddleProcess(config: Self.config(servers: Self.servers), workers: 1, withAdmin: true)
        // Reversed, and the named servers moved to new ports; the unnamed one keeps its address (its identity).
        let moved: [(address: String, name: String?)] = [
            ("127.0.0.1:9104", nil), ("127.0.0.1:9203", "chat-c"), ("127.0.0.1:9202", "chat-b"), ("127.0.0.1:9201", "chat-a"),
        ]
        let shuffled = try HuddleProcess(config: Self.config(servers: moved), workers: 1, withAdmin: true)
        let a = try WebSocketGroupTests.lookup(admin: original.adminURL, keys: keys, format: "k{}")
        let b = try WebSocketGroupTests.lookup(admin: shuffled.adminURL, keys: keys, format: "k{}")
        XCTAssertEqual(a.count, keys)
        XCTAssertEqual(a, b, "keys moved when only order and addresses changed")
        XCTAssertEqual(Set(a).count, 4)
    }
}
