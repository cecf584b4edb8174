// Tests of the group-key extractors (path segment, query value, cookie) and percent-decoding.

import HuddleHTTP
import XCTest

final class GroupKeyBytesTests: XCTestCase {
    func segment(_ path: String, _ n: Int) -> String? {
        let bytes = [UInt8](ascii: path)
        return bytes.withUnsafeBytes { bytes.string(GroupKeyBytes.pathSegment(n, path: 0..<bytes.count, in: $0)) }
    }

    func testPathSegments() {
        XCTAssertEqual(segment("/rooms/abc/x", 1), "rooms")
        XCTAssertEqual(segment("/rooms/abc/x", 2), "abc")
        XCTAssertEqual(segment("/rooms/abc/x", 3), "x")
        XCTAssertNil(segment("/rooms/abc/x", 4))
        XCTAssertNil(segment("/rooms//x", 2))
        XCTAssertEqual(segment("/rooms//x", 3), "x")
        XCTAssertNil(segment("/rooms/", 2))
        XCTAssertEqual(segment("/rooms/a%20b", 2), "a%20b")
        XCTAssertNil(segment("/", 1))
        XCTAssertNil(segment("", 1))
        XCTAssertNil(segment("/a", 0))
    }

    func testPathSegmentWithinALargerBuffer() {
        let bytes = [UInt8](ascii: "GET /rooms/r1/ws?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        let (_, head) = parseRequestForTesting(bytes, mode: .whole)
        let key = bytes.withUnsafeBytes { GroupKeyBytes.pathSegment(2, path: head.path, in: $0) }
        XCTAssertEqual(bytes.string(key), "r1")
    }

    func query(_ query: String, _ name: String) -> String? {
        let bytes = [UInt8](ascii: "?" + query)
        return bytes.withUnsafeBytes {
            bytes.string(GroupKeyBytes.queryValue(name: Array(name.utf8), query: 1..<bytes.count, in: $0))
        }
    }

    func testQueryValues() {
        XCTAssertEqual(query("a=1&room=r%2F2&b=3", "room"), "r%2F2")
        XCTAssertEqual(query("a=1&room=r%2F2&b=3", "a"), "1")
        XCTAssertEqual(query("a=1&room=r%2F2&b=3", "b"), "3")
        XCTAssertEqual(query("room=first&room=second", "room"), "first")
        XCTAssertEqual(query("flag&x=1", "flag"), "")
        XCTAssertEqual(query("room=", "room"), "")
        XCTAssertEqual(query("my+room=1", "my room"), "1")
        XCTAssertEqual(query("my%20room=2", "my room"), "2")
        XCTAssertNil(query("rooms=1", "room"))
        XCTAssertNil(query("Room=1", "room"))
        XCTAssertNil(query("", "room"))
        XCTAssertNil(query("room%2=1", "room"))
    }

    func cookie(_ header: String, _ name: String) -> String? {
        let bytes = [UInt8](ascii: header)
        return bytes.withUnsafeBytes {
            bytes.string(GroupKeyBytes.cookieValue(name: Array(name.utf8), cookieHeaderValue: 0..<bytes.count, in: $0))
        }
    }

    func testCookieValues() {
        XCTAssertEqual(cookie("a=b; room=r1; c=d", "room"), "r1")
        XCTAssertEqual(cookie("a=b;room=r1", "room"), "r1")
        XCTAssertEqual(cookie("room=\"quoted value\"", "room"), "quoted value")
        XCTAssertEqual(cookie("room=\"", "room"), "\"")
        XCTAssertEqual(cookie("a=b; room=", "room"), "")
        XCTAssertEqual(cookie("room=x=y", "room"), "x=y")
        XCTAssertNil(cookie("Room=r1", "room"))
        XCTAssertNil(cookie("myroom=r1; rooms=2", "room"))
        XCTAssertNil(cookie("room", "room"))
        XCTAssertNil(cookie("", "room"))
    }

    func testPercentDecoding() {
        func decode(_ s: String, plus: Bool) -> String? {
            GroupKeyBytes.percentDecode(Array(s.utf8), plusAsSpace: plus).map { String(decoding: $0, as: UTF8.self) }
        }
        XCTAssertEqual(decode("a%20b+c", plus: false), "a b+c")
        XCTAssertEqual(decode("a%20b+c", plus: true), "a b c")
        XCTAssertEqual(decode("%2f%2F", plus: false), "//")
        XCTAssertEqual(decode("caf%C3%A9", plus: false), "caf\u{E9}")
        XCTAssertEqual(decode("", plus: true), "")
        XCTAssertNil(decode("%", plus: false))
        XCTAssertNil(decode("%4", plus: false))
        XCTAssertNil(decode("%zz", plus: false))
        XCTAssertNil(decode("ok%g0", plus: true))
        XCTAssertEqual(GroupKeyBytes.percentDecode([0x25, 0x30, 0x30], plusAsSpace: false), [0])
    }
}
