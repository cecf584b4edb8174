// The cache in the exchange, played byte by byte on the in-memory network: hits served from the store, collapsed
// requests woken by their leader, and the failure paths (a waiter's client leaves, the leader's backend fails, the
// leader's client leaves, a response too large to store, the collapse timeout, an entry evicted or purged while it is
// being sent), each ending with every token, buffer and connection back at rest.
@testable import HuddleProxy
import HuddleSys
import XCTest

final class CacheExchangeTests: XCTestCase {
    func harness(cache: String = "cache size=1m collapse_timeout=2s;", retries: Int = 0) throws -> ExchangeHarness {
        try ExchangeHarness(config: """
        upstream app {
            server 127.0.0.1:9001;
            response_timeout 2s;
            retries \(retries);
            keepalive 8;
        }
        server {
            listen 127.0.0.1:8080;
            route / { upstream app; \(cache) }
        }
        """)
    }

    func get(_ path: String, _ extra: String = "") -> String { "GET \(path) HTTP/1.1\r\nHost: h\r\n\(extra)\r\n" }

    /// Waits for the n-th backend connection to carry a whole request head; returns the connection (its bytes taken).
    func backendRequest(_ h: ExchangeHarness, _ n: Int, file: StaticString = #filePath, line: UInt = #line) -> MemoryConnection? {
        let ok = h.run { h.backend(n).map { GzipTesting.find($0.fromProxy.bytes, "\r\n\r\n", from: 0) != nil } ?? false }
        XCTAssertTrue(ok, "backend connection \(n) got a request", file: file, line: line)
        guard ok, let b = h.backend(n) else { return nil }
        _ = b.receive()
        return b
    }

    /// Bytes read off each client beyond the responses taken so far (pipelined answers arrive together).
    var leftover: [ObjectIdentifier: [UInt8]] = [:]

    /// One whole response (Content-Length framed; none for a 304 or when `headOnly`) read off a client: head and body.
    func response(_ h: ExchangeHarness, _ c: MemoryConnection, headOnly: Bool = false, seconds: Double = 3,
                  file: StaticString = #filePath, line: UInt = #line) -> (head: String, body: [UInt8])? {
        var got = leftover[ObjectIdentifier(c)] ?? []
        var result: (String, [UInt8])? = nil
        h.run(for: seconds) {
            got += c.receive()
            guard let end = GzipTesting.find(got, "\r\n\r\n", from: 0) else { return false }
            let head = String(decoding: got[0..<end], as: UTF8.self)
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let bodyLength = head.hasPrefix("HTTP/1.1 304") || headOnly ? 0 : length
            guard got.count >= end + 4 + bodyLength else { return false }
            result = (head, Array(got[(end + 4)..<(end + 4 + bodyLength)]))
            got.removeFirst(end + 4 + bodyLength)
            return true
        }
        leftover[ObjectIdentifier(c)] = got
        XCTAssertNotNil(result, "a whole response", file: file, line: line)
        return result
    }

    func xcache(_ head: String) -> String? {
        head.split(separator: "\r\n").first { $0.hasPrefix("X-Cache: ") }.map { String($0.dropFirst(9)) }
    }

    let ok60 = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello"

    func testAHitIsServedFromTheStoreWithoutTheBackend() throws {
        let h = try harness()
        let c = h.client()
        c.send(get("/a"))
        let b = try XCTUnwrap(backendRequest(h, 0))
        b.send(ok60)
        let first = try XCTUnwrap(response(h, c))
        XCTAssertEqual(xcache(first.head), "MISS")
        XCTAssertEqual(first.body, Array("hello".utf8))
        // Pipelined: two hits and a HEAD, answered in order, none reaching the backend.
        c.send(get("/a") + get("/a") + "HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n")
        for _ in 0..<2 {
            let r = try XCTUnwrap(response(h, c))
            XCTAssertEqual(xcache(r.head), "HIT")
            XCTAssertTrue(r.head.contains("\r\nAge: 0"), r.head)
            XCTAssertTrue(r.head.contains("\r\nContent-Length: 5"), r.head)
            XCTAssertEqual(r.body, Array("hello".utf8))
        }
        let headOnly = try XCTUnwrap(response(h, c, headOnly: true))
        XCTAssertEqual(xcache(headOnly.head), "HIT")
        XCTAssertTrue(headOnly.head.contains("\r\nContent-Length: 5"), "HEAD: the GET's length, no body")
        h.run(for: 0.05)
        XCTAssertTrue(c.receive().isEmpty && leftover[ObjectIdentifier(c)]!.isEmpty, "nothing after the HEAD's head")
        XCTAssertEqual(h.net.backendConnections.count, 1)
        XCTAssertTrue(b.fromProxy.bytes.isEmpty, "nothing more went to the backend")
        let route = try XCTUnwrap(h.runtime.routeCaches.first)
        XCTAssertEqual(route.stats.total(.hits), 3)
        XCTAssertEqual(route.stats.total(.misses), 1)
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }

