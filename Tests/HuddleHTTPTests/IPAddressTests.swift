// IPAddress: the strict text parsers against glibc's inet_pton (an independent implementation) on tables and on
// seeded random strings, and the RFC 5952 printed form.

import Glibc
import HuddleHTTP
import XCTest

final class IPAddressTests: XCTestCase {
    func parse4(_ s: String) -> IPAddress? {
        let b = Array(s.utf8)
        return b.withUnsafeBytes { IPAddress.parseIPv4($0, 0..<b.count) }
    }

    func parse6(_ s: String) -> IPAddress? {
        let b = Array(s.utf8)
        return b.withUnsafeBytes { IPAddress.parseIPv6($0, 0..<b.count) }
    }

    /// glibc's reading of `s`, as 16 bytes, or nil.
    func pton6(_ s: String) -> [UInt8]? {
        var a = in6_addr()
        guard inet_pton(AF_INET6, s, &a) == 1 else { return nil }
        return withUnsafeBytes(of: &a) { Array($0) }
    }

    func pton4(_ s: String) -> [UInt8]? {
        var a = in_addr()
        guard inet_pton(AF_INET, s, &a) == 1 else { return nil }
        return withUnsafeBytes(of: &a) { Array($0) }
    }

    func testIPv4Table() {
        let good: [(String, [UInt8])] = [
            ("0.0.0.0", [0, 0, 0, 0]), ("255.255.255.255", [255, 255, 255, 255]), ("192.168.0.1", [192, 168, 0, 1]),
            ("10.0.10.100", [10, 0, 10, 100]),
        ]
        for (text, bytes) in good {
            XCTAssertEqual(parse4(text)?.bytes, bytes, text)
            XCTAssertEqual(parse4(text)?.description, text)
        }
        // Leading zeros (octal in some readers), out of range, wrong part counts, anything but digits and dots.
        for bad in ["", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1.2.3.00", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4", "1..2.3",
                    "1.2.3.", ".1.2.3", "1.2.3.-4", "1.2.3.+4", "1.2.3.4/8", "0x1.2.3.4", "1.2.3.1000", "1234.1.1.1", "١.2.3.4"] {
            XCTAssertNil(parse4(bad), bad)
        }
    }

    func testIPv6Table() {
        let good: [(String, String)] = [
            ("::", "::"), ("::1", "::1"), ("1::", "1::"), ("2001:db8::1", "2001:db8::1"),
            ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("1:0:0:2::", "1:0:0:2::"), ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("1:0:2:0:0:3:0:0", "1:0:2::3:0:0"), ("0:0:1:0:0:1:0:0", "::1:0:0:1:0:0"), ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"), ("::FFFF:10.0.0.1", "::ffff:10.0.0.1"), ("::1.2.3.4", "::102:304"),
            ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"), ("0::0", "::"), ("fe80::1:2", "fe80::1:2"),
        ]
        for (text, printed) in good {
            guard let a = parse6(text) else {
                XCTFail("\(text) did not parse")
                continue
            }
            XCTAssertEqual(a.bytes, pton6(text), text)
            XCTAssertEqual(a.description, printed, text)
            XCTAssertEqual(parse6(printed), a, "the printed form of \(text) reads back")
        }
        for bad in ["", ":", ":::", "1", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", ":1::", "1::2:", "12345::",
                    "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "fe80::1%eth0", "[::1]", "::1 ", "g::", "1:2:3:4:5:6:7:1.2.3.4",
                    "::1.2.3", "::01.2.3.4", "::1.2.3.4:5", "1.2.3.4", "::ffff:1.2.3.4.5", " ::1", "::-1"] {
            XCTAssertNil(parse6(bad), bad)
        }
    }

    /// Seeded random strings over the address alphabet: accepted exactly when inet_pton accepts them (glibc also
    /// refuses IPv4 parts with leading zeros), with the same bytes; and every printed form reads back.
    func testAgreesWithInetPtonOnRandomStrings() {
        var rng = SeededRandomForTesting(seed: 0x1b6)
        let alphabet = Array("0123456789abcdefABCDEF:::..".utf8)
        var accepted6 = 0, accepted4 = 0
        for _ in 0..<200_000 {
            let n = Int.random(in: 1...24, using: &rng)
            var s = (0..<n).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
            let decimal = s.filter { $0 == 0x2E || ($0 >= 0x30 && $0 <= 0x39) }
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: s = Array("::ffff:".utf8) + decimal
            case 1: s = (0..<4).map { _ in Array(String(Int.random(in: 0...300, using: &rng)).utf8) }.joined(separator: [0x2E]).map { $0 }
                if Int.random(in: 0..<3, using: &rng) == 0 { s.insert(alphabet[Int.random(in: 0..<alphabet.count, using: &rng)], at: Int.random(in: 0...s.count, using: &rng)) }
            default: break
            }
            let text = String(decoding: s, as: UTF8.self)
            let mine6 = parse6(text)
            XCTAssertEqual(mine6?.bytes, pton6(text), "IPv6 \(text)")
            if let a = mine6 {
                accepted6 += 1
                XCTAssertEqual(parse6(a.description), a, "printed \(a) of \(text)")
                XCTAssertEqual(pton6(a.description), a.bytes, "glibc reads the printed \(a)")
            }
            let mine4 = parse4(text)
            XCTAssertEqual(mine4?.bytes, pton4(text), "IPv4 \(text)")
            if mine4 != nil { accepted4 += 1 }
        }
        // The generator must actually reach valid addresses, or the agreement says little.
        XCTAssertGreaterThan(accepted6, 500)
        XCTAssertGreaterThan(accepted4, 1000)
    }

    func testRandomAddressesPrintAsInetNtopReadsThem() {
        var rng = SeededRandomForTesting(seed: 7)
        for k in 0..<20_000 {
            // Sparse groups, so zero runs of every length and position occur.
            var bytes = [UInt8](repeating: 0, count: 16)
            for g in 0..<8 where Int.random(in: 0..<3, using: &rng) == 0 {
                bytes[2 * g] = k % 2 == 0 ? 0 : UInt8.random(in: 0...255, using: &rng)
                bytes[2 * g + 1] = UInt8.random(in: 1...255, using: &rng)
            }
            let a = IPAddress(bytes: bytes)!
            XCTAssertEqual(a.bytes, bytes)
            XCTAssertEqual(pton6(a.description), bytes, a.description)
            XCTAssertEqual(parse6(a.description), a)
            // RFC 5952: lower case, and no "::" standing for a single group.
            XCTAssertEqual(a.description, a.description.lowercased())
            if let r = a.description.range(of: "::") {
                let groups = a.description.split(separator: ":", omittingEmptySubsequences: true).count
                XCTAssertLessThanOrEqual(groups, 6, "\(a) uses :: for one group (\(r))")
            }
        }
    }

    func testFamiliesAndMapping() {
        let v4 = IPAddress(ipv4: 0x7F00_0001)
        XCTAssertFalse(v4.isIPv6)
        XCTAssertEqual(v4.byteCount, 4)
        XCTAssertEqual(v4.description, "127.0.0.1")
        XCTAssertEqual(v4.asIPv6.description, "::ffff:127.0.0.1")
        XCTAssertTrue(v4.asIPv6.isIPv4Mapped)
        XCTAssertNotEqual(v4, v4.asIPv6)
        XCTAssertNil(IPAddress(bytes: [1, 2, 3]))
        XCTAssertEqual(IPAddress(bytes: [10, 1, 2, 3])?.description, "10.1.2.3")
    }
}
