// Test helpers that feed a message to a parser whole, one byte at a time, or in seeded random splits.

import HuddleHTTP

/// SplitMix64: a fixed seed gives the same splits on every run and machine.
struct SeededRandomForTesting: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476C_E5E4_D9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum FeedModeForTesting: CustomStringConvertible, CaseIterable {
    case whole, byteAtATime, randomSplits

    var description: String {
        switch self {
        case .whole: return "whole"
        case .byteAtATime: return "byte at a time"
        case .randomSplits: return "random splits"
        }
    }

    /// Lengths of the growing prefixes the caller has received, ending with the whole message.
    func prefixLengths(count: Int, rng: inout SeededRandomForTesting) -> [Int] {
        switch self {
        case .whole: return [count]
        case .byteAtATime: return count == 0 ? [0] : Array(1...count)
        case .randomSplits:
            var cuts: [Int] = []
            var at = 0
            while at < count {
                at = min(count, at + Int.random(in: 1...max(1, count / 3 + 1), using: &rng))
                cuts.append(at)
            }
            return cuts.isEmpty ? [0] : cuts
        }
    }

    /// Lengths of consecutive pieces (for scanners that take the next bytes rather than a growing buffer).
    func pieceLengths(count: Int, rng: inout SeededRandomForTesting) -> [Int] {
        var previous = 0
        return prefixLengths(count: count, rng: &rng).map { end in
            defer { previous = end }
            return end - previous
        }
    }
}

/// Feeds `message` to a fresh request parser the way a socket would deliver it.
func parseRequestForTesting(_ message: [UInt8], mode: FeedModeForTesting, seed: UInt64 = 42,
                            parser: HTTPRequestParser = HTTPRequestParser()) -> (HTTPParseResult, HTTPRequestHead) {
    var rng = SeededRandomForTesting(seed: seed)
    var parser = parser
    var head = HTTPRequestHead()
    var result = HTTPParseResult.needMore
    message.withUnsafeBytes { all in
        for end in mode.prefixLengths(count: all.count, rng: &rng) {
            result = parser.parse(UnsafeRawBufferPointer(rebasing: all[0..<end]), into: &head)
            if result != .needMore { break }
        }
    }
    return (result, head)
}

func parseResponseForTesting(_ message: [UInt8], mode: FeedModeForTesting, seed: UInt64 = 42,
                             parser: HTTPResponseParser = HTTPResponseParser()) -> (HTTPParseResult, HTTPResponseHead) {
    var rng = SeededRandomForTesting(seed: seed)
    var parser = parser
    var head = HTTPResponseHead()
    var result = HTTPParseResult.needMore
    message.withUnsafeBytes { all in
        for end in mode.prefixLengths(count: all.count, rng: &rng) {
            result = parser.parse(UnsafeRawBufferPointer(rebasing: all[0..<end]), into: &head)
            if result != .needMore { break }
        }
    }
    return (result, head)
}

extension Array where Element == UInt8 {
    init(ascii: String) { self = Array(ascii.utf8) }

    func string(_ range: Range<Int>?) -> String? {
        guard let range else { return nil }
        return String(decoding: self[range], as: UTF8.self)
    }
}
