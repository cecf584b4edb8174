// ProxyProtocolParser: valid and hostile headers of both versions, each fed whole, one byte at a time and in random
// splits (the answer must not depend on how the bytes arrive), what follows a header left alone, and what the writer
// produces read back.

import HuddleHTTP
import XCTest

final class ProxyProtocolParserTests: XCTestCase {
    /// Feeds `bytes` as growing prefixes, as a socket delivers them; every answer before the last must be needMore.
    func parse(_ bytes: [UInt8], mode: FeedModeForTesting, seed: UInt64 = 42,
               parser: ProxyProtocolParser = ProxyProtocolParser(), file: StaticString = #filePath, line: UInt = #line) -> ProxyProtocolParseResult {
        var rng = SeededRandomForTesting(seed: seed)
        var p = parser
        var last = ProxyProtocolParseResult.needMore
        for n in mode.prefixLengths(count: bytes.count, rng: &rng) {
            last = bytes.withUnsafeBytes { p.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            if last != .needMore {
                // Settled: asking again, with or without more bytes, repeats the answer.
                XCTAssertEqual(bytes.withUnsafeBytes { p.parse($0) }, last, "a settled parser changed its answer", file: file, line: line)
                return last
            }
        }
        return last
    }

    /// The same answer in every feed mode and for several random splits.
    func parseEveryWay(_ bytes: [UInt8], parser: ProxyProtocolParser = ProxyProtocolParser(),
                       file: StaticString = #filePath, line: UInt = #line) -> ProxyProtocolParseResult {
        let whole = parse(bytes, mode: .whole, parser: parser, file: file, line: line)
        XCTAssertEqual(parse(bytes, mode: .byteAtATime, parser: parser, file: file, line: line), whole,
                       "byte at a time differs for \(bytes.escapedForTesting)", file: file, line: line)
        for seed in 1...5 as ClosedRange<UInt64> {
            XCTAssertEqual(parse(bytes, mode: .randomSplits, seed: seed, parser: parser, file: file, line: line), whole,
                           "random splits (seed \(seed)) differ for \(bytes.escapedForTesting)", file: file, line: line)
        }
        return whole
    }

    func endpoint(_ ip: String, _ port: UInt16) -> ProxyEndpoint {
        let b = Array(ip.utf8)
        let a = b.withUnsafeBytes { ip.contains(":") ? IPAddress.parseIPv6($0, 0..<b.count) : IPAddress.parseIPv4($0, 0..<b.count) }
        return ProxyEndpoint(address: a!, port: port)
    }

    func tcp(_ src: String, _ dst: String, _ sport: UInt16, _ dport: UInt16) -> ProxyProtocolHeader.Addresses {
        .tcp(source: endpoint(src, sport), destination: endpoint(dst, dport))
    }

    // MARK: version 1

    func testValidV1Headers() {
        let cases: [(String, ProxyProtocolHeader.Addresses)] = [
            ("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", tcp("192.168.0.1", "192.168.0.11", 56324, 443)),
            ("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", tcp("255.255.255.255", "255.255.255.255", 65535, 65535)),
            ("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", tcp("0.0.0.0", "0.0.0.0", 0, 0)),
            ("PROXY TCP6 2001:db8::1 ::1 1 80\r\n", tcp("2001:db8::1", "::1", 1, 80)),
            ("PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 1000 2000\r\n", tcp("::ffff:10.0.0.1", "::ffff:10.0.0.2", 1000, 2000)),
            ("PROXY TCP6 FFFF:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
             tcp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535)),
            ("PROXY UNKNOWN\r\n", .unknown),
            ("PROXY UNKNOWN ffff:f::f:ffff ffff:f::f:ffff 65535 65535\r\n", .unknown),
            // Whatever follows UNKNOWN and a space is ignored (but still CR/LF-free and within 107 bytes).
            ("PROXY UNKNOWN \u{01}garbage\u{7f} x\r\n", .unknown),
            ("PROXY UNKNOWN " + String(repeating: "z", count: 90) + "\r\n", .unknown),
        ]
        for (text, addresses) in cases {
            let bytes = Array(text.utf8)
            XCTAssertEqual(parseEveryWay(bytes), .complete(ProxyProtocolHeader(version: .v1, length: bytes.count, addresses: addresses)),
                           bytes.escapedForTesting)
        }
    }

