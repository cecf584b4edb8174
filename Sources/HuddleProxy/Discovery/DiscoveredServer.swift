// A server found through DNS, and how `resolve` lines of the config become concrete servers in a snapshot.
//
// Identities (what hashing and the group table key on, so they must not change while the same backend stays):
//   - `server NAME:PORT resolve`: each address is a server named `IP:PORT` (`[IPv6]:PORT`), or `ID@IP:PORT` with
//     `name=ID`. The same pod address keeps its identity across lookups, restarts and Huddle replicas.
//   - `server _svc._proto.NAME resolve service`: each SRV target is a server named by its target host (lower case,
//     no final dot; `ID@host` with `name=ID`), so a StatefulSet pod keeps its identity when its address changes. A
//     host listed twice with different ports is named `host:port` for each.
import HuddleConfig
import HuddleSys

public struct DiscoveredServer: Sendable, Equatable {
    public var identity: String
    /// The IP literal connected to.
    public var ip: String
    public var port: UInt16
    /// Nil: the `resolve` line's weight (A/AAAA); the SRV record's weight, made 1...1000, for a service.
    public var weight: Int?
    /// The DNS name it was found under: the looked-up name, or the SRV target. TLS verifies and sends it.
    public var name: String
}

public enum DiscoveryKey {
    /// What identifies one `resolve` line across reloads: its upstream, how it is written (identity as written, name,
    /// port, kind). A reload that keeps the line keeps what was found for it.
    public static func of(upstream: String, server s: ServerConfig) -> String {
        "\(upstream)\u{1F}\(s.identity)\u{1F}\(s.address.host)\u{1F}\(s.address.port)\u{1F}\(s.service ? "srv" : "a")"
    }
}

extension DiscoveredServer {
    /// `IP:PORT`, bracketed for IPv6.
    static func addressText(ip: String, port: UInt16) -> String { ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    /// One server per address of a `resolve` line (addresses in the order given: IPv4 then IPv6, each sorted).
    static func fromAddresses(_ ips: [String], line s: ServerConfig) -> [DiscoveredServer] {
        // The name without a final dot: SNI and certificate names never have one (RFC 6066 §3).
        let name = s.address.host.hasSuffix(".") ? String(s.address.host.dropLast()) : s.address.host
        return ips.map { ip in
            let address = addressText(ip: ip, port: s.address.port)
            return DiscoveredServer(identity: s.named ? "\(s.identity)@\(address)" : address, ip: ip, port: s.address.port,
                                    weight: nil, name: name)
        }
    }

    /// One server per SRV target. RFC 2782 weights are 0...65535 and 0 means "rarely, when others exist": Huddle's
    /// weights are 1...1000 here (0 would mean "never"), so 0 counts as 1 and anything above 1000 as 1000.
    static func fromTargets(_ targets: [(host: String, port: UInt16, weight: UInt16, address: String)], line s: ServerConfig) -> [DiscoveredServer] {
        var hostCounts: [String: Int] = [:]
        for t in targets { hostCounts[t.host, default: 0] += 1 }
        // In a stable order: nameservers rotate SRV records, and the same set must compare equal.
        return targets.sorted { ($0.host, $0.port) < ($1.host, $1.port) }.map { t in
            let base = hostCounts[t.host]! > 1 ? "\(t.host):\(t.port)" : t.host
            return DiscoveredServer(identity: s.named ? "\(s.identity)@\(base)" : base, ip: t.address, port: t.port,
                                    weight: min(1000, max(1, Int(t.weight))), name: t.host)
        }
    }
}

extension UpstreamConfig {
    /// The upstream with each `resolve` line replaced by the servers found for it (none until the first answer), in
    /// config order. A discovered identity already taken in this upstream (a written server, another line's find) is
    /// skipped and reported through `duplicate`.
    func expanded(discovered: [String: [DiscoveredServer]], duplicate: (String, ServerConfig) -> Void) -> UpstreamConfig {
        guard servers.contains(where: \.resolve) else { return self }
        var out = self
        out.servers = []
        var taken = Set(servers.filter { !$0.resolve }.map(\.identity))
        for s in servers {
            guard s.resolve else {
                out.servers.append(s)
                continue
            }
            for d in discovered[DiscoveryKey.of(upstream: name, server: s)] ?? [] {
                guard taken.insert(d.identity).inserted else {
                    duplicate(d.identity, s)
                    continue
                }
                var c = ServerConfig(address: ListenAddress(host: d.ip, port: d.port), identity: d.identity, location: s.location)
                c.weight = d.weight ?? s.weight
                c.resolve = true
                c.service = s.service
                c.named = s.named
                c.backup = s.backup
                c.down = s.down
                c.maxConns = s.maxConns
                c.discoveredName = d.name
                out.servers.append(c)
            }
        }
        return out
    }
}
