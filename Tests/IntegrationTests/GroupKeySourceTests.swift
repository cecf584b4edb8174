// Group keys from every source (path, header, cookie, query) route plain requests to the key's server, in the
// configured order of precedence, with the documented percent-decoding.
import Foundation
import HuddleDemo
import XCTest

final class GroupKeySourceTests: HuddleTestCase {
    func testEverySourceRoutesToTheKeysServerInPrecedenceOrder() throws {
        let backends = try (1...4).map { try Harness.startBackend("k\($0)") }
        defer { for b in backends { b.stop() } }
        let servers = backends.map { "    server 127.0.0.1:\($0.boundAddresses[0].port) name=\($0.name);" }.joined(separator: "\n")
        let h = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN};
        upstream chat {
            balance hash;
        \(servers)
        }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream chat; group_key path 2; }
            route /g/ {
                upstream chat;
                group_key header X-Group-Id;
                group_key cookie room;
                group_key query room;
            }
        }
        """, withAdmin: true)

        func owner(_ key: String) throws -> String {
            let enc = key.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? key
            let r = try Harness.curl(["\(h.adminURL)/api/lookup?upstream=chat&key=\(enc)"])
            let obj = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
            return obj?["server"] as? String ?? "?"
        }
        func backend(_ args: [String]) throws -> String {
            let r = try Harness.curl(["-D", "-", "-o", "/dev/null"] + args)
            for line in r.text.split(separator: "\r\n") where line.lowercased().hasPrefix("x-backend:") {
                return line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)
            }
            return "none: \(r.text)"
        }

        var owners: Set<String> = []
        for i in 0..<24 {
            let key = "room-\(i)"
            let o = try owner(key)
            owners.insert(o)
            XCTAssertEqual(try backend(["\(h.url)/rooms/\(key)/x"]), o, "path key \(key)")
            XCTAssertEqual(try backend(["-H", "X-Group-Id: \(key)", "\(h.url)/g/"]), o, "header key \(key)")
            XCTAssertEqual(try backend(["-H", "Cookie: a=1; room=\(key); b=2", "\(h.url)/g/"]), o, "cookie key \(key)")
            XCTAssertEqual(try backend(["\(h.url)/g/?x=1&room=\(key)"]), o, "query key \(key)")
            // The header comes first in the route, so it wins over a query naming another group.
            XCTAssertEqual(try backend(["-H", "X-Group-Id: \(key)", "\(h.url)/g/?room=other-\(i)"]), o, "precedence \(key)")
        }
        XCTAssertGreaterThanOrEqual(owners.count, 3, "24 keys should spread over the servers: \(owners)")

        // Percent-decoding: path keys decode %XX (a plus stays a plus); query keys decode %XX and + as a space.
        XCTAssertEqual(try backend(["\(h.url)/rooms/a%20b/x"]), try owner("a b"))
        XCTAssertEqual(try backend(["\(h.url)/rooms/a+b/x"]), try owner("a+b"))
        XCTAssertEqual(try backend(["\(h.url)/g/?room=a+b"]), try owner("a b"))
        XCTAssertEqual(try backend(["\(h.url)/g/?room=a%2Bb"]), try owner("a+b"))
        // No key at all on a reject route: 400 from Huddle itself.
        let r = try Harness.curl(["-w", "%{http_code}", "-o", "/dev/null", "\(h.url)/g/"])
        XCTAssertEqual(r.text, "400")
    }
}
