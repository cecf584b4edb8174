// The PROXY protocol header Huddle sends first on a backend connection (`send_proxy_protocol v1|v2`), and before a
// health probe's request.

public enum ProxyProtocolWriter {
    /// `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` for a relayed TCP connection, or `PROXY UNKNOWN\r\n` when either end is
    /// not known. When the two ends differ in family, the IPv4 one is written as `::ffff:a.b.c.d` under TCP6 (a line
    /// has one family). Addresses are in their RFC 5952 form.
    public static func v1(source: ProxyEndpoint?, destination: ProxyEndpoint?) -> [UInt8] {
        guard let (s, d) = sameFamily(source, destination) else { return Array("PROXY UNKNOWN\r\n".utf8) }
        var out = Array(s.address.isIPv6 ? "PROXY TCP6 ".utf8 : "PROXY TCP4 ".utf8)
        out.reserveCapacity(ProxyProtocolParser.maxV1Length)
        s.address.appendText(to: &out)
        out.append(0x20)
        d.address.appendText(to: &out)
        out.append(0x20)
        IPAddress.appendDecimal(Int(s.port), to: &out)
        out.append(0x20)
        IPAddress.appendDecimal(Int(d.port), to: &out)
        out += [0x0D, 0x0A]
        return out
    }

    /// The binary header: PROXY over TCP/IPv4 (family byte 0x11) or TCP/IPv6 (0x21) with no TLVs, or, when either end
    /// is not known, LOCAL with no address (what the specification has senders use for their own connections, and
    /// what every receiver must accept; HAProxy does the same).
    public static func v2(source: ProxyEndpoint?, destination: ProxyEndpoint?) -> [UInt8] {
        guard let (s, d) = sameFamily(source, destination) else { return v2Local() }
        let ipv6 = s.address.isIPv6
        var out = ProxyProtocolParser.v2Signature
        out.reserveCapacity(ipv6 ? 52 : 28)
        out += [0x21, ipv6 ? 0x21 : 0x11, 0, ipv6 ? 36 : 12]
        for i in 0..<s.address.byteCount { out.append(s.address.byte(i)) }
        for i in 0..<d.address.byteCount { out.append(d.address.byte(i)) }
        out += [UInt8(s.port >> 8), UInt8(truncatingIfNeeded: s.port), UInt8(d.port >> 8), UInt8(truncatingIfNeeded: d.port)]
        return out
    }

    /// A v2 LOCAL header without addresses: "this connection is the sender's own" (a health check).
    public static func v2Local() -> [UInt8] {
        ProxyProtocolParser.v2Signature + [0x20, 0x00, 0, 0]
    }

    public static func header(_ version: ProxyProtocolHeader.Version, source: ProxyEndpoint?, destination: ProxyEndpoint?) -> [UInt8] {
        switch version {
        case .v1: return v1(source: source, destination: destination)
        case .v2: return v2(source: source, destination: destination)
        }
    }

    /// Both ends, in one family: IPv4 only if both are.
    private static func sameFamily(_ s: ProxyEndpoint?, _ d: ProxyEndpoint?) -> (ProxyEndpoint, ProxyEndpoint)? {
        guard let s, let d else { return nil }
        if s.address.isIPv6 == d.address.isIPv6 { return (s, d) }
        return (ProxyEndpoint(address: s.address.asIPv6, port: s.port), ProxyEndpoint(address: d.address.asIPv6, port: d.port))
    }
}
