// `server { ... }`: listening addresses, TLS, client-side limits and the routes to upstreams.

extension ConfigBuilder {
    static let maxHeaderSizeRange: ClosedRange<Int64> = 1024...(1 << 20)

    mutating func applyServerBlock(_ d: ConfigDirective, _ a: ParsedArguments) {
        var block = ServerBlockConfig(location: d.location)
        var prefixes: [String: SourceLocation] = [:]
        var certificates: [(path: String, location: SourceLocation)] = []
        var keys: [(path: String, location: SourceLocation)] = []

        for (c, ca) in accepted(d.block ?? [], in: .server) {
            switch c.name {
            case "listen":
                guard let address = listenAddress(ca[0]) else { continue }
                var listen = ListenConfig(address: address, location: c.location)
                listen.tls = ca.flags["tls"] != nil
                listen.proxyProtocol = ca.flags["proxy_protocol"] != nil
                block.listens.append(listen)
                addressSites.append((address, ca[0].location, false))
            case "tls_certificate":
                if let path = nonEmpty(ca[0], of: c.name) { certificates.append((path, c.location)) }
            case "tls_certificate_key":
                if let path = nonEmpty(ca[0], of: c.name) { keys.append((path, c.location)) }
            case "tls_protocols":
                var versions: [TLSVersion] = []
                for arg in ca.positional {
                    if let v = TLSVersion(rawValue: arg.text) {
                        versions.append(v)
                    } else if ["TLSv1", "TLSv1.0", "TLSv1.1", "SSLv3", "SSLv2"].contains(arg.text) {
                        error(arg.location, "\(arg.text) is not supported: Huddle speaks TLSv1.2 and TLSv1.3 only")
                    } else {
                        error(arg.location, "expected TLSv1.2 or TLSv1.3 for \"tls_protocols\", found \(ConfigText.quoted(arg.text))")
                    }
                }
                if !versions.isEmpty { block.tlsProtocols = Array(Set(versions)).sorted() }
            case "tls_handshake_timeout":
                if let ms = duration(ca[0], of: c.name, positive: true) { block.tlsHandshakeTimeout = ms }
            case "header_timeout":
                if let ms = duration(ca[0], of: c.name, positive: true) { block.headerTimeout = ms }
            case "idle_timeout":
                if let ms = duration(ca[0], of: c.name, positive: true) { block.idleTimeout = ms }
            case "tunnel_idle_timeout":
                if let ms = duration(ca[0], of: c.name, positive: true) { block.tunnelIdleTimeout = ms }
            case "max_header_size":
                if let n = size(ca[0], of: c.name, in: Self.maxHeaderSizeRange, rangeText: "1k and 1m") {
                    block.maxHeaderSize = Int(n)
                }
            case "max_body_size":
                if let n = size(ca[0], of: c.name, in: 0...Int64.max) { block.maxBodySize = n }
            case "gzip":
                if let v = keyword(ca[0], of: c.name, among: ["on", "off"]) { block.gzip.enabled = v == "on" }
                if let m = ca.options["min_length"],
                   let n = size(m, of: "min_length", in: 0...Int64(Int32.max)) {
                    block.gzip.minLength = Int(n)
                }
                if let l = ca.options["level"], let n = integer(l, of: "level", in: 1...9) { block.gzip.level = n }
                if let t = ca.options["types"], let types = mediaTypes(t) { block.gzip.types = types }
            case "route":
                let prefix = ca[0]
                if let first = prefixes[prefix.text] {
                    error(prefix.location, "duplicate route \(ConfigText.quoted(prefix.text)) in this server block (first at \(first))")
                    continue
                }
                prefixes[prefix.text] = prefix.location
                if let route = route(c, ca) { block.routes.append(route) }
            default:
                preconditionFailure("unhandled server directive \(c.name)")
            }
        }

        if block.listens.isEmpty, d.block != nil, !inputTruncated, !mentions(d.block, "listen", in: .server) {
            error(d.location, "server block has no listen: add one such as \"listen 0.0.0.0:8080;\"")
        }
        // Certificates and keys pair up in order: the n-th key belongs to the n-th certificate.
        for (i, cert) in certificates.enumerated() where i < keys.count {
            block.tlsCertificates.append(TLSCertificatePair(certificate: cert.path, key: keys[i].path, location: cert.location))
        }
        if certificates.count > keys.count {
            for cert in certificates[keys.count...] {
                error(cert.location, "tls_certificate \(ConfigText.quoted(cert.path)) has no tls_certificate_key after it: each certificate needs its key")
            }
        } else if keys.count > certificates.count {
            for key in keys[certificates.count...] {
                error(key.location, "tls_certificate_key \(ConfigText.quoted(key.path)) has no tls_certificate before it: each key needs its certificate")
            }
        }
        for listen in block.listens where listen.tls && certificates.isEmpty && keys.isEmpty {
            error(listen.location, "listen \(listen.address) tls needs tls_certificate and tls_certificate_key in the same server block")
        }
        // Longest prefix first so the first match is the most specific; ties keep file order.
        block.routes = block.routes.enumerated().sorted { x, y in
            let (lx, ly) = (x.element.prefix.utf8.count, y.element.prefix.utf8.count)
            return lx != ly ? lx > ly : x.offset < y.offset
        }.map(\.element)
        config.servers.append(block)
    }

