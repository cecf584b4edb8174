// The JSON access log escapes raw request bytes: quotes, backslashes, tabs and bytes that are not UTF-8 still give
// one valid JSON object per line.
import Foundation
import HuddleDemo
import XCTest

final class AccessLogEscapingTests: HuddleTestCase {
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

    /// A field whose escaped form outgrows the log buffer (12 000 bytes of 0xFF become 36 000 bytes of U+FFFD) is cut
    /// at a character boundary: the line is still one valid JSON object with every field.
    func testAnOversizedFieldIsCutNotTheLine() throws {
        let b = try Harness.startBackend("esc-big")
        defer { b.stop() }
        let h = try HuddleProcess(config: """
        access_log stderr format=json;
        upstream app { server 127.0.0.1:\(b.boundAddresses[0].port); }
        server { listen 127.0.0.1:{PORT}; max_header_size 32k; route / { upstream app; } }
        """)
        let c = try RawClient(port: h.port)
        c.send(Array("GET /big HTTP/1.1\r\nHost: x\r\nX-Request-Id: esc-big\r\nUser-Agent: ".utf8) + [UInt8](repeating: 0xFF, count: 12_000)
               + Array("\r\nConnection: close\r\n\r\n".utf8))
        XCTAssertTrue(c.readAll().text.hasPrefix("HTTP/1.1 200"))
        func record() -> [String: Any]? {
            guard let data = try? Data(contentsOf: h.logURL) else { return nil }
            for line in data.split(separator: UInt8(ascii: "\n")) where line.first == UInt8(ascii: "{") {
                if let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], o["path"] as? String == "/big" { return o }
            }
            return nil
        }
        XCTAssertTrue(Harness.waitFor(5) { record() != nil }, String(h.log.suffix(2000)))
        let o = try XCTUnwrap(record())
        let agent = try XCTUnwrap(o["user_agent"] as? String)
        XCTAssertGreaterThan(agent.unicodeScalars.count, 100)
        XCTAssertLessThan(agent.unicodeScalars.count, 12_000)
        XCTAssertTrue(agent.unicodeScalars.allSatisfy { $0 == "\u{FFFD}" })
        XCTAssertEqual(o["request_id"] as? String, "esc-big")
        XCTAssertEqual(o["status"] as? Int, 200)
    }
}
