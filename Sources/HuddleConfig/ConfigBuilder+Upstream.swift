// `upstream NAME { ... }`: the backend servers, how to balance across them and how to check their health.

extension ConfigBuilder {
    mutating func applyUpstream(_ d: ConfigDirective, _ a: ParsedArguments) {
        let nameArgument = a[0]
        guard let name = name(nameArgument, for: "an upstream name") else { return }
        var upstream = UpstreamConfig(name: name, location: d.location)
        var identities: [String: SourceLocation] = [:]
        var factorLocation: SourceLocation?
        var groupOnlyLocations: [(name: String, location: SourceLocation)] = []

        for (c, ca) in accepted(d.block ?? [], in: .upstream) {
            switch c.name {
            case "balance":
                if let v = keyword(ca[0], of: c.name, among: ["p2c", "hash", "round_robin"]) {
                    upstream.balance = BalanceAlgorithm(rawValue: v)!
                }
            case "hash_balance_factor":
                factorLocation = c.location
                if let f = ConfigValue.decimal(ca[0].text[...]), f > 1.0, f <= 1000 {
                    upstream.hashBalanceFactor = f
                } else {
                    error(ca[0].location, "expected a number above 1.0 such as 1.25 for \"hash_balance_factor\", found \(ConfigText.quoted(ca[0].text))")
                }
            case "group_linger":
                if let ms = duration(ca[0], of: c.name) { upstream.groupLinger = ms }
            case "rebalance":
                groupOnlyLocations.append((c.name, c.location))
                guard let mode = keyword(ca[0], of: c.name, among: ["migrate", "keep"]) else { continue }
                if mode == "keep" {
                    if let r = ca.options["rate"] {
                        error(r.location, "\"rate\" applies to rebalance migrate; rebalance keep moves no group")
                        continue
                    }
                    upstream.rebalance = .keep
                } else if let r = ca.options["rate"] {
                    if let v = ConfigValue.decimal(r.text[...]), v > 0, v <= 100_000 {
                        upstream.rebalance = .migrate(rate: v)
                    } else {
                        error(r.location, "expected groups per second above 0 and at most 100000 such as 20 or 0.5 for \"rate\", found \(ConfigText.quoted(r.text))")
                    }
                } else {
                    upstream.rebalance = .migrate(rate: RebalanceMode.defaultRate)
                }
            case "membership_settle":
                groupOnlyLocations.append((c.name, c.location))
                if let ms = duration(ca[0], of: c.name) {
                    if ms > 3_600_000 {
                        error(ca[0].location, "membership_settle is at most 1h, found \(ConfigText.quoted(ca[0].text))")
                    } else {
                        upstream.membershipSettle = ms
                    }
                }
            case "server":
                guard let server = backendServer(c, ca) else { continue }
                let identityLocation = ca.options["name"]?.location ?? ca[0].location
                if let first = identities[server.identity] {
                    error(identityLocation, "duplicate server \(ConfigText.quoted(server.identity)) in upstream \(ConfigText.quoted(name)) (first at \(first))")
                    continue
                }
                identities[server.identity] = identityLocation
                upstream.servers.append(server)
            case "health_check":
                if let check = healthCheck(c, ca) { upstream.healthCheck = check }
            case "tls":
                var t = UpstreamTLSConfig(location: c.location)
                var ok = true
                if let v = ca.options["verify"] {
                    if let k = keyword(v, of: "verify", among: ["on", "off"]) { t.verify = k == "on" } else { ok = false }
                }
                if let v = ca.options["sni"] {
                    if v.text.isEmpty || v.text.contains(where: { $0.isWhitespace || $0.isNewline || !$0.isASCII || $0 == "/" || $0 == ":" }) {
                        error(v.location, "expected a host name such as api.internal for \"sni\", found \(ConfigText.quoted(v.text))")
                        ok = false
                    } else {
                        t.sni = v.text
                    }
                }
                if let v = ca.options["ca"] {
                    if let path = nonEmpty(v, of: "ca") { t.ca = path } else { ok = false }
                }
                if ok { upstream.tls = t }
            case "passive_health":
                if let passive = passiveHealth(ca) { upstream.passiveHealth = passive }
            case "connect_timeout":
                if let ms = duration(ca[0], of: c.name, positive: true) { upstream.connectTimeout = ms }
            case "response_timeout":
                if let ms = duration(ca[0], of: c.name, positive: true) { upstream.responseTimeout = ms }
            case "keepalive":
                if let n = integer(ca[0], of: c.name, in: 0...100_000) { upstream.keepalive = n }
            case "keepalive_timeout":
                if let ms = duration(ca[0], of: c.name) { upstream.keepaliveTimeout = ms }
            case "retries":
                if let n = integer(ca[0], of: c.name, in: 0...100) { upstream.retries = n }
            case "queue_timeout":
                if let ms = duration(ca[0], of: c.name, positive: true) {
                    if ms > 3_600_000 {
                        error(ca[0].location, "queue_timeout is at most 1h, found \(ConfigText.quoted(ca[0].text))")
                    } else {
                        upstream.queueTimeout = ms
                    }
                }
            case "send_proxy_protocol":
                if let v = keyword(ca[0], of: c.name, among: ["v1", "v2"]) { upstream.sendProxyProtocol = ProxyProtocolVersion(rawValue: v)! }
            case "sticky":
                if let sticky = stickyCookie(c, ca) { upstream.sticky = sticky }
            default:
                preconditionFailure("unhandled upstream directive \(c.name)")
            }
        }

        if let sticky = upstream.sticky, upstream.balance == .hash {
            error(sticky.location, "sticky cookie applies to balanced requests, but upstream \(ConfigText.quoted(name)) uses balance hash, where the group key chooses the server: use p2c or round_robin")
        }
        if let factorLocation, upstream.balance != .hash {
            error(factorLocation, "hash_balance_factor needs balance hash (upstream \(ConfigText.quoted(name)) uses \(upstream.balance.rawValue))")
        }
        if upstream.balance != .hash {
            for g in groupOnlyLocations {
                error(g.location, "\(g.name) needs balance hash (upstream \(ConfigText.quoted(name)) uses \(upstream.balance.rawValue))")
            }
        }
        if upstream.servers.isEmpty, d.block != nil, !inputTruncated, !mentions(d.block, "server", in: .upstream) {
            error(nameArgument.location, "upstream \(ConfigText.quoted(name)) has no servers: add at least one \"server HOST:PORT;\"")
        }
        if let first = upstreamLocations[name] {
            error(nameArgument.location, "duplicate upstream \(ConfigText.quoted(name)) (first at \(first))")
            return
        }
        upstreamLocations[name] = nameArgument.location
        config.upstreams.append(upstream)
    }

