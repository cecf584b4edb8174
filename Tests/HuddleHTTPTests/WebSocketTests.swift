// SHA-1 and base64 vectors, the RFC 6455 accept value, upgrade detection, and frame encode/decode.

import Foundation
import HuddleHTTP
import XCTest

final class WebSocketTests: XCTestCase {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func testSHA1Vectors() {
        let vectors: [([UInt8], String)] = [
            ([], "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (Array("abc".utf8), "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8), "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
            ([UInt8](repeating: 0x61, count: 55), "c1c8bbdc22796e28c0e15163d20899b65621d65a"),
            ([UInt8](repeating: 0x61, count: 56), "c2db330f6083854c99d4b5bfb6e8f29f201be699"),
            ([UInt8](repeating: 0x61, count: 64), "0098ba824b5c16427bd7a1122a5a442a25ec644d"),
            ([UInt8](repeating: 0x61, count: 1000), "291e9a6c66994949b57ba5e650361e98fc36b1ba"),
        ]
        for (input, digest) in vectors {
            XCTAssertEqual(hex(SHA1.hash(input)), digest, "\(input.count) bytes")
            var incremental = SHA1()
            for piece in stride(from: 0, to: input.count, by: 7) { incremental.update(input[piece..<min(input.count, piece + 7)]) }
            XCTAssertEqual(hex(incremental.finalize()), digest, "\(input.count) bytes in 7-byte pieces")
        }
    }

