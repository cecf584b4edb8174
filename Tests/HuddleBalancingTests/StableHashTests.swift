// XXH64 must be the real algorithm: published vectors, every length path, and constants other processes rely on.

import HuddleBalancing
import XCTest

final class StableHashTests: XCTestCase {
    /// xxHash's own sanity buffer (cli/xsum_sanity_check.c): byte i is the top byte of PRIME32 × PRIME64^i.
    static let sanityBuffer: [UInt8] = {
        var generator: UInt64 = 2_654_435_761
        return (0..<222).map { _ in
            defer { generator &*= 11_400_714_785_074_694_797 }
            return UInt8(truncatingIfNeeded: generator >> 56)
        }
    }()

    func testPublishedSanityVectors() {
        let prime32: UInt64 = 2_654_435_761
        let vectors: [(length: Int, seed: UInt64, expected: UInt64)] = [
            (0, 0, 0xEF46_DB37_51D8_E999),
            (0, prime32, 0xAC75_FDA2_929B_17EF),
            (1, 0, 0xE934_A84A_DB05_2768),
            (1, prime32, 0x5014_6076_43A9_B4C3),
            (4, 0, 0x9136_A0DC_A574_57EE),
            (14, 0, 0x8282_DCC4_994E_35C8),
            (14, prime32, 0xC3BD_6BF6_3DEB_6DF0),
            (222, 0, 0xB641_AE8C_B691_C174),
            (222, prime32, 0x20CB_8AB7_AE10_C14A),
        ]
        for v in vectors {
            let input = Array(Self.sanityBuffer.prefix(v.length))
            XCTAssertEqual(StableHash.hash64(input, seed: v.seed), v.expected, "length \(v.length) seed \(v.seed)")
            input.withUnsafeBytes { raw in
                XCTAssertEqual(StableHash.hash64(raw, seed: v.seed), v.expected, "raw, length \(v.length)")
            }
        }
    }

    func testWellKnownStrings() {
        XCTAssertEqual(StableHash.hash64(""), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(StableHash.hash64("a"), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(StableHash.hash64("abc"), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(StableHash.hash64("Nobody inspects the spammish repetition"), 0xFBCE_A83C_8A37_8BF1)
    }

    /// Computed once with the reference C library (libxxhash 0.8.1) and pasted: a group key must map to the same hash
    /// in every process, on every machine, in every release of Huddle.
    func testGroupKeyConstants() {
        XCTAssertEqual(StableHash.hash64("group-0"), 0xAD59_51E3_D712_014F)
        XCTAssertEqual(StableHash.hash64("group-9999"), 0x49F8_87CB_4576_4687)
        XCTAssertEqual(StableHash.hash64("message digest"), 0x066E_D728_FCEE_B3BE)
        XCTAssertEqual(StableHash.hash64("abcdefghijklmnopqrstuvwxyz"), 0xCFE1_F278_FA89_835C)
    }

    func testStringArrayPointerAndNonContiguousInputsAgree() {
        for text in ["", "x", "room-42", "ünïcödé 🚀 rooms", String(repeating: "0123456789", count: 13)] {
            let bytes = Array(text.utf8)
            let expected = bytes.withUnsafeBytes { StableHash.hash64($0, seed: 7) }
            XCTAssertEqual(StableHash.hash64(text, seed: 7), expected)
            XCTAssertEqual(StableHash.hash64(bytes, seed: 7), expected)
            XCTAssertEqual(StableHash.hash64(bytes[...], seed: 7), expected)
            // A lazy collection has no contiguous storage: the copying path.
            XCTAssertEqual(StableHash.hash64(bytes.lazy.map { $0 }, seed: 7), expected)
            // A bridged/foreign-like string: a Substring's UTF-8 view.
            XCTAssertEqual(StableHash.hash64(Array(("<" + text + ">").dropFirst().dropLast().utf8), seed: 7), expected)
        }
    }

    func testEveryLengthFromZeroTo100MatchesTheWordAndSliceForms() {
        // Lengths 0...100 cross the 1-, 4-, 8- and 32-byte paths; a slice at an odd offset checks unaligned loads.
        let buffer = Self.sanityBuffer
        var seen = Set<UInt64>()
        for length in 0...100 {
            let aligned = StableHash.hash64(Array(buffer[0..<length]))
            let unaligned = StableHash.hash64(Array(buffer[1..<(length + 1)]))
            let sliced = buffer.withUnsafeBytes { StableHash.hash64(UnsafeRawBufferPointer(rebasing: $0[1..<(length + 1)])) }
            XCTAssertEqual(unaligned, sliced, "length \(length)")
            seen.insert(aligned)
        }
        XCTAssertEqual(seen.count, 101, "every prefix hashes differently")
        for word: UInt64 in [0, 1, 0xDEAD_BEEF, .max, 0x0123_4567_89AB_CDEF] {
            var little = word.littleEndian
            let viaBytes = withUnsafeBytes(of: &little) { StableHash.hash64($0, seed: 99) }
            XCTAssertEqual(StableHash.hash64(word: word, seed: 99), viaBytes)
        }
    }

    func testSeedChangesTheHash() {
        XCTAssertNotEqual(StableHash.hash64("room", seed: 0), StableHash.hash64("room", seed: 1))
    }
}
