// Tests of the chunked-body end finder over whole, bytewise and random splits, with extensions and trailers.

import HuddleHTTP
import XCTest

final class ChunkedBodyScannerTests: XCTestCase {
    enum Outcome: Equatable {
        case needMore
        case finished(at: Int, dataBytes: Int64)
        case error(HTTPParseError)
    }

    /// Feeds `bytes` in pieces and reports where (as an offset into `bytes`) the body ended.
    func scan(_ bytes: [UInt8], mode: FeedModeForTesting, seed: UInt64,
              scanner: ChunkedBodyScanner = ChunkedBodyScanner()) -> Outcome {
        var scanner = scanner
        var rng = SeededRandomForTesting(seed: seed)
        var offset = 0
        return bytes.withUnsafeBytes { all in
            for length in mode.pieceLengths(count: all.count, rng: &rng) {
                let piece = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + length)])
                switch scanner.scan(piece) {
                case .consumed(let n):
                    XCTAssertEqual(n, length)
                    offset += n
                case .finished(let n):
                    XCTAssertTrue(scanner.isFinished)
                    return .finished(at: offset + n, dataBytes: scanner.dataBytes)
                case .error(let error):
                    return .error(error)
                }
            }
            return .needMore
        }
    }

    func testBodiesEndWhereExpectedInEveryFeedMode() {
        let big = String(repeating: "z", count: 5000)
        let cases: [(String, Int, Int64)] = [
            ("0\r\n\r\n", 5, 0),
            ("5\r\nhello\r\n0\r\n\r\n", 15, 5),
            ("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 15, 5),
            ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 26, 11),
            ("A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", 35, 20),
            ("0005\r\nhello\r\n000\r\n\r\n", 20, 5),
            ("5;name=value\r\nhello\r\n0;last\r\n\r\n", 31, 5),
            ("5 ;ext=\"quoted; value\"\r\nhello\r\n0\r\n\r\n", 36, 5),
            ("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:\r\n\r\nnext", 42, 5),
            ("5\r\n\r\n\r\n\n\r\n0\r\n\r\n", 15, 5),
            ("1388\r\n" + big + "\r\n0\r\n\r\n", 5013, 5000),
        ]
        for (raw, end, data) in cases {
            let bytes = [UInt8](ascii: raw)
            for mode in FeedModeForTesting.allCases {
                for seed: UInt64 in mode == .randomSplits ? [1, 2, 3] : [0] {
                    XCTAssertEqual(scan(bytes, mode: mode, seed: seed), .finished(at: end, dataBytes: data),
                                   "\(raw.prefix(60).debugDescription) fed \(mode) seed \(seed)")
                }
            }
        }
    }

    func testIncompleteBodiesNeedMore() {
        for raw in ["", "5", "5\r", "5\r\nhel", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\n", "0\r\nX: 1\r\n", "0\r\n\r"] {
            for mode in FeedModeForTesting.allCases {
                XCTAssertEqual(scan([UInt8](ascii: raw), mode: mode, seed: 3), .needMore, "\(raw.debugDescription) fed \(mode)")
            }
        }
    }

    func testMalformedBodiesAreRejectedAtTheSameOffsetInEveryFeedMode() {
        let cases: [(String, HTTPParseError.Reason, Int)] = [
            ("\r\n", .badChunkSize, 0),
            (";x\r\n", .badChunkSize, 0),
            ("x\r\n", .badChunkSize, 0),
            ("-5\r\n", .badChunkSize, 0),
            ("0x5\r\n", .badChunkSize, 1),
            ("5 \r\nhello\r\n", .badChunkSize, 2),
            ("5\nhello\r\n", .bareLF, 1),
            ("5\rhello\r\n", .bareCR, 2),
            ("5;a\nhello\r\n", .bareLF, 3),
            ("5;a\u{0}\r\nhello\r\n", .badChunkExtension, 3),
            ("5\r\nhelloX\r\n", .missingChunkDataCRLF, 8),
            ("5\r\nhello\rX", .missingChunkDataCRLF, 9),
            ("5\r\nhello\n0\r\n\r\n", .missingChunkDataCRLF, 8),
            ("4000000000000001\r\n", .chunkSizeOverflow, 15),
            ("FFFFFFFFFFFFFFFFFFFF\r\n", .chunkSizeOverflow, 15),
            ("0\r\n x: 1\r\n\r\n", .badTrailer, 3),
            ("0\r\nX-A 1\r\n\r\n", .badTrailer, 6),
            ("0\r\nX: 1\n\r\n", .bareLF, 7),
            ("0\r\nX: 1\rY\r\n", .bareCR, 8),
            ("0\r\n\n", .bareLF, 3),
            ("0\r\n\rX", .bareCR, 4),
        ]
        for (raw, reason, offset) in cases {
            let expected = Outcome.error(HTTPParseError(status: 400, reason: reason, offset: offset))
            for mode in FeedModeForTesting.allCases {
                XCTAssertEqual(scan([UInt8](ascii: raw), mode: mode, seed: 5), expected, "\(raw.debugDescription) fed \(mode)")
            }
        }
    }

    func testChunkSizeLimitIsTwoToTheSixtyTwo() {
        var scanner = ChunkedBodyScanner()
        let exact = [UInt8](ascii: "4000000000000000\r\nabc")
        XCTAssertEqual(exact.withUnsafeBytes { scanner.scan($0) }, .consumed(exact.count))
        XCTAssertEqual(scanner.dataBytes, 3)
    }

    func testLineAndTrailerLimits() {
        let small = ChunkedBodyScanner(maxChunkLineLength: 8, maxTrailerSize: 10)
        let longExtension = [UInt8](ascii: "5;abcdefgh\r\nhello\r\n0\r\n\r\n")
        let longTrailer = [UInt8](ascii: "0\r\nX-Trailer: 12345\r\n\r\n")
        let fits = [UInt8](ascii: "5;abcdef\r\nhello\r\n0\r\nX: 12345\r\n\r\n")
        for mode in FeedModeForTesting.allCases {
            XCTAssertEqual(scan(longExtension, mode: mode, seed: 1, scanner: small),
                           .error(HTTPParseError(status: 400, reason: .chunkLineTooLong, offset: 8)), "\(mode)")
            XCTAssertEqual(scan(longTrailer, mode: mode, seed: 1, scanner: small),
                           .error(HTTPParseError(status: 400, reason: .trailerTooLarge, offset: 13)), "\(mode)")
            XCTAssertEqual(scan(fits, mode: mode, seed: 1, scanner: small), .finished(at: fits.count, dataBytes: 5), "\(mode)")
        }
    }

    func testResetAllowsTheNextBodyAndErrorsRepeat() {
        var scanner = ChunkedBodyScanner()
        let body = [UInt8](ascii: "3\r\nabc\r\n0\r\n\r\n")
        XCTAssertEqual(body.withUnsafeBytes { scanner.scan($0) }, .finished(body.count))
        XCTAssertEqual(body.withUnsafeBytes { scanner.scan($0) }, .finished(0))
        scanner.reset()
        XCTAssertEqual(scanner.dataBytes, 0)
        let bad = [UInt8](ascii: "z")
        let first = bad.withUnsafeBytes { scanner.scan($0) }
        XCTAssertEqual(first, .error(HTTPParseError(status: 400, reason: .badChunkSize, offset: 0)))
        XCTAssertEqual(body.withUnsafeBytes { scanner.scan($0) }, first)
        scanner.reset()
        XCTAssertEqual(body.withUnsafeBytes { scanner.scan($0) }, .finished(body.count))
        XCTAssertEqual(scanner.dataBytes, 3)
    }
}
