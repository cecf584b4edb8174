// Tests for invalid configs: every class of error with its exact line, column and wording.

import XCTest
@testable import HuddleConfig

final class ConfigErrorTests: XCTestCase {
    // MARK: - Syntax

    func testUnknownDirectiveSuggestsTheClosestName() {
        assertSingleError("server {\n    listn 8080;\n}", at: (2, 5),
                          contains: "unknown directive \"listn\" in server block (expected one of: listen, tls_certificate, ")
        assertSingleError("server {\n    listn 8080;\n}", at: (2, 5), contains: "; did you mean \"listen\"?")
        let far = errorsForTesting("frobnicate 1;")
        XCTAssertEqual(far, ["t.conf:1:1: error: unknown directive \"frobnicate\" at top level (expected one of: workers, shutdown_timeout, max_connections, access_log, error_log, admin, resolver, reload_on_change, upstream, server)"])
    }

    func testDirectiveInTheWrongBlockSaysWhereItBelongs() {
        assertSingleError("listen 8080;", at: (1, 1), contains: "\"listen\" is not allowed at top level (it belongs in a server block)")
        assertSingleError(minimalUpstream + "server { listen 80; route / { upstream web; } balance hash; }", at: (2, 47),
                          contains: "\"balance\" is not allowed in server block (it belongs in an upstream block)")
        assertSingleError("server 127.0.0.1:9001;", at: (1, 1), contains: "\"server 127.0.0.1:9001\" belongs in an upstream block")
    }

    func testArgumentCounts() {
        assertSingleError("workers 4 5;", at: (1, 11), contains: "\"workers\" takes 1 argument, found 2")
        assertSingleError("shutdown_timeout;", at: (1, 1), contains: "\"shutdown_timeout\" takes 1 argument, found 0")
        assertSingleError(minimalUpstream + "server { listen 80; route / { upstream web; group_key path; } }", at: (2, 45),
                          contains: "\"group_key\" takes 2 arguments, found 1")
        assertSingleError(minimalUpstream + "server { listen 80; route / { upstream web; allow_upgrade; } }", at: (2, 45),
                          contains: "\"allow_upgrade\" takes at least 1 argument, found 0")
        assertSingleError("server x { }", at: (1, 8), contains: "\"server\" takes no arguments, found 1")
    }

    func testKnownOptionIsNeverTakenForTheMissingArgument() {
        assertSingleError("access_log format=json;", at: (1, 1), contains: "\"access_log\" takes 1 argument, found 0")
        assertSingleError("server {\n  listen tls;\n}", at: (2, 3), contains: "\"listen\" takes 1 argument, found 0")
        assertSingleError("access_log \"\";", at: (1, 12), contains: "expected stderr, stdout, off or a file path for \"access_log\", found \"\"")
    }

    func testListenFlagErrors() {
        let block = { (listen: String) in minimalUpstream + "server {\n  \(listen)\n  route / { upstream web; }\n}" }
        assertSingleError(block("listen 8080 proxy_protocl;"), at: (3, 15),
                          contains: "unknown option \"proxy_protocl\" for \"listen\" (expected one of: tls, proxy_protocol); did you mean \"proxy_protocol\"?")
        assertSingleError(block("listen 8080 proxy_protocol proxy_protocol;"), at: (3, 30), contains: "duplicate \"proxy_protocol\" for \"listen\"")
        assertSingleError(block("listen 8080 proxy_protocol=v2;"), at: (3, 15), contains: "for \"listen\"")
        assertSingleError("server {\n  listen proxy_protocol;\n}", at: (2, 3), contains: "\"listen\" takes 1 argument, found 0")
    }

    func testForgottenSemicolonBeforeTheNextLineIsHinted() {
        assertSingleError("workers 4\nshutdown_timeout 3s;", at: (2, 1),
                          contains: "\"workers\" takes 1 argument, found 3; is a \";\" missing at the end of line 1?")
    }

    func testMissingSemicolonBeforeClosingBrace() {
        assertSingleError(minimalUpstream + "server {\n  listen 80;\n  route / { upstream web }\n}", at: (4, 26),
                          contains: "expected \";\" to end \"upstream\", found \"}\"")
    }

    func testMissingSemicolonAtEndOfFile() {
        assertSingleError("workers 4", at: (1, 10), contains: "unexpected end of file: expected \";\" or \"{\" after \"workers\"")
    }

    func testMissingClosingBraceNamesWhereTheBlockOpened() {
        let text = minimalUpstream + "server {\n    listen 80;\n    route / {\n        upstream web;\n"
        assertSingleError(text, at: (6, 1), contains: "unexpected end of file: expected \"}\" to close the block opened at 4:13")
    }

