// Table-driven tests of the request parser: accepted heads, every rejection class, smuggling, pipelining.

import HuddleHTTP
import XCTest

final class HTTPRequestParserTests: XCTestCase {
    struct Accepted {
        var raw: String
        var method: HTTPMethod = .get
        var path: String = "/"
        var query: String? = nil
        var host: String? = "a"
        var versionMinor = 1
        var keepAlive = true
        var framing: BodyFraming = .none
        var upgrade: String? = nil
        var connectionHasUpgrade = false
        var expectContinue = false
        var hopByHop: [String] = []
        var headLength: Int? = nil   // nil: the whole message
    }

    static let accepted: [Accepted] = [
        Accepted(raw: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Accepted(raw: "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Accepted(raw: "GET /rooms/42/join?x=1&y=%20 HTTP/1.1\r\nHost: a\r\n\r\n", path: "/rooms/42/join", query: "x=1&y=%20"),
        Accepted(raw: "GET /? HTTP/1.1\r\nHost: a\r\n\r\n", query: ""),
        Accepted(raw: "GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
                 path: "/p/q", query: "x=1", host: "example.com:8080"),
        Accepted(raw: "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", path: "", host: "example.com"),
        Accepted(raw: "GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n", path: "", query: "q", host: "h"),
        Accepted(raw: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", method: .options, path: "*"),
        Accepted(raw: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", method: .connect, path: "",
                 host: "example.com:443"),
        Accepted(raw: "GET / HTTP/1.0\r\n\r\n", host: nil, versionMinor: 0, keepAlive: false),
        Accepted(raw: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", host: nil, versionMinor: 0, hopByHop: ["Connection"]),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", keepAlive: false,
                 hopByHop: ["Connection"]),
        Accepted(raw: "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", method: .post, path: "/u",
                 framing: .contentLength(0)),
        Accepted(raw: "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length:   1234  \r\n\r\n", method: .put,
                 framing: .contentLength(1234)),
        Accepted(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n", method: .post, framing: .chunked,
                 hopByHop: ["Transfer-Encoding"]),
        Accepted(raw: "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n", method: .post, framing: .chunked,
                 hopByHop: ["transfer-encoding"]),
        Accepted(raw: "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", method: .post,
                 framing: .contentLength(3), expectContinue: true),
        Accepted(raw: "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n",
                 path: "/chat", upgrade: "websocket", connectionHasUpgrade: true, hopByHop: ["Upgrade", "Connection"]),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nConnection: x-secret\r\nTE: trailers\r\n\r\n",
                 hopByHop: ["X-Secret", "Keep-Alive", "Connection", "TE"]),
        Accepted(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: host, content-length, x\r\nX: 1\r\n\r\n",
                 method: .post, framing: .contentLength(2), hopByHop: ["Connection", "X"]),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:   \t\r\nX-Obs: caf\u{E9}\r\n\r\n"),
        Accepted(raw: "PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", method: .patch),
        Accepted(raw: "BREW / HTTP/1.1\r\nHost: a\r\n\r\n", method: .other),
        Accepted(raw: "get / HTTP/1.1\r\nHost: a\r\n\r\n", method: .other),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n", headLength: 27),
        Accepted(raw: "GET / HTTP/1.1\r\nHost:\r\n\r\n", host: ""),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: a:8080\r\n\r\n", host: "a:8080"),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", host: "a:"),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", host: "[::1]:80"),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: [2001:db8::a.b.c.d]\r\n\r\n", host: "[2001:db8::a.b.c.d]"),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: caf%C3%A9.example\r\n\r\n", host: "caf%C3%A9.example"),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: 192.0.2.1:1\r\n\r\n", host: "192.0.2.1:1"),
        Accepted(raw: "GET http://[::1]:8080/p HTTP/1.1\r\nHost: x\r\n\r\n", path: "/p", host: "[::1]:8080"),
        Accepted(raw: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", host: "[::1]:8080"),
    ]

