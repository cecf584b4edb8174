// Tests for valid configs: defaults, every directive's happy path, syntax details and route ordering.

import XCTest
@testable import HuddleConfig

final class ConfigParserTests: XCTestCase {
    func testEmptyConfigKeepsEveryDefault() throws {
        let c = try XCTUnwrap(parseForTesting("  # nothing but a comment\n"))
        XCTAssertEqual(c.file, testFile)
        XCTAssertNil(c.workers)
        XCTAssertEqual(c.shutdownTimeout, 30_000)
        XCTAssertEqual(c.maxConnectionsPerWorker, 10_000)
        XCTAssertEqual(c.accessLog.target, .stderr)
        XCTAssertEqual(c.accessLog.format, .combined)
        XCTAssertEqual(c.errorLog.target, .stderr)
        XCTAssertEqual(c.errorLog.level, .info)
        XCTAssertNil(c.admin)
        XCTAssertTrue(c.upstreams.isEmpty)
        XCTAssertTrue(c.servers.isEmpty)
    }

    func testBlockDefaults() throws {
        let c = try XCTUnwrap(parseForTesting("""
            upstream web { server 127.0.0.1:9001; health_check /hc; passive_health; }
            server { listen 8080; route / { upstream web; } }
            """))
        let u = try XCTUnwrap(c.upstream(named: "web"))
        XCTAssertEqual(u.balance, .p2c)
        XCTAssertNil(u.hashBalanceFactor)
        XCTAssertEqual(u.groupLinger, 5000)
        XCTAssertEqual(u.connectTimeout, 2000)
        XCTAssertEqual(u.responseTimeout, 60_000)
        XCTAssertEqual(u.keepalive, 64)
        XCTAssertEqual(u.keepaliveTimeout, 60_000)
        XCTAssertEqual(u.retries, 1)
        XCTAssertNil(u.sendProxyProtocol)
        let s = u.servers[0]
        XCTAssertEqual(s.weight, 1)
        XCTAssertEqual(s.identity, "127.0.0.1:9001")
        XCTAssertFalse(s.resolve || s.backup || s.down)
        let hc = try XCTUnwrap(u.healthCheck)
        XCTAssertEqual(hc.path, "/hc")
        XCTAssertEqual(hc.interval, 2000)
        XCTAssertEqual(hc.timeout, 1000)
        XCTAssertEqual(hc.rise, 2)
        XCTAssertEqual(hc.fall, 3)
        XCTAssertEqual(hc.expect, [200...399])
        let ph = try XCTUnwrap(u.passiveHealth)
        XCTAssertEqual(ph.failures, 5)
        XCTAssertEqual(ph.ejection, 30_000)
        XCTAssertEqual(ph.maxEjectedPercent, 50)

        let b = c.servers[0]
        XCTAssertEqual(b.listens.map(\.address.description), ["0.0.0.0:8080"])
        XCTAssertFalse(b.listens[0].tls)
        XCTAssertTrue(b.tlsCertificates.isEmpty)
        XCTAssertEqual(b.tlsProtocols, [.tls12, .tls13])
        XCTAssertEqual(b.tlsHandshakeTimeout, 10_000)
        XCTAssertFalse(b.listens[0].proxyProtocol)
        XCTAssertEqual(b.headerTimeout, 10_000)
        XCTAssertEqual(b.idleTimeout, 60_000)
        XCTAssertEqual(b.tunnelIdleTimeout, 3_600_000)
        XCTAssertEqual(b.maxHeaderSize, 16_384)
        XCTAssertEqual(b.maxBodySize, 0)
        XCTAssertFalse(b.gzip.enabled)
        XCTAssertEqual(b.gzip.minLength, 1024)
        XCTAssertEqual(b.gzip.level, 5)
        XCTAssertEqual(b.gzip.types, ["text/html", "text/plain", "application/json"])
        let r = b.routes[0]
        XCTAssertEqual(r.prefix, "/")
        XCTAssertEqual(r.upstream, "web")
        XCTAssertTrue(r.groupKeys.isEmpty)
        XCTAssertEqual(r.groupKeyMissing, .reject)
        XCTAssertEqual(r.allowUpgrades, ["websocket"])
    }