    private mutating func backendServer(_ d: ConfigDirective, _ a: ParsedArguments) -> ServerConfig? {
        let resolve = a.flags["resolve"] != nil
        if let at = a.flags["service"] {
            // SRV records give the port and the weight: the line names only the service.
            guard resolve else {
                error(at, "\"service\" needs \"resolve\": write \"server \(a[0].text) resolve service;\"")
                return nil
            }
            guard ConfigValue.serviceName(a[0].text[...]) else {
                error(a[0].location, "expected an SRV name such as _http._tcp.web.default.svc.cluster.local (no port: the records give it), found \(ConfigText.quoted(a[0].text))")
                return nil
            }
            if let w = a.options["weight"] {
                error(w.location, "\"weight\" does not apply to \"service\": each SRV record gives its target's weight")
                return nil
            }
        }
        let isService = a.flags["service"] != nil
        let address: ListenAddress
        if isService {
            address = ListenAddress(host: a[0].text, port: 0)
        } else {
            guard let parsed = ConfigValue.serverAddress(a[0].text[...]) else {
                error(a[0].location, "expected a backend address such as 127.0.0.1:9001, [::1]:9001 or app.internal:8080, found \(ConfigText.quoted(a[0].text))")
                return nil
            }
            if resolve, ConfigValue.isIPLiteral(parsed.host[...]) {
                error(a[0].location, "\"resolve\" needs a DNS name, and \(ConfigText.quoted(parsed.host)) is an IP address")
                return nil
            }
            address = parsed
        }
        var server = ServerConfig(address: address, identity: a[0].text, location: d.location)
        var ok = true
        if let w = a.options["weight"] {
            if let n = integer(w, of: "weight", in: 0...1000) { server.weight = n } else { ok = false }
        }
        if let m = a.options["max_conns"] {
            if let n = integer(m, of: "max_conns", in: 0...1_000_000) { server.maxConns = n } else { ok = false }
        }
        if let n = a.options["name"] {
            if let id = name(n, for: "a server name") {
                server.identity = id
                server.named = true
            } else {
                ok = false
            }
        }
        server.resolve = resolve
        server.service = isService
        server.backup = a.flags["backup"] != nil
        server.down = a.flags["down"] != nil
        return ok ? server : nil
    }

    /// The shortest `key=` for `sticky`: 16 bytes, which a random string of that length makes hard enough to guess.
    static let minimumStickyKeyLength = 16

