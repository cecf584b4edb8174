// The response cache end to end: huddle in front of an independent backend (peers/raw_backend.py) whose responses the
// tests shape with query parameters (`_h=Name:Value`, `_size`, `_delay`, `_status`) and which records every request it
// gets, so "the backend was not asked" is counted where it happens, not taken from Huddle's word.
import Foundation
import Glibc
import XCTest

final class CacheTests: HuddleTestCase {
    private var backend: PythonPeer!

    override func tearDown() {
        super.tearDown()
        backend?.stop()
    }

    private func start(cache: String = "cache size=1m;", workers: Int = 2, token: Bool = true) throws -> HuddleProcess {
        if backend == nil { backend = try PythonPeer(script: "raw_backend.py", recordDirectory: true) }
        return try HuddleProcess(config: """
        \(token ? "admin 127.0.0.1:{ADMIN} { token \"secret\"; }" : "admin 127.0.0.1:{ADMIN};")
        upstream app { server 127.0.0.1:\(backend.port); keepalive 64; retries 0; connect_timeout 1s; }
        server {
            listen 127.0.0.1:{PORT};
            route /nocache/ { upstream app; }
            route / { upstream app; \(cache) }
        }
        """, workers: workers)
    }

    /// A target whose response carries `headers` (and the other controls in `extra`, e.g. `_size=100`).
    private func target(_ path: String, _ headers: [String], _ extra: String = "") -> String {
        let enc = CharacterSet.alphanumerics
        var q = headers.map { "_h=" + $0.addingPercentEncoding(withAllowedCharacters: enc)! }
        if !extra.isEmpty { q.append(extra) }
        return path + "?" + q.joined(separator: "&")
    }

    /// One GET (or another method) on its own connection.
    private func get(_ h: HuddleProcess, _ target: String, method: String = "GET", headers: [String] = []) throws -> ParsedResponse {
        let c = try RawClient(port: h.port, receiveTimeoutSeconds: 10)
        c.send("\(method) \(target) HTTP/1.1\r\nHost: cache.test\r\nConnection: close\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n")
        guard let r = ParsedResponse.parseAll(c.readAll(), headRequest: method == "HEAD").first else {
            throw HarnessError("no answer to \(method) \(target)")
        }
        return r
    }

    /// Requests the backend received for `target`.
    private func asked(_ target: String) -> Int { backend.requests().filter { $0.target == target }.count }

    /// A labelled sample of /metrics (`name{route="/"}`), or an unlabelled one.
    private func metric(_ h: HuddleProcess, _ name: String, route: String? = "/") -> Double? {
        guard let text = Invariants.adminGet(h, "/metrics") else { return nil }
        let prefix = route.map { "\(name){route=\"\($0)\"} " } ?? "\(name) "
        return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
    }

