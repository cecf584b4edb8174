// Accept-Encoding as a table: which field values accept gzip (RFC 9110 §12.5.3), and chunked decoding (payload
// spans) through the scanner the relay uses to feed a compressor.

import HuddleHTTP
import XCTest

final class AcceptEncodingTests: XCTestCase {
    func accepts(_ values: [String]) -> Bool {
        var a = AcceptEncodingGzip()
        // All header values in one buffer, as the parser leaves them.
        let joined = values.joined(separator: "\n")
        var ranges: [Range<Int>] = []
        var start = 0
        for v in values {
            ranges.append(start..<(start + v.utf8.count))
            start += v.utf8.count + 1
        }
        Array(joined.utf8).withUnsafeBytes { bytes in
            for r in ranges { a.add(r, in: bytes) }
        }
        return a.acceptsGzip
    }

    func testTheTable() {
        let rows: [([String], Bool, String)] = [
            (["gzip"], true, "plain gzip"),
            (["GZIP"], true, "codings are case-insensitive"),
            (["Gzip;Q=1"], true, "q is case-insensitive"),
            (["deflate, gzip;q=1.0"], true, "second element"),
            (["deflate,gzip"], true, "no space after the comma"),
            (["gzip, deflate, br, zstd"], true, "a browser's"),
            (["gzip;q=0"], false, "q=0 refuses"),
            (["gzip; q=0.000"], false, "q=0.000 refuses"),
            (["gzip ; q=0.5"], true, "OWS around ';'"),
            (["gzip;q=0.001"], true, "the smallest positive weight"),
            (["gzip;q=1.5"], false, "weight above 1 is malformed: not accepted"),
            (["gzip;q=1.001"], false, "1.001 is malformed"),
            (["gzip;q=0.0001"], false, "four decimals is malformed"),
            (["gzip;q="], false, "empty weight is malformed"),
            (["gzip;q=abc"], false, "non-numeric weight is malformed"),
            (["gzip;level=9"], true, "an unknown parameter is ignored"),
            (["x-gzip"], true, "x-gzip is gzip"),
            (["*"], true, "* accepts gzip"),
            (["*;q=0"], false, "*;q=0 refuses everything unlisted"),
            (["*, gzip;q=0"], false, "an explicit gzip;q=0 wins over *"),
            (["gzip;q=0, *"], false, "in either order"),
            (["gzip, *;q=0"], true, "an explicit gzip wins over *;q=0"),
            (["identity"], false, "identity only"),
            ([""], false, "empty value: identity only"),
            ([], false, "no header: identity only"),
            (["br, deflate"], false, "other codings only"),
            (["gzipx"], false, "not a prefix match"),
            (["xgzip"], false, "not a suffix match"),
            ([" , ,gzip"], true, "empty elements are skipped"),
            (["deflate;q=0.5, gzip;q=0.1"], true, "any positive weight accepts"),
            (["br", "gzip"], true, "two header lines combine"),
            (["gzip;q=0", "*"], false, "an explicit refusal on one line, * on another"),
            (["gzip;q=0", "gzip"], true, "the best weight of repeated entries counts"),
        ]
        for (values, want, why) in rows {
            XCTAssertEqual(accepts(values), want, "\(values): \(why)")
        }
    }

    /// Decoding with the scanner: `scan(stopAtData:)` stops where payload begins, `consumeData` takes payload; in
    /// any split the payload comes out whole and in order, and the end is found where the plain scan finds it.
    func testChunkedDecodingYieldsThePayloadInAnySplit() {
        let body = "5\r\nhello\r\n1;ext=1\r\n \r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\nNEXT"
        let bytes = Array(body.utf8)
        for mode in FeedModeForTesting.allCases {
            for seed in UInt64(1)...20 {
                var rng = SeededRandomForTesting(seed: seed)
                var scanner = ChunkedBodyScanner()
                var payload: [UInt8] = []
                var offset = 0
                var finishedAt: Int? = nil
                bytes.withUnsafeBytes { all in
                    for length in mode.pieceLengths(count: all.count, rng: &rng) where finishedAt == nil {
                        var piece = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + length)])
                        offset += length
                        var base = offset - length
                        while !piece.isEmpty && finishedAt == nil {
                            let pending = scanner.pendingDataBytes
                            if pending > 0 {
                                // Take at most 3 payload bytes at a time, as a compressor with little room would.
                                let n = min(piece.count, Int(pending), 3)
                                payload += piece[0..<n]
                                scanner.consumeData(n)
                                piece = UnsafeRawBufferPointer(rebasing: piece[n...])
                                base += n
                                continue
                            }
                            switch scanner.scan(piece, stopAtData: true) {
                            case .consumed(let n):
                                XCTAssertTrue(n == piece.count || scanner.pendingDataBytes > 0, "stops only at payload or the end")
                                piece = UnsafeRawBufferPointer(rebasing: piece[n...])
                                base += n
                            case .finished(let n):
                                finishedAt = base + n
                            case .error(let e):
                                XCTFail("\(mode) seed \(seed): \(e)")
                                return
                            }
                        }
                    }
                }
                XCTAssertEqual(String(decoding: payload, as: UTF8.self), "hello 0123456789abcdef", "\(mode) seed \(seed)")
                XCTAssertEqual(finishedAt, bytes.count - 4, "\(mode) seed \(seed): the body ends before NEXT")
                XCTAssertEqual(scanner.dataBytes, 22)
                if mode == .whole { break }
            }
        }
    }
}
