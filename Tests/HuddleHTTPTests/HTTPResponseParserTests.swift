// Table-driven tests of the response parser: status lines, framing by request method and status, 502s.

import HuddleHTTP
import XCTest

final class HTTPResponseParserTests: XCTestCase {
    func testFramingByRequestMethodAndStatus() {
        let cases: [(String, HTTPMethod, BodyFraming, Bool)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .get, .contentLength(5), true),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .head, .none, true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .head, .none, true),
            ("HTTP/1.1 100 Continue\r\n\r\n", .post, .none, true),
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", .get, .none, true),
            ("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", .get, .none, true),
            ("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", .get, .none, true),
            ("HTTP/1.1 200 Connection established\r\n\r\n", .connect, .untilClose, true),
            ("HTTP/1.1 407 Proxy Auth\r\nContent-Length: 0\r\n\r\n", .connect, .contentLength(0), true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .get, .chunked, true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .get, .chunked, true),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .get, .untilClose, false),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .get, .untilClose, false),
            ("HTTP/1.1 200 OK\r\n\r\n", .get, .untilClose, true),
            ("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", .get, .contentLength(2), false),
            ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", .get, .contentLength(2), true),
            ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n", .get, .contentLength(2), false),
            ("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", .get, .contentLength(7), true),
            ("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n", .get, .contentLength(7), true),
            ("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", .get, .contentLength(1), true),
            ("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", .get, .contentLength(1), true),
        ]
        for (raw, method, framing, keepAlive) in cases {
            let bytes = [UInt8](ascii: raw)
            let (whole, wholeHead) = parseResponseForTesting(bytes, mode: .whole)
            XCTAssertEqual(whole, .complete, raw.debugDescription)
            XCTAssertEqual(wholeHead.bodyFraming(requestMethod: method), framing, "\(raw.debugDescription) to \(method)")
            XCTAssertEqual(wholeHead.keepAlive, keepAlive, raw.debugDescription)
            XCTAssertEqual(wholeHead.headLength, bytes.count)
            for mode in FeedModeForTesting.allCases {
                let (result, head) = parseResponseForTesting(bytes, mode: mode, seed: 7)
                XCTAssertEqual(result, .complete, "\(raw.debugDescription) fed \(mode)")
                XCTAssertEqual(head, wholeHead, "\(raw.debugDescription) fed \(mode)")
            }
        }
    }

    func testStatusReasonAndUpgradeRanges() {
        let bytes = [UInt8](ascii: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Cache: hit\r\n\r\n")
        let (result, head) = parseResponseForTesting(bytes, mode: .byteAtATime)
        XCTAssertEqual(result, .complete)
        XCTAssertEqual(head.status, 101)
        XCTAssertEqual(head.versionMinor, 1)
        XCTAssertEqual(bytes.string(head.reason), "Switching Protocols")
        XCTAssertEqual(bytes.string(head.upgrade), "websocket")
        XCTAssertTrue(head.connectionHasUpgrade)
        XCTAssertEqual(head.headers.map(\.isHopByHop), [true, true, false])
    }

    func testMalformedResponsesAre502InEveryFeedMode() {
        let cases: [(String, HTTPParseError.Reason)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .contentLengthWithTransferEncoding),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", .contentLengthWithTransferEncoding),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .conflictingContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", .conflictingContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", .badContentLength),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", .chunkedTwice),
            ("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .transferEncodingInHTTP10),
            ("HTTP/2.0 200 OK\r\n\r\n", .unsupportedVersion),
            ("HTTP/1.1 20 OK\r\n\r\n", .badStatusCode),
            ("HTTP/1.1 099 Low\r\n\r\n", .badStatusCode),
            ("HTTP/1.1 2000 OK\r\n\r\n", .badStatusCode),
            ("HTTP/1.1  200 OK\r\n\r\n", .badStatusCode),
            ("HTTP/1.1 200 O\u{1}K\r\n\r\n", .badStatusLine),
            ("HTTP/1.1\r\n\r\n", .badStatusLine),
            ("ICY 200 OK\r\n\r\n", .badStatusLine),
            ("\r\nHTTP/1.1 200 OK\r\n\r\n", .badStatusLine),
            ("HTTP/1.1 200 OK\nContent-Length: 1\n\n", .bareLF),
            ("HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n", .obsFold),
            ("HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", .whitespaceBeforeColon),
            ("HTTP/1.1 200 OK\r\nX: a\u{0}\r\n\r\n", .controlCharInValue),
        ]
        for (raw, reason) in cases {
            let bytes = [UInt8](ascii: raw)
            let (whole, _) = parseResponseForTesting(bytes, mode: .whole)
            guard case .error(let error) = whole else {
                XCTFail("\(raw.debugDescription): accepted")
                continue
            }
            XCTAssertEqual(error.status, 502, raw.debugDescription)
            XCTAssertEqual(error.reason, reason, raw.debugDescription)
            for mode in FeedModeForTesting.allCases {
                XCTAssertEqual(parseResponseForTesting(bytes, mode: mode, seed: 9).0, whole, "\(raw.debugDescription) fed \(mode)")
            }
        }
    }

    func testHeadLargerThanTheLimitIs502() {
        let parser = HTTPResponseParser(maxHeaderSize: 32)
        let bytes = [UInt8](ascii: "HTTP/1.1 200 OK\r\nX-Long: " + String(repeating: "v", count: 40) + "\r\n\r\n")
        for mode in FeedModeForTesting.allCases {
            XCTAssertEqual(parseResponseForTesting(bytes, mode: mode, parser: parser).0,
                           .error(HTTPParseError(status: 502, reason: .headTooLarge, offset: 32)), "\(mode)")
        }
    }

    func testInterimResponseThenFinalResponseWithOneParser() {
        let bytes = [UInt8](ascii: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        var parser = HTTPResponseParser()
        var head = HTTPResponseHead()
        bytes.withUnsafeBytes { all in
            XCTAssertEqual(parser.parse(all, into: &head), .complete)
            XCTAssertEqual(head.status, 100)
            let rest = UnsafeRawBufferPointer(rebasing: all[head.headLength...])
            parser.reset()
            XCTAssertEqual(parser.parse(rest, into: &head), .complete)
            XCTAssertEqual(head.status, 201)
            XCTAssertEqual(head.bodyFraming(requestMethod: .post), .contentLength(0))
            XCTAssertEqual(head.headLength, rest.count)
        }
    }
}