    func testTheLongestV1LineIsAcceptedAndOneMoreByteIsNot() {
        let longest = Array(("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n").utf8)
        XCTAssertEqual(longest.count, 107)
        XCTAssertEqual(parseEveryWay(longest), .complete(ProxyProtocolHeader(version: .v1, length: 107, addresses: .unknown)))
        let tooLong = Array(("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n").utf8)
        XCTAssertEqual(parseEveryWay(tooLong), .error(ProxyProtocolError(.v1TooLong, at: 107)))
        // A line that never ends is refused once 107 bytes have arrived, not later.
        XCTAssertEqual(parseEveryWay(Array("PROXY UNKNOWN ".utf8) + [UInt8](repeating: 0x41, count: 93)),
                       .error(ProxyProtocolError(.v1TooLong, at: 107)))
        XCTAssertEqual(parseEveryWay(Array("PROXY UNKNOWN ".utf8) + [UInt8](repeating: 0x41, count: 92)), .needMore)
    }

    func testHostileV1Headers() {
        let cases: [(String, ProxyProtocolError.Reason, Int)] = [
            ("GET / HTTP/1.1\r\n\r\n", .notProxyProtocol, 0),
            ("POST / HTTP/1.1\r\n\r\n", .notProxyProtocol, 1),
            ("PROXZ TCP4", .notProxyProtocol, 4),
            ("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", .notProxyProtocol, 0),
            ("PROXY\r\n", .badV1Syntax, 5),
            ("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", .badV1Protocol, 6),
            ("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", .badV1Syntax, 11),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", .badV1Syntax, 30),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", .badV1Syntax, 28),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", .badV1Syntax, 30),
            ("PROXY TCP4\r\n", .badV1Syntax, 10),
            ("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", .badV1Protocol, 6),
            ("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", .badV1Protocol, 6),
            ("PROXY UNKNOWNX\r\n", .badV1Protocol, 6),
            ("PROXY UNKNOWN\n", .bareLF, 13),
            ("PROXY UNKNOWN\r\r\n", .bareCR, 13),
            ("PROXY UNKNOWN x\ry\r\n", .bareCR, 15),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", .bareLF, 30),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", .bareCR, 30),   // then anything but LF
            ("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", .badV1Address, 11),
            ("PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", .badV1Address, 19),
            ("PROXY TCP4 ::1 ::1 1 2\r\n", .badV1Address, 11),
            ("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", .badV1Address, 11),
            ("PROXY TCP6 ::1 fe80::1%eth0 1 2\r\n", .badV1Address, 15),
            ("PROXY TCP6 [::1] ::1 1 2\r\n", .badV1Address, 11),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", .badV1Port, 27),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", .badV1Port, 27),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", .badV1Port, 29),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", .badV1Port, 27),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", .badV1Port, 29),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n", .badV1Port, 29),
            ("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", .badV1Syntax, 30),   // a tab is no separator: three fields
        ]
        for (text, reason, offset) in cases {
            var bytes = Array(text.utf8)
            if text.hasSuffix("2\r") { bytes.append(0x41) }
            XCTAssertEqual(parseEveryWay(bytes), .error(ProxyProtocolError(reason, at: offset)), bytes.escapedForTesting)
        }
    }

    /// Prefixes of a valid header are needMore, never an error: the parser may not reject what is merely incomplete.
    func testEveryPrefixOfAValidHeaderNeedsMore() {
        let headers = [Array("PROXY TCP6 2001:db8::1 ::1 1 80\r\n".utf8), ProxyProtocolWriter.v2(source: endpoint("10.0.0.1", 1), destination: endpoint("10.0.0.2", 2)),
                       v2(command: 0x21, family: 0x21, body: [UInt8](repeating: 7, count: 36) + tlv(0x04, 5))]
        for h in headers {
            for n in 0..<h.count {
                var p = ProxyProtocolParser()
                XCTAssertEqual(h.withUnsafeBytes { p.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }, .needMore, "prefix \(n) of \(h.escapedForTesting)")
            }
        }
    }

    // MARK: version 2

    func v2(command: UInt8, family: UInt8, body: [UInt8], length: Int? = nil) -> [UInt8] {
        let n = length ?? body.count
        return [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, command, family, UInt8(n >> 8), UInt8(n & 0xFF)] + body
    }

    func tlv(_ type: UInt8, _ n: Int, declared: Int? = nil) -> [UInt8] {
        let d = declared ?? n
        return [type, UInt8(d >> 8), UInt8(d & 0xFF)] + [UInt8](repeating: 0x5A, count: n)
    }

    let ipv4Block: [UInt8] = [192, 0, 2, 1, 198, 51, 100, 7, 0xDB, 0xF0, 0x01, 0xBB]   // 192.0.2.1:56304 -> 198.51.100.7:443
    var ipv6Block: [UInt8] {
        [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1] + [UInt8](repeating: 0, count: 15) + [1] + [0x30, 0x39, 0x00, 0x50]
    }

    func testValidV2Headers() {
        let v4 = tcp("192.0.2.1", "198.51.100.7", 56304, 443)
        let v6 = tcp("2001:db8::1", "::1", 12345, 80)
        let cases: [(String, [UInt8], ProxyProtocolHeader.Addresses)] = [
            ("PROXY TCP4", v2(command: 0x21, family: 0x11, body: ipv4Block), v4),
            ("PROXY TCP6", v2(command: 0x21, family: 0x21, body: ipv6Block), v6),
            ("PROXY TCP4 + TLVs", v2(command: 0x21, family: 0x11, body: ipv4Block + tlv(0x01, 2) + tlv(0x04, 0) + tlv(0xE0, 300)), v4),
            ("PROXY TCP4 + SSL TLV", v2(command: 0x21, family: 0x11, body: ipv4Block + tlv(0x20, 5 + 3 + 7)), v4),
            ("PROXY UDP4", v2(command: 0x21, family: 0x12, body: ipv4Block), .unknown),
            ("PROXY UDP6", v2(command: 0x21, family: 0x22, body: ipv6Block), .unknown),
            ("PROXY UNSPEC", v2(command: 0x21, family: 0x00, body: []), .unknown),
            ("PROXY UNSPEC + bytes", v2(command: 0x21, family: 0x00, body: tlv(0x05, 16)), .unknown),
            ("PROXY UNIX stream", v2(command: 0x21, family: 0x31, body: [UInt8](repeating: 0x2F, count: 216)), .unknown),
            ("PROXY UNIX dgram", v2(command: 0x21, family: 0x32, body: [UInt8](repeating: 0, count: 216) + tlv(0x03, 4)), .unknown),
            ("LOCAL", v2(command: 0x20, family: 0x00, body: []), .local),
            // LOCAL: the block is discarded unread, whatever it holds and whatever family is named.
            ("LOCAL with addresses", v2(command: 0x20, family: 0x11, body: ipv4Block), .local),
            ("LOCAL with an undefined family", v2(command: 0x20, family: 0xFF, body: [1, 2, 3]), .local),
            ("LOCAL with a block that is no TLV", v2(command: 0x20, family: 0x00, body: [9, 9, 9, 9, 9]), .local),
        ]
        for (name, bytes, addresses) in cases {
            XCTAssertEqual(parseEveryWay(bytes), .complete(ProxyProtocolHeader(version: .v2, length: bytes.count, addresses: addresses)), name)
        }
    }

    func testHostileV2Headers() {
        let sig = Array(v2(command: 0x21, family: 0x11, body: [])[0..<12])
        let cases: [(String, [UInt8], ProxyProtocolError.Reason, Int)] = [
            ("signature cut by a request", [0x0D, 0x0A] + Array("GET / HTTP/1.1\r\n\r\n".utf8), .notProxyProtocol, 2),
            ("empty lines then a request", Array("\r\n\r\nGET / HTTP/1.1\r\n".utf8), .notProxyProtocol, 4),
            ("one signature byte off", Array(sig[0..<11]) + [0x0B, 0x21, 0x11, 0, 12] + ipv4Block, .notProxyProtocol, 11),
            ("version 1 in a binary header", sig + [0x11, 0x11, 0, 12] + ipv4Block, .badV2Version, 12),
            ("version 3", sig + [0x31, 0x11, 0, 12] + ipv4Block, .badV2Version, 12),
            ("command 2", sig + [0x22, 0x11, 0, 12] + ipv4Block, .badV2Command, 12),
            ("command 15", sig + [0x2F, 0x11, 0, 12] + ipv4Block, .badV2Command, 12),
            ("family 4", v2(command: 0x21, family: 0x41, body: ipv4Block), .badV2Family, 13),
            ("protocol 3", v2(command: 0x21, family: 0x13, body: ipv4Block), .badV2Family, 13),
            ("family UNSPEC protocol STREAM", v2(command: 0x21, family: 0x01, body: []), .badV2Family, 13),
            ("TCP4 shorter than its addresses", v2(command: 0x21, family: 0x11, body: Array(ipv4Block[0..<11])), .v2AddressesTruncated, 14),
            ("TCP6 with a TCP4 block", v2(command: 0x21, family: 0x21, body: ipv4Block), .v2AddressesTruncated, 14),
            ("UNIX with 215 bytes", v2(command: 0x21, family: 0x31, body: [UInt8](repeating: 0, count: 215)), .v2AddressesTruncated, 14),
            ("length 0xFFFF", v2(command: 0x21, family: 0x11, body: ipv4Block, length: 0xFFFF), .v2TooLong, 14),
            ("one byte over 4 KiB", v2(command: 0x21, family: 0x11, body: ipv4Block + tlv(0xE1, 4096 - 16 - 12 - 3 + 1)), .v2TooLong, 14),
            ("TLV header cut short", v2(command: 0x21, family: 0x11, body: ipv4Block + [0x04, 0x00]), .badV2TLV, 28),
            ("TLV value past the end", v2(command: 0x21, family: 0x11, body: ipv4Block + tlv(0x04, 3, declared: 4)), .badV2TLV, 28),
            ("second TLV past the end", v2(command: 0x21, family: 0x11, body: ipv4Block + tlv(0x01, 1) + tlv(0x02, 10, declared: 0xFFFF)), .badV2TLV, 32),
            ("TLV of 0xFFFF in a short header", v2(command: 0x21, family: 0x00, body: tlv(0x20, 1, declared: 0xFFFF)), .badV2TLV, 16),
        ]
        for (name, bytes, reason, offset) in cases {
            XCTAssertEqual(parseEveryWay(bytes), .error(ProxyProtocolError(reason, at: offset)), name)
        }
        // Exactly at the 4 KiB bound is fine.
        let atLimit = v2(command: 0x21, family: 0x11, body: ipv4Block + tlv(0xE1, 4096 - 16 - 12 - 3))
        XCTAssertEqual(atLimit.count, 4096)
        XCTAssertEqual(parseEveryWay(atLimit), .complete(ProxyProtocolHeader(version: .v2, length: 4096, addresses: tcp("192.0.2.1", "198.51.100.7", 56304, 443))))
        // A smaller configured bound applies to the whole header.
        let tight = ProxyProtocolParser(maxV2Length: 28)
        XCTAssertEqual(parseEveryWay(v2(command: 0x21, family: 0x11, body: ipv4Block), parser: tight),
                       .complete(ProxyProtocolHeader(version: .v2, length: 28, addresses: tcp("192.0.2.1", "198.51.100.7", 56304, 443))))
        XCTAssertEqual(parseEveryWay(v2(command: 0x21, family: 0x11, body: ipv4Block + tlv(4, 0)), parser: tight),
                       .error(ProxyProtocolError(.v2TooLong, at: 14)))
    }

    /// A v2 header that announces more than arrives waits (the header timeout ends it), and never reads past what it got.
    func testAnIncompleteV2HeaderWaits() {
        let full = v2(command: 0x21, family: 0x11, body: ipv4Block + tlv(0x04, 100))
        XCTAssertEqual(parseEveryWay(Array(full.dropLast())), .needMore)
    }

    // MARK: what follows the header

    func testBytesAfterTheHeaderAreNotExamined() {
        let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let headers: [[UInt8]] = [
            Array("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".utf8), Array("PROXY UNKNOWN\r\n".utf8),
            v2(command: 0x21, family: 0x11, body: ipv4Block), v2(command: 0x20, family: 0x00, body: []),
        ]
        for h in headers {
            // Whatever follows (a request, garbage, another header) leaves the answer and its length unchanged.
            let alone = parseEveryWay(h)
            guard case .complete(let header) = alone else {
                XCTFail("\(h.escapedForTesting): \(alone)")
                continue
            }
            XCTAssertEqual(header.length, h.count)
            for tail in [request, [0x0A, 0x0D, 0x00, 0xFF], h] {
                XCTAssertEqual(parseEveryWay(h + tail), alone, (h + tail).escapedForTesting)
            }
        }
    }

    func testResetStartsOver() {
        var p = ProxyProtocolParser()
        let bad = Array("GET /".utf8)
        XCTAssertEqual(bad.withUnsafeBytes { p.parse($0) }, .error(ProxyProtocolError(.notProxyProtocol, at: 0)))
        p.reset()
        let good = Array("PROXY UNKNOWN\r\n".utf8)
        XCTAssertEqual(good.withUnsafeBytes { p.parse($0) }, .complete(ProxyProtocolHeader(version: .v1, length: 15, addresses: .unknown)))
        XCTAssertEqual(p.parse(UnsafeRawBufferPointer(start: nil, count: 0)), .complete(ProxyProtocolHeader(version: .v1, length: 15, addresses: .unknown)))
    }

    func testEmptyInputNeedsMore() {
        var p = ProxyProtocolParser()
        XCTAssertEqual(p.parse(UnsafeRawBufferPointer(start: nil, count: 0)), .needMore)
    }

    // MARK: the writer, read back

    func testWriterOutputExactlyAndReadBack() {
        let cases: [(ProxyEndpoint?, ProxyEndpoint?, String, ProxyProtocolHeader.Addresses)] = [
            (endpoint("203.0.113.9", 40000), endpoint("10.1.2.3", 8080), "PROXY TCP4 203.0.113.9 10.1.2.3 40000 8080\r\n",
             tcp("203.0.113.9", "10.1.2.3", 40000, 8080)),
            (endpoint("2001:db8:0:0:1::1", 1), endpoint("::1", 443), "PROXY TCP6 2001:db8::1:0:0:1 ::1 1 443\r\n",
             tcp("2001:db8::1:0:0:1", "::1", 1, 443)),
            // Mixed families: one line has one family, so the IPv4 end is written mapped.
            (endpoint("192.0.2.1", 5), endpoint("::1", 6), "PROXY TCP6 ::ffff:192.0.2.1 ::1 5 6\r\n", tcp("::ffff:192.0.2.1", "::1", 5, 6)),
            (nil, endpoint("::1", 6), "PROXY UNKNOWN\r\n", .unknown),
            (endpoint("192.0.2.1", 5), nil, "PROXY UNKNOWN\r\n", .unknown),
        ]
        for (s, d, text, addresses) in cases {
            let v1 = ProxyProtocolWriter.v1(source: s, destination: d)
            XCTAssertEqual(v1.escapedForTesting, Array(text.utf8).escapedForTesting)
            XCTAssertEqual(parseEveryWay(v1), .complete(ProxyProtocolHeader(version: .v1, length: v1.count, addresses: addresses)))
            let v2 = ProxyProtocolWriter.v2(source: s, destination: d)
            let expected: ProxyProtocolHeader.Addresses = addresses == .unknown ? .local : addresses
            XCTAssertEqual(parseEveryWay(v2), .complete(ProxyProtocolHeader(version: .v2, length: v2.count, addresses: expected)))
        }
        XCTAssertEqual(ProxyProtocolWriter.v2(source: endpoint("192.0.2.1", 56304), destination: endpoint("198.51.100.7", 443)),
                       v2(command: 0x21, family: 0x11, body: ipv4Block))
        XCTAssertEqual(ProxyProtocolWriter.v2(source: endpoint("2001:db8::1", 12345), destination: endpoint("::1", 80)),
                       v2(command: 0x21, family: 0x21, body: ipv6Block))
        XCTAssertEqual(ProxyProtocolWriter.v2Local(), v2(command: 0x20, family: 0x00, body: []))
    }
}

extension Array where Element == UInt8 {
    /// Printable ASCII as is, the rest escaped, for failure messages.
    var escapedForTesting: String {
        var out = ""
        for b in self {
            switch b {
            case 0x0D: out += "\\r"
            case 0x0A: out += "\\n"
            case 0x20..<0x7F where b != 0x5C: out.unicodeScalars.append(Unicode.Scalar(b))
            default: out += "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
            }
        }
        return "\"" + out + "\""
    }
}