    func testTopLevelDirectives() throws {
        let c = try XCTUnwrap(parseForTesting("""
            workers 4;
            shutdown_timeout 1m30s;
            max_connections 2048;
            access_log /var/log/huddle/access.log format=json;
            error_log stdout level=debug;
            admin [::1]:9090 { token "s3cr\\"et"; }
            """))
        XCTAssertEqual(c.workers, 4)
        XCTAssertEqual(c.shutdownTimeout, 90_000)
        XCTAssertEqual(c.maxConnectionsPerWorker, 2048)
        XCTAssertEqual(c.accessLog.target, .file("/var/log/huddle/access.log"))
        XCTAssertEqual(c.accessLog.format, .json)
        XCTAssertEqual(c.errorLog.target, .stdout)
        XCTAssertEqual(c.errorLog.level, .debug)
        XCTAssertEqual(c.admin?.address.description, "[::1]:9090")
        XCTAssertEqual(c.admin?.token, "s3cr\"et")
        XCTAssertEqual(c.admin?.location, SourceLocation(file: testFile, line: 6, column: 1))
    }

    func testWorkersAutoAccessLogOffAndAdminWithoutBlock() throws {
        let c = try XCTUnwrap(parseForTesting("workers auto; access_log off; error_log \"/tmp/e r.log\" level=warn; admin 9090;"))
        XCTAssertNil(c.workers)
        XCTAssertEqual(c.accessLog.target, .off)
        XCTAssertEqual(c.errorLog.target, .file("/tmp/e r.log"))
        XCTAssertEqual(c.errorLog.level, .warn)
        XCTAssertEqual(c.admin?.address.description, "0.0.0.0:9090")
        XCTAssertNil(c.admin?.token)
    }

    func testUpstreamDirectives() throws {
        let c = try XCTUnwrap(parseForTesting("""
            upstream chat {
                balance hash;
                hash_balance_factor 1.25;
                group_linger 10s;
                server 127.0.0.1:9101;
                server 127.0.0.1:9102 weight=2 name=chat-b;
                server chat.default.svc.cluster.local:8080 resolve;
                server [::1]:9103 weight=0 backup down;
                health_check /healthz interval=500ms timeout=250ms rise=1 fall=4 expect=200,204-299;
                passive_health failures=3 ejection=1m max_ejected=25%;
                connect_timeout 3s;
                response_timeout 2m;
                keepalive 0;
                keepalive_timeout 15s;
                retries 0;
                send_proxy_protocol v2;
            }
            upstream rr { balance round_robin; server 10.0.0.1:80; send_proxy_protocol v1; }
            """))
        XCTAssertEqual(c.upstreams.map(\.name), ["chat", "rr"])
        let u = c.upstreams[0]
        XCTAssertEqual(u.balance, .hash)
        XCTAssertEqual(u.hashBalanceFactor, 1.25)
        XCTAssertEqual(u.groupLinger, 10_000)
        XCTAssertEqual(u.servers.map(\.identity), ["127.0.0.1:9101", "chat-b", "chat.default.svc.cluster.local:8080", "[::1]:9103"])
        XCTAssertEqual(u.servers[1].weight, 2)
        XCTAssertEqual(u.servers[1].address.description, "127.0.0.1:9102")
        XCTAssertTrue(u.servers[2].resolve)
        XCTAssertEqual(u.servers[2].address.port, 8080)
        XCTAssertEqual(u.servers[3].weight, 0)
        XCTAssertTrue(u.servers[3].backup)
        XCTAssertTrue(u.servers[3].down)
        XCTAssertFalse(u.servers[3].resolve)
        XCTAssertEqual(u.servers[3].location, SourceLocation(file: testFile, line: 8, column: 5))
        let hc = try XCTUnwrap(u.healthCheck)
        XCTAssertEqual(hc.interval, 500)
        XCTAssertEqual(hc.timeout, 250)
        XCTAssertEqual(hc.rise, 1)
        XCTAssertEqual(hc.fall, 4)
        XCTAssertEqual(hc.expect, [200...200, 204...299])
        XCTAssertEqual(u.passiveHealth?.failures, 3)
        XCTAssertEqual(u.passiveHealth?.ejection, 60_000)
        XCTAssertEqual(u.passiveHealth?.maxEjectedPercent, 25)
        XCTAssertEqual(u.connectTimeout, 3000)
        XCTAssertEqual(u.responseTimeout, 120_000)
        XCTAssertEqual(u.keepalive, 0)
        XCTAssertEqual(u.keepaliveTimeout, 15_000)
        XCTAssertEqual(u.retries, 0)
        XCTAssertEqual(u.sendProxyProtocol, .v2)
        XCTAssertEqual(c.upstreams[1].balance, .roundRobin)
        XCTAssertEqual(c.upstreams[1].sendProxyProtocol, .v1)
    }

