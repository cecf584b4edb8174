// The JSON access log escapes raw request bytes: quotes, backslashes, tabs and bytes that are not UTF-8 still give
// one valid JSON object per line.
import Foundation
import HuddleDemo
import XCTest

final class AccessLogEscapingTests: XCTestCase {
    func testRawHeaderBytesGiveValidJSONLines() throws {
        let b = try Harness.startBackend("esc")
        defer { b.stop() }
        let h = try HuddleProcess(config: """
        access_log stderr format=json;
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; route / { upstream app; } }
        """)
        // obs-text (0x80-0xFF) and HTAB are allowed in field values; 0xFF and a cut 0xC3 are not UTF-8.
        let agent: [UInt8] = Array("say \"hi\" \\ there\t".utf8) + [0xFF, 0x20, 0xC3, 0x20] + Array("é".utf8)
        let c = try RawClient(port: h.port)
        c.send(Array("GET /p%22q HTTP/1.1\r\nHost: x\r\nX-Request-Id: esc-1\r\nUser-Agent: ".utf8) + agent
               + Array("\r\nConnection: close\r\n\r\n".utf8))
        XCTAssertTrue(c.readAll().text.hasPrefix("HTTP/1.1 200"))
        /// Our line, and any line that looks like JSON but does not parse (every one must, not only ours).
        func scan() -> (record: [String: Any]?, broken: [String]) {
            guard let data = try? Data(contentsOf: h.logURL) else { return (nil, []) }
            var found: [String: Any]?
            var broken: [String] = []
            for line in data.split(separator: UInt8(ascii: "\n")) where line.first == UInt8(ascii: "{") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    broken.append("\(String(decoding: line, as: UTF8.self)) \(Array(line))")
                    continue
                }
                if o["request_id"] as? String == "esc-1" { found = o }
            }
            return (found, broken)
        }
        XCTAssertTrue(Harness.waitFor(5) { scan().record != nil || !scan().broken.isEmpty }, h.log)
        let (o, broken) = scan()
        XCTAssertEqual(broken, [], "lines that are not JSON")
        XCTAssertEqual(o?["user_agent"] as? String, "say \"hi\" \\ there\t\u{FFFD} \u{FFFD} é")
        XCTAssertEqual(o?["path"] as? String, "/p%22q")
        XCTAssertEqual(o?["client"] as? String, "127.0.0.1")
        XCTAssertNotNil(String(data: try Data(contentsOf: h.logURL), encoding: .utf8), "the log must stay valid UTF-8")
    }
}
