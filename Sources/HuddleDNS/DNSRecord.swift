// Questions and resource records (RFC 1035 §4.1.2, §4.1.3), with the record data Huddle reads decoded: A, AAAA,
// CNAME, SRV (RFC 2782) and SOA (for the negative-answer TTL, RFC 2308); other types are kept as raw bytes.

/// A record type (RFC 1035 §3.2.2); any 16-bit value is representable.
public struct DNSRecordType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = DNSRecordType(rawValue: 1)
    public static let ns = DNSRecordType(rawValue: 2)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let aaaa = DNSRecordType(rawValue: 28)
    public static let srv = DNSRecordType(rawValue: 33)
    public static let opt = DNSRecordType(rawValue: 41)

    public var description: String {
        switch self {
        case .a: return "A"
        case .ns: return "NS"
        case .cname: return "CNAME"
        case .soa: return "SOA"
        case .aaaa: return "AAAA"
        case .srv: return "SRV"
        case .opt: return "OPT"
        default: return "TYPE\(rawValue)"
        }
    }
}

/// The Internet class; the only one Huddle asks about.
public let dnsClassIN: UInt16 = 1

public struct DNSQuestion: Sendable, Hashable {
    public var name: DNSName
    public var type: DNSRecordType
    public var qclass: UInt16
    public init(name: DNSName, type: DNSRecordType, qclass: UInt16 = dnsClassIN) {
        self.name = name
        self.type = type
        self.qclass = qclass
    }
}

/// One SRV record's data (RFC 2782).
public struct DNSService: Sendable, Hashable {
    public var priority: UInt16
    public var weight: UInt16
    public var port: UInt16
    public var target: DNSName
    public init(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName) {
        self.priority = priority
        self.weight = weight
        self.port = port
        self.target = target
    }
}

/// SOA data (RFC 1035 §3.3.13); `minimum` bounds how long a negative answer may be cached (RFC 2308 §5).
public struct DNSStartOfAuthority: Sendable, Hashable {
    public var mname: DNSName
    public var rname: DNSName
    public var serial: UInt32
    public var refresh: UInt32
    public var retry: UInt32
    public var expire: UInt32
    public var minimum: UInt32
    public init(mname: DNSName, rname: DNSName, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32) {
        self.mname = mname
        self.rname = rname
        self.serial = serial
        self.refresh = refresh
        self.retry = retry
        self.expire = expire
        self.minimum = minimum
    }
}

public enum DNSRecordData: Sendable, Hashable {
    /// Four bytes, network order.
    case a([UInt8])
    /// Sixteen bytes, network order.
    case aaaa([UInt8])
    case cname(DNSName)
    case srv(DNSService)
    case soa(DNSStartOfAuthority)
    /// Any other type, as received (names inside are not decompressed).
    case raw([UInt8])
}

public struct DNSRecord: Sendable, Hashable {
    public var name: DNSName
    public var type: DNSRecordType
    public var rclass: UInt16
    /// Seconds. RFC 2181 §8: a value with the top bit set is treated as 0.
    public var ttl: UInt32
    public var data: DNSRecordData
    public init(name: DNSName, type: DNSRecordType, rclass: UInt16 = dnsClassIN, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.type = type
        self.rclass = rclass
        self.ttl = ttl
        self.data = data
    }

    /// Byte-for-byte equality, letter case of names included (a re-encoded record must not change at all).
    public func isIdentical(to o: DNSRecord) -> Bool {
        guard name.isIdentical(to: o.name), type == o.type, rclass == o.rclass, ttl == o.ttl else { return false }
        switch (data, o.data) {
        case (.cname(let x), .cname(let y)): return x.isIdentical(to: y)
        case (.srv(let x), .srv(let y)):
            return x.priority == y.priority && x.weight == y.weight && x.port == y.port && x.target.isIdentical(to: y.target)
        case (.soa(let x), .soa(let y)):
            return x.mname.isIdentical(to: y.mname) && x.rname.isIdentical(to: y.rname) && x.serial == y.serial
                && x.refresh == y.refresh && x.retry == y.retry && x.expire == y.expire && x.minimum == y.minimum
        default: return data == o.data
        }
    }
}
