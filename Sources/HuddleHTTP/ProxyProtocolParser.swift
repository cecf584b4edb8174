// Resumable, strict parser of the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that opens
// a connection on a listener configured for it.

/// Feed it everything received so far on the connection, starting with its first byte; it resumes where the last call
/// stopped and answers `.needMore` only while the bytes are a valid beginning of a header. Anything that cannot
/// become a header is an error as soon as the first wrong byte arrives (an HTTP request sent to a PROXY listener fails
/// on its first byte), as the specification asks. After `.complete` or `.error`, further calls repeat that answer
/// until `reset()`.
///
/// The bytes after the header (`length` onwards) are never examined: they are the HTTP request, and stay in the
/// caller's buffer.
///
/// Version 1: exactly `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, single spaces, at most 107 bytes; addresses of the
/// announced family (dotted quads without leading zeros; IPv6 in any RFC 4291 text form), ports 0...65535 without
/// leading zeros. `PROXY UNKNOWN` is followed by CRLF, or by a space and anything without CR or LF up to the CRLF.
///
/// Version 2: the 12-byte signature, version 2, command LOCAL or PROXY, a family/protocol byte the specification
/// defines, and a length that covers the family's address block and keeps the whole header within `maxV2Length`.
/// The TLVs after the addresses are skipped, each checked to end inside the header. A LOCAL header's block is
/// discarded unread, family included, as the specification says.
public struct ProxyProtocolParser: Sendable {
    /// The longest v1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6 addresses and ports).
    public static let maxV1Length = 107
    /// The default bound on a v2 header, TLVs included: the specification sets none; real senders stay far below
    /// (addresses plus a few short TLVs), and a 64 KiB length field must not make a connection wait for 64 KiB.
    public static let defaultMaxV2Length = 4096
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Prefix: [UInt8] = Array("PROXY ".utf8)

    /// At least 16 (the fixed part of a v2 header).
    public let maxV2Length: Int

    private enum State: UInt8, Sendable { case start, v1, v2, done, failed }
    private var state = State.start
    /// Bytes examined so far; all of them were valid as a beginning.
    private var scanned = 0
    /// v2: the whole header's length, once bytes 14 and 15 are in.
    private var v2Total = 0
    private var result = ProxyProtocolParseResult.needMore

    public init(maxV2Length: Int = ProxyProtocolParser.defaultMaxV2Length) {
        self.maxV2Length = max(16, maxV2Length)
    }

    public mutating func reset() {
        state = .start
        scanned = 0
        v2Total = 0
        result = .needMore
    }

    public mutating func parse(_ b: UnsafeRawBufferPointer) -> ProxyProtocolParseResult {
        switch state {
        case .done, .failed: return result
        case .start:
            guard b.count > 0 else { return .needMore }
            switch b[0] {
            case 0x50: state = .v1
            case 0x0D: state = .v2
            default: return fail(.notProxyProtocol, 0)
            }
            return parse(b)
        case .v1: return parseV1(b)
        case .v2: return parseV2(b)
        }
    }

    private mutating func fail(_ reason: ProxyProtocolError.Reason, _ offset: Int) -> ProxyProtocolParseResult {
        state = .failed
        result = .error(ProxyProtocolError(reason, at: offset))
        return result
    }

    private mutating func finish(_ header: ProxyProtocolHeader) -> ProxyProtocolParseResult {
        state = .done
        result = .complete(header)
        return result
    }

    // MARK: version 1

    private mutating func parseV1(_ b: UnsafeRawBufferPointer) -> ProxyProtocolParseResult {
        let prefix = Self.v1Prefix
        let limit = min(b.count, Self.maxV1Length)
        var i = scanned
        while i < limit {
            let c = b[i]
            if i < prefix.count {
                if c != prefix[i] { return fail(i == 5 ? .badV1Syntax : .notProxyProtocol, i) }
            } else if c == 0x0A {
                guard b[i - 1] == 0x0D else { return fail(.bareLF, i) }
                scanned = i + 1
                return parseV1Line(b, end: i - 1)
            } else if b[i - 1] == 0x0D {
                return fail(.bareCR, i - 1)
            }
            i += 1
        }
        scanned = limit
        if limit == Self.maxV1Length { return fail(.v1TooLong, limit) }
        return .needMore
    }

