// The kinds of block a directive can sit in, and the directives each one accepts.

/// The kinds of block a directive can sit in.
enum ConfigContext: CaseIterable, Sendable {
    case top, upstream, server, route, admin

    /// "in server block", as used after "unknown directive".
    var phrase: String {
        switch self {
        case .top: return "at top level"
        case .upstream: return "in upstream block"
        case .server: return "in server block"
        case .route: return "in route block"
        case .admin: return "in admin block"
        }
    }

    /// "a server block", as used in "belongs in ...".
    var place: String {
        switch self {
        case .top: return "the top level"
        case .upstream: return "an upstream block"
        case .server: return "a server block"
        case .route: return "a route block"
        case .admin: return "an admin block"
        }
    }

    func spec(named name: String) -> DirectiveSpec? {
        specs.first { $0.name == name }
    }

    var specs: [DirectiveSpec] {
        switch self {
        case .top: return Self.topSpecs
        case .upstream: return Self.upstreamSpecs
        case .server: return Self.serverSpecs
        case .route: return Self.routeSpecs
        case .admin: return Self.adminSpecs
        }
    }

    private static let topSpecs: [DirectiveSpec] = [
        DirectiveSpec(name: "workers", arguments: 1...1),
        DirectiveSpec(name: "shutdown_timeout", arguments: 1...1),
        DirectiveSpec(name: "max_connections", arguments: 1...1),
        DirectiveSpec(name: "access_log", arguments: 1...1, options: ["format"]),
        DirectiveSpec(name: "error_log", arguments: 1...1, options: ["level"]),
        DirectiveSpec(name: "admin", arguments: 1...1, block: .optional),
        DirectiveSpec(name: "resolver", arguments: 1...Int.max, options: ["valid", "hold", "timeout"]),
        DirectiveSpec(name: "reload_on_change", arguments: 1...1),
        DirectiveSpec(name: "upstream", arguments: 1...1, block: .required, repeatable: true),
        DirectiveSpec(name: "server", arguments: 0...0, block: .required, repeatable: true),
    ]

    private static let upstreamSpecs: [DirectiveSpec] = [
        DirectiveSpec(name: "balance", arguments: 1...1),
        DirectiveSpec(name: "hash_balance_factor", arguments: 1...1),
        DirectiveSpec(name: "group_linger", arguments: 1...1),
        DirectiveSpec(name: "rebalance", arguments: 1...1, options: ["rate"]),
        DirectiveSpec(name: "membership_settle", arguments: 1...1),
        DirectiveSpec(name: "server", arguments: 1...1, options: ["weight", "name", "max_conns"],
                      flags: ["resolve", "service", "backup", "down"], repeatable: true),
        DirectiveSpec(name: "health_check", arguments: 1...1,
                      options: ["interval", "timeout", "rise", "fall", "expect", "host", "initial"]),
        DirectiveSpec(name: "passive_health", arguments: 0...0, options: ["failures", "ejection", "max_ejected", "on_5xx"]),
        DirectiveSpec(name: "connect_timeout", arguments: 1...1),
        DirectiveSpec(name: "response_timeout", arguments: 1...1),
        DirectiveSpec(name: "keepalive", arguments: 1...1),
        DirectiveSpec(name: "keepalive_timeout", arguments: 1...1),
        DirectiveSpec(name: "retries", arguments: 1...1),
        DirectiveSpec(name: "tls", arguments: 0...0, options: ["verify", "sni", "ca"]),
        DirectiveSpec(name: "send_proxy_protocol", arguments: 1...1),
        DirectiveSpec(name: "queue_timeout", arguments: 1...1),
        DirectiveSpec(name: "sticky", arguments: 2...2, options: ["max_age", "samesite", "key"], flags: ["secure", "httponly"]),
    ]

    private static let serverSpecs: [DirectiveSpec] = [
        DirectiveSpec(name: "listen", arguments: 1...1, flags: ["tls", "proxy_protocol"], repeatable: true),
        DirectiveSpec(name: "tls_certificate", arguments: 1...1, repeatable: true),
        DirectiveSpec(name: "tls_certificate_key", arguments: 1...1, repeatable: true),
        DirectiveSpec(name: "tls_protocols", arguments: 1...2),
        DirectiveSpec(name: "tls_handshake_timeout", arguments: 1...1),
        DirectiveSpec(name: "header_timeout", arguments: 1...1),
        DirectiveSpec(name: "idle_timeout", arguments: 1...1),
        DirectiveSpec(name: "tunnel_idle_timeout", arguments: 1...1),
        DirectiveSpec(name: "max_header_size", arguments: 1...1),
        DirectiveSpec(name: "max_body_size", arguments: 1...1),
        DirectiveSpec(name: "gzip", arguments: 1...1, options: ["min_length", "level", "types"]),
        DirectiveSpec(name: "route", arguments: 1...1, block: .required, repeatable: true),
    ]

    private static let routeSpecs: [DirectiveSpec] = [
        DirectiveSpec(name: "upstream", arguments: 1...1),
        DirectiveSpec(name: "group_key", arguments: 2...2, repeatable: true),
        DirectiveSpec(name: "group_key_missing", arguments: 1...1),
        DirectiveSpec(name: "allow_upgrade", arguments: 1...Int.max),
        DirectiveSpec(name: "rate_limit", arguments: 1...1, options: ["burst", "key"]),
        DirectiveSpec(name: "cache", arguments: 0...0,
                      options: ["size", "ttl", "max_entry", "stale_if_error", "collapse_timeout", "shared"]),
        DirectiveSpec(name: "priority", arguments: 1...2),
    ]

    private static let adminSpecs: [DirectiveSpec] = [
        DirectiveSpec(name: "token", arguments: 1...1),
    ]
}