    func testBase64Vectors() {
        let vectors = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                       ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(Array(encoded.utf8)), Array(plain.utf8))
        }
        XCTAssertEqual(Base64.encode([0xFB, 0xFF, 0xBF]), "+/+/")
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "=Zm9"] {
            XCTAssertNil(Base64.decode(Array(bad.utf8)), bad)
        }
    }

    func testAcceptValueFromRFC6455() {
        XCTAssertEqual(WebSocketHandshake.acceptValue(forKey: Array("dGhlIHNhbXBsZSBub25jZQ==".utf8)),
                       "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testUpgradeRequestDetection() {
        let good = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        let cases: [(String, Bool)] = [
            (good, true),
            (good.replacingOccurrences(of: "Upgrade: websocket", with: "Upgrade: h2c, WebSocket"), true),
            (good.replacingOccurrences(of: "Connection: Upgrade", with: "Connection: keep-alive, upgrade"), true),
            (good.replacingOccurrences(of: "GET", with: "POST"), false),
            (good.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0"), false),
            (good.replacingOccurrences(of: "Connection: Upgrade", with: "Connection: keep-alive"), false),
            (good.replacingOccurrences(of: "Upgrade: websocket", with: "Upgrade: h2c"), false),
            (good.replacingOccurrences(of: "Upgrade: websocket", with: "Upgrade: websockets"), false),
            (good.replacingOccurrences(of: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", with: ""), false),
            (good.replacingOccurrences(of: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", with: "Sec-WebSocket-Key:"), false),
            (good.replacingOccurrences(of: "Version: 13", with: "Version: 8"), false),
            (good.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "dGhlIHNhbXBsZQ=="), false),
            (good.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "dGhlIHNhbXBsZSBub25jZQ!!"), false),
        ]
        for (raw, expected) in cases {
            let bytes = [UInt8](ascii: raw)
            let (result, head) = parseRequestForTesting(bytes, mode: .whole)
            XCTAssertEqual(result, .complete, raw.debugDescription)
            let isUpgrade = bytes.withUnsafeBytes { WebSocketHandshake.isUpgradeRequest(head, bytes: $0) }
            XCTAssertEqual(isUpgrade, expected, raw.debugDescription)
        }
    }

    func testRFC6455ExampleFrames() throws {
        XCTAssertEqual(WebSocketFrame.encode(opcode: WebSocketFrame.text, payload: Array("Hello".utf8), maskKey: nil),
                       [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
        XCTAssertEqual(WebSocketFrame.encode(opcode: WebSocketFrame.text, payload: Array("Hello".utf8), maskKey: 0x37FA_213D),
                       [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
        XCTAssertEqual(Array(WebSocketFrame.encode(opcode: WebSocketFrame.binary, payload: [UInt8](repeating: 0, count: 256),
                                                   maskKey: nil).prefix(4)), [0x82, 0x7E, 0x01, 0x00])
        XCTAssertEqual(Array(WebSocketFrame.encode(opcode: WebSocketFrame.binary, payload: [UInt8](repeating: 0, count: 65536),
                                                   maskKey: nil).prefix(10)), [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
        var decoder = WebSocketFrameDecoder()
        decoder.feed([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F])
        XCTAssertEqual(try decoder.nextFrame(), WebSocketFrame(fin: false, opcode: 0x1, payload: Array("Hel".utf8)))
        XCTAssertEqual(try decoder.nextFrame(), WebSocketFrame(fin: true, opcode: 0x0, payload: Array("lo".utf8)))
        XCTAssertNil(try decoder.nextFrame())
    }

    func testRoundTripsAcrossLengthFormsAndSplits() throws {
        var rng = SeededRandomForTesting(seed: 6455)
        for length in [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000] {
            let payload = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            for mask: UInt32? in [nil, 0xA1B2_C3D4] {
                let frames = WebSocketFrame.encode(opcode: WebSocketFrame.binary, payload: payload, maskKey: mask) +
                    WebSocketFrame.encode(opcode: WebSocketFrame.ping, payload: [1, 2], maskKey: mask)
                var decoder = WebSocketFrameDecoder()
                var decoded: [WebSocketFrame] = []
                var offset = 0
                while offset < frames.count {
                    let step = Int.random(in: 1...max(1, frames.count / 4), using: &rng)
                    decoder.feed(frames[offset..<min(frames.count, offset + step)])
                    offset += step
                    while let frame = try decoder.nextFrame() { decoded.append(frame) }
                }
                let masked = mask != nil
                XCTAssertEqual(decoded, [WebSocketFrame(fin: true, opcode: 0x2, payload: payload, wasMasked: masked),
                                         WebSocketFrame(fin: true, opcode: 0x9, payload: [1, 2], wasMasked: masked)],
                               "length \(length) masked \(masked)")
            }
        }
    }

    func testProtocolViolationsAreRejected() {
        let cases: [([UInt8], WebSocketFrameDecoder.DecodeError)] = [
            ([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1], .lengthHasMostSignificantBit),
            ([0x89, 0x7E, 0x00, 0x7E], .controlFrameTooLong),
            ([0x09, 0x00], .fragmentedControlFrame),
            ([0x88, 0x7E, 0x00, 0x7E], .controlFrameTooLong),
            ([0xC1, 0x00], .reservedBitsSet),
            ([0x83, 0x00], .reservedOpcode),
            ([0x8B, 0x00], .reservedOpcode),
        ]
        for (bytes, expected) in cases {
            var decoder = WebSocketFrameDecoder()
            decoder.feed(bytes)
            XCTAssertThrowsError(try decoder.nextFrame(), "\(bytes)") { error in
                XCTAssertEqual(error as? WebSocketFrameDecoder.DecodeError, expected, "\(bytes)")
            }
        }
        var small = WebSocketFrameDecoder(maxPayloadLength: 100)
        small.feed([0x82, 0x7E, 0x01, 0x00])
        XCTAssertThrowsError(try small.nextFrame()) { error in
            XCTAssertEqual(error as? WebSocketFrameDecoder.DecodeError, .frameTooLarge)
        }
    }

    /// Found by Fuzz/Targets/WebSocketFrameFuzz.swift: with no maximum (`Int.max`), a 63-bit length plus the
    /// header length overflowed Int and trapped instead of waiting for the payload.
    func testHugeLengthWithoutMaximumWaitsForMoreInsteadOfOverflowing() throws {
        for header: [UInt8] in [[0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                                [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF8, 1, 2, 3, 4]] {
            var decoder = WebSocketFrameDecoder(maxPayloadLength: .max)
            decoder.feed(header + [0xAB, 0xCD])
            XCTAssertNil(try decoder.nextFrame(), "\(header)")
        }
        // Still refused when a maximum is set.
        var bounded = WebSocketFrameDecoder()
        bounded.feed([0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try bounded.nextFrame()) { error in
            XCTAssertEqual(error as? WebSocketFrameDecoder.DecodeError, .frameTooLarge)
        }
    }

    func testClosePayload() {
        XCTAssertEqual(WebSocketFrame.closePayload(code: 1001, reason: "bye"), [0x03, 0xE9, 0x62, 0x79, 0x65])
    }
}

final class WebSocketFrameBoundaryTests: XCTestCase {
    /// Frames of every length class, masked and not, fed in random splits: the tracker is at a boundary exactly
    /// at the frame ends, and skip() over payload agrees with consume().
    func testBoundariesAreFoundAtFrameEndsInAnySplit() {
        var frames: [[UInt8]] = []
        for (i, len) in [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000].enumerated() {
            let payload = [UInt8](repeating: UInt8(i), count: len)
            frames.append(WebSocketFrame.encode(opcode: WebSocketFrame.binary, payload: payload, maskKey: i % 2 == 0 ? nil : 0x1234_5678))
        }
        var ends: Set<Int> = []
        var stream: [UInt8] = []
        for f in frames {
            stream += f
            ends.insert(stream.count)
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            var t = WebSocketFrameBoundary()
            var pos = 0
            while pos < stream.count {
                let step = min(stream.count - pos, Int.random(in: 1...3000, using: &rng))
                if t.bytesBeforeNextHeader > 0 && Bool.random(using: &rng) {
                    let n = Int(min(UInt64(step), t.bytesBeforeNextHeader))
                    t.skip(n)
                    pos += n
                } else {
                    // Byte by byte so every position is checked.
                    for k in 0..<step {
                        stream[(pos + k)...(pos + k)].withUnsafeBytes { t.consume($0) }
                        XCTAssertEqual(t.atBoundary, ends.contains(pos + k + 1), "at \(pos + k + 1)")
                    }
                    pos += step
                }
                XCTAssertEqual(t.atBoundary, ends.contains(pos), "at \(pos)")
            }
            XCTAssertTrue(t.atBoundary)
        }
    }

    /// A Close frame is noticed only as a frame header, never in payload bytes that happen to look like one.
    func testCloseFrameIsSeenOnlyAtAHeader() {
        var t = WebSocketFrameBoundary()
        let text = WebSocketFrame.encode(opcode: WebSocketFrame.text, payload: [0x88, 0x02, 0x03, 0xE9], maskKey: nil)
        text.withUnsafeBytes { t.consume($0) }
        XCTAssertFalse(t.sawClose, "0x88 inside a payload is not a Close frame")
        let close = WebSocketFrame.encode(opcode: WebSocketFrame.close, payload: [0x03, 0xE8], maskKey: 0x0102_0304)
        close.withUnsafeBytes { t.consume(UnsafeRawBufferPointer(rebasing: $0[0..<1])) }
        XCTAssertTrue(t.sawClose)
    }
}
