// libFuzzer target: HuddleConfig (lexer, tree parser, builder) through `ConfigParser.parse(text:file:)`.
//
// The input, decoded as UTF-8 (invalid sequences replaced), is parsed as a config file. Checks:
// - no crash, hang or runaway recursion on any text;
// - every error names the file and a location with line >= 1 and column >= 1 inside the text: the line exists
//   (lines end at LF, CR, CRLF or a Unicode newline, as the lexer counts them) and the column is at most one
//   past its last character; errors come sorted by position without exact repeats, each with a message;
// - parsing is deterministic: an accepted config parsed again gives the same model (compared field by field);
//   one rejected input in eight is parsed again and must give the same errors;
// - an accepted config is coherent: every route names a defined upstream, upstream names are unique, every
//   server block listens somewhere, routes are sorted longest prefix first, TLS listeners have their files.

import HuddleConfig

enum ConfigOutcome: Equatable {
    case accepted(String)
    case rejected([String])
}

func parseConfig(_ text: String, file: String) -> (ConfigOutcome, HuddleConfig?, [ConfigError]) {
    do {
        let config = try ConfigParser.parse(text: text, file: file)
        return (.accepted(describe(config)), config, [])
    } catch {
        return (.rejected(error.errors.map(\.description)), nil, error.errors)
    }
}

/// The model as text, field by field (`dump` would do, but reflection is most of the run time).
func describe(_ c: HuddleConfig) -> String {
    var out = "\(c.file) \(String(describing: c.workers)) \(c.shutdownTimeout) \(c.maxConnectionsPerWorker) "
        + "\(c.accessLog.target) \(c.accessLog.format) \(c.errorLog.target) \(c.errorLog.level)\n"
    if let a = c.admin { out += "admin \(a.address) \(String(describing: a.token)) \(a.location)\n" }
    for u in c.upstreams {
        out += "upstream \(u.name) \(u.balance) \(String(describing: u.hashBalanceFactor)) \(u.groupLinger) \(u.connectTimeout) "
            + "\(u.responseTimeout) \(u.keepalive) \(u.keepaliveTimeout) \(u.retries) \(u.location)\n"
        for s in u.servers {
            out += "  server \(s.address) \(s.weight) \(s.identity) \(s.resolve) \(s.backup) \(s.down) \(s.location)\n"
        }
        if let h = u.healthCheck { out += "  health \(String(describing: h.path)) \(h.host ?? "-") \(h.initiallyUnhealthy) \(h.interval) \(h.timeout) \(h.rise) \(h.fall) \(h.expect)\n" }
        if let p = u.passiveHealth { out += "  passive \(p.failures) \(p.ejection) \(p.maxEjectedPercent) \(p.on5xx)\n" }
        if let t = u.tls { out += "  tls \(t.verify) \(t.sni ?? "-") \(t.ca ?? "-") \(t.location)\n" }
    }
    for s in c.servers {
        out += "server \(s.tlsCertificates.map { "\($0.certificate) \($0.key) \($0.location)" }) \(s.tlsProtocols) \(s.tlsHandshakeTimeout) \(s.headerTimeout) "
            + "\(s.idleTimeout) \(s.tunnelIdleTimeout) \(s.maxHeaderSize) \(s.maxBodySize) \(s.gzip.enabled) \(s.gzip.minLength) \(s.location)\n"
        for l in s.listens { out += "  listen \(l.address) \(l.tls) \(l.location)\n" }
        for r in s.routes {
            out += "  route \(r.prefix) \(r.upstream) \(r.groupKeys) \(r.groupKeyMissing) \(r.allowUpgrades) \(r.location)\n"
        }
    }
    return out
}

/// Characters per line, counted the way the lexer counts them (a leading byte order mark is not a column).
func lineLengths(_ text: String) -> [Int] {
    var lengths = [0]
    if text.utf8.allSatisfy({ $0 < 0x80 }) {
        // ASCII: one Character per byte, except that CR LF is one Character (and one line end).
        var previousCR = false
        for b in text.utf8 {
            if b == 0x0A && previousCR { previousCR = false; continue }
            previousCR = b == 0x0D
            if b == 0x0A || b == 0x0D { lengths.append(0) } else { lengths[lengths.count - 1] += 1 }
        }
        return lengths
    }
    var chars = Array(text)
    if chars.first == "\u{FEFF}" { chars.removeFirst() }
    for c in chars {
        let newline = c.asciiValue.map { $0 == 0x0A || $0 == 0x0D } ?? c.isNewline
        if newline { lengths.append(0) } else { lengths[lengths.count - 1] += 1 }
    }
    return lengths
}

func checkAccepted(_ config: HuddleConfig) {
    let names = config.upstreams.map(\.name)
    require(Set(names).count == names.count, "duplicate upstream names accepted: \(names)")
    for upstream in config.upstreams {
        let ids = upstream.servers.map(\.identity)
        require(Set(ids).count == ids.count, "duplicate server identities accepted in \(upstream.name)")
        if upstream.hashBalanceFactor != nil { require(upstream.balance == .hash, "hash_balance_factor without hash accepted") }
    }
    for server in config.servers {
        require(!server.listens.isEmpty, "server block without listen accepted")
        for route in server.routes {
            require(names.contains(route.upstream), "route \(route.prefix) to undefined upstream \(route.upstream) accepted")
            require(route.prefix.hasPrefix("/"), "route prefix \(route.prefix) accepted")
        }
        let lengths = server.routes.map(\.prefix.utf8.count)
        require(lengths == lengths.sorted(by: >), "routes not sorted longest first: \(lengths)")
        if server.listens.contains(where: \.tls) {
            require(!server.tlsCertificates.isEmpty, "tls listener without certificate accepted")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func configParserFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let text = String(decoding: input, as: UTF8.self)
    let (first, config, errors) = parseConfig(text, file: "fuzz.conf")
    // Determinism: an accepted config is parsed again and must give the same model; a rejected one (most inputs,
    // and a parse is most of the run time) is parsed again for one input in eight, and must give the same errors.
    if config != nil || fnv1a(input) % 8 == 0 {
        let (second, _, _) = parseConfig(text, file: "fuzz.conf")
        require(first == second, "parsing the same text twice differs:\n\(first)\n\(second)")
    }

    if let config { checkAccepted(config) }
    guard !errors.isEmpty else { return 0 }
    let lines = lineLengths(text)
    var previous = (0, 0)
    for e in errors {
        let l = e.location
        require(l.file == "fuzz.conf", "error in file \(l.file)")
        require(l.line >= 1 && l.line <= lines.count, "error line \(l.line) outside 1...\(lines.count): \(e)")
        require(l.column >= 1 && l.column <= lines[l.line - 1] + 1,
                "error column \(l.column) outside 1...\(lines[l.line - 1] + 1) on line \(l.line): \(e)")
        require(!e.message.isEmpty, "error without a message at \(l)")
        require((l.line, l.column) >= previous, "errors not sorted: \(e) after \(previous)")
        previous = (l.line, l.column)
    }
    return 0
}