    func testServerBlockDirectives() throws {
        let c = try XCTUnwrap(parseForTesting(minimalUpstream + """
            server {
                listen 127.0.0.1:8080;
                listen *:8443 tls;
                listen 8444 proxy_protocol;
                listen [::1]:8445 tls proxy_protocol;
                tls_certificate /etc/huddle/cert.pem;
                tls_certificate_key "/etc/huddle/key file.pem";
                header_timeout 5s;
                idle_timeout 30s;
                tunnel_idle_timeout 2h;
                max_header_size 32k;
                max_body_size 10m;
                gzip on min_length=512 level=7 types=Text/HTML,application/json,text/html;
                route / { upstream web; }
            }
            server { listen 9000; route /a { upstream web; } }
            server { listen 9001; gzip on types=*; route /b { upstream web; } }
            """))
        XCTAssertEqual(c.servers.count, 3)
        let b = c.servers[0]
        XCTAssertEqual(b.listens.map(\.address.description), ["127.0.0.1:8080", "0.0.0.0:8443", "0.0.0.0:8444", "[::1]:8445"])
        XCTAssertEqual(b.listens.map(\.tls), [false, true, false, true])
        XCTAssertEqual(b.listens.map(\.proxyProtocol), [false, false, true, true])
        XCTAssertEqual(b.listens[1].location, SourceLocation(file: testFile, line: 4, column: 5))
        XCTAssertEqual(b.tlsCertificates.map(\.certificate), ["/etc/huddle/cert.pem"])
        XCTAssertEqual(b.tlsCertificates.map(\.key), ["/etc/huddle/key file.pem"])
        XCTAssertEqual(b.headerTimeout, 5000)
        XCTAssertEqual(b.idleTimeout, 30_000)
        XCTAssertEqual(b.tunnelIdleTimeout, 7_200_000)
        XCTAssertEqual(b.maxHeaderSize, 32_768)
        XCTAssertEqual(b.maxBodySize, 10 << 20)
        XCTAssertTrue(b.gzip.enabled)
        XCTAssertEqual(b.gzip.minLength, 512)
        XCTAssertEqual(b.gzip.level, 7)
        XCTAssertEqual(b.gzip.types, ["text/html", "application/json"], "lower-cased, duplicates dropped")
        XCTAssertFalse(c.servers[1].gzip.enabled)
        XCTAssertEqual(c.servers[1].gzip.level, 5, "default level")
        XCTAssertEqual(c.servers[1].gzip.types, ["text/html", "text/plain", "application/json"], "default types")
        XCTAssertEqual(c.servers[2].gzip.types, ["*"])
        XCTAssertEqual(c.servers[2].gzip.minLength, 1024)
        XCTAssertEqual(b.location, SourceLocation(file: testFile, line: 2, column: 1))
        XCTAssertEqual(c.servers[1].routes.map(\.prefix), ["/a"])
    }

    func testRouteDirectivesAndOrdering() throws {
        let c = try XCTUnwrap(parseForTesting("""
            upstream chat { balance hash; server 127.0.0.1:9101; }
            upstream web { server 127.0.0.1:9001; }
            server {
                listen 8080;
                route / { upstream web; }
                route /rooms/ {
                    upstream chat;
                    group_key path 2;
                    group_key header X-Group-Id;
                    group_key cookie room;
                    group_key query room;
                    group_key_missing balance;
                    allow_upgrade WebSocket h2c;
                }
                route /api { upstream web; allow_upgrade off; group_key header X-Tenant; }
                route /b { upstream web; }
            }
            """))
        let routes = c.servers[0].routes
        // Longest prefix first; "/api" and "/b"... keep file order only among equal lengths.
        XCTAssertEqual(routes.map(\.prefix), ["/rooms/", "/api", "/b", "/"])
        let rooms = routes[0]
        XCTAssertEqual(rooms.upstream, "chat")
        XCTAssertEqual(rooms.groupKeys, [.path(2), .header("X-Group-Id"), .cookie("room"), .query("room")])
        XCTAssertEqual(rooms.groupKeyMissing, .balance)
        XCTAssertEqual(rooms.allowUpgrades, ["websocket", "h2c"])
        XCTAssertEqual(rooms.location, SourceLocation(file: testFile, line: 6, column: 5))
        // A group key on a non-hash upstream is allowed: it only feeds the group table.
        XCTAssertEqual(routes[1].groupKeys, [.header("X-Tenant")])
        XCTAssertEqual(routes[1].allowUpgrades, [])
    }