    func testStrayPunctuation() {
        assertSingleError("}", at: (1, 1), contains: "unexpected \"}\": there is no open block to close")
        assertSingleError("workers 1;\n;", at: (2, 1), contains: "unexpected \";\": expected a directive name")
        assertSingleError("  { workers 1; }", at: (1, 3), contains: "unexpected \"{\": expected a directive name before the block")
    }

    func testStringErrors() {
        // The unterminated string swallows the rest, so nothing after it is judged.
        XCTAssertEqual(errorsForTesting("workers 2;\nerror_log \"/tmp/x;\nworkers 99999;\n"),
                       ["t.conf:2:11: error: unterminated string: expected a closing \" for the quote opened here"])
        assertSingleError("admin 9090 { token \"a\\qb\"; }", at: (1, 22), contains: "unknown escape \"\\\\q\" in a quoted string")
        XCTAssertEqual(errorsForTesting("access_log \"/a\"b;"),
                       ["t.conf:1:16: error: expected a space, \";\" or \"{\" after the closing quote, found \"b\""])
    }

    func testDuplicateSingleDirective() {
        assertSingleError("workers 1;\n  workers 2;", at: (2, 3), contains: "duplicate \"workers\" (first at t.conf:1:1)")
    }

    func testBlockWhereNoneIsTakenAndMissingBlock() {
        assertSingleError("workers 2 { }", at: (1, 11), contains: "\"workers\" takes no block: expected \";\"")
        assertSingleError("upstream web;", at: (1, 13), contains: "\"upstream\" needs a block: expected \"{\", found \";\"")
        assertSingleError("server;", at: (1, 7), contains: "\"server\" needs a block")
    }

    func testDeepNestingIsRefusedNotCrashed() {
        let text = String(repeating: "a {", count: 200) + String(repeating: "}", count: 200)
        let errors = errorsForTesting(text)
        XCTAssertTrue(errors.contains { $0.contains("blocks nested more than 16 deep") }, "\(errors)")
    }

    // MARK: - Values

    func testValueErrorsPointAtTheValue() {
        assertSingleError("shutdown_timeout 2x;", at: (1, 18), contains: "expected a duration such as 250ms, 2s, 5m or 1h, found \"2x\"")
        assertSingleError("workers -1;", at: (1, 9), contains: "expected \"auto\" or a number of workers, found \"-1\"")
        assertSingleError("workers 0;", at: (1, 9), contains: "\"workers\" must be between 1 and 1024, found 0")
        assertSingleError("max_connections 99999999999999999999999;", at: (1, 17), contains: "expected a whole number for \"max_connections\"")
        assertSingleError("access_log stderr format=xml;", at: (1, 26), contains: "expected one of combined, json for \"format\", found \"xml\"")
        assertSingleError("error_log stderr level=warning;", at: (1, 24), contains: "found \"warning\"; did you mean \"warn\"?")
        assertSingleError("error_log off;", at: (1, 11), contains: "\"error_log\" cannot be turned off")
        assertSingleError("admin 127.0.0.1;", at: (1, 7), contains: "expected an address such as 127.0.0.1:8080, [::1]:8080, *:8080 or 8080, found \"127.0.0.1\"")
        assertSingleError("admin 9090 { token \"\"; }", at: (1, 20), contains: "expected a non-empty token")
    }

