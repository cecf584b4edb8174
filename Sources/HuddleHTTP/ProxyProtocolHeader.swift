// What a PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) said about the connection it opens.

/// An IP address and a TCP port.
public struct ProxyEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `1.2.3.4:80`, `[::1]:80`.
    public var description: String { address.isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }
}

/// A complete, valid PROXY protocol header.
public struct ProxyProtocolHeader: Equatable, Sendable {
    public enum Version: UInt8, Sendable {
        case v1 = 1, v2 = 2
    }

    /// Whose connection the header describes.
    public enum Addresses: Equatable, Sendable {
        /// `PROXY TCP4|TCP6 ...`, or v2 PROXY over TCP/IPv4 or TCP/IPv6: the original client and what it connected to.
        case tcp(source: ProxyEndpoint, destination: ProxyEndpoint)
        /// v2 LOCAL: the sender opened the connection for itself (a health check); the socket's own addresses stand.
        case local
        /// `PROXY UNKNOWN`, or v2 PROXY over UNSPEC, UNIX or UDP: relayed, but with no TCP/IP addresses to use, so the
        /// socket's own addresses stand.
        case unknown
    }

    public var version: Version
    /// How many bytes the header takes at the start of the connection. The bytes after it belong to the protocol
    /// that follows (HTTP), and the parser never looks at them.
    public var length: Int
    public var addresses: Addresses

    public init(version: Version, length: Int, addresses: Addresses) {
        self.version = version
        self.length = length
        self.addresses = addresses
    }
}

/// What one call to `ProxyProtocolParser.parse` concluded.
public enum ProxyProtocolParseResult: Equatable, Sendable {
    /// Everything so far is a valid beginning of a header; call again with more bytes.
    case needMore
    case complete(ProxyProtocolHeader)
    case error(ProxyProtocolError)
}

/// Why the bytes are not a valid PROXY protocol header, and at which byte that became certain.
public struct ProxyProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: Reason
    public var offset: Int

    public init(_ reason: Reason, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "\(reason) (at byte \(offset))" }

    public enum Reason: UInt8, Sendable, CustomStringConvertible {
        case notProxyProtocol, v1TooLong, bareCR, bareLF, badV1Syntax, badV1Protocol, badV1Address, badV1Port,
             badV2Version, badV2Command, badV2Family, v2TooLong, v2AddressesTruncated, badV2TLV

        public var description: String {
            switch self {
            case .notProxyProtocol: return "does not start with a PROXY protocol v1 or v2 signature"
            case .v1TooLong: return "v1 header without CRLF in its first 107 bytes"
            case .bareCR: return "CR not followed by LF in a v1 header"
            case .bareLF: return "LF without CR in a v1 header"
            case .badV1Syntax: return "malformed v1 header (fields must be separated by exactly one space)"
            case .badV1Protocol: return "v1 protocol is not TCP4, TCP6 or UNKNOWN"
            case .badV1Address: return "v1 address is not a valid address of the announced family"
            case .badV1Port: return "v1 port is not a decimal number from 0 to 65535 without leading zeros"
            case .badV2Version: return "v2 version is not 2"
            case .badV2Command: return "v2 command is neither LOCAL nor PROXY"
            case .badV2Family: return "v2 address family or transport protocol is not defined"
            case .v2TooLong: return "v2 header longer than the limit"
            case .v2AddressesTruncated: return "v2 length shorter than the address block of its family"
            case .badV2TLV: return "v2 TLV runs past the end of the header"
            }
        }
    }
}