    func testEqualLengthRoutesKeepFileOrder() throws {
        let c = try XCTUnwrap(parseForTesting(minimalUpstream + """
            server { listen 8080; route /zz { upstream web; } route /aa { upstream web; } route /mm { upstream web; } }
            """))
        XCTAssertEqual(c.servers[0].routes.map(\.prefix), ["/zz", "/aa", "/mm"])
    }

    func testSyntaxDetails() throws {
        // Comments anywhere a token may start, "#" inside a word, quoted segments inside a word,
        // braces without spaces, CRLF line ends and tabs.
        let text = "upstream web{server 127.0.0.1:9001 name=\"a-b\";}# trailing\r\n"
            + "server {\tlisten 8080;#x\r\n route /a#b {upstream web;} }\n"
        let c = try XCTUnwrap(parseForTesting(text))
        XCTAssertEqual(c.upstreams[0].servers[0].identity, "a-b")
        XCTAssertEqual(c.servers[0].routes[0].prefix, "/a#b")
        XCTAssertEqual(c.servers[0].location.line, 2)
        XCTAssertEqual(c.servers[0].routes[0].location, SourceLocation(file: testFile, line: 3, column: 2))
    }

    func testUnknownKeyValueWordsCanBePositional() throws {
        // Only known option keys are options: a path with "=" in it is still the path.
        let c = try XCTUnwrap(parseForTesting("upstream web { server 127.0.0.1:1; health_check /hc?probe=1 rise=3; }"))
        XCTAssertEqual(c.upstreams[0].healthCheck?.path, "/hc?probe=1")
        XCTAssertEqual(c.upstreams[0].healthCheck?.rise, 3)
    }

    func testByteOrderMarkAndQuotedDirectiveNames() throws {
        let c = try XCTUnwrap(parseForTesting("\u{FEFF}workers 2;\n\"shutdown_timeout\" \"5s\";"))
        XCTAssertEqual(c.workers, 2)
        XCTAssertEqual(c.shutdownTimeout, 5000)
    }

    func testColumnsCountCharactersNotBytes() {
        // "é" is two bytes in UTF-8 but one column.
        let errors = errorsForTesting("# é\nworkers \"é\"; workers 2x;")
        XCTAssertEqual(errors.first, "t.conf:2:9: error: expected \"auto\" or a number of workers, found \"é\"")
    }

    func testListenOnPortZeroMayRepeat() throws {
        let c = try XCTUnwrap(parseForTesting(minimalUpstream + """
            server { listen 127.0.0.1:0; route / { upstream web; } }
            server { listen 127.0.0.1:0; route / { upstream web; } }
            """))
        XCTAssertEqual(c.servers.flatMap(\.listens).map(\.address.port), [0, 0])
    }

    func testLoadReadsAFileAndReportsUnreadableOnes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("huddle-config-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ok.conf").path
        try Data("workers 3;".utf8).write(to: URL(fileURLWithPath: path))
        let c = try ConfigParser.load(path: path)
        XCTAssertEqual(c.workers, 3)
        XCTAssertEqual(c.file, path)

        let missing = dir.appendingPathComponent("missing.conf").path
        XCTAssertThrowsError(try ConfigParser.load(path: missing)) { error in
            XCTAssertEqual("\(error)", "\(missing):1:1: error: cannot read file: No such file or directory")
        }
        XCTAssertThrowsError(try ConfigParser.load(path: dir.path)) { error in
            XCTAssertEqual("\(error)", "\(dir.path):1:1: error: cannot read file: Is a directory")
        }
        let bad = dir.appendingPathComponent("bad.conf").path
        try Data([0x77, 0xFF, 0x3B]).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try ConfigParser.load(path: bad)) { error in
            XCTAssertEqual("\(error)", "\(bad):1:1: error: cannot read file: not valid UTF-8")
        }
    }
}
