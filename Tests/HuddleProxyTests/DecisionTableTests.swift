// The exchange's pure decisions, as tables: what a backend failure becomes, and how a response is framed.
@testable import HuddleProxy
import HuddleHTTP
import HuddleSys
import XCTest

final class FailurePolicyTests: XCTestCase {
    typealias Row = (name: String, failure: UpstreamFailure, context: FailureContext, decision: FailureDecision, counts: Bool)

    static func ctx(started: Bool = false, reused: Bool = false, seen: Bool = false, bodySent: Bool = false,
                    hasBody: Bool = false, idempotent: Bool = true, retries: Int = 1) -> FailureContext {
        FailureContext(responseStarted: started, connectionReused: reused, responseBytesSeen: seen, requestBodySent: bodySent,
                       requestHasBody: hasBody, idempotent: idempotent, retriesLeft: retries)
    }

    static let reset = UpstreamFailure.reset(Errno(104))
    static let refused = UpstreamFailure.connect(Errno(111))

    let rows: [Row] = [
        ("response begun: cut the client", reset, ctx(started: true, seen: true), .closeClient, true),
        ("response begun, even a timeout", .responseTimeout, ctx(started: true, seen: true), .closeClient, true),
        ("stale keep-alive GET: replay, not the server's fault", reset, ctx(reused: true), .replayOnNewConnection, false),
        ("stale keep-alive, early close", .closedEarly, ctx(reused: true), .replayOnNewConnection, false),
        ("stale keep-alive POST with a body: no replay", reset, ctx(reused: true, hasBody: true, idempotent: false), .answer(status: 502), true),
        ("reused but bytes came back: not stale", reset, ctx(reused: true, seen: true), .answer(status: 502), true),
        ("reused, timeout: not a keep-alive race", .responseTimeout, ctx(reused: true), .retryElsewhere, true),
        ("connect refused: retry", refused, ctx(), .retryElsewhere, true),
        ("connect refused, POST with body not sent: retry", refused, ctx(hasBody: true, idempotent: false), .retryElsewhere, true),
        ("connect timeout: retry", .connectTimeout, ctx(), .retryElsewhere, true),
        ("connect refused, no retries left", refused, ctx(retries: 0), .answer(status: 502), true),
        ("connect timeout, no retries left", .connectTimeout, ctx(retries: 0), .answer(status: 504), true),
        ("reset, idempotent bodiless: retry elsewhere", reset, ctx(), .retryElsewhere, true),
        ("reset, POST: 502", reset, ctx(idempotent: false), .answer(status: 502), true),
        ("reset, PUT with a body: 502", reset, ctx(hasBody: true), .answer(status: 502), true),
        ("reset after body bytes went: 502", reset, ctx(bodySent: true, hasBody: true), .answer(status: 502), true),
        ("response timeout, GET: retry", .responseTimeout, ctx(), .retryElsewhere, true),
        ("response timeout, POST: 504", .responseTimeout, ctx(idempotent: false), .answer(status: 504), true),
        ("response timeout, GET, no retries: 504", .responseTimeout, ctx(retries: 0), .answer(status: 504), true),
        ("invalid response: never retried", .badResponse("x"), ctx(), .answer(status: 502), true),
        ("partial head then reset: no retry", reset, ctx(seen: true), .answer(status: 502), true),
    ]

    func testTheTable() {
        for r in rows {
            let (d, counts) = FailurePolicy.decide(r.failure, r.context)
            XCTAssertEqual(d, r.decision, r.name)
            XCTAssertEqual(counts, r.counts, r.name)
        }
    }

    /// Whatever the facts, a non-idempotent request whose body left is never sent twice.
    func testNothingUnsafeIsEverRepeated() {
        for f in [Self.reset, .closedEarly, .responseTimeout, .connectTimeout, Self.refused, .badResponse("x")] {
            for reused in [false, true] {
                for seen in [false, true] {
                    let (d, _) = FailurePolicy.decide(f, Self.ctx(reused: reused, seen: seen, bodySent: true, hasBody: true, idempotent: false, retries: 3))
                    XCTAssertNotEqual(d, .retryElsewhere, "\(f) reused=\(reused) seen=\(seen)")
                    XCTAssertNotEqual(d, .replayOnNewConnection, "\(f) reused=\(reused) seen=\(seen)")
                }
            }
        }
    }
}

final class ResponsePlanTests: XCTestCase {
    func testTheTable() {
        typealias Row = (status: Int, framing: BodyFraming, serverKA: Bool, clientKA: Bool, http10: Bool, shutdown: Bool,
                         close: Bool, reusable: Bool, header: ResponsePlan.ConnectionHeader)
        let rows: [Row] = [
            (200, .contentLength(5), true, true, false, false, false, true, .none),
            (200, .chunked, true, true, false, false, false, true, .none),
            (200, .contentLength(5), false, true, false, false, false, false, .none),
            (200, .untilClose, true, true, false, false, true, false, .close),
            (200, .contentLength(5), true, false, false, false, true, true, .close),
            (200, .contentLength(5), true, true, true, false, false, true, .keepAlive),
            (200, .contentLength(5), true, false, true, false, true, true, .close),
            (200, .contentLength(5), true, true, false, true, true, true, .close),
            (204, .none, true, true, false, false, false, true, .none),
            (304, .none, true, true, true, false, false, true, .keepAlive),
        ]
        for (i, r) in rows.enumerated() {
            let p = ResponsePlan.make(status: r.status, framing: r.framing, serverKeepAlive: r.serverKA, clientKeepAlive: r.clientKA,
                                      clientIsHTTP10: r.http10, shuttingDown: r.shutdown)
            XCTAssertEqual(p.closeClient, r.close, "row \(i)")
            XCTAssertEqual(p.upstreamReusable, r.reusable, "row \(i)")
            XCTAssertEqual(p.connectionHeader, r.header, "row \(i)")
            XCTAssertEqual(p.framing, r.framing, "row \(i)")
        }
    }

    /// gzip writes its own chunks: a body the backend delimits by closing no longer forces the client's close.
    func testRechunkedBodies() {
        let p = ResponsePlan.make(status: 200, framing: .untilClose, serverKeepAlive: true, clientKeepAlive: true,
                                  clientIsHTTP10: false, shuttingDown: false, rechunked: true)
        XCTAssertFalse(p.closeClient)
        XCTAssertFalse(p.upstreamReusable, "the backend connection still ends with the body")
        XCTAssertEqual(p.connectionHeader, .none)
        let q = ResponsePlan.make(status: 200, framing: .untilClose, serverKeepAlive: true, clientKeepAlive: false,
                                  clientIsHTTP10: false, shuttingDown: false, rechunked: true)
        XCTAssertTrue(q.closeClient, "the client's own Connection: close still counts")
        let r = ResponsePlan.make(status: 200, framing: .chunked, serverKeepAlive: true, clientKeepAlive: true,
                                  clientIsHTTP10: false, shuttingDown: true, rechunked: true)
        XCTAssertTrue(r.closeClient, "shutting down still closes")
    }
}