    func testAcceptedRequestsInEveryFeedMode() {
        for (index, c) in Self.accepted.enumerated() {
            let bytes = [UInt8](ascii: c.raw)
            let (wholeResult, wholeHead) = parseRequestForTesting(bytes, mode: .whole)
            for mode in FeedModeForTesting.allCases {
                for seed: UInt64 in mode == .randomSplits ? [1, 2, 3, 4, 5] : [0] {
                    let (result, head) = parseRequestForTesting(bytes, mode: mode, seed: seed)
                    let label = "case \(index) \(c.raw.debugDescription) fed \(mode) seed \(seed)"
                    XCTAssertEqual(result, .complete, label)
                    XCTAssertEqual(head, wholeHead, label)
                }
            }
            XCTAssertEqual(wholeResult, .complete)
            let label = "case \(index) \(c.raw.debugDescription)"
            let h = wholeHead
            XCTAssertEqual(h.method, c.method, label)
            XCTAssertEqual(bytes.string(h.path), c.path, label)
            XCTAssertEqual(bytes.string(h.query), c.query, label)
            XCTAssertEqual(bytes.string(h.host), c.host, label)
            XCTAssertEqual(h.versionMinor, c.versionMinor, label)
            XCTAssertEqual(h.keepAlive, c.keepAlive, label)
            XCTAssertEqual(h.bodyFraming, c.framing, label)
            XCTAssertEqual(bytes.string(h.upgrade), c.upgrade, label)
            XCTAssertEqual(h.connectionHasUpgrade, c.connectionHasUpgrade, label)
            XCTAssertEqual(h.expectContinue, c.expectContinue, label)
            XCTAssertEqual(h.headLength, c.headLength ?? bytes.count, label)
            XCTAssertEqual(h.headers.filter(\.isHopByHop).map { bytes.string($0.name)! }, c.hopByHop, label)
        }
    }

    func testTargetMethodAndHeaderRangesPointIntoTheBuffer() {
        let bytes = [UInt8](ascii: "DELETE /x?y HTTP/1.1\r\nHost:  a.example \r\nX-Forwarded-For: 10.0.0.1\r\nCookie: s=1\r\n\r\n")
        let (result, head) = parseRequestForTesting(bytes, mode: .whole)
        XCTAssertEqual(result, .complete)
        XCTAssertEqual(head.method, .delete)
        XCTAssertTrue(head.method.isIdempotent)
        XCTAssertEqual(bytes.string(head.methodRange), "DELETE")
        XCTAssertEqual(bytes.string(head.target), "/x?y")
        XCTAssertEqual(head.headers.map(\.kind), [.host, .xForwardedFor, .cookie])
        XCTAssertEqual(head.headers.map { bytes.string($0.name)! }, ["Host", "X-Forwarded-For", "Cookie"])
        XCTAssertEqual(head.headers.map { bytes.string($0.value)! }, ["a.example", "10.0.0.1", "s=1"])
        XCTAssertEqual(bytes.string(head.host), "a.example")
    }

    struct Rejected {
        var raw: String
        var status: Int
        var reason: HTTPParseError.Reason
        var offset: Int? = nil
    }