    func testUpstreamValueErrors() {
        func inUpstream(_ line: String) -> String { "upstream web {\n    server 127.0.0.1:9001;\n    \(line)\n}" }
        assertSingleError(inUpstream("balance p2d;"), at: (3, 13), contains: "expected one of p2c, hash, round_robin for \"balance\", found \"p2d\"; did you mean \"p2c\"?")
        assertSingleError(inUpstream("balance hash; hash_balance_factor 1.0;"), at: (3, 39), contains: "expected a number above 1.0 such as 1.25")
        assertSingleError(inUpstream("server 127.0.0.1:9002 weight=1001;"), at: (3, 34), contains: "\"weight\" must be between 0 and 1000, found 1001")
        assertSingleError(inUpstream("server 9002;"), at: (3, 12), contains: "expected a backend address such as 127.0.0.1:9001")
        assertSingleError(inUpstream("server 127.0.0.1:9002 name=\"a b\";"), at: (3, 32), contains: "a server name may contain only letters")
        assertSingleError(inUpstream("health_check healthz;"), at: (3, 18), contains: "expected a health check path starting with \"/\" or \"tcp\" for a connect-only check, found \"healthz\"")
        assertSingleError(inUpstream("health_check tcp host=a;"), at: (3, 27), contains: "\"host\" applies to HTTP checks")
        assertSingleError(inUpstream("health_check /h initial=sick;"), at: (3, 29), contains: "expected one of healthy, unhealthy for \"initial\"")
        assertSingleError(inUpstream("passive_health on_5xx=yes;"), at: (3, 27), contains: "expected one of on, off for \"on_5xx\"")
        assertSingleError(inUpstream("health_check /h interval=0s;"), at: (3, 30), contains: "\"interval\" must be longer than 0")
        assertSingleError(inUpstream("health_check /h expect=200-99;"), at: (3, 28), contains: "expected status codes from 100 to 599")
        assertSingleError(inUpstream("health_check /h rise=0;"), at: (3, 26), contains: "\"rise\" must be between 1 and 1000, found 0")
        assertSingleError(inUpstream("passive_health max_ejected=150%;"), at: (3, 32), contains: "expected a percentage from 0% to 100%")
        assertSingleError(inUpstream("passive_health 3;"), at: (3, 20), contains: "unexpected argument \"3\" for \"passive_health\" (expected one of: failures=, ejection=, max_ejected=, on_5xx=)")
        assertSingleError(inUpstream("connect_timeout 0;"), at: (3, 21), contains: "\"connect_timeout\" must be longer than 0")
        assertSingleError(inUpstream("retries 101;"), at: (3, 13), contains: "\"retries\" must be between 0 and 100, found 101")
        assertSingleError(inUpstream("send_proxy_protocol v3;"), at: (3, 25),
                          contains: "expected one of v1, v2 for \"send_proxy_protocol\", found \"v3\"")
        assertSingleError(inUpstream("send_proxy_protocol;"), at: (3, 5), contains: "\"send_proxy_protocol\" takes 1 argument, found 0")
        assertSingleError(inUpstream("send_proxy_protocol v1 v2;"), at: (3, 28), contains: "send_proxy_protocol")
        assertSingleError(inUpstream("send_proxy_protocol v1;\n    send_proxy_protocol v2;"), at: (4, 5), contains: "duplicate \"send_proxy_protocol\"")
        assertSingleError("upstream \"my web\" { server 127.0.0.1:1; }", at: (1, 10), contains: "an upstream name may contain only letters")
    }

    func testOptionErrors() {
        let text = "upstream web {\n    server 127.0.0.1:9001 wieght=2;\n}"
        assertSingleError(text, at: (2, 27), contains: "unknown option \"wieght=2\" for \"server\" (expected one of: weight=, name=, max_conns=, resolve, service, backup, down); did you mean \"weight\"?")
        assertSingleError("upstream web { server 127.0.0.1:1 bakup; }", at: (1, 35), contains: "unknown option \"bakup\" for \"server\"")
        assertSingleError("upstream web { server 127.0.0.1:1 bakup; }", at: (1, 35), contains: "did you mean \"backup\"?")
        assertSingleError("upstream web { server 127.0.0.1:1 weight=1 weight=2; }", at: (1, 44), contains: "duplicate option \"weight=\" for \"server\"")
        assertSingleError("upstream web { server 127.0.0.1:1 down down; }", at: (1, 40), contains: "duplicate \"down\" for \"server\"")
    }

