// Huddle in front of four real WebSocket backends: whole groups on one backend, bounded loads, and tunnel behaviour.
import Foundation
import Glibc
import HuddleDemo
import HuddleHTTP
import HuddleSys
import XCTest

final class WebSocketGroupTests: HuddleTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("ws_group_client.py").path
    static let backendNames = ["b1", "b2", "b3", "b4"]

    // MARK: fixtures

    /// b1...b4, each a real DemoBackend on its own loopback port.
    private func startBackends() throws -> [DemoBackend] {
        var started: [DemoBackend] = []
        do {
            for name in Self.backendNames { started.append(try Harness.startBackend(name)) }
        } catch {
            for b in started { b.stop() }
            throw error
        }
        return started
    }

    /// `chat` hashes on the room (2nd path segment) and rejects requests without one; `/lobby/` hashes too but falls
    /// back to balancing; everything else goes to `web` (p2c) on the same backends.
    static func config(backends: [DemoBackend], chatExtra: String = "") -> String {
        let servers = zip(backendNames, backends).map { name, b in
            "    server 127.0.0.1:\(b.boundAddresses[0].port) name=\(name);"
        }.joined(separator: "\n")
        return """
        admin 127.0.0.1:{ADMIN};
        upstream chat {
            balance hash;
        \(chatExtra)
        \(servers)
        }
        upstream web {
        \(servers)
        }
        server {
            listen 127.0.0.1:{PORT};
            route /rooms/ { upstream chat; group_key path 2; group_key_missing reject; }
            route /lobby/ { upstream chat; group_key path 2; group_key_missing balance; }
            route / { upstream web; }
        }

        """
    }

    /// Runs `ws_group_client.py` and parses the one JSON object it prints.
    static func runScript(_ args: [String], timeout: Double = 180) throws -> [String: Any] {
        let r = try Harness.run("/usr/bin/env", ["python3", script] + args, timeout: timeout)
        guard r.status == 0,
              let object = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else {
            throw DemoClientErrorForTesting("ws_group_client.py \(args.first ?? "") exited \(r.status): \(r.text.prefix(500)) \(r.stderr.suffix(2000))")
        }
        return object
    }

    /// The pure-hash owner of each key, as the admin API answers before any group exists.
    static func lookup(admin: String, keys: Int, format: String) throws -> [String] {
        let r = try runScript(["lookup", "--admin", admin, "--upstream", "chat", "--keys", String(keys), "--format", format])
        guard let servers = r["servers"] as? [Any] else { throw DemoClientErrorForTesting("lookup failed: \(r)") }
        return servers.map { ($0 as? String) ?? "<null>" }
    }

    private func wsAddress(_ h: HuddleProcess) -> SocketAddress { SocketAddress(ip: "127.0.0.1", port: h.port)! }

    // MARK: 1. groups land whole on one backend

    struct GroupRun {
        /// Group key -> the backend name each member's `__whoami` returned.
        var seen: [String: [String]]
        /// Group key -> (server, members) from /api/groups while everyone was connected.
        var api: [String: (server: String, members: Int)]
        var totals: [String: Any]
    }

    /// 200 groups x 10 members through Huddle, checked from both ends: what each client hears, what the admin API shows.
    /// Descriptors while all are connected: 2,000 in the Python process, about 4,000 in huddle (client + backend side of
    /// each tunnel), 2,000 in this process (the backends): 8,000 in all, each process under its 20,000 limit.
    private func runGroups(_ huddle: HuddleProcess, placeFirst: Bool, groups: Int = 200, members: Int = 10) throws -> GroupRun {
        var args = ["groups", "--url", "ws://127.0.0.1:\(huddle.port)", "--groups", String(groups), "--members", String(members),
                    "--admin", huddle.adminURL, "--upstream", "chat"]
        if placeFirst { args.append("--place-first") }
        let r = try Self.runScript(args)
        XCTAssertEqual(r["error_count"] as? Int, 0, "client errors: \(r["errors"] ?? [])")
        XCTAssertEqual(r["connected"] as? Int, groups * members)
        XCTAssertEqual(r["still_answering"] as? Int, groups * members, "every member still answers once all have joined")
        var seen: [String: [String]] = [:]
        for (k, v) in (r["backends"] as? [String: Any]) ?? [:] { seen[k] = (v as? [String]) ?? [] }
        XCTAssertEqual(seen.count, groups)
        var api: [String: (server: String, members: Int)] = [:]
        let snapshot = r["groups_api"] as? [String: Any]
        XCTAssertEqual(snapshot?["upstream"] as? String, "chat")
        for g in (snapshot?["groups"] as? [[String: Any]]) ?? [] {
            guard let key = g["key"] as? String, let server = g["server"] as? String, let m = g["members"] as? Int else {
                XCTFail("malformed group entry \(g)")
                continue
            }
            XCTAssertNil(api[key], "group \(key) listed twice")
            api[key] = (server, m)
        }
        return GroupRun(seen: seen, api: api, totals: (snapshot?["totals"] as? [String: Any]) ?? [:])
    }

    /// Every group's members all reached one backend, the admin API agrees with the clients, and the totals add up.
    private func checkWholeGroups(_ run: GroupRun, groups: Int, members: Int) -> [String: String] {
        var placement: [String: String] = [:]
        for (key, names) in run.seen.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(names.count, members, "group \(key): \(names.count) members answered")
            let distinct = Set(names)
            XCTAssertEqual(distinct.count, 1, "group \(key) is split across \(distinct.sorted())")
            guard let name = names.first else { continue }
            XCTAssertTrue(Self.backendNames.contains(name), "group \(key): unknown backend \(name)")
            placement[key] = name
            XCTAssertEqual(run.api[key]?.server, name, "group \(key): admin API says \(run.api[key]?.server ?? "nothing"), clients reached \(name)")
            XCTAssertEqual(run.api[key]?.members, members, "group \(key): admin API member count")
        }
        XCTAssertEqual(run.api.count, groups, "groups listed by /api/groups")
        XCTAssertEqual(run.totals["groups"] as? Int, groups)
        XCTAssertEqual(run.totals["members"] as? Int, groups * members)
        let perServer = (run.totals["servers"] as? [String: Any]) ?? [:]
        for name in Self.backendNames {
            let t = perServer[name] as? [String: Any]
            let count = placement.values.filter { $0 == name }.count
            XCTAssertEqual(t?["groups"] as? Int, count, "totals.servers.\(name).groups")
            XCTAssertEqual(t?["members"] as? Int, count * members, "totals.servers.\(name).members")
        }
        return placement
    }

    func testTwoHundredGroupsOfTenEachLandOnOneBackend() throws {
        let backends = try startBackends()
        defer { for b in backends { b.stop() } }
        let huddle = try HuddleProcess(config: Self.config(backends: backends), workers: 2, withAdmin: true)
        let owners = try Self.lookup(admin: huddle.adminURL, keys: 200, format: "g{:03d}")
        // All members at once, in shuffled order: first members of a group race each other on both workers.
        let run = try runGroups(huddle, placeFirst: false)
        let placement = checkWholeGroups(run, groups: 200, members: 10)
        var perServer: [String: Int] = [:]
        for (i, owner) in owners.enumerated() {
            let key = String(format: "g%03d", i)
            XCTAssertEqual(placement[key], owner, "without a balance factor, group \(key) sits on its hash owner")
            perServer[owner, default: 0] += 1
        }
        XCTAssertEqual(Set(placement.values).count, 4, "200 groups spread over all four backends: \(perServer)")
        print("groups per server, pure hash: \(perServer.sorted { $0.key < $1.key })")
        // Every member has left (the script closed them all): the table counts no live members any more.
        XCTAssertTrue(Harness.waitFor(10) {
            guard let d = try? Harness.curl(["\(huddle.adminURL)/api/groups?upstream=chat&top=5"]).stdout,
                  let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                  let t = o["totals"] as? [String: Any] else { return false }
            return t["members"] as? Int == 0
        }, "members are counted out when their tunnels close")
    }

    func testBoundedLoadsSpillGroupsButKeepEachWhole() throws {
        let factor = 1.05
        let backends = try startBackends()
        defer { for b in backends { b.stop() } }
        let huddle = try HuddleProcess(config: Self.config(backends: backends, chatExtra: "    hash_balance_factor \(factor);"),
                                       workers: 2, withAdmin: true)
        // With no live group, /api/lookup answers the pure-hash owner.
        let owners = try Self.lookup(admin: huddle.adminURL, keys: 200, format: "g{:03d}")
        var ownerCounts: [String: Int] = [:]
        for o in owners { ownerCounts[o, default: 0] += 1 }
        // Each group's first member is placed alone, in key order, so each placement sees the settled load of the groups
        // before it (1 connection per group): server i takes group j only if load_i < ceil(F*(j+1)/4), hence at most
        // ceil(F*200/4) groups per server in the end.
        let bound = Int((factor * 200 / 4).rounded(.up))
        let run = try runGroups(huddle, placeFirst: true)
        let placement = checkWholeGroups(run, groups: 200, members: 10)
        var spills: [String] = []
        var perServer: [String: Int] = [:]
        for (i, owner) in owners.enumerated() {
            let key = String(format: "g%03d", i)
            guard let server = placement[key] else { continue }
            perServer[server, default: 0] += 1
            if server != owner { spills.append("\(key):\(owner)->\(server)") }
        }
        print("bounded loads F=\(factor): owners \(ownerCounts.sorted { $0.key < $1.key }), placed \(perServer.sorted { $0.key < $1.key }), bound \(bound), \(spills.count) spills")
        // The test only means something if pure hashing would break the bound for these keys.
        XCTAssertGreaterThan(ownerCounts.values.max() ?? 0, bound, "pick keys whose pure-hash spread exceeds the bound")
        XCTAssertGreaterThanOrEqual(spills.count, (ownerCounts.values.max() ?? 0) - bound, "spills: \(spills)")
        for (server, count) in perServer {
            XCTAssertLessThanOrEqual(count, bound, "\(server) holds \(count) groups, above the bound \(bound)")
        }
    }

    // MARK: 2. messages echo intact

    func testMessagesEchoIntactWithPythonAndDemoClient() throws {
        let backends = try startBackends()
        defer { for b in backends { b.stop() } }
        let huddle = try HuddleProcess(config: Self.config(backends: backends), workers: 2, withAdmin: true)

        let py = try Self.runScript(["echo", "--url", "ws://127.0.0.1:\(huddle.port)/rooms/echo-py/echo"], timeout: 60)
        XCTAssertEqual(py["texts_equal"] as? [Bool], [true, true, true])
        let binaries = (py["binaries"] as? [[String: Any]]) ?? []
        XCTAssertEqual(binaries.map { $0["sent"] as? Int }, [0, 125, 126, 65535, 65536, 1 << 20])
        for b in binaries {
            XCTAssertEqual(b["received"] as? Int, b["sent"] as? Int, "\(b)")
            XCTAssertEqual(b["first_mismatch"] as? Int, -1, "\(b)")
        }

        let c = try DemoWebSocketClient(address: wsAddress(huddle), path: "/rooms/echo-swift/echo")
        defer { c.disconnect() }
        XCTAssertEqual(c.handshakeResponse.status, 101)
        try c.send(text: "hello through huddle")
        XCTAssertEqual(try c.receive(), .text("hello through huddle"))
        var rng = SplitMix64(seed: 42)
        let big = (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try c.send(binary: big)
        guard case .binary(let echoed) = try c.receive() else { return XCTFail("expected a binary echo") }
        XCTAssertEqual(echoed.count, big.count)
        XCTAssertTrue(echoed == big, "1 MiB binary frame differs at \(zip(echoed, big).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
        // A message in three fragments with a ping between them comes back whole, the pong first.
        try c.sendFrame(opcode: WebSocketFrame.text, payload: Array("frag".utf8), fin: false)
        try c.sendFrame(opcode: WebSocketFrame.ping, payload: Array("p".utf8))
        try c.sendFrame(opcode: WebSocketFrame.continuation, payload: Array("men".utf8), fin: false)
        try c.sendFrame(opcode: WebSocketFrame.continuation, payload: Array("ted".utf8), fin: true)
        XCTAssertEqual(try c.receive(), .pong(Array("p".utf8)))
        XCTAssertEqual(try c.receive(), .text("fragmented"))
        try c.send(text: "__whoami")
        guard case .text(let name) = try c.receive() else { return XCTFail("expected the backend's name") }
        XCTAssertTrue(Self.backendNames.contains(name), name)
    }

    // MARK: 3. a backend's close reaches the client

    func testBackendCloseReachesClient() throws {
        let backends = try startBackends()
        defer { for b in backends { b.stop() } }
        let huddle = try HuddleProcess(config: Self.config(backends: backends), workers: 2, withAdmin: true)

        let py = try Self.runScript(["close", "--url", "ws://127.0.0.1:\(huddle.port)/rooms/closing/echo"], timeout: 60)
        XCTAssertEqual(py["closed"] as? Bool, true, "\(py)")
        XCTAssertEqual(py["code"] as? Int, 1000, "close code the Python client received")

        let c = try DemoWebSocketClient(address: wsAddress(huddle), path: "/rooms/closing/echo")
        defer { c.disconnect() }
        try c.send(text: "__close")
        XCTAssertEqual(try c.receive(), .close(code: 1000, reason: ""))
        // After its Close the backend ends the connection, and Huddle passes the end on.
        XCTAssertEqual(try c.readUntilClosed(), [])
    }

    // MARK: 4. half-close

    func testHalfCloseStillDeliversTheEchoThenEOF() throws {
        let backends = try startBackends()
        defer { for b in backends { b.stop() } }
        let huddle = try HuddleProcess(config: Self.config(backends: backends), workers: 2, withAdmin: true)

        let c = try RawClient(port: huddle.port)
        c.send("GET /rooms/half/echo HTTP/1.1\r\nHost: huddle.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        let head = c.read { $0.occurrences(of: "\r\n\r\n") >= 1 }
        XCTAssertTrue(head.text.hasPrefix("HTTP/1.1 101"), head.text)
        XCTAssertTrue(head.text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), head.text)
        let marker = Array("\r\n\r\n".utf8)
        let headEnd = (0...max(0, head.count - 4)).first { head[$0...].starts(with: marker) }.map { $0 + 4 } ?? head.count
        // Frames that came in the same read as the 101 are still frames: keep them for the decoder.
        let early = Array(head[headEnd...])

        let payload = Array("said before the half-close".utf8)
        c.send(WebSocketFrame.encode(opcode: WebSocketFrame.text, payload: payload, maskKey: 0x1234_5678))
        c.shutdownWrite()
        let (closed, bytes) = c.waitForClose()
        XCTAssertTrue(closed, "the connection ends (EOF) after the echo")
        var decoder = WebSocketFrameDecoder()
        decoder.feed(early + bytes)
        let frame = try decoder.nextFrame()
        XCTAssertEqual(frame?.opcode, WebSocketFrame.text)
        XCTAssertEqual(frame?.payload, payload, "the echo written after our FIN still arrives")
        XCTAssertNil(try decoder.nextFrame(), "nothing but the echo")
    }

    // MARK: 5. a backend killed mid-session

    func testKilledBackendClosesItsTunnelsOnly() throws {
        let backends = try startBackends()
        defer { for b in backends { b.stop() } }
        let huddle = try HuddleProcess(config: Self.config(backends: backends), workers: 2, withAdmin: true)

        // Two members of groups on each backend, found by asking (the hash is stable, so these keys always find all
        // four; 64 leaves a wide margin).
        var byBackend: [String: [DemoWebSocketClient]] = [:]
        var keysByBackend: [String: [String]] = [:]
        for i in 0..<64 {
            if byBackend.count == 4 && byBackend.values.allSatisfy({ $0.count == 2 }) { break }
            let path = "/rooms/k\(i)/echo"
            let a = try DemoWebSocketClient(address: wsAddress(huddle), path: path)
            try a.send(text: "__whoami")
            guard case .text(let name) = try a.receive() else { return XCTFail("no name from \(path)") }
            guard (byBackend[name]?.count ?? 0) < 2 else { a.disconnect(); continue }
            byBackend[name, default: []].append(a)
            keysByBackend[name, default: []].append("k\(i)")
        }
        XCTAssertEqual(byBackend.keys.sorted(), Self.backendNames)
        defer { for list in byBackend.values { for c in list { c.disconnect() } } }
        guard let victimIndex = Self.backendNames.firstIndex(where: { (byBackend[$0]?.count ?? 0) >= 1 }) else { return }
        let victim = Self.backendNames[victimIndex]
        let victimKeys = keysByBackend[victim] ?? []

        backends[victimIndex].stop()
        for c in byBackend[victim] ?? [] {
            do {
                _ = try c.readUntilClosed()
            } catch let e as DemoClientError {
                // A reset also ends the read; only a timeout would mean the tunnel stayed open.
                XCTAssertFalse(e.description.contains("timed out"), "a client of the stopped backend still waits: \(e)")
            }
        }
        for (name, clients) in byBackend where name != victim {
            for (i, c) in clients.enumerated() {
                let msg = "still here \(name) \(i)"
                try c.send(text: msg)
                XCTAssertEqual(try c.receive(), .text(msg), "a client on \(name) keeps echoing")
                try c.send(binary: Array(repeating: UInt8(i), count: 70_000))
                XCTAssertEqual(try c.receive(), .binary(Array(repeating: UInt8(i), count: 70_000)))
            }
        }
        // A group that lived on the stopped backend moves as a whole: its next members meet on one surviving backend
        // (the first finds the old server refusing, is retried elsewhere and re-places the group; the second follows).
        for key in victimKeys {
            var names: [String] = []
            var rejoined: [DemoWebSocketClient] = []
            defer { for c in rejoined { c.disconnect() } }
            for _ in 0..<2 {
                let c = try DemoWebSocketClient(address: wsAddress(huddle), path: "/rooms/\(key)/echo")
                rejoined.append(c)
                try c.send(text: "__whoami")
                guard case .text(let name) = try c.receive() else { return XCTFail("no name for \(key)") }
                names.append(name)
            }
            XCTAssertFalse(names.contains(victim), "group \(key) still sent to the stopped \(victim): \(names)")
            XCTAssertEqual(Set(names).count, 1, "group \(key) split after moving: \(names)")
        }
    }

    // MARK: 6. h2c is not tunnelled; a hash route without a key

    /// Reads one response with a Content-Length body (or none) off a raw connection.
    private func readResponse(_ c: RawClient) -> (head: String, body: [UInt8]) {
        func split(_ bytes: [UInt8]) -> (head: String, bodyStart: Int, length: Int)? {
            let marker = Array("\r\n\r\n".utf8)
            guard bytes.count >= 4, let i = (0...(bytes.count - 4)).first(where: { bytes[$0..<($0 + 4)].elementsEqual(marker) }) else { return nil }
            let head = String(decoding: bytes[0..<i], as: UTF8.self)
            var length = 0
            for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            return (head, i + 4, length)
        }
        let bytes = c.read { b in split(b).map { b.count >= $0.bodyStart + $0.length } ?? false }
        guard let s = split(bytes) else { return (bytes.text, []) }
        return (s.head, Array(bytes[s.bodyStart..<min(bytes.count, s.bodyStart + s.length)]))
    }

    func testH2CUpgradeIsForwardedAsPlainRequest() throws {
        let backends = try startBackends()
        defer { for b in backends { b.stop() } }
        let huddle = try HuddleProcess(config: Self.config(backends: backends), workers: 2, withAdmin: true)

        let c = try RawClient(port: huddle.port)
        c.send("GET /headers HTTP/1.1\r\nHost: huddle.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        let first = readResponse(c)
        XCTAssertTrue(first.head.hasPrefix("HTTP/1.1 200"), first.head)
        XCTAssertFalse(first.head.contains("101"), first.head)
        // The backend's /headers answer is the request it received: the upgrade offer was dropped as hop-by-hop.
        let seen = first.body.text.lowercased()
        XCTAssertTrue(seen.hasPrefix("get /headers http/1.1\r\n"), first.body.text)
        XCTAssertFalse(seen.contains("upgrade:"), first.body.text)
        XCTAssertFalse(seen.contains("http2-settings:"), first.body.text)
        // Still plain HTTP on the same connection: a tunnel would not parse a second request.
        c.send("GET /headers HTTP/1.1\r\nHost: huddle.test\r\n\r\n")
        let second = readResponse(c)
        XCTAssertTrue(second.head.hasPrefix("HTTP/1.1 200"), second.head)
        XCTAssertTrue(second.body.text.hasPrefix("GET /headers HTTP/1.1\r\n"), second.body.text)

        // On the hash route: the room's backend answers the plain request, again with no 101.
        let r = try RawClient(port: huddle.port)
        r.send("GET /rooms/h2c-room HTTP/1.1\r\nHost: huddle.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               + "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        let room = readResponse(r)
        XCTAssertTrue(room.head.hasPrefix("HTTP/1.1 200"), room.head)
        XCTAssertTrue(room.head.contains("X-Backend: b"), room.head)
    }

    func testMissingGroupKeyIsRejectedOrBalancedAsConfigured() throws {
        let backends = try startBackends()
        defer { for b in backends { b.stop() } }
        let huddle = try HuddleProcess(config: Self.config(backends: backends), workers: 2, withAdmin: true)

        // `group_key_missing reject`: a plain request and a WebSocket upgrade without a room both get 400.
        let plain = try RawClient(port: huddle.port)
        plain.send("GET /rooms/ HTTP/1.1\r\nHost: huddle.test\r\n\r\n")
        let p = readResponse(plain)
        XCTAssertTrue(p.head.hasPrefix("HTTP/1.1 400"), p.head)
        XCTAssertFalse(p.head.contains("X-Backend:"), "answered by Huddle, not a backend: \(p.head)")
        XCTAssertThrowsError(try DemoWebSocketClient(address: wsAddress(huddle), path: "/rooms/")) { e in
            XCTAssertTrue("\(e)".contains("400"), "\(e)")
        }

        // `group_key_missing balance`: the same shapes are served by some backend.
        let lobby = try RawClient(port: huddle.port)
        lobby.send("GET /lobby/ HTTP/1.1\r\nHost: huddle.test\r\n\r\n")
        let l = readResponse(lobby)
        XCTAssertTrue(l.head.hasPrefix("HTTP/1.1 200"), l.head)
        XCTAssertTrue(l.body.text.hasPrefix("hello from b"), l.body.text)
        let ws = try DemoWebSocketClient(address: wsAddress(huddle), path: "/lobby/")
        defer { ws.disconnect() }
        try ws.send(text: "__whoami")
        guard case .text(let name) = try ws.receive() else { return XCTFail("expected the backend's name") }
        XCTAssertTrue(Self.backendNames.contains(name), name)
    }
}

/// An error message for test helpers (DemoClientError's initializer is internal to HuddleDemo).
struct DemoClientErrorForTesting: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