    private func backendFail(_ status: Int) throws {
        let c = try RawClient(port: backend.port, receiveTimeoutSeconds: 5)
        c.send("POST /__fail?status=\(status) HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(ParsedResponse.parseAll(c.readAll()).first?.status, 204)
    }

    // MARK: freshness

    func testMaxAgeFreshIsAHitWithoutTheBackendAndExpiredIsAMiss() throws {
        let h = try start()
        let short = target("/fresh/short", ["Cache-Control: max-age=1"])
        let long = target("/fresh/long", ["Cache-Control: max-age=60"])
        let first = try get(h, short)
        XCTAssertEqual(first.value("X-Cache"), "MISS")
        XCTAssertEqual(first.value("X-Serial"), "1")
        let again = try get(h, short)
        XCTAssertEqual(again.value("X-Cache"), "HIT")
        XCTAssertEqual(again.value("X-Serial"), "1", "the stored response")
        XCTAssertEqual(again.body, first.body)
        XCTAssertNotNil(again.value("Age"))
        XCTAssertEqual(asked(short), 1, "a fresh hit does not reach the backend")
        _ = try get(h, long)
        usleep(1_200_000)
        let expired = try get(h, short)
        XCTAssertEqual(expired.value("X-Cache"), "MISS", "max-age=1 has passed")
        XCTAssertNotEqual(expired.value("X-Serial"), "1")
        XCTAssertEqual(asked(short), 2)
        let aged = try get(h, long)
        XCTAssertEqual(aged.value("X-Cache"), "HIT")
        XCTAssertGreaterThanOrEqual(Int(aged.value("Age") ?? "") ?? -1, 1, "Age counts the time stored")
        XCTAssertEqual(asked(long), 1)

        // Expires against Date; an Expires that is not a date means already expired.
        let now = Int64(Date().timeIntervalSince1970)
        let expires = target("/fresh/expires", ["Date: \(httpDate(now))", "Expires: \(httpDate(now + 60))"])
        _ = try get(h, expires)
        XCTAssertEqual(try get(h, expires).value("X-Cache"), "HIT")
        XCTAssertEqual(asked(expires), 1)
        let past = target("/fresh/past", ["Expires: 0"])
        for _ in 0..<2 { XCTAssertEqual(try get(h, past).value("X-Cache"), "MISS") }
        XCTAssertEqual(asked(past), 2)
        XCTAssertEqual(metric(h, "huddle_cache_hits_total"), 3, "again, aged and the Expires hit")
        XCTAssertEqual(metric(h, "huddle_cache_misses_total"), 6)
    }

    func testResponsesThatMayNotBeStoredReachTheBackendEveryTime() throws {
        let h = try start(cache: "cache size=1m ttl=60s;")
        for (name, headers) in [("no-store", ["Cache-Control: no-store, max-age=60"]), ("private", ["Cache-Control: private, max-age=60"]),
                                ("no-cache", ["Cache-Control: no-cache, max-age=60"]),
                                ("set-cookie", ["Set-Cookie: session=abc; Path=/", "Cache-Control: public, max-age=60"]),
                                ("vary-star", ["Vary: *", "Cache-Control: max-age=60"])] {
            let t = target("/never/\(name)", headers)
            for i in 0..<3 {
                let r = try get(h, t)
                XCTAssertEqual(r.status, 200)
                XCTAssertEqual(r.value("X-Cache"), "MISS", "\(name), request \(i)")
                XCTAssertEqual(r.value("X-Serial").flatMap { Int($0) }.map { $0 > 0 }, true)
            }
            XCTAssertEqual(asked(t), 3, "\(name) is never answered from the cache")
        }
        // ttl=60s stores what says nothing about caching; a request can still bypass or refresh it.
        let plain = target("/never/plain", [])
        _ = try get(h, plain)
        XCTAssertEqual(try get(h, plain).value("X-Cache"), "HIT")
        XCTAssertEqual(try get(h, plain, headers: ["Authorization: Bearer x"]).value("X-Cache"), "MISS")
        XCTAssertEqual(try get(h, plain, headers: ["Cache-Control: no-store"]).value("X-Cache"), "MISS")
        let refreshed = try get(h, plain, headers: ["Cache-Control: no-cache"])
        XCTAssertEqual(refreshed.value("X-Cache"), "MISS")
        XCTAssertEqual(asked(plain), 4)
        XCTAssertEqual(try get(h, plain).value("X-Serial"), refreshed.value("X-Serial"), "no-cache refreshed the stored response")
        // A route without cache says nothing about one.
        XCTAssertNil(try get(h, "/nocache/x").value("X-Cache"))
    }

    func testVaryKeepsTheVariantsApart() throws {
        let h = try start()
        let t = target("/vary", ["Cache-Control: max-age=60", "Vary: Accept-Language"])
        let en = try get(h, t, headers: ["Accept-Language: en"])
        let de = try get(h, t, headers: ["Accept-Language: de"])
        XCTAssertEqual([en, de].map { $0.value("X-Cache") }, ["MISS", "MISS"])
        XCTAssertNotEqual(en.value("X-Serial"), de.value("X-Serial"))
        let en2 = try get(h, t, headers: ["Accept-Language: en"])
        let de2 = try get(h, t, headers: ["Accept-Language: de"])
        XCTAssertEqual([en2, de2].map { $0.value("X-Cache") }, ["HIT", "HIT"])
        XCTAssertEqual(en2.value("X-Serial"), en.value("X-Serial"), "each client gets its own variant")
        XCTAssertEqual(de2.value("X-Serial"), de.value("X-Serial"))
        XCTAssertEqual(try get(h, t).value("X-Cache"), "MISS", "no Accept-Language is a third variant")
        XCTAssertEqual(asked(t), 3)
        XCTAssertEqual(metric(h, "huddle_cache_entries"), 3)
    }

    // MARK: collapsed forwarding

    func testTwoHundredConcurrentIdenticalRequestsReachTheBackendOnce() throws {
        let h = try start(cache: "cache size=1m collapse_timeout=10s;", workers: 2)
        let t = target("/collapse", ["Cache-Control: max-age=60"], "_delay=1500")
        // Every request is on the wire before the backend answers the first (it waits 1.5 s).
        let clients = try (0..<200).map { _ in try RawClient(port: h.port, receiveTimeoutSeconds: 15) }
        for c in clients { c.send("GET \(t) HTTP/1.1\r\nHost: cache.test\r\nConnection: close\r\n\r\n") }
        var responses: [ParsedResponse] = []
        for c in clients {
            if let r = ParsedResponse.parseAll(c.readAll()).first { responses.append(r) }
        }
        XCTAssertEqual(responses.count, 200)
        XCTAssertTrue(responses.allSatisfy { $0.status == 200 && $0.value("X-Serial") == "1" && $0.body == responses[0].body },
                      "every client got the one backend response")
        let kinds = Dictionary(grouping: responses, by: { $0.value("X-Cache") ?? "-" }).mapValues(\.count)
        XCTAssertEqual(kinds, ["MISS": 1, "HIT": 199])
        XCTAssertEqual(asked(t), 1, "200 concurrent identical requests, one backend request")
        XCTAssertEqual(metric(h, "huddle_cache_hits_total"), 199)
        XCTAssertGreaterThan(metric(h, "huddle_cache_collapsed_total") ?? 0, 100, "most of them waited on the first one's fetch")
        XCTAssertEqual(metric(h, "huddle_cache_waiters", route: nil), 0)
    }

    // MARK: stale-if-error

    func testABackendFailureIsAnsweredStaleWithinStaleIfError() throws {
        let h = try start(cache: "cache size=1m stale_if_error=30s;")
        let own = target("/stale/own", ["Cache-Control: max-age=1, stale-if-error=60"])
        let byDefault = target("/stale/default", ["Cache-Control: max-age=1"])
        let forbidden = target("/stale/forbidden", ["Cache-Control: max-age=1, must-revalidate"])
        let short = target("/stale/short", ["Cache-Control: max-age=1, stale-if-error=1"])
        var first: [String: ParsedResponse] = [:]
        for t in [own, byDefault, forbidden, short] { first[t] = try get(h, t) }
        usleep(2_200_000)
        try backendFail(503)
        for t in [own, byDefault] {
            let r = try get(h, t)
            XCTAssertEqual(r.status, 200, t)
            XCTAssertEqual(r.value("X-Cache"), "STALE", t)
            XCTAssertEqual(r.body, first[t]?.body, "the stored response, past its freshness")
            XCTAssertGreaterThanOrEqual(Int(r.value("Age") ?? "") ?? 0, 2)
            XCTAssertEqual(asked(t), 2, "the backend was asked, and failed")
        }
        for t in [forbidden, short] {
            let r = try get(h, t)
            XCTAssertEqual(r.status, 503, "\(t): no stale answer allowed (must-revalidate / past the window)")
            XCTAssertEqual(r.value("X-Cache"), "MISS")
        }
        // The backend gone altogether: a connect failure is a failure too.
        backend.kill9()
        let gone = try get(h, own)
        XCTAssertEqual(gone.value("X-Cache"), "STALE")
        XCTAssertEqual(try get(h, forbidden).status, 502)
        XCTAssertEqual(metric(h, "huddle_cache_stale_total"), 3)
    }

    // MARK: purge

    func testPurgeNeedsTheTokenAndRemovesTheEntry() throws {
        let h = try start()
        let a = target("/purge/a", ["Cache-Control: max-age=60"])
        let b = target("/purge/b", ["Cache-Control: max-age=60"])
        for t in [a, b, a, b] { _ = try get(h, t) }
        XCTAssertEqual(asked(a), 1)
        let key = a.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        XCTAssertEqual(try Admin.request(h, "POST", "/api/cache/purge?route=/&key=\(key)").status, 401, "no token")
        XCTAssertEqual(try Admin.request(h, "POST", "/api/cache/purge?route=/&key=\(key)", token: "wrong").status, 401)
        XCTAssertEqual(try Admin.request(h, "GET", "/api/cache/purge?route=/&key=\(key)", token: "secret").status, 405)
        XCTAssertEqual(try Admin.request(h, "POST", "/api/cache/purge?key=\(key)", token: "secret").status, 400)
        XCTAssertEqual(try Admin.request(h, "POST", "/api/cache/purge?route=/nocache/", token: "secret").status, 404)
        XCTAssertEqual(asked(a), 1, "nothing purged yet")
        XCTAssertEqual(try get(h, a).value("X-Cache"), "HIT")
        let ok = try Admin.request(h, "POST", "/api/cache/purge?route=/&key=\(key)", token: "secret")
        XCTAssertEqual(ok.status, 200)
        XCTAssertEqual(Admin.json(ok)?["purged"] as? Int, 1)
        XCTAssertEqual(Admin.json(ok)?["key"] as? String, a)
        XCTAssertEqual(try get(h, a).value("X-Cache"), "MISS", "purged")
        XCTAssertEqual(try get(h, b).value("X-Cache"), "HIT", "another key stays")
        XCTAssertEqual(asked(a), 2)
        let all = try Admin.request(h, "POST", "/api/cache/purge?route=/", token: "secret")
        XCTAssertEqual(Admin.json(all)?["purged"] as? Int, 2, "the whole route")
        XCTAssertEqual(metric(h, "huddle_cache_entries"), 0)
        XCTAssertEqual(try get(h, b).value("X-Cache"), "MISS")
        h.stop()

        let noToken = try start(token: false)
        XCTAssertEqual(try Admin.request(noToken, "POST", "/api/cache/purge?route=/", token: "secret").status, 403,
                       "no token configured: changes are refused")
    }

    // MARK: memory

    /// A response that fits max_entry but not the store beside its key and fixed overhead is not stored: storing it
    /// would evict every entry, itself included.
    func testAnEntryLargerThanItsStoreIsNotStoredAndEvictsNothing() throws {
        let h = try start(cache: "cache size=128k max_entry=128k;", workers: 1)
        let small = target("/fit/small", ["Cache-Control: max-age=600"], "_size=100")
        _ = try get(h, small)
        XCTAssertEqual(try get(h, small).value("X-Cache"), "HIT")
        let big = target("/fit/big", ["Cache-Control: max-age=600"], "_size=130600")
        for _ in 0..<2 {
            let r = try get(h, big)
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.body.count, 130_600)
            XCTAssertEqual(r.value("X-Cache"), "MISS")
        }
        XCTAssertEqual(try get(h, small).value("X-Cache"), "HIT", "the large response must not have emptied the store")
        XCTAssertEqual(metric(h, "huddle_cache_evictions_total"), 0)
    }

