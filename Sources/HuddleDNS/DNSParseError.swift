// Why a message was refused. The parser is strict: anything RFC 1035 does not allow is an error, never a guess.

public enum DNSParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The message ended inside the header, a name, a question or a record (at this offset).
    case truncated(at: Int)
    /// A name longer than 255 bytes once decompressed.
    case nameTooLong(at: Int)
    /// A compression pointer that does not point strictly before the previous jump (which rules out loops).
    case badPointer(at: Int)
    /// More compression pointers in one name than it could have labels.
    case tooManyPointers(at: Int)
    /// Label types 01 and 10 (extended label types, obsolete bit-string labels); a length byte of 64 or more is one.
    case reservedLabelType(at: Int)
    /// RDATA whose length does not fit its type (A not 4 bytes, a name running past RDLENGTH...).
    case badRecordData(type: UInt16, at: Int)
    /// Bytes left after the last record the header counts.
    case trailingBytes(at: Int)

    public var description: String {
        switch self {
        case .truncated(let at): return "message truncated at byte \(at)"
        case .nameTooLong(let at): return "name longer than 255 bytes at byte \(at)"
        case .badPointer(let at): return "compression pointer at byte \(at) does not point backwards"
        case .tooManyPointers(let at): return "too many compression pointers in the name at byte \(at)"
        case .reservedLabelType(let at): return "reserved label type at byte \(at)"
        case .badRecordData(let type, let at): return "bad \(DNSRecordType(rawValue: type)) record data at byte \(at)"
        case .trailingBytes(let at): return "unexpected bytes after the last record at byte \(at)"
        }
    }
}