    /// `sticky cookie NAME [max_age=D] [secure] [httponly] [samesite=strict|lax|none] [key=SECRET]`.
    private mutating func stickyCookie(_ d: ConfigDirective, _ a: ParsedArguments) -> StickyCookieConfig? {
        guard keyword(a[0], of: "sticky", among: ["cookie"]) != nil else { return nil }
        // RFC 6265 §4.1.1: a cookie name is a token.
        guard let name = token(a[1], for: "a cookie name") else { return nil }
        var sticky = StickyCookieConfig(name: name, location: d.location)
        var ok = true
        if let v = a.options["max_age"] {
            if let ms = duration(v, of: "max_age", positive: true) {
                if ms < 1000 {
                    error(v.location, "\"max_age\" must be at least 1s (a cookie's Max-Age counts whole seconds), found \(ConfigText.quoted(v.text))")
                    ok = false
                } else {
                    sticky.maxAge = ms
                }
            } else {
                ok = false
            }
        }
        if let v = a.options["samesite"] {
            if let k = keyword(v, of: "samesite", among: ["strict", "lax", "none"]) {
                sticky.sameSite = k == "strict" ? .strict : k == "lax" ? .lax : CookieSameSite.none
            } else {
                ok = false
            }
        }
        sticky.secure = a.flags["secure"] != nil
        sticky.httpOnly = a.flags["httponly"] != nil
        if sticky.sameSite == CookieSameSite.none, !sticky.secure, let v = a.options["samesite"] {
            // Browsers drop a SameSite=None cookie that is not Secure.
            error(v.location, "samesite=none needs \"secure\" as well (browsers refuse a SameSite=None cookie without Secure)")
            ok = false
        }
        if let v = a.options["key"] {
            if v.text.utf8.count < Self.minimumStickyKeyLength || v.text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                error(v.location, "expected a secret of at least \(Self.minimumStickyKeyLength) characters for \"key\" (for example the output of `openssl rand -base64 32`), found \(v.text.utf8.count) characters")
                ok = false
            } else {
                sticky.key = v.text
            }
        }
        return ok ? sticky : nil
    }

    private mutating func healthCheck(_ d: ConfigDirective, _ a: ParsedArguments) -> HealthCheckConfig? {
        let isTCP = a[0].text == "tcp"
        guard isTCP || (a[0].text.hasPrefix("/") && !a[0].text.contains(where: { $0.isWhitespace || $0.isNewline || !$0.isASCII })) else {
            error(a[0].location, "expected a health check path starting with \"/\" or \"tcp\" for a connect-only check, found \(ConfigText.quoted(a[0].text))")
            return nil
        }
        var check = HealthCheckConfig(path: isTCP ? nil : a[0].text)
        var ok = true
        if let v = a.options["host"] {
            if isTCP {
                error(v.location, "\"host\" applies to HTTP checks; a tcp check only connects")
                ok = false
            } else if v.text.isEmpty || v.text.contains(where: { $0.isWhitespace || $0.isNewline || !$0.isASCII || $0 == "/" }) {
                error(v.location, "expected a host name such as app.internal or app.internal:8080 for \"host\", found \(ConfigText.quoted(v.text))")
                ok = false
            } else {
                check.host = v.text
            }
        }
        if let v = a.options["initial"] {
            if let k = keyword(v, of: "initial", among: ["healthy", "unhealthy"]) { check.initiallyUnhealthy = k == "unhealthy" } else { ok = false }
        }
        if let v = a.options["interval"] {
            if let ms = duration(v, of: "interval", positive: true) { check.interval = ms } else { ok = false }
        }
        if let v = a.options["timeout"] {
            if let ms = duration(v, of: "timeout", positive: true) { check.timeout = ms } else { ok = false }
        }
        if let v = a.options["rise"] {
            if let n = integer(v, of: "rise", in: 1...1000) { check.rise = n } else { ok = false }
        }
        if let v = a.options["fall"] {
            if let n = integer(v, of: "fall", in: 1...1000) { check.fall = n } else { ok = false }
        }
        if let v = a.options["expect"] {
            if let ranges = statusRanges(v) { check.expect = ranges } else { ok = false }
        }
        return ok ? check : nil
    }

    /// `200-399`, `200,204`, `200-299,301`: inclusive ranges of HTTP status codes.
    private mutating func statusRanges(_ a: ConfigArgument) -> [ClosedRange<Int>]? {
        var ranges: [ClosedRange<Int>] = []
        for part in a.text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            let numbers = bounds.compactMap { ConfigValue.integer($0) }
            guard (1...2).contains(bounds.count), numbers.count == bounds.count,
                  numbers.allSatisfy({ (100...599).contains($0) }), numbers.first! <= numbers.last! else {
                error(a.location, "expected status codes from 100 to 599 such as 200-399 or 200,204 for \"expect\", found \(ConfigText.quoted(a.text))")
                return nil
            }
            ranges.append(numbers.first!...numbers.last!)
        }
        return ranges
    }

    private mutating func passiveHealth(_ a: ParsedArguments) -> PassiveHealthConfig? {
        var passive = PassiveHealthConfig()
        var ok = true
        if let v = a.options["failures"] {
            if let n = integer(v, of: "failures", in: 1...100_000) { passive.failures = n } else { ok = false }
        }
        if let v = a.options["ejection"] {
            if let ms = duration(v, of: "ejection", positive: true) { passive.ejection = ms } else { ok = false }
        }
        if let v = a.options["max_ejected"] {
            if let p = percent(v, of: "max_ejected") { passive.maxEjectedPercent = p } else { ok = false }
        }
        if let v = a.options["on_5xx"] {
            if let k = keyword(v, of: "on_5xx", among: ["on", "off"]) { passive.on5xx = k == "on" } else { ok = false }
        }
        return ok ? passive : nil
    }
}