    func testServerBlockValueErrors() {
        func inServer(_ line: String) -> String { minimalUpstream + "server {\n    listen 80;\n    \(line)\n    route / { upstream web; }\n}" }
        assertSingleError(inServer("listen 70000;"), at: (4, 12), contains: "expected an address such as")
        assertSingleError(inServer("max_header_size 2m;"), at: (4, 21), contains: "\"max_header_size\" must be between 1k and 1m, found \"2m\"")
        assertSingleError(inServer("max_header_size 512;"), at: (4, 21), contains: "between 1k and 1m")
        assertSingleError(inServer("max_body_size 10q;"), at: (4, 19), contains: "expected a size such as 512, 16k, 10m or 1g, found \"10q\"")
        assertSingleError(inServer("gzip yes;"), at: (4, 10), contains: "expected one of on, off for \"gzip\", found \"yes\"")
        assertSingleError(inServer("gzip on min_length=-1;"), at: (4, 24), contains: "expected a size")
        assertSingleError(inServer("gzip on level=0;"), at: (4, 19), contains: "\"level\" must be between 1 and 9, found 0")
        assertSingleError(inServer("gzip on level=10;"), at: (4, 19), contains: "\"level\" must be between 1 and 9, found 10")
        assertSingleError(inServer("gzip on level=fast;"), at: (4, 19), contains: "expected a whole number for \"level\", found \"fast\"")
        assertSingleError(inServer("gzip on types=text/html,json;"), at: (4, 29),
                          contains: "expected media types such as text/html,application/json (or *) for \"types\", found \"json\"")
        assertSingleError(inServer("gzip on types=text/html,,text/plain;"), at: (4, 29), contains: "found an empty element")
        assertSingleError(inServer("gzip on types=text/html/x;"), at: (4, 19), contains: "found \"text/html/x\"")
        assertSingleError(inServer("gzip on typse=text/html;"), at: (4, 13), contains: "unknown option \"typse=text/html\" for \"gzip\" (expected one of: min_length=, level=, types=)")
        assertSingleError(inServer("idle_timeout 1.5s;"), at: (4, 18), contains: "expected a duration such as 250ms, 2s, 5m or 1h, found \"1.5s\"")
        assertSingleError(inServer("route /x { upstream web; group_key path 0; }"), at: (4, 45),
                          contains: "expected a path segment number from 1 to 64 (1 is the first segment), found \"0\"")
        assertSingleError(inServer("route /x { upstream web; group_key header \"X Bad\"; }"), at: (4, 47), contains: "expected a header name made of")
        assertSingleError(inServer("route /x { upstream web; group_key host x; }"), at: (4, 40),
                          contains: "expected one of path, header, cookie, query for \"group_key\", found \"host\"")
        assertSingleError(inServer("route /x { upstream web; group_key_missing drop; }"), at: (4, 48), contains: "expected one of reject, balance")
        assertSingleError(inServer("route /x { upstream web; allow_upgrade web/socket; }"), at: (4, 44), contains: "expected an upgrade protocol such as websocket")
    }

    // MARK: - Validation across the file

    func testUpstreamDefinedTwice() {
        assertSingleError("upstream web { server 127.0.0.1:1; }\nupstream web { server 127.0.0.1:2; }", at: (2, 10),
                          contains: "duplicate upstream \"web\" (first at t.conf:1:10)")
    }

    func testUpstreamWithoutServers() {
        assertSingleError("upstream web {\n    balance p2c;\n}", at: (1, 10),
                          contains: "upstream \"web\" has no servers: add at least one \"server HOST:PORT;\"")
    }

    func testDuplicateServerIdentity() {
        assertSingleError("upstream web {\n  server 127.0.0.1:1;\n  server 127.0.0.1:1 weight=2;\n}", at: (3, 10),
                          contains: "duplicate server \"127.0.0.1:1\" in upstream \"web\" (first at t.conf:2:10)")
        assertSingleError("upstream web {\n  server 127.0.0.1:1 name=a;\n  server 127.0.0.1:2 name=a;\n}", at: (3, 27),
                          contains: "duplicate server \"a\" in upstream \"web\" (first at t.conf:2:27)")
        // The same address under two names is two identities.
        XCTAssertNotNil(parseForTesting("upstream web { server 127.0.0.1:1 name=a; server 127.0.0.1:1 name=b; }"))
    }

    func testRouteWithoutUpstreamOrWithAnUndefinedOne() {
        assertSingleError(minimalUpstream + "server { listen 80; route /x { group_key path 1; } }", at: (2, 27),
                          contains: "route \"/x\" has no upstream: add \"upstream NAME;\" to its block")
        assertSingleError("upstream chat { server 127.0.0.1:1; }\nserver { listen 80; route /x { upstream chta; } }", at: (2, 41),
                          contains: "route \"/x\" uses undefined upstream \"chta\"; did you mean \"chat\"?")
    }

    func testDuplicateRoutePrefixAndBadPrefix() {
        assertSingleError(minimalUpstream + "server {\n  listen 80;\n  route /a { upstream web; }\n  route /a { upstream web; }\n}", at: (5, 9),
                          contains: "duplicate route \"/a\" in this server block (first at t.conf:4:9)")
        // The same prefix in two server blocks is fine.
        XCTAssertNotNil(parseForTesting(minimalUpstream + "server { listen 80; route /a { upstream web; } }\nserver { listen 81; route /a { upstream web; } }"))
        assertSingleError(minimalUpstream + "server { listen 80; route api { upstream web; } }", at: (2, 27),
                          contains: "expected a route prefix starting with \"/\", found \"api\"")
    }

    func testServerBlockWithoutListen() {
        assertSingleError(minimalUpstream + "\n  server { route / { upstream web; } }", at: (3, 3),
                          contains: "server block has no listen: add one such as \"listen 0.0.0.0:8080;\"")
    }