    func testWaitersAreServedFromTheLeadersResponse() throws {
        let h = try harness()
        let clients = (0..<5).map { _ in h.client() }
        for c in clients { c.send(get("/w")) }
        let b = try XCTUnwrap(backendRequest(h, 0))
        h.run(for: 0.05)
        XCTAssertEqual(h.net.backendConnections.count, 1, "one backend request for five identical ones")
        XCTAssertEqual(h.worker.counters.cacheWaits, 4)
        b.send("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        var heads: [String] = []
        for (i, c) in clients.enumerated() {
            if i == 0 {
                // The leader gets the backend's own (chunked) framing.
                var got: [UInt8] = []
                XCTAssertTrue(h.run { got += c.receive(); return String(decoding: got, as: UTF8.self).hasSuffix("0\r\n\r\n") })
                XCTAssertEqual(xcache(String(decoding: got, as: UTF8.self)), "MISS")
                continue
            }
            let r = try XCTUnwrap(response(h, c))
            heads.append(r.head)
            XCTAssertEqual(r.body, Array("abcde".utf8), "the decoded body, with a Content-Length")
        }
        XCTAssertEqual(heads.compactMap(xcache), ["HIT", "HIT", "HIT", "HIT"])
        XCTAssertEqual(h.runtime.routeCaches[0].stats.total(.collapsed), 4)
        for c in clients { c.finish() }
        XCTAssertTrue(h.run { clients.allSatisfy(\.proxyClosed) })
        h.assertAtRest()
    }

    func testAWaiterWhoseClientLeavesIsReleased() throws {
        let h = try harness()
        let leader = h.client()
        leader.send(get("/x"))
        let b = try XCTUnwrap(backendRequest(h, 0))
        let waiter = h.client()
        waiter.send(get("/x"))
        XCTAssertTrue(h.run { h.worker.counters.cacheWaits == 1 })
        waiter.reset()
        XCTAssertTrue(h.run { waiter.proxyClosed }, "the waiting connection closes when its client is gone")
        XCTAssertEqual(h.worker.counters.cacheWaits, 0)
        b.send(ok60)
        let r = try XCTUnwrap(response(h, leader))
        XCTAssertEqual(xcache(r.head), "MISS")
        h.run(for: 0.05)   // the wake-up for the departed waiter runs and finds nothing to do
        XCTAssertEqual(h.runtime.routeCaches[0].entries, 1)
        leader.finish()
        XCTAssertTrue(h.run { leader.proxyClosed })
        h.assertAtRest()
    }

    func testWhenTheLeadersBackendFailsTheWaitersFetchThemselves() throws {
        let h = try harness()
        let leader = h.client()
        leader.send(get("/f"))
        let b0 = try XCTUnwrap(backendRequest(h, 0))
        let waiters = (0..<3).map { _ in h.client() }
        for w in waiters { w.send(get("/f")) }
        XCTAssertTrue(h.run { h.worker.counters.cacheWaits == 3 })
        b0.reset()
        let r = try XCTUnwrap(response(h, leader))
        XCTAssertEqual(r.head.statusCode, 502)
        XCTAssertEqual(xcache(r.head), "MISS", "a local answer on a cached route says MISS too")
        // Released, each waiter sends its own request (collapsing no more).
        XCTAssertTrue(h.run { h.net.backendConnections.count == 4 })
        for n in 1...3 {
            let b = try XCTUnwrap(backendRequest(h, n))
            b.send(ok60)
        }
        for w in waiters {
            let rw = try XCTUnwrap(response(h, w))
            XCTAssertEqual(rw.head.statusCode, 200)
            XCTAssertEqual(xcache(rw.head), "MISS")
        }
        for c in [leader] + waiters { c.finish() }
        XCTAssertTrue(h.run { ([leader] + waiters).allSatisfy(\.proxyClosed) })
        h.assertAtRest()
    }

    func testABackendFailureIsAnsweredStaleWithinStaleIfError() throws {
        let h = try harness()
        let c = h.client()
        c.send(get("/s"))
        let b0 = try XCTUnwrap(backendRequest(h, 0))
        // Stale at once, usable on errors for a minute: every request revalidates (goes to the backend).
        b0.send("HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-if-error=60\r\nETag: \"v1\"\r\nContent-Length: 3\r\n\r\nold")
        XCTAssertEqual(try XCTUnwrap(response(h, c)).body, Array("old".utf8))
        // The backend now answers 503: the leader and its waiter get the stale response instead.
        c.send(get("/s"))
        let b1 = try XCTUnwrap(backendRequest(h, 0))
        XCTAssertTrue(b1 === b0, "the pooled connection")
        let w = h.client()
        w.send(get("/s"))
        XCTAssertTrue(h.run { h.worker.counters.cacheWaits == 1 })
        b0.send("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown")
        for client in [c, w] {
            let r = try XCTUnwrap(response(h, client))
            XCTAssertEqual(r.head.statusCode, 200)
            XCTAssertEqual(xcache(r.head), "STALE")
            XCTAssertEqual(r.body, Array("old".utf8))
        }
        XCTAssertEqual(h.runtime.routeCaches[0].stats.total(.stale), 2)
        // A connect failure (the backend is gone) too.
        h.net.onConnect = { _ in .refuse }
        c.send(get("/s"))
        let r = try XCTUnwrap(response(h, c))
        XCTAssertEqual(xcache(r.head), "STALE")
        for client in [c, w] { client.finish() }
        XCTAssertTrue(h.run { c.proxyClosed && w.proxyClosed })
        h.assertAtRest()
    }

    func testTheLeadersClientLeavingReleasesTheWaiters() throws {
        let h = try harness()
        let leader = h.client()
        leader.send(get("/l"))
        let b0 = try XCTUnwrap(backendRequest(h, 0))
        let w = h.client()
        w.send(get("/l"))
        XCTAssertTrue(h.run { h.worker.counters.cacheWaits == 1 })
        // Half the body, then the leader's client resets: nothing is stored, the waiter fetches for itself.
        b0.send("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 10\r\n\r\nhello")
        XCTAssertTrue(h.run { h.worker.counters.cacheFills == 1 })
        leader.reset()
        // The proxy learns it when it next writes to that client.
        b0.send("world")
        XCTAssertTrue(h.run { leader.proxyClosed })
        let b1 = try XCTUnwrap(backendRequest(h, 1))
        b1.send("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 10\r\n\r\nhelloworld")
        let r = try XCTUnwrap(response(h, w))
        XCTAssertEqual(xcache(r.head), "MISS")
        XCTAssertEqual(r.body, Array("helloworld".utf8))
        XCTAssertEqual(h.runtime.routeCaches[0].entries, 1, "the waiter's own answer is stored")
        w.finish()
        XCTAssertTrue(h.run { w.proxyClosed })
        h.assertAtRest()
    }

    func testAResponseTooLargeToStoreReleasesItsWaiters() throws {
        let h = try harness(cache: "cache size=1m max_entry=1k collapse_timeout=2s;")
        let leader = h.client()
        leader.send(get("/big"))
        let b0 = try XCTUnwrap(backendRequest(h, 0))
        let w = h.client()
        w.send(get("/big"))
        XCTAssertTrue(h.run { h.worker.counters.cacheWaits == 1 })
        // Chunked: the size shows only as it arrives.
        let piece = String(repeating: "x", count: 600)
        b0.send("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n\(piece)\r\n")
        XCTAssertTrue(h.run { h.worker.counters.cacheFills == 1 })
        b0.send("258\r\n\(piece)\r\n")
        // Over max_entry: the fill is dropped and the waiter sent on to the backend, while the leader's response goes on.
        let b1 = try XCTUnwrap(backendRequest(h, 1))
        XCTAssertEqual(h.worker.counters.cacheFills, 0)
        b0.send("0\r\n\r\n")
        var got: [UInt8] = []
        XCTAssertTrue(h.run { got += leader.receive(); return String(decoding: got, as: UTF8.self).hasSuffix("0\r\n\r\n") })
        XCTAssertEqual(GzipTesting.dechunk(Array(got[(GzipTesting.find(got, "\r\n\r\n", from: 0)! + 4)...]))?.payload.count, 1200)
        b1.send("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\nok")
        XCTAssertEqual(try XCTUnwrap(response(h, w)).body, Array("ok".utf8))
        for c in [leader, w] { c.finish() }
        XCTAssertTrue(h.run { leader.proxyClosed && w.proxyClosed })
        h.assertAtRest()
    }

    func testAWaiterGivesUpAfterTheCollapseTimeout() throws {
        let h = try harness(cache: "cache size=1m collapse_timeout=200ms;")
        let leader = h.client()
        leader.send(get("/t"))
        let b0 = try XCTUnwrap(backendRequest(h, 0))
        let w = h.client()
        let start = Date()
        w.send(get("/t"))
        let b1 = try XCTUnwrap(backendRequest(h, 1))
        XCTAssertGreaterThan(Date().timeIntervalSince(start), 0.18, "it waited collapse_timeout first")
        XCTAssertEqual(h.runtime.routeCaches[0].stats.total(.collapseTimeouts), 1)
        b1.send(ok60)
        XCTAssertEqual(xcache(try XCTUnwrap(response(h, w)).head), "MISS")
        b0.send(ok60)
        XCTAssertEqual(xcache(try XCTUnwrap(response(h, leader)).head), "MISS")
        for c in [leader, w] { c.finish() }
        XCTAssertTrue(h.run { leader.proxyClosed && w.proxyClosed })
        h.assertAtRest()
    }

    func testAnEntryEvictedOrPurgedWhileBeingSentIsSentWhole() throws {
        let h = try harness(cache: "cache size=64k max_entry=64k;")
        let body = (0..<40_000).map { UInt8($0 % 251) }
        let c = h.client()
        c.send(get("/e"))
        let b = try XCTUnwrap(backendRequest(h, 0))
        b.send(Array("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        XCTAssertEqual(try XCTUnwrap(response(h, c)).body, body)
        // A slow client: the hit stops after a few KiB.
        let slow = h.client()
        slow.fromProxy.capacity = 4096
        slow.send(get("/e"))
        XCTAssertTrue(h.run { slow.fromProxy.bytes.count == 4096 })
        XCTAssertEqual(h.worker.counters.cacheReads, 1)
        // Another response pushes /e out of the 64 KiB store, and a purge empties it, while the slow hit is half sent.
        c.send(get("/other"))
        let b2 = try XCTUnwrap(backendRequest(h, 0))
        b2.send(Array("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        XCTAssertEqual(try XCTUnwrap(response(h, c)).body, body)
        let route = h.runtime.routeCaches[0]
        XCTAssertEqual(route.evictions, 1)
        XCTAssertEqual(route.purge(key: nil), 1)
        XCTAssertEqual(route.entries, 0)
        XCTAssertEqual(route.bytes, 0)
        slow.fromProxy.capacity = 1 << 20
        let r = try XCTUnwrap(response(h, slow))
        XCTAssertEqual(xcache(r.head), "HIT")
        XCTAssertEqual(r.body, body, "the evicted entry's bytes, whole")
        XCTAssertEqual(h.worker.counters.cacheReads, 0)
        for cl in [c, slow] { cl.finish() }
        XCTAssertTrue(h.run { c.proxyClosed && slow.proxyClosed })
        h.assertAtRest()
    }

    func testConditionalRequestsAndBypasses() throws {
        let h = try harness()
        let c = h.client()
        c.send(get("/c"))
        let b = try XCTUnwrap(backendRequest(h, 0))
        b.send("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: \"v7\"\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")
        _ = try XCTUnwrap(response(h, c))
        c.send(get("/c", "If-None-Match: \"v0\", W/\"v7\"\r\n"))
        let nm = try XCTUnwrap(response(h, c))
        XCTAssertTrue(nm.head.hasPrefix("HTTP/1.1 304 Not Modified\r\n"), nm.head)
        XCTAssertTrue(nm.head.contains("\r\nETag: \"v7\""), nm.head)
        XCTAssertTrue(nm.head.contains("\r\nCache-Control: max-age=60"), nm.head)
        XCTAssertFalse(nm.head.contains("Content-Type"), "a 304 carries no representation metadata")
        XCTAssertEqual(xcache(nm.head), "HIT")
        c.send(get("/c", "If-None-Match: \"v8\"\r\n"))
        XCTAssertEqual(try XCTUnwrap(response(h, c)).body, Array("hi".utf8), "no match: the whole response")
        // Authorization bypasses the cache: to the backend, not stored.
        c.send(get("/c", "Authorization: Bearer x\r\n"))
        _ = try XCTUnwrap(backendRequest(h, 0))
        b.send("HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nprv")
        let auth = try XCTUnwrap(response(h, c))
        XCTAssertEqual(xcache(auth.head), "MISS")
        XCTAssertEqual(auth.body, Array("prv".utf8))
        // A POST to the URL invalidates it.
        c.send("POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx")
        _ = try XCTUnwrap(backendRequest(h, 0))
        b.send("HTTP/1.1 204 No Content\r\n\r\n")
        _ = try XCTUnwrap(response(h, c))
        XCTAssertEqual(h.runtime.routeCaches[0].entries, 0)
        c.send(get("/c"))
        _ = try XCTUnwrap(backendRequest(h, 0))
        b.send(ok60)
        XCTAssertEqual(xcache(try XCTUnwrap(response(h, c)).head), "MISS")
        c.finish()
        XCTAssertTrue(h.run { c.proxyClosed })
        h.assertAtRest()
    }
}