    static let rejected: [Rejected] = [
        // request line
        Rejected(raw: "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badMethod, offset: 1),
        Rejected(raw: " GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badMethod, offset: 0),
        Rejected(raw: "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badMethod, offset: 3),
        Rejected(raw: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badTarget, offset: 4),
        Rejected(raw: "GET /\r\nHost: a\r\n\r\n", status: 400, reason: .badRequestLine),
        Rejected(raw: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .targetHasSpace, offset: 6),
        Rejected(raw: "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", status: 400, reason: .targetHasSpace),
        Rejected(raw: "GET /\u{01} HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .controlCharInTarget, offset: 5),
        Rejected(raw: "GET /\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .controlCharInTarget, offset: 5),
        Rejected(raw: "GET /\t HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .controlCharInTarget, offset: 5),
        Rejected(raw: "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .controlCharInTarget, offset: 6),
        Rejected(raw: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505, reason: .unsupportedVersion, offset: 6),
        Rejected(raw: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", status: 505, reason: .unsupportedVersion),
        Rejected(raw: "GET / HTTP/0.9\r\nHost: a\r\n\r\n", status: 505, reason: .unsupportedVersion),
        Rejected(raw: "GET / HTTP/1.10\r\nHost: a\r\n\r\n", status: 400, reason: .badVersion),
        Rejected(raw: "GET / http/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badVersion),
        Rejected(raw: "GET / HTTP/1\r\nHost: a\r\n\r\n", status: 400, reason: .badVersion),
        Rejected(raw: "GET / HTTP/1.x\r\nHost: a\r\n\r\n", status: 400, reason: .badVersion),
        Rejected(raw: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .asteriskWithoutOptions),
        Rejected(raw: "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .connectWithoutAuthority),
        Rejected(raw: "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .connectWithoutAuthority),
        Rejected(raw: "CONNECT example.com:https HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .connectWithoutAuthority),
        Rejected(raw: "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badTarget),
        Rejected(raw: "GET ftp://h/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badTarget),
        Rejected(raw: "GET http://user@h/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badTarget, offset: 15),
        Rejected(raw: "GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badTarget),
        // header lines
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", status: 400, reason: .whitespaceBeforeColon, offset: 28),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nX@: y\r\n\r\n", status: 400, reason: .badHeaderName, offset: 26),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n", status: 400, reason: .badHeaderName, offset: 25),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", status: 400, reason: .missingColon, offset: 25),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", status: 400, reason: .obsFold, offset: 31),
        Rejected(raw: "GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", status: 400, reason: .obsFold, offset: 16),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", status: 400, reason: .bareCR, offset: 29),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nX\r: a\r\n\r\n", status: 400, reason: .bareCR, offset: 26),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{00}b\r\n\r\n", status: 400, reason: .controlCharInValue, offset: 29),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nX: \u{7F}\r\n\r\n", status: 400, reason: .controlCharInValue, offset: 28),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nX: \u{1B}[0m\r\n\r\n", status: 400, reason: .controlCharInValue),
        Rejected(raw: "GET / HTTP/1.1\nHost: a\n\n", status: 400, reason: .bareLF, offset: 14),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\n\r\n", status: 400, reason: .bareLF, offset: 23),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\n\n", status: 400, reason: .bareLF, offset: 25),
        Rejected(raw: "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .bareLF, offset: 0),
        // framing
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", status: 400, reason: .badContentLength),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", status: 400, reason: .badContentLength),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", status: 400, reason: .badContentLength),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", status: 400, reason: .badContentLength),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", status: 400, reason: .badContentLength),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", status: 400, reason: .badContentLength),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", status: 400,
                 reason: .contentLengthOverflow),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", status: 400,
                 reason: .duplicateContentLength, offset: 45),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400,
                 reason: .contentLengthWithTransferEncoding, offset: 45),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", status: 400,
                 reason: .contentLengthWithTransferEncoding, offset: 26),
        Rejected(raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400, reason: .transferEncodingInHTTP10),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", status: 400,
                 reason: .chunkedNotFinal),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 501,
                 reason: .unsupportedTransferCoding),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", status: 400, reason: .chunkedNotFinal),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", status: 400, reason: .chunkedNotFinal),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", status: 400,
                 reason: .chunkedTwice),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                 status: 400, reason: .chunkedTwice),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                 status: 501, reason: .unsupportedTransferCoding),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
                 status: 400, reason: .chunkedNotFinal),
        // RFC 9112 6.3 rule 4: chunked not final (or absent) in a request is 400 however the coding is spelled.
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", status: 400, reason: .chunkedNotFinal),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", status: 400, reason: .chunkedNotFinal),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", status: 400, reason: .chunkedNotFinal),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", status: 400, reason: .emptyTransferEncoding),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", status: 400,
                 reason: .whitespaceBeforeColon),
        Rejected(raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n x\r\n\r\n", status: 400, reason: .obsFold),
        // Host
        Rejected(raw: "GET / HTTP/1.1\r\n\r\n", status: 400, reason: .missingHost, offset: 16),
        Rejected(raw: "GET http://h/ HTTP/1.1\r\n\r\n", status: 400, reason: .missingHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", status: 400, reason: .duplicateHost, offset: 25),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", status: 400, reason: .badHost, offset: 23),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", status: 400, reason: .badHost),
        // Host = uri-host [ ":" port ] (RFC 9110 7.2; RFC 9112 3.2: an invalid value is 400)
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a:abc\r\n\r\n", status: 400, reason: .badHost, offset: 24),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a:80:81\r\n\r\n", status: 400, reason: .badHost, offset: 26),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a:-1\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: []\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a]b\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", status: 400, reason: .badHost),
        Rejected(raw: "GET http://a:abc/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badTarget),
        Rejected(raw: "GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, reason: .badTarget),
    ]

    func testEveryRejectionClassGivesTheSameErrorInEveryFeedMode() {
        for (index, c) in Self.rejected.enumerated() {
            let bytes = [UInt8](ascii: c.raw)
            let label = "case \(index) \(c.raw.debugDescription)"
            let (whole, _) = parseRequestForTesting(bytes, mode: .whole)
            guard case .error(let error) = whole else {
                XCTFail("\(label): expected an error, got \(whole)")
                continue
            }
            XCTAssertEqual(error.status, c.status, label)
            XCTAssertEqual(error.reason, c.reason, label)
            if let offset = c.offset { XCTAssertEqual(error.offset, offset, label) }
            XCTAssertFalse(error.description.isEmpty)
            for mode in FeedModeForTesting.allCases {
                for seed: UInt64 in mode == .randomSplits ? [1, 2, 3, 4, 5] : [0] {
                    let (result, _) = parseRequestForTesting(bytes, mode: mode, seed: seed)
                    XCTAssertEqual(result, whole, "\(label) fed \(mode) seed \(seed)")
                }
            }
        }
    }

    /// The classic request-smuggling shapes, named so a regression says which one came back.
    func testSmugglingShapesAreRejected() {
        let cases: [(String, String, Int)] = [
            ("CL.TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED", 400),
            ("TE.CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400),
            ("TE chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
            ("TE with space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
            ("CL +5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
            ("CL 5, 5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
            ("CL twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            ("obs-fold TE", "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n", 400),
            ("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}\r\n\r\n", 400),
            ("bare LF endings", "GET / HTTP/1.1\nHost: a\nContent-Length: 5\n\n", 400),
            ("bare CR inside a line", "GET / HTTP/1.1\r\nHost: a\rContent-Length: 5\r\n\r\n", 400),
            ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("TE vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\u{0B}chunked\r\n\r\n", 400),
            ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ]
        for (name, raw, status) in cases {
            for mode in FeedModeForTesting.allCases {
                let (result, _) = parseRequestForTesting([UInt8](ascii: raw), mode: mode)
                guard case .error(let error) = result else {
                    XCTFail("\(name) fed \(mode): accepted")
                    continue
                }
                XCTAssertEqual(error.status, status, "\(name) fed \(mode): \(error)")
            }
        }
        let tabbed = [UInt8](ascii: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\t\r\n\r\n")
        let (result, head) = parseRequestForTesting(tabbed, mode: .byteAtATime)
        XCTAssertEqual(result, .complete)
        XCTAssertEqual(head.bodyFraming, .chunked)
    }

    func testLimitsGive414And431InEveryFeedMode() {
        let parser = HTTPRequestParser(maxHeaderSize: 64, maxRequestLineLength: 20)
        // The request line is 20 bytes without its CRLF: exactly at the limit is fine.
        let atLimit = [UInt8](ascii: "GET /123456 HTTP/1.1\r\nHost: a\r\n\r\n")
        let longer = [UInt8](ascii: "GET /1234567 HTTP/1.1\r\nHost: a\r\n\r\n")
        let unterminated = [UInt8](ascii: "GET /" + String(repeating: "x", count: 40))
        let bigHead = [UInt8](ascii: "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + String(repeating: "p", count: 40) + "\r\n\r\n")
        // The head ends exactly at byte 64: allowed.
        let exactHead = [UInt8](ascii: "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + String(repeating: "p", count: 28) + "\r\n\r\n")
        XCTAssertEqual(exactHead.count, 64)
        for mode in FeedModeForTesting.allCases {
            XCTAssertEqual(parseRequestForTesting(atLimit, mode: mode, parser: parser).0, .complete, "\(mode)")
            XCTAssertEqual(parseRequestForTesting(exactHead, mode: mode, parser: parser).0, .complete, "\(mode)")
            XCTAssertEqual(parseRequestForTesting(longer, mode: mode, parser: parser).0,
                           .error(HTTPParseError(status: 414, reason: .requestLineTooLong, offset: 20)), "\(mode)")
            XCTAssertEqual(parseRequestForTesting(unterminated, mode: mode, parser: parser).0,
                           .error(HTTPParseError(status: 414, reason: .requestLineTooLong, offset: 20)), "\(mode)")
            XCTAssertEqual(parseRequestForTesting(bigHead, mode: mode, parser: parser).0,
                           .error(HTTPParseError(status: 431, reason: .headTooLarge, offset: 64)), "\(mode)")
        }
    }

    func testHeaderCountLimitIs431() {
        let parser = HTTPRequestParser(maxHeaderCount: 3)
        let three = [UInt8](ascii: "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n")
        let four = [UInt8](ascii: "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        for mode in FeedModeForTesting.allCases {
            XCTAssertEqual(parseRequestForTesting(three, mode: mode, parser: parser).0, .complete)
            XCTAssertEqual(parseRequestForTesting(four, mode: mode, parser: parser).0,
                           .error(HTTPParseError(status: 431, reason: .tooManyHeaders, offset: 37)), "\(mode)")
        }
    }

    func testIncompleteHeadNeedsMoreAndLeavesTheCallersHeadAlone() {
        var parser = HTTPRequestParser()
        var head = HTTPRequestHead()
        let bytes = [UInt8](ascii: "GET /x HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r")
        let result = bytes.withUnsafeBytes { parser.parse($0, into: &head) }
        XCTAssertEqual(result, .needMore)
        XCTAssertEqual(head, HTTPRequestHead())
    }

    func testPipelinedRequestsAreFoundThroughHeadLengthAndReusedHeadsKeepCapacity() {
        let first = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        let second = "GET /b HTTP/1.1\r\nHost: b\r\nX-1: 1\r\nX-2: 2\r\n\r\n"
        let third = "GET /c HTTP/1.1\r\nHost: c\r\n\r\n"
        let bytes = [UInt8](ascii: first + second + third)
        var parser = HTTPRequestParser()
        var head = HTTPRequestHead()
        var paths: [String] = []
        var start = 0
        bytes.withUnsafeBytes { all in
            while start < all.count {
                parser.reset()
                let view = UnsafeRawBufferPointer(rebasing: all[start...])
                XCTAssertEqual(parser.parse(view, into: &head), .complete)
                paths.append(String(decoding: view[head.path], as: UTF8.self))
                var bodyLength = 0
                if case .contentLength(let n) = head.bodyFraming { bodyLength = Int(n) }
                start += head.headLength + bodyLength
            }
        }
        XCTAssertEqual(paths, ["/a", "/b", "/c"])
        XCTAssertEqual(start, bytes.count)
        XCTAssertGreaterThanOrEqual(head.headers.capacity, 1)
        head.reset()
        XCTAssertTrue(head.headers.isEmpty)
        XCTAssertGreaterThanOrEqual(head.headers.capacity, 1)
    }

    func testAfterAnErrorTheParserRepeatsItUntilReset() {
        var parser = HTTPRequestParser()
        var head = HTTPRequestHead()
        let bad = [UInt8](ascii: "GET / HTTP/3.0\r\n")
        let good = [UInt8](ascii: "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let first = bad.withUnsafeBytes { parser.parse($0, into: &head) }
        let again = good.withUnsafeBytes { parser.parse($0, into: &head) }
        XCTAssertEqual(first, again)
        parser.reset()
        XCTAssertEqual(good.withUnsafeBytes { parser.parse($0, into: &head) }, .complete)
    }

    func testStatusesByReason() {
        XCTAssertEqual(HTTPParseError.Reason.unsupportedVersion.requestStatus, 505)
        XCTAssertEqual(HTTPParseError.Reason.requestLineTooLong.requestStatus, 414)
        XCTAssertEqual(HTTPParseError.Reason.headTooLarge.requestStatus, 431)
        XCTAssertEqual(HTTPParseError.Reason.unsupportedTransferCoding.requestStatus, 501)
        XCTAssertEqual(HTTPParseError.Reason.chunkedNotFinal.requestStatus, 400)
        XCTAssertEqual(HTTPParseError.Reason.contentLengthWithTransferEncoding.description,
                       "both Content-Length and Transfer-Encoding")
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(404))", "Not Found")
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(502))", "Bad Gateway")
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(799))", "Unknown")
    }
}