    /// `text/html,application/json`: a comma-separated list of media types (`type/subtype`, tokens, no parameters),
    /// or `*` for every type. Kept lower-case, duplicates dropped; an error points at the element that is wrong.
    private mutating func mediaTypes(_ a: ConfigArgument) -> [String]? {
        if a.text == "*" { return ["*"] }
        let tchar = Set("!#$%&'*+-.^_`|~".utf8)
        func isToken(_ s: Substring) -> Bool {
            !s.isEmpty && s.utf8.allSatisfy { c in
                (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                    || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || tchar.contains(c)
            }
        }
        var types: [String] = []
        var offset = 0
        for part in a.text.split(separator: ",", omittingEmptySubsequences: false) {
            let halves = part.split(separator: "/", omittingEmptySubsequences: false)
            guard halves.count == 2, isToken(halves[0]), isToken(halves[1]) else {
                var at = a.location
                at.column += offset
                let what = part.isEmpty ? "an empty element" : ConfigText.quoted(String(part))
                error(at, "expected media types such as text/html,application/json (or *) for \"types\", found \(what)")
                return nil
            }
            let lower = part.lowercased()
            if !types.contains(lower) { types.append(lower) }
            offset += part.count + 1
        }
        return types
    }

    mutating func nonEmpty(_ a: ConfigArgument, of directive: String) -> String? {
        guard !a.text.isEmpty else {
            error(a.location, "expected a path for \(ConfigText.quoted(directive)), found \"\"")
            return nil
        }
        return a.text
    }

    private mutating func route(_ d: ConfigDirective, _ a: ParsedArguments) -> RouteConfig? {
        let prefix = a[0]
        var ok = true
        if !prefix.text.hasPrefix("/") || prefix.text.contains(where: { $0.isWhitespace }) {
            error(prefix.location, "expected a route prefix starting with \"/\", found \(ConfigText.quoted(prefix.text))")
            ok = false
        }
        var upstream: ConfigArgument?
        var keys: [GroupKeySource] = []
        var keyLocations: [GroupKeySource: SourceLocation] = [:]
        var missing: GroupKeyMissing?
        var upgrades: [String]?
        var rateLimit: RateLimitConfig?
        var groupKeyLocation: SourceLocation?
        var cache: CacheConfig?
        var priority: RoutePriority?

        for (c, ca) in accepted(d.block ?? [], in: .route) {
            switch c.name {
            case "upstream":
                if name(ca[0], for: "an upstream name") != nil { upstream = ca[0] } else { ok = false }
            case "group_key":
                guard let key = groupKey(ca) else { ok = false; continue }
                if let first = keyLocations[key] {
                    error(c.location, "duplicate group_key \(ca[0].text) \(ca[1].text) (first at \(first))")
                    continue
                }
                keyLocations[key] = c.location
                keys.append(key)
            case "group_key_missing":
                if let v = keyword(ca[0], of: c.name, among: ["reject", "balance"]) {
                    missing = GroupKeyMissing(rawValue: v)!
                }
            case "allow_upgrade":
                if ca.positional.count == 1, ca[0].text == "off" {
                    upgrades = []
                    continue
                }
                var protocols: [String] = []
                for p in ca.positional {
                    if let t = token(p, for: "an upgrade protocol such as websocket") {
                        let lower = t.lowercased()
                        if !protocols.contains(lower) { protocols.append(lower) }
                    }
                }
                upgrades = protocols
            case "rate_limit":
                if let r = self.rateLimit(c, ca) {
                    rateLimit = r
                    if r.key == .group { groupKeyLocation = ca.options["key"]?.location }
                } else {
                    ok = false
                }
            case "cache":
                if let cc = cacheConfig(c, ca) { cache = cc } else { ok = false }
            case "priority":
                if let p = routePriority(ca) { priority = p } else { ok = false }
            default:
                preconditionFailure("unhandled route directive \(c.name)")
            }
        }

        if let at = groupKeyLocation, keys.isEmpty, !mentions(d.block, "group_key", in: .route) {
            error(at, "key=group counts requests by the route's group key, but route \(ConfigText.quoted(prefix.text)) has no group_key")
            ok = false
        }
        guard let upstream else {
            if d.block != nil, !inputTruncated, !mentions(d.block, "upstream", in: .route) {
                error(prefix.location, "route \(ConfigText.quoted(prefix.text)) has no upstream: add \"upstream NAME;\" to its block")
            }
            return nil
        }
        upstreamReferences.append((prefix.text, upstream))
        guard ok else { return nil }
        var route = RouteConfig(prefix: prefix.text, upstream: upstream.text, location: d.location)
        route.groupKeys = keys
        if let missing { route.groupKeyMissing = missing }
        if let upgrades { route.allowUpgrades = upgrades }
        route.rateLimit = rateLimit
        route.cache = cache
        if let priority { route.priority = priority }
        return route
    }

    /// `priority N` (a whole number, sign allowed, within `RoutePriority.range`) or `priority header NAME`.
    private mutating func routePriority(_ a: ParsedArguments) -> RoutePriority? {
        let range = RoutePriority.range
        if a.positional.count == 2 {
            guard keyword(a[0], of: "priority", among: ["header"]) != nil else { return nil }
            return token(a[1], for: "a header name").map { .header($0) }
        }
        let text = a[0].text
        let negative = text.hasPrefix("-")
        let digits = negative || text.hasPrefix("+") ? text.dropFirst() : text[...]
        guard let n = ConfigValue.integer(digits) else {
            error(a[0].location, "expected a whole number from \(range.lowerBound) to \(range.upperBound) such as 10 (higher is served first), or \"header NAME\", for \"priority\", found \(ConfigText.quoted(text))")
            return nil
        }
        let value = negative ? -n : n
        guard range.contains(value) else {
            error(a[0].location, "\"priority\" must be between \(range.lowerBound) and \(range.upperBound), found \(text)")
            return nil
        }
        return .fixed(value)
    }

    /// The fastest rate one key can be held to: the bucket's clock counts microseconds.
    static let maximumRatePerSecond = 1_000_000
    /// The most a bucket may hold, in time at the rate (`burst` × the interval between two requests).
    static let maximumBurstMicros: Int64 = 86_400_000_000

    /// `rate_limit RATE [burst=N] [key=ip|header:NAME|cookie:NAME|group]`.
    private mutating func rateLimit(_ d: ConfigDirective, _ a: ParsedArguments) -> RateLimitConfig? {
        guard let (requests, perMs) = ConfigValue.rate(a[0].text[...]) else {
            error(a[0].location, "expected a rate such as 100/s, 6000/m or 10/h for \"rate_limit\", found \(ConfigText.quoted(a[0].text))")
            return nil
        }
        var limit = RateLimitConfig(requests: requests, perMs: perMs, location: d.location)
        if Int64(requests) * 1000 > Int64(Self.maximumRatePerSecond) * perMs {
            error(a[0].location, "\"rate_limit\" can be at most \(Self.maximumRatePerSecond)/s per key (buckets count microseconds), found \(ConfigText.quoted(a[0].text))")
            return nil
        }
        var ok = true
        if let v = a.options["burst"] {
            if let n = integer(v, of: "burst", in: 1...1_000_000_000) {
                limit.burst = n
                if Int64(n) * limit.intervalMicros > Self.maximumBurstMicros {
                    error(v.location, "burst=\(n) at \(limit.rateText) is more than a day's worth of requests; lower the burst or raise the rate")
                    ok = false
                }
            } else {
                ok = false
            }
        }
        if let v = a.options["key"] {
            if let k = rateLimitKey(v) { limit.key = k } else { ok = false }
        }
        return ok ? limit : nil
    }

    /// `ip`, `group`, `header:NAME` or `cookie:NAME`.
    private mutating func rateLimitKey(_ v: ConfigArgument) -> RateLimitKey? {
        switch v.text {
        case "ip": return .ip
        case "group": return .group
        default: break
        }
        if let colon = v.text.firstIndex(of: ":") {
            let kind = v.text[..<colon]
            var nameArgument = v
            nameArgument.text = String(v.text[v.text.index(after: colon)...])
            nameArgument.location.column += kind.count + 1
            switch kind {
            case "header": return token(nameArgument, for: "a header name").map { .header($0) }
            case "cookie": return token(nameArgument, for: "a cookie name").map { .cookie($0) }
            default: break
            }
        }
        error(v.location, "expected ip, header:NAME, cookie:NAME or group for \"key\", found \(ConfigText.quoted(v.text))")
        return nil
    }

    /// The smallest and largest `cache size=`.
    static let cacheSizeRange: ClosedRange<Int64> = (64 << 10)...(1 << 40)

    /// `cache size= ttl= max_entry= stale_if_error= collapse_timeout= shared=`: every option has a default.
    private mutating func cacheConfig(_ d: ConfigDirective, _ a: ParsedArguments) -> CacheConfig? {
        var c = CacheConfig(location: d.location)
        var ok = true
        if let v = a.options["size"] {
            if let n = size(v, of: "size", in: Self.cacheSizeRange, rangeText: "64k and 1024g") { c.size = n } else { ok = false }
        }
        if let v = a.options["ttl"] {
            if let ms = duration(v, of: "ttl") { c.ttl = ms } else { ok = false }
        }
        if let v = a.options["max_entry"] {
            if let n = size(v, of: "max_entry", in: 1...Self.cacheSizeRange.upperBound, rangeText: "1 byte and 1024g") {
                c.maxEntry = n
                if n > c.size {
                    error(v.location, "\"max_entry\" (\(v.text)) must not be larger than the cache's size (\(a.options["size"]?.text ?? "64m"))")
                    ok = false
                }
            } else {
                ok = false
            }
        }
        if let v = a.options["stale_if_error"] {
            if let ms = duration(v, of: "stale_if_error") { c.staleIfError = ms } else { ok = false }
        }
        if let v = a.options["collapse_timeout"] {
            if let ms = duration(v, of: "collapse_timeout") { c.collapseTimeout = ms } else { ok = false }
        }
        if let v = a.options["shared"] {
            if let w = keyword(v, of: "shared", among: ["on", "off"]) { c.shared = w == "on" } else { ok = false }
        }
        return ok ? c : nil
    }

    /// `path N`, `header NAME`, `cookie NAME` or `query NAME`.
    private mutating func groupKey(_ a: ParsedArguments) -> GroupKeySource? {
        guard let kind = keyword(a[0], of: "group_key", among: ["path", "header", "cookie", "query"]) else { return nil }
        let value = a[1]
        switch kind {
        case "path":
            guard let n = ConfigValue.integer(value.text[...]), n >= 1, n <= 64 else {
                error(value.location, "expected a path segment number from 1 to 64 (1 is the first segment), found \(ConfigText.quoted(value.text))")
                return nil
            }
            return .path(n)
        case "header":
            return token(value, for: "a header name").map { .header($0) }
        case "cookie":
            return token(value, for: "a cookie name").map { .cookie($0) }
        default:
            guard !value.text.isEmpty, !value.text.contains(where: { $0 == "&" || $0 == "=" || $0 == "#" || $0.isWhitespace }) else {
                error(value.location, "expected a query parameter name, found \(ConfigText.quoted(value.text))")
                return nil
            }
            return .query(value.text)
        }
    }
}