    /// A sticky upstream behind a cached route still sets its cookie on the answers that come from a server.
    func testAStickyUpstreamSetsItsCookieOnACachedRoutesMisses() throws {
        backend = try PythonPeer(script: "raw_backend.py", recordDirectory: true)
        let h = try HuddleProcess(config: """
        admin 127.0.0.1:{ADMIN};
        upstream app { server 127.0.0.1:\(backend.port); sticky cookie SRV key="k-for-the-cache-test"; }
        server { listen 127.0.0.1:{PORT}; route / { upstream app; cache size=1m; } }
        """)
        let miss = try get(h, target("/sticky/a", ["Cache-Control: max-age=600"]))
        XCTAssertEqual(miss.value("X-Cache"), "MISS")
        XCTAssertTrue(miss.value("Set-Cookie")?.hasPrefix("SRV=") ?? false, "\(miss.headers)")
    }

    func testLRUEvictionKeepsMemoryWithinSize() throws {
        let h = try start(cache: "cache size=2m;", workers: 1)
        let c = try RawClient(port: h.port, receiveTimeoutSeconds: 20)
        func fetch(_ targets: [String]) -> [ParsedResponse] {
            c.send(targets.map { "GET \($0) HTTP/1.1\r\nHost: cache.test\r\n\r\n" }.joined())
            let bytes = c.read { Self.completeResponses($0) >= targets.count }
            return ParsedResponse.parseAll(bytes)
        }
        let hot = target("/lru/hot", ["Cache-Control: max-age=600"], "_size=10000")
        _ = fetch([hot])
        let rssBefore = rssKiB(h.pid)
        // 2,500 responses of 10 kB each (25 MB) through a 2 MiB cache, the hot one asked for again every 20.
        var hotHits = 0
        for batch in 0..<125 {
            var ts = (0..<20).map { target("/lru/\(batch * 20 + $0)", ["Cache-Control: max-age=600"], "_size=10000") }
            ts.append(hot)
            let rs = fetch(ts)
            XCTAssertEqual(rs.count, 21)
            XCTAssertTrue(rs.allSatisfy { $0.status == 200 && $0.body.count == 10_000 })
            if rs.last?.value("X-Cache") == "HIT" { hotHits += 1 }
            XCTAssertLessThanOrEqual(metric(h, "huddle_cache_bytes") ?? .infinity, Double(2 << 20))
        }
        XCTAssertEqual(hotHits, 125, "the entry used all along is never the least recently used")
        XCTAssertEqual(asked(hot), 1)
        let bytes = try XCTUnwrap(metric(h, "huddle_cache_bytes"))
        let entries = try XCTUnwrap(metric(h, "huddle_cache_entries"))
        XCTAssertLessThanOrEqual(bytes, Double(2 << 20))
        XCTAssertGreaterThan(bytes, Double(3 << 19), "and it is used")
        XCTAssertLessThan(entries, 210)
        XCTAssertGreaterThan(metric(h, "huddle_cache_evictions_total") ?? 0, 2000)
        let rssAfter = rssKiB(h.pid)
        // Unbounded, 25 MB of bodies would be resident; bounded, about the 2 MiB plus allocator slack.
        // Under AddressSanitizer freed memory waits in its quarantine (256 MB by default), so RSS says nothing there;
        // huddle_cache_bytes above is checked all the same.
        if ProcessInfo.processInfo.environment["ASAN_OPTIONS"] == nil {
            XCTAssertLessThan(rssAfter - rssBefore, 10 * 1024, "RSS grew \(rssAfter - rssBefore) KiB for a 2 MiB cache")
        }
        // The oldest are gone, the newest are there.
        XCTAssertEqual(fetch([target("/lru/0", ["Cache-Control: max-age=600"], "_size=10000")]).first?.value("X-Cache"), "MISS")
        XCTAssertEqual(fetch([target("/lru/2499", ["Cache-Control: max-age=600"], "_size=10000")]).first?.value("X-Cache"), "HIT")
    }

    // MARK: helpers

    /// Complete Content-Length-framed responses at the front of `b`.
    static func completeResponses(_ b: [UInt8]) -> Int {
        var n = 0
        var i = 0
        let crlf2: [UInt8] = [13, 10, 13, 10]
        while let end = b.firstRange(of: crlf2, startingAt: i) {
            let head = String(decoding: b[i..<end], as: UTF8.self).lowercased()
            let cl = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
            guard b.count >= end + 4 + cl else { break }
            n += 1
            i = end + 4 + cl
        }
        return n
    }

    private func rssKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
    }

    private func httpDate(_ t: Int64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(t)))
    }
}