    /// The line from after `PROXY ` up to `end`, where its CRLF starts.
    private mutating func parseV1Line(_ b: UnsafeRawBufferPointer, end: Int) -> ProxyProtocolParseResult {
        let length = end + 2
        var i = Self.v1Prefix.count
        let protoStart = i
        while i < end && b[i] != 0x20 { i += 1 }
        let proto = protoStart..<i
        if Self.equals(b, proto, "UNKNOWN") {
            // The receiver "must ignore anything presented before the CRLF" (its line was already checked for CR/LF).
            guard i == end || b[i] == 0x20 else { return fail(.badV1Protocol, protoStart) }
            return finish(ProxyProtocolHeader(version: .v1, length: length, addresses: .unknown))
        }
        let ipv6: Bool
        if Self.equals(b, proto, "TCP4") {
            ipv6 = false
        } else if Self.equals(b, proto, "TCP6") {
            ipv6 = true
        } else {
            return fail(.badV1Protocol, protoStart)
        }
        // Four fields, each preceded by exactly one space: an empty field means two spaces in a row (or one at the end).
        var fields: (Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0)
        for f in 0..<4 {
            guard i < end, b[i] == 0x20 else { return fail(.badV1Syntax, i) }
            i += 1
            let start = i
            while i < end && b[i] != 0x20 { i += 1 }
            guard i > start else { return fail(.badV1Syntax, i) }
            switch f {
            case 0: fields.0 = start..<i
            case 1: fields.1 = start..<i
            case 2: fields.2 = start..<i
            default: fields.3 = start..<i
            }
        }
        guard i == end else { return fail(.badV1Syntax, i) }
        func address(_ r: Range<Int>) -> IPAddress? {
            ipv6 ? IPAddress.parseIPv6(b, r) : IPAddress.parseIPv4(b, r)
        }
        guard let source = address(fields.0) else { return fail(.badV1Address, fields.0.lowerBound) }
        guard let destination = address(fields.1) else { return fail(.badV1Address, fields.1.lowerBound) }
        guard let sourcePort = Self.port(b, fields.2) else { return fail(.badV1Port, fields.2.lowerBound) }
        guard let destinationPort = Self.port(b, fields.3) else { return fail(.badV1Port, fields.3.lowerBound) }
        return finish(ProxyProtocolHeader(version: .v1, length: length, addresses: .tcp(
            source: ProxyEndpoint(address: source, port: sourcePort),
            destination: ProxyEndpoint(address: destination, port: destinationPort))))
    }

    /// Whether `b[r]` is exactly `literal` (the specification's keywords are upper case only).
    private static func equals(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ literal: StaticString) -> Bool {
        guard r.count == literal.utf8CodeUnitCount else { return false }
        for k in 0..<r.count where b[r.lowerBound + k] != literal.utf8Start[k] { return false }
        return true
    }

    /// 0...65535 in decimal, no sign, no leading zeros.
    static func port(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> UInt16? {
        guard r.count >= 1, r.count <= 5, r.count == 1 || b[r.lowerBound] != 0x30 else { return nil }
        var n = 0
        for i in r {
            guard let d = IPAddress.decimalDigit(b[i]) else { return nil }
            n = n * 10 + Int(d)
        }
        return n <= 65535 ? UInt16(n) : nil
    }

    // MARK: version 2

    private mutating func parseV2(_ b: UnsafeRawBufferPointer) -> ProxyProtocolParseResult {
        let signature = Self.v2Signature
        var i = scanned
        while i < min(b.count, 16) {
            let c = b[i]
            switch i {
            case 0..<12:
                if c != signature[i] { return fail(.notProxyProtocol, i) }
            case 12:
                if c >> 4 != 2 { return fail(.badV2Version, i) }
                if c & 0x0F > 1 { return fail(.badV2Command, i) }
            case 13:
                // LOCAL ignores the family; PROXY needs one the specification defines.
                if isProxyCommand(b), Self.addressBlockLength(family: c) == nil { return fail(.badV2Family, i) }
            case 15:
                v2Total = 16 + (Int(b[14]) << 8 | Int(c))
                if v2Total > maxV2Length { return fail(.v2TooLong, 14) }
                if isProxyCommand(b), let need = Self.addressBlockLength(family: b[13]), v2Total - 16 < need {
                    return fail(.v2AddressesTruncated, 14)
                }
            default:
                break
            }
            i += 1
        }
        scanned = i
        guard i == 16, b.count >= v2Total else { return .needMore }
        guard isProxyCommand(b) else {
            return finish(ProxyProtocolHeader(version: .v2, length: v2Total, addresses: .local))
        }
        let family = b[13]
        let blockLength = Self.addressBlockLength(family: family)!
        // TLVs (type, 2-byte length, value) tile the rest of the header exactly.
        var t = 16 + blockLength
        while t < v2Total {
            guard v2Total - t >= 3 else { return fail(.badV2TLV, t) }
            let valueLength = Int(b[t + 1]) << 8 | Int(b[t + 2])
            guard valueLength <= v2Total - t - 3 else { return fail(.badV2TLV, t) }
            t += 3 + valueLength
        }
        let addresses: ProxyProtocolHeader.Addresses
        switch family {
        case 0x11:
            addresses = .tcp(source: Self.endpoint(b, at: 16, bytes: 4, portAt: 24), destination: Self.endpoint(b, at: 20, bytes: 4, portAt: 26))
        case 0x21:
            addresses = .tcp(source: Self.endpoint(b, at: 16, bytes: 16, portAt: 48), destination: Self.endpoint(b, at: 32, bytes: 16, portAt: 50))
        default:
            // UNSPEC, UNIX, and UDP over IP: nothing that names a TCP client.
            addresses = .unknown
        }
        return finish(ProxyProtocolHeader(version: .v2, length: v2Total, addresses: addresses))
    }

    @inline(__always)
    private func isProxyCommand(_ b: UnsafeRawBufferPointer) -> Bool { b[12] & 0x0F == 1 }

    /// The address block each family/protocol byte of the specification implies; nil for undefined bytes.
    static func addressBlockLength(family: UInt8) -> Int? {
        switch family {
        case 0x00: return 0
        case 0x11, 0x12: return 12
        case 0x21, 0x22: return 36
        case 0x31, 0x32: return 216
        default: return nil
        }
    }

    private static func endpoint(_ b: UnsafeRawBufferPointer, at offset: Int, bytes n: Int, portAt p: Int) -> ProxyEndpoint {
        let address = IPAddress(bytes: UnsafeRawBufferPointer(rebasing: b[offset..<(offset + n)]))!
        return ProxyEndpoint(address: address, port: UInt16(b[p]) << 8 | UInt16(b[p + 1]))
    }
}
