// The one JSON escaper: table tests for every class of input byte, bounded output, and a randomized check against
// Foundation's parser and Swift's own UTF-8 repair.
import Foundation
import HuddleJSON
import XCTest

final class JSONEscapingTests: XCTestCase {
    private func escaped(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { JSONEscaping.appendQuoted($0, to: &out) }
        return Array(out.dropFirst().dropLast())
    }

    private func escapedText(_ bytes: [UInt8]) -> String { String(decoding: escaped(bytes), as: UTF8.self) }

    /// Parses `"…"` with Foundation and returns the string, failing the test when it is not valid JSON.
    private func parse(_ quoted: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> String? {
        let doc = Data("[".utf8) + Data(quoted) + Data("]".utf8)
        do {
            let a = try JSONSerialization.jsonObject(with: doc) as? [Any]
            return a?.first as? String
        } catch {
            XCTFail("not valid JSON: \(String(decoding: quoted, as: UTF8.self)) (\(quoted)): \(error)", file: file, line: line)
            return nil
        }
    }

    func testQuotesBackslashAndShortForms() {
        let table: [(String, String)] = [
            ("", ""),
            ("plain text 123", "plain text 123"),
            ("a\"b", "a\\\"b"),
            ("back\\slash", "back\\\\slash"),
            ("\\\"", "\\\\\\\""),
            ("tab\there", "tab\\there"),
            ("line\nfeed", "line\\nfeed"),
            ("cr\rlf\n", "cr\\rlf\\n"),
            ("\u{08}\u{0C}", "\\b\\f"),
            ("/slash stays", "/slash stays"),
            ("'single' <tag> & co", "'single' <tag> & co"),
        ]
        for (input, want) in table {
            XCTAssertEqual(escapedText(Array(input.utf8)), want, input.debugDescription)
            XCTAssertEqual(JSONEscaping.quoted(input), "\"" + want + "\"")
        }
    }

    func testEveryControlCharacterAndDEL() {
        let short: [UInt8: String] = [0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"]
        for c in UInt8(0)..<0x20 {
            let want = short[c] ?? "\\u00" + (c < 0x10 ? "0" : "") + String(c, radix: 16)
            XCTAssertEqual(escapedText([c]), want, "byte \(c)")
            XCTAssertEqual(escapedText([0x61, c, 0x62]), "a" + want + "b", "byte \(c) between letters")
            XCTAssertEqual(parse(Array(("\"" + want + "\"").utf8)), String(UnicodeScalar(c)), "byte \(c) round trip")
        }
        XCTAssertEqual(escapedText([0x7F]), "\\u007f")
        XCTAssertEqual(escapedText([0x1F]), "\\u001f")
        XCTAssertEqual(escapedText([0x00]), "\\u0000")
    }

    func testMultiByteUTF8IsCopied() {
        for s in ["é", "héllo wörld", "€", "☃ snow", "𝄞 clef", "日本語", "😀😀", "\u{10FFFF}", "\u{80}", "\u{7FF}\u{800}\u{FFFF}\u{10000}"] {
            XCTAssertEqual(escaped(Array(s.utf8)), Array(s.utf8), s)
            XCTAssertEqual(parse(Array(JSONEscaping.quoted(s).utf8)), s)
        }
    }

    func testInvalidUTF8BecomesReplacementCharacters() {
        let r = "\u{FFFD}"
        let table: [([UInt8], String)] = [
            ([0xFF], r),
            ([0x80], r),                                    // lone continuation byte
            ([0x80, 0x80], r + r),
            ([0xC0, 0x80], r + r),                          // overlong NUL
            ([0xC1, 0xBF], r + r),                          // overlong
            ([0xC3], r),                                    // cut at the end
            ([0xC3, 0x41], r + "A"),                        // cut before ASCII
            ([0xE0, 0x80, 0x80], r + r + r),                // overlong 3-byte
            ([0xE2, 0x82], r),                              // cut 3-byte: one replacement for the maximal subpart
            ([0xE2, 0x82, 0x41], r + "A"),
            ([0xED, 0xA0, 0x80], r + r + r),                // UTF-16 surrogate D800
            ([0xF0, 0x80, 0x80, 0x80], r + r + r + r),      // overlong 4-byte
            ([0xF0, 0x9F, 0x98], r),                        // cut 4-byte
            ([0xF4, 0x90, 0x80, 0x80], r + r + r + r),      // above U+10FFFF
            ([0xF5, 0x80], r + r),
            ([0x61, 0xFE, 0x22, 0xC3, 0xA9], "a" + r + "\\\"é"),
            ([0x22, 0xFF, 0x0A], "\\\"" + r + "\\n"),
        ]
        for (input, want) in table {
            let got = escapedText(input)
            XCTAssertEqual(got, want, "\(input)")
            // The same repair as Swift's decoder, and always parseable.
            XCTAssertEqual(parse(Array(JSONEscaping.quoted(bytes: input).utf8)), String(decoding: input, as: UTF8.self), "\(input)")
        }
    }

    func testEscapedCountMatchesOutput() {
        for input in [[], [0x41], [0x00, 0x22, 0x5C], [0xFF, 0xC3, 0xA9, 0x1F], Array("𝄞 \"x\"\n".utf8)] as [[UInt8]] {
            let n = input.withUnsafeBytes { JSONEscaping.escapedCount($0) }
            XCTAssertEqual(n, escaped(input).count, "\(input)")
            XCTAssertLessThanOrEqual(n, input.count * JSONEscaping.maxExpansion)
        }
    }

    /// A short output buffer cuts at a unit boundary: what was written is still a complete string body.
    func testBoundedOutputNeverSplitsAUnit() {
        let input: [UInt8] = Array("ab\"c\u{01}é𝄞".utf8) + [0xFF, 0x7A]
        let full = escaped(input)
        for cap in 0...(full.count + 2) {
            var out = [UInt8](repeating: 0, count: cap)
            let r = input.withUnsafeBytes { i in out.withUnsafeMutableBytes { JSONEscaping.escape(i, into: $0) } }
            let written = Array(out[0..<r.written])
            XCTAssertTrue(full.starts(with: written), "cap \(cap)")
            XCTAssertNotNil(parse([0x22] + written + [0x22]), "cap \(cap)")
            // The part read is exactly what was written.
            XCTAssertEqual(escaped(Array(input[0..<r.read])), written, "cap \(cap)")
            XCTAssertEqual(r.read == input.count, r.written == full.count, "cap \(cap)")
        }
    }

    /// Random byte strings (biased towards the interesting bytes): always valid JSON, decoding to what Swift's own
    /// UTF-8 repair makes of the input.
    func testRandomBytesAlwaysGiveValidJSON() {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("testRandomBytesAlwaysGiveValidJSON seed \(seed)")
        var rng = SplitMix64(seed: seed)
        let interesting: [UInt8] = [0x00, 0x1F, 0x20, 0x22, 0x5C, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF,
                                    0xF0, 0xF4, 0xF5, 0xFF, 0x41, 0x9F, 0xA0, 0x8F, 0x90]
        for _ in 0..<3000 {
            let n = Int.random(in: 0...24, using: &rng)
            let input: [UInt8] = (0..<n).map { _ in
                Bool.random(using: &rng) ? interesting.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
            }
            let q = JSONEscaping.quoted(bytes: input)
            var expected = String(decoding: input, as: UTF8.self)
            // Foundation's parser drops a byte-order mark at the start of a string value; the JSON is still valid.
            if expected.unicodeScalars.first == "\u{FEFF}" { expected.unicodeScalars.removeFirst() }
            XCTAssertEqual(parse(Array(q.utf8)), expected, "seed \(seed): \(input)")
        }
    }
}

/// A seeded generator, so a failing random case can be replayed from the seed the test prints.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