    func testSameAddressTwice() {
        let text = minimalUpstream + """
            server { listen 8080; route / { upstream web; } }
            server { listen *:8080; route / { upstream web; } }
            """
        assertSingleError(text, at: (3, 17), contains: "duplicate listen 0.0.0.0:8080 (first at t.conf:2:17)")
        assertSingleError("admin 127.0.0.1:9090;\n" + minimalUpstream + "server { listen 127.0.0.1:9090; route / { upstream web; } }", at: (3, 17),
                          contains: "listen 127.0.0.1:9090 collides with the admin address (first at t.conf:1:7)")
        assertSingleError(minimalUpstream + "server { listen 127.0.0.1:9090; route / { upstream web; } }\nadmin 127.0.0.1:9090;", at: (3, 7),
                          contains: "admin 127.0.0.1:9090 collides with a listen address (first at t.conf:2:17)")
    }

    func testTLSListenNeedsCertificateAndKey() {
        assertSingleError(minimalUpstream + "server {\n  listen 8443 tls;\n  route / { upstream web; }\n}", at: (3, 3),
                          contains: "listen 0.0.0.0:8443 tls needs tls_certificate and tls_certificate_key in the same server block")
        assertSingleError(minimalUpstream + "server {\n  listen 8443 tls;\n  tls_certificate c.pem;\n  route / { upstream web; }\n}", at: (4, 3),
                          contains: "tls_certificate \"c.pem\" has no tls_certificate_key after it: each certificate needs its key")
        assertSingleError(minimalUpstream + "server {\n  listen 8443 tls;\n  tls_certificate_key k.pem;\n  route / { upstream web; }\n}", at: (4, 3),
                          contains: "tls_certificate_key \"k.pem\" has no tls_certificate before it")
        assertSingleError(minimalUpstream + "server {\n  listen 8443 tls;\n  tls_certificate c.pem;\n  tls_certificate_key k.pem;\n  tls_protocols TLSv1.1 TLSv1.3;\n  route / { upstream web; }\n}", at: (6, 17),
                          contains: "TLSv1.1 is not supported: Huddle speaks TLSv1.2 and TLSv1.3 only")
        assertSingleError("upstream web {\n  server 127.0.0.1:1;\n  tls verify=maybe;\n}\nserver { listen 1; route / { upstream web; } }", at: (3, 14),
                          contains: "expected one of on, off for \"verify\"")
    }

    func testHashBalanceFactorNeedsBalanceHash() {
        assertSingleError("upstream web {\n  server 127.0.0.1:1;\n  hash_balance_factor 1.5;\n}", at: (3, 3),
                          contains: "hash_balance_factor needs balance hash (upstream \"web\" uses p2c)")
    }

    func testDuplicateGroupKeySource() {
        assertSingleError(minimalUpstream + "server { listen 80; route / { upstream web; group_key cookie a; group_key cookie a; } }", at: (2, 65),
                          contains: "duplicate group_key cookie a (first at t.conf:2:45)")
    }

    // MARK: - Many errors at once

    func testManyErrorsAreReportedTogetherInFileOrder() {
        let text = """
            workers many;
            upstream chat {
                balance hashh;
                server 127.0.0.1:9101 wieght=2;
                server 127.0.0.1:9102;
            }
            server {
                listen 8080;
                listen 8080;
                idle_timeout 2x;
                route /rooms/ { upstream chta; group_key path 0; }
                route / {
                    upstream chat
                }
            }
            shutdown_timeout 5;
            """
        XCTAssertEqual(errorsForTesting(text), [
            "t.conf:1:9: error: expected \"auto\" or a number of workers, found \"many\"",
            "t.conf:3:13: error: expected one of p2c, hash, round_robin for \"balance\", found \"hashh\"; did you mean \"hash\"?",
            "t.conf:4:27: error: unknown option \"wieght=2\" for \"server\" (expected one of: weight=, name=, max_conns=, resolve, service, backup, down); did you mean \"weight\"?",
            "t.conf:9:12: error: duplicate listen 0.0.0.0:8080 (first at t.conf:8:12)",
            "t.conf:10:18: error: expected a duration such as 250ms, 2s, 5m or 1h, found \"2x\"",
            "t.conf:11:30: error: route \"/rooms/\" uses undefined upstream \"chta\"; did you mean \"chat\"?",
            "t.conf:11:51: error: expected a path segment number from 1 to 64 (1 is the first segment), found \"0\"",
            "t.conf:14:5: error: expected \";\" to end \"upstream\", found \"}\"",
        ])
    }
}
