// Writes the committed seed corpus: `swift Fuzz/make-corpus.swift` from the repository root.
// It only (over)writes the files it names, so inputs added by hand (e.g. minimised crashes, `regress-*`) stay.
// Config seeds also include copies of Examples/*.conf and proxy.conf.sample.

import Foundation

let root = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Fuzz/corpus")

func write(_ target: String, _ name: String, _ bytes: [UInt8]) {
    let dir = root.appendingPathComponent(target)
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try! Data(bytes).write(to: dir.appendingPathComponent(name))
}

func write(_ target: String, _ name: String, _ text: String) { write(target, name, Array(text.utf8)) }

// MARK: - HTTP requests (valid, edge cases and smuggling-shaped)

let requests: [(String, String)] = [
    ("get-simple", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    ("get-query-headers", "GET /rooms/42/join?x=1&y=%20 HTTP/1.1\r\nHost: a.example:8080\r\nUser-Agent: fuzz/1.0\r\n"
        + "Accept: */*\r\nCookie: sid=abc; room=\"lobby\"\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
        + "X-Forwarded-Host: a\r\nX-Request-Id: 123\r\n\r\n"),
    ("leading-empty-lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("absolute-form", "GET http://example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n"),
    ("absolute-https-no-path", "GET HTTPS://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    ("absolute-userinfo", "GET http://good@evil/ HTTP/1.1\r\nHost: good\r\n\r\n"),
    ("options-asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
    ("http10-keepalive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
    ("post-content-length", "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"),
    ("post-chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("websocket-upgrade", "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    ("connection-options", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret, content-length, host\r\n"
        + "X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X\r\nProxy-Connection: keep-alive\r\n"
        + "Content-Length: 0\r\n\r\n"),
    ("pipelined", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("ows-and-obs-text", "GET / HTTP/1.1\r\nHost:a\r\nX-A: \t spaced \t \r\nX-B:\r\nX-C: caf\u{E9}\r\n\r\n"),
    ("many-headers", "GET / HTTP/1.1\r\nHost: a\r\n" + (1...30).map { "X-H\($0): v\($0)\r\n" }.joined() + "\r\n"),
    ("smuggle-cl-te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"),
    ("smuggle-te-cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n"),
    ("smuggle-te-space-colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
    ("smuggle-te-obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"),
    ("smuggle-te-xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"),
    ("smuggle-te-chunked-identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
    ("smuggle-te-twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("smuggle-te-split-lines", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("smuggle-te-empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n"),
    ("smuggle-te-http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("smuggle-duplicate-cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    ("smuggle-cl-list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"),
    ("smuggle-cl-sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"),
    ("smuggle-cl-overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"),
    ("smuggle-bare-lf", "GET / HTTP/1.1\nHost: a\n\n"),
    ("smuggle-bare-cr", "GET / HTTP/1.1\r\nHost: a\rX-Injected: 1\r\n\r\n"),
    ("smuggle-nul-in-value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\u{0}b\r\n\r\n"),
    ("duplicate-host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("host-list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"),
    ("missing-host", "GET / HTTP/1.1\r\nX: y\r\n\r\n"),
    ("target-fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("target-space", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("version-2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
    ("method-lowercase", "get / HTTP/1.1\r\nHost: a\r\n\r\n"),
]
for (name, text) in requests { write("request-parser", name, text) }

// MARK: - HTTP responses

let responses: [(String, String)] = [
    ("ok-content-length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"),
    ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("gzip-chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
    ("te-until-close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n"),
    ("cl-repeated-same", "HTTP/1.1 200 OK\r\nContent-Length: 42, 42\r\nContent-Length: 42\r\n\r\n"),
    ("cl-conflict", "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Length: 43\r\n\r\n"),
    ("cl-and-te", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("chunked-twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
    ("te-http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("switching-protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
    ("no-content", "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"),
    ("not-modified", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("http10-keepalive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
    ("close-with-options", "HTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nX-Internal: 1\r\nKeep-Alive: 5\r\n\r\n"),
    ("no-reason", "HTTP/1.1 200\r\n\r\n"),
    ("empty-reason", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"),
    ("reason-obs-text", "HTTP/1.1 200 Tr\u{E8}s bien\t!\r\nContent-Length: 0\r\n\r\n"),
    ("status-99", "HTTP/1.1 099 Low\r\n\r\n"),
    ("status-4-digits", "HTTP/1.1 2000 OK\r\n\r\n"),
    ("version-2", "HTTP/2 200 OK\r\n\r\n"),
    ("obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n"),
    ("bare-lf", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
]
for (name, text) in responses { write("response-parser", name, text) }

// MARK: - Chunked bodies

let bodies: [(String, String)] = [
    ("empty", "0\r\n\r\n"),
    ("one-chunk", "5\r\nhello\r\n0\r\n\r\n"),
    ("two-chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    ("hex-cases", "A\r\n0123456789\r\na\r\n0123456789\r\nfF\r\n" + String(repeating: "z", count: 255) + "\r\n0\r\n\r\n"),
    ("leading-zeros", "0005\r\nhello\r\n000\r\n\r\n"),
    ("extensions", "5;name=value\r\nhello\r\n0;last\r\n\r\n"),
    ("quoted-extension", "5 ;ext=\"quoted; value\" ; b\t;c=d\r\nhello\r\n0\r\n\r\n"),
    ("trailers", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:\r\n\r\n"),
    ("next-message", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("data-with-crlf", "5\r\n\r\n\r\n\n\r\n0\r\n\r\n"),
    ("size-overflow", "ffffffffffffffffffff\r\n"),
    ("size-negative", "-5\r\nhello\r\n0\r\n\r\n"),
    ("size-0x", "0x5\r\nhello\r\n0\r\n\r\n"),
    ("size-space-no-ext", "5 \r\nhello\r\n0\r\n\r\n"),
    ("bare-lf", "5\nhello\r\n0\r\n\r\n"),
    ("bare-cr", "5\rhello\r\n0\r\n\r\n"),
    ("missing-data-crlf", "5\r\nhelloX\r\n0\r\n\r\n"),
    ("trailer-obs-fold", "0\r\nX: a\r\n b\r\n\r\n"),
    ("trailer-no-colon", "0\r\nX-Checksum abc\r\n\r\n"),
    ("extension-control-char", "5;a=\u{1}\r\nhello\r\n0\r\n\r\n"),
]
for (name, text) in bodies { write("chunked-scanner", name, text) }

// MARK: - WebSocket frames

func frame(_ b0: UInt8, masked key: [UInt8]? = nil, lengthForm: Int = 0, _ payload: [UInt8]) -> [UInt8] {
    let n = payload.count
    var out: [UInt8] = [b0]
    let maskBit: UInt8 = key == nil ? 0 : 0x80
    if lengthForm == 0 && n < 126 {
        out.append(maskBit | UInt8(n))
    } else if lengthForm <= 16 && n <= 0xFFFF {
        out += [maskBit | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
    } else {
        out.append(maskBit | 127)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: UInt64(n) >> UInt64(shift))) }
    }
    if let key {
        out += key
        out += payload.enumerated().map { $0.element ^ key[$0.offset & 3] }
    } else {
        out += payload
    }
    return out
}
let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
let hello = Array("Hello".utf8)
let frames: [(String, [UInt8])] = [
    ("text", frame(0x81, hello)),
    ("text-masked", frame(0x81, masked: key, hello)),
    ("binary-empty", frame(0x82, [])),
    ("binary-16bit", frame(0x82, Array(repeating: 0xAB, count: 200))),
    ("binary-16bit-masked", frame(0x82, masked: key, Array(0..<255) + Array(0..<45))),
    ("binary-64bit-form", frame(0x82, lengthForm: 64, Array("non-minimal 64-bit length".utf8))),
    ("text-16bit-form-short", frame(0x81, lengthForm: 16, hello)),
    ("ping", frame(0x89, Array("ping".utf8))),
    ("pong-masked", frame(0x8A, masked: key, Array("pong".utf8))),
    ("close-1001", frame(0x88, [0x03, 0xE9] + Array("going away".utf8))),
    ("close-empty", frame(0x88, [])),
    ("fragmented-text", frame(0x01, Array("Hel".utf8)) + frame(0x89, []) + frame(0x80, Array("lo".utf8))),
    ("several-frames", frame(0x81, hello) + frame(0x82, masked: key, [1, 2, 3]) + frame(0x89, []) + frame(0x88, [0x03, 0xE8])),
    ("partial-frame", Array(frame(0x82, Array(repeating: 7, count: 300)).prefix(150))),
    ("reserved-bits", frame(0xC1, hello)),
    ("reserved-opcode", frame(0x83, hello)),
    ("control-too-long", frame(0x89, lengthForm: 16, Array(repeating: 0, count: 126))),
    ("control-fragmented", frame(0x09, [])),
    ("length-msb-set", [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 5] + hello),
    ("length-huge", [0x82, 0x7F, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0] + hello),
    // Found by this target: with maxPayloadLength Int.max, header + 2^63-1 overflowed (fixed in the decoder).
    ("regress-unlimited-length-overflow", [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
]
for (name, bytes) in frames { write("websocket-frames", name, bytes) }

// MARK: - Config files

let repo = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
for file in ["Examples/http-balancing.conf", "Examples/round-robin.conf", "Examples/websocket-groups.conf", "proxy.conf.sample"] {
    let bytes = [UInt8](try! Data(contentsOf: repo.appendingPathComponent(file)))
    write("config-parser", (file as NSString).lastPathComponent, bytes)
}
let minimal = "upstream web { server 127.0.0.1:9001; }\nserver { listen 8080; route / { upstream web; } }\n"
let configs: [(String, String)] = [
    ("minimal.conf", minimal),
    ("everything.conf", """
        workers 4; shutdown_timeout 1m30s; max_connections 1000;
        access_log "/var/log/huddle access.log" format=json; error_log stderr level=debug;
        admin [::1]:9090 { token "t \\"q\\" \\\\ x"; }
        upstream web {
            balance hash; hash_balance_factor 1.25; group_linger 10s;
            server app.internal:80 weight=5 name=a resolve backup;
            server [fe80::1%eth0]:81 down;
            server 10.0.0.2:8080 weight=0;
            health_check /healthz interval=2s timeout=1s rise=2 fall=3 expect=200-299,301;
            passive_health failures=5 ejection=30s max_ejected=50%;
            connect_timeout 250ms; response_timeout 1h; keepalive 10; keepalive_timeout 1d; retries 2;
        }
        server {
            listen 0.0.0.0:8443 tls; listen *:8080; listen 0;
            tls_certificate /c.pem; tls_certificate_key /k.pem;
            header_timeout 10s; idle_timeout 60s; tunnel_idle_timeout 1h;
            max_header_size 16k; max_body_size 10m; gzip on min_length=1k;
            route /api/ {
                upstream web;
                group_key path 2; group_key header X-Room; group_key cookie sid; group_key query room;
                group_key_missing balance; allow_upgrade websocket h2c;
            }
            route / { upstream web; allow_upgrade off; }
        }

        """),
    ("bom-crlf-tabs.conf", "\u{FEFF}upstream web {\r\n\tserver 127.0.0.1:9001;\r\n}\r\nserver {\r\n\tlisten 8080;\r\n\troute / { upstream web; }\r\n}\r\n"),
    ("unicode.conf", "# caf\u{E9} \u{1F600}\nupstream w\u{E9}b { server h\u{F6}st:1; }\u{2028}server { listen 80; route /\u{E9} { upstream w\u{E9}b; } }\n"),
    ("quoted-words.conf", "\"upstream\" web { server 127.0.0.1:9001 name=\"a b\"; }\nserver { listen 80; route / { upstream we\"b\"; } }\na#b 1;\n"),
    ("option-newline-in-quotes.conf", minimal + "access_log x form\"\n\"at=json;\nupstream u { server 1.2.3.4:5 wei\"\n\"ght=x; }\n"),
    ("unterminated-string.conf", minimal + "admin 127.0.0.1:9 { token \"abc; }\nserver { listen 81; }\n"),
    ("missing-semicolons.conf", "workers 4\nshutdown_timeout 3s;\nserver {\n  listen 80;\n  route / { upstream web }\n}\n"),
    ("missing-brace.conf", minimal + "server {\n    listen 81;\n    route / {\n        upstream web;\n"),
    ("stray-punctuation.conf", "}\n;\n{ workers 1; }\n" + minimal + "}"),
    ("deep-nesting.conf", String(repeating: "a {", count: 20) + String(repeating: "}", count: 20) + "\n" + minimal),
    ("bad-values.conf", """
        workers many; shutdown_timeout 1s1m; max_connections 0;
        upstream web { balance fair; server 127.0.0.1:70000; server web:0; keepalive -1; health_check healthz expect=600; }
        upstream web { server 127.0.0.1:1; }
        server { listen 1.2.3.4.5:80; listen 80 tls; max_header_size 10x; max_body_size 1g; gzip maybe;
                 route nope { upstream missing; group_key path 0; group_key qwery x; group_key_missing drop; }
                 route / { upstream wbe; } route / { upstream web; } }
        admin 0.0.0.0:80;
        lisen 80;

        """),
    ("empty.conf", ""),
    ("comments-only.conf", "# nothing here\n   # still nothing\n\n"),
]
for (name, text) in configs { write("config-parser", name, text) }

// MARK: - Group keys: [segment number, name length] + name + text (searched as a path, a query and a cookie header)

func groupKey(_ segment: UInt8, _ name: String, _ text: String) -> [UInt8] {
    [segment, UInt8(name.utf8.count)] + Array(name.utf8) + Array(text.utf8)
}
let keys: [(String, [UInt8])] = [
    ("path-room", groupKey(2, "room", "/rooms/abc/ws")),
    ("path-root", groupKey(1, "", "/")),
    ("path-empty-segments", groupKey(3, "x", "/a//b/")),
    ("path-escapes", groupKey(2, "room", "/rooms/a%20b%2Fc+d/x")),
    ("path-deep", groupKey(64, "n", "/" + (1...70).map(String.init).joined(separator: "/"))),
    ("query-room", groupKey(1, "room", "room=lobby&x=1")),
    ("query-plus-space", groupKey(1, "a b", "a+b=1&a%20b=2&c")),
    ("query-bare-name", groupKey(1, "flag", "x=1&flag&flag=2")),
    ("query-bad-escapes", groupKey(1, "k", "%zz=1&%4=1&k%=2&k=%G1&k=ok")),
    ("query-separators", groupKey(1, "", "&&&==&=x")),
    ("cookie-room", groupKey(1, "room", "sid=abc; room=\"lobby\"; empty=")),
    ("cookie-spaces", groupKey(1, "room", " room = \"q\" ;room=second;\troom\t=\tthird")),
    ("cookie-quotes", groupKey(1, "q", "q=\"; q=\"\"; q=\"a")),
    ("utf8-escapes", groupKey(2, "\u{20AC}", "/%E2%82%ac/%e2%82%AC?%E2%82%AC=euro")),
    ("high-bytes", [1, 2, 0xFF, 0xFE] + [0xFF, 0xFE, 0x3D, 0x80, 0x2F, 0x25, 0x46, 0x66]),
]
for (name, bytes) in keys { write("group-key", name, bytes) }

// MARK: - DNS answers (the dns-message target): compression, CNAME chains, SRV with additional addresses, NXDOMAIN
// with an SOA, truncation, EDNS0, and a few hostile shapes.

func u16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
func dnsName(_ text: String) -> [UInt8] {
    text.split(separator: ".").flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + [0]
}
func dnsHeader(flags: Int, qd: Int = 1, an: Int = 0, ns: Int = 0, ar: Int = 0) -> [UInt8] {
    u16(0x1234) + u16(flags) + u16(qd) + u16(an) + u16(ns) + u16(ar)
}
func rr(_ owner: [UInt8], _ type: Int, ttl: Int = 30, _ data: [UInt8]) -> [UInt8] {
    owner + u16(type) + u16(1) + u16(ttl >> 16) + u16(ttl & 0xFFFF) + u16(data.count) + data
}
let ptr12: [UInt8] = [0xC0, 0x0C]
let web = dnsName("web.ns.svc.cluster.local")
let soa = dnsName("ns.dns") + dnsName("hostmaster.dns") + [UInt8](repeating: 0, count: 16) + u16(0) + u16(5)
let srvQ = dnsName("_http._tcp.chat.ns.svc.cluster.local")
let dnsSeeds: [(String, [UInt8])] = [
    ("a-two-records", dnsHeader(flags: 0x8180, an: 2) + web + u16(1) + u16(1) + rr(ptr12, 1, [10, 0, 0, 1]) + rr(ptr12, 1, [10, 0, 0, 2])),
    ("aaaa-record", dnsHeader(flags: 0x8180, an: 1) + web + u16(28) + u16(1) + rr(ptr12, 28, [UInt8](repeating: 0xFD, count: 1) + [UInt8](repeating: 1, count: 15))),
    ("cname-chain", dnsHeader(flags: 0x8180, an: 3) + web + u16(1) + u16(1) + rr(ptr12, 5, dnsName("b.example"))
        + rr(dnsName("b.example"), 5, ttl: 5, [1, 0x63, 0xC0, 0x2A + 8]) + rr(dnsName("c.b.example"), 1, [10, 0, 0, 3])),
    ("nxdomain-soa", dnsHeader(flags: 0x8183, ns: 1) + web + u16(1) + u16(1) + rr(dnsName("cluster.local"), 6, soa)),
    ("servfail", dnsHeader(flags: 0x8182) + web + u16(1) + u16(1)),
    ("truncated-flag", dnsHeader(flags: 0x8380) + web + u16(1) + u16(1)),
    ("srv-with-additional", dnsHeader(flags: 0x8180, an: 2, ar: 2) + srvQ + u16(33) + u16(1)
        + rr(ptr12, 33, u16(0) + u16(10) + u16(8080) + dnsName("chat-0.chat.ns.svc.cluster.local"))
        + rr(ptr12, 33, u16(0) + u16(30) + u16(8080) + [6] + Array("chat-1".utf8) + [0xC0, 0x12])
        + rr(dnsName("chat-0.chat.ns.svc.cluster.local"), 1, [10, 1, 0, 1]) + rr(dnsName("chat-1.chat.ns.svc.cluster.local"), 1, [10, 1, 0, 2])),
    ("edns-opt", dnsHeader(flags: 0x8180, an: 1, ar: 1) + web + u16(1) + u16(1) + rr(ptr12, 1, [10, 0, 0, 1])
        + [0] + u16(41) + u16(1232) + u16(0) + u16(0) + u16(0)),
    ("query", dnsHeader(flags: 0x0100) + web + u16(1) + u16(1)),
    ("pointer-loop", dnsHeader(flags: 0x8180, an: 1) + web + u16(1) + u16(1) + [1, 0x61, 0xC0, 0x2A] + u16(1) + u16(1) + u16(0) + u16(1) + u16(4) + [1, 2, 3, 4]),
    ("pointer-forward", dnsHeader(flags: 0x8180) + [0xC0, 0x20] + u16(1) + u16(1)),
    ("label-64", dnsHeader(flags: 0x8180) + [64] + [UInt8](repeating: 0x61, count: 64) + [0] + u16(1) + u16(1)),
    ("counts-too-high", dnsHeader(flags: 0x8180, an: 9, ns: 9, ar: 9) + web + u16(1) + u16(1) + rr(ptr12, 1, [10, 0, 0, 1])),
]
for (name, bytes) in dnsSeeds { write("dns-message", name, bytes) }

print("wrote seeds under \(root.path)")
