// The 12-byte message header (RFC 1035 §4.1.1).

public struct DNSHeader: Sendable, Hashable {
    public var id: UInt16
    public var flags: UInt16
    public var questionCount: UInt16
    public var answerCount: UInt16
    public var authorityCount: UInt16
    public var additionalCount: UInt16

    public static let length = 12

    public init(id: UInt16, flags: UInt16, questionCount: UInt16 = 0, answerCount: UInt16 = 0, authorityCount: UInt16 = 0,
                additionalCount: UInt16 = 0) {
        self.id = id
        self.flags = flags
        self.questionCount = questionCount
        self.answerCount = answerCount
        self.authorityCount = authorityCount
        self.additionalCount = additionalCount
    }

    /// The header of `bytes`, or nil when fewer than 12 bytes arrived. Lets a transport check the ID and the TC bit
    /// before parsing the rest.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.length else { return nil }
        func u16(_ i: Int) -> UInt16 { UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]) }
        self.init(id: u16(0), flags: u16(2), questionCount: u16(4), answerCount: u16(6), authorityCount: u16(8),
                  additionalCount: u16(10))
    }

    public static let responseFlag: UInt16 = 0x8000
    public static let truncatedFlag: UInt16 = 0x0200
    public static let recursionDesiredFlag: UInt16 = 0x0100

    public var isResponse: Bool { flags & Self.responseFlag != 0 }
    /// TC: the answer did not fit; ask again over TCP (RFC 7766).
    public var isTruncated: Bool { flags & Self.truncatedFlag != 0 }
    public var opcode: Int { Int(flags >> 11) & 0xF }
    public var rcode: DNSResponseCode { DNSResponseCode(rawValue: flags & 0xF) }
}

public struct DNSResponseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)

    public var description: String {
        switch self {
        case .noError: return "NOERROR"
        case .formatError: return "FORMERR"
        case .serverFailure: return "SERVFAIL"
        case .nameError: return "NXDOMAIN"
        case .notImplemented: return "NOTIMP"
        case .refused: return "REFUSED"
        default: return "RCODE\(rawValue)"
        }
    }
}
