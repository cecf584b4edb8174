// What a lookup hands back: the addresses of a name by family, or the targets of a service, each with its TTL or
// the reason it failed. An empty success (NXDOMAIN, NODATA) is not a failure.
import HuddleDNS

/// The addresses of one family: IP literals sorted (so an answer in rotated order is the same set), and the TTL.
public struct AddressSet: Sendable, Equatable {
    public var addresses: [String]
    /// Seconds; nil when the answer was empty and carried no SOA.
    public var ttl: UInt32?
    public init(addresses: [String], ttl: UInt32?) {
        self.addresses = addresses
        self.ttl = ttl
    }
}

public struct AddressLookup: Sendable {
    /// The name that answered (after the search list; before CNAMEs).
    public var name: String
    public var ipv4: Result<AddressSet, DNSFailure>
    public var ipv6: Result<AddressSet, DNSFailure>
}

/// One SRV target of the lowest priority, with the one address Huddle connects to.
public struct ServiceTarget: Sendable, Equatable {
    /// Lower-cased, without the final dot: the server's identity.
    public var host: String
    public var port: UInt16
    public var weight: UInt16
    /// The numerically first IPv4 address of the target, else its first IPv6 address: one server per target, and
    /// the same address for the same answer however the nameserver orders it.
    public var address: String
}

public struct ServiceLookup: Sendable {
    public var name: String
    /// The targets (those without any address left out); the smallest TTL of the SRV answer and of the addresses.
    public var result: Result<(targets: [ServiceTarget], ttl: UInt32?), DNSFailure>
}
