// Tests of the byte helpers: the token table against RFC 9110's list, list splitting and compares.

import HuddleHTTP
import XCTest

final class ASCIIBytesTests: XCTestCase {
    func testTokenTableMatchesRFC9110() {
        let tchar = Set(Array("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8))
        for b in 0...255 {
            XCTAssertEqual(ASCIIBytes.isTokenByte(UInt8(b)), tchar.contains(UInt8(b)), "byte \(b)")
        }
    }

    func testFieldValueBytes() {
        for b in 0...255 {
            let expected = b == 9 || (b >= 0x20 && b != 0x7F)
            XCTAssertEqual(ASCIIBytes.isFieldValueByte(UInt8(b)), expected, "byte \(b)")
        }
    }

    func testForEachTokenSplitsCommaListsAndTrimsOWS() {
        let bytes = [UInt8](ascii: " , keep-alive ,,\tUpgrade\t, x ,")
        var tokens: [String] = []
        bytes.withUnsafeBytes { raw in
            ASCIIBytes.forEachToken(in: 0..<bytes.count, of: raw) { tokens.append(bytes.string($0)!) }
            XCTAssertTrue(ASCIIBytes.listContainsToken(raw, 0..<bytes.count, "upgrade"))
            XCTAssertFalse(ASCIIBytes.listContainsToken(raw, 0..<bytes.count, "close"))
        }
        XCTAssertEqual(tokens, ["keep-alive", "Upgrade", "x"])
    }

    func testCompares() {
        let bytes = [UInt8](ascii: "Content-LENGTH content-length")
        bytes.withUnsafeBytes { raw in
            XCTAssertTrue(ASCIIBytes.equalsCaseInsensitive(raw, 0..<14, "content-length"))
            XCTAssertFalse(ASCIIBytes.equalsCaseInsensitive(raw, 0..<13, "content-length"))
            XCTAssertTrue(ASCIIBytes.equalsCaseInsensitive(raw, 0..<14, 15..<29))
            XCTAssertFalse(ASCIIBytes.equals(raw, 0..<14, "content-length"))
            XCTAssertTrue(ASCIIBytes.equals(raw, 15..<29, "content-length"))
            XCTAssertEqual(ASCIIBytes.trimmingOWS(raw, 14..<16), 15..<16)
        }
        // '@' (0x40) and '`' (0x60) differ only in bit 5 like letters do; they must not compare equal.
        let punct = [UInt8](ascii: "@`[{")
        punct.withUnsafeBytes { raw in
            XCTAssertFalse(ASCIIBytes.equalsCaseInsensitive(raw, 0..<1, 1..<2))
            XCTAssertFalse(ASCIIBytes.equalsCaseInsensitive(raw, 2..<3, 3..<4))
        }
    }

    func testHeaderKindsAreRecognisedCaseInsensitively() {
        let names: [(String, HTTPHeaderKind)] = [
            ("HOST", .host), ("content-length", .contentLength), ("Transfer-Encoding", .transferEncoding),
            ("connection", .connection), ("Keep-Alive", .keepAlive), ("Proxy-Connection", .proxyConnection), ("TE", .te),
            ("Trailer", .trailer), ("upgrade", .upgrade), ("Expect", .expect), ("Cookie", .cookie),
            ("X-Forwarded-For", .xForwardedFor), ("x-forwarded-proto", .xForwardedProto), ("X-Forwarded-Host", .xForwardedHost),
            ("X-Request-Id", .xRequestId), ("Sec-WebSocket-Key", .secWebSocketKey), ("sec-websocket-version", .secWebSocketVersion),
            ("Hosts", .other), ("Content-Lengt", .other), ("X", .other),
        ]
        for (name, kind) in names {
            let bytes = [UInt8](ascii: name)
            XCTAssertEqual(bytes.withUnsafeBytes { HTTPHeaderKind(name: 0..<bytes.count, in: $0) }, kind, name)
        }
    }

    /// The word-at-a-time scans must agree with the obvious byte loops at every offset and alignment.
    func testWordScansAgreeWithByteLoops() {
        var rng = SeededRandomForTesting(seed: 2024)
        let alphabet: [UInt8] = [0x0A, 0x0D, 0x09, 0x00, 0x1F, 0x20, 0x7F, 0x80, 0xFF, 0x41, 0x61, 0x0B]
        for _ in 0..<400 {
            let count = Int.random(in: 0...40, using: &rng)
            let bytes: [UInt8] = (0..<count).map { _ in
                Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0x21...0x7E, using: &rng)
            }
            let from = Int.random(in: 0...count, using: &rng)
            let expectedLF = bytes[from...].firstIndex(of: 0x0A) ?? count
            let expectedInvalid = bytes[from...].firstIndex { !(($0 == 9) || ($0 >= 0x20 && $0 != 0x7F)) } ?? count
            bytes.withUnsafeBytes { raw in
                XCTAssertEqual(ASCIIBytes.firstLF(raw, from: from, to: count), expectedLF, "\(bytes) from \(from)")
                XCTAssertEqual(ASCIIBytes.firstInvalidFieldValueByte(raw, from: from, to: count), expectedInvalid,
                               "\(bytes) from \(from)")
            }
        }
    }
}
