// An IPv4 or IPv6 address as 16 bytes in two words, with a strict textual parser and the RFC 5952 printed form. Used
// by the PROXY protocol parser and writer; pure, and allocation-free except where it returns text.

/// An IP address in network byte order: IPv4 in the first 4 bytes (the rest zero), IPv6 in all 16.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let isIPv6: Bool
    /// Bytes 0..<8, the first in the most significant position.
    public let high: UInt64
    /// Bytes 8..<16.
    public let low: UInt64

    /// `a.b.c.d` is `ipv4: a << 24 | b << 16 | c << 8 | d`.
    public init(ipv4: UInt32) {
        isIPv6 = false
        high = UInt64(ipv4) << 32
        low = 0
    }

    public init(ipv6High high: UInt64, low: UInt64) {
        isIPv6 = true
        self.high = high
        self.low = low
    }

    /// 4 bytes (IPv4) or 16 (IPv6) in network order; nil for any other count.
    public init?(bytes: UnsafeRawBufferPointer) {
        switch bytes.count {
        case 4:
            self.init(ipv4: Self.word(bytes, 0, 4).truncatingToUInt32)
        case 16:
            self.init(ipv6High: Self.word(bytes, 0, 8), low: Self.word(bytes, 8, 8))
        default:
            return nil
        }
    }

    public init?(bytes: [UInt8]) {
        guard let a = bytes.withUnsafeBytes({ IPAddress(bytes: $0) }) else { return nil }
        self = a
    }

    private static func word(_ b: UnsafeRawBufferPointer, _ from: Int, _ n: Int) -> UInt64 {
        var w: UInt64 = 0
        for i in from..<(from + n) { w = w << 8 | UInt64(b[i]) }
        return w
    }

    public var byteCount: Int { isIPv6 ? 16 : 4 }

    /// Byte `i` (0-based) in network order.
    @inline(__always)
    public func byte(_ i: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: i < 8 ? high >> UInt64(56 - 8 * i) : low >> UInt64(56 - 8 * (i - 8)))
    }

    public var bytes: [UInt8] { (0..<byteCount).map { byte($0) } }

    /// The IPv4 value (`a << 24 | ...`); meaningful for IPv4 addresses only.
    public var ipv4Value: UInt32 { UInt32(truncatingIfNeeded: high >> 32) }

    /// `::ffff:a.b.c.d`: an IPv4 address seen through an IPv6 socket.
    public var isIPv4Mapped: Bool { isIPv6 && high == 0 && low >> 32 == 0xFFFF }

    /// The same host as an IPv6 address (IPv4 becomes `::ffff:a.b.c.d`).
    public var asIPv6: IPAddress {
        isIPv6 ? self : IPAddress(ipv6High: 0, low: 0xFFFF_0000_0000 | UInt64(ipv4Value))
    }

    // MARK: text

    /// The RFC 5952 form: dotted decimal for IPv4; for IPv6 lower-case hex without leading zeros, the longest run of
    /// two or more zero groups (the first such run on a tie) as `::`, and `::ffff:a.b.c.d` for a mapped IPv4 address.
    public var description: String {
        var out: [UInt8] = []
        appendText(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public func appendText(to out: inout [UInt8]) {
        guard isIPv6 else {
            Self.appendDotted(ipv4Value, to: &out)
            return
        }
        if isIPv4Mapped {
            out += Array("::ffff:".utf8)
            Self.appendDotted(UInt32(truncatingIfNeeded: low), to: &out)
            return
        }
        var bestStart = -1, bestLength = 1
        var runStart = -1
        for g in 0...8 {
            if g < 8 && group(g) == 0 {
                if runStart < 0 { runStart = g }
            } else if runStart >= 0 {
                if g - runStart > bestLength { (bestStart, bestLength) = (runStart, g - runStart) }
                runStart = -1
            }
        }
        var g = 0
        while g < 8 {
            if g == bestStart {
                out += [0x3A, 0x3A]
                g += bestLength
                continue
            }
            if g > 0 && g != bestStart + bestLength { out.append(0x3A) }
            Self.appendHex(group(g), to: &out)
            g += 1
        }
    }

    /// 16-bit group `g` (0...7) of an IPv6 address.
    @inline(__always)
    func group(_ g: Int) -> UInt16 {
        UInt16(truncatingIfNeeded: g < 4 ? high >> UInt64(48 - 16 * g) : low >> UInt64(48 - 16 * (g - 4)))
    }

    private static func appendDotted(_ v: UInt32, to out: inout [UInt8]) {
        for i in 0..<4 {
            if i > 0 { out.append(0x2E) }
            appendDecimal(Int(v >> UInt32(24 - 8 * i) & 0xFF), to: &out)
        }
    }

    static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        if n >= 10 { appendDecimal(n / 10, to: &out) }
        out.append(0x30 + UInt8(n % 10))
    }

    private static func appendHex(_ v: UInt16, to out: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        var started = false
        for shift in stride(from: 12, through: 0, by: -4) {
            let d = Int(v >> UInt16(shift) & 0xF)
            if d != 0 || started || shift == 0 {
                started = true
                out.append(digits.utf8Start[d])
            }
        }
    }

    // MARK: strict parsing

    /// Exactly four decimal numbers 0...255 separated by single dots, without leading zeros ("0" itself is fine):
    /// the PROXY protocol's rule, which also keeps `010` from being read as octal by anyone.
    public static func parseIPv4(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> IPAddress? {
        var value: UInt32 = 0
        var i = range.lowerBound
        for part in 0..<4 {
            if part > 0 {
                guard i < range.upperBound, b[i] == 0x2E else { return nil }
                i += 1
            }
            let start = i
            var n: UInt32 = 0
            while i < range.upperBound, i - start < 3, let d = decimalDigit(b[i]) {
                n = n * 10 + UInt32(d)
                i += 1
            }
            let digits = i - start
            guard digits > 0, n <= 255, digits == 1 || b[start] != 0x30 else { return nil }
            value = value << 8 | n
        }
        return i == range.upperBound ? IPAddress(ipv4: value) : nil
    }

    /// The RFC 4291 §2.2 text forms: eight groups of 1-4 hex digits (either case) separated by colons, one `::`
    /// standing for one or more zero groups, and optionally the last 32 bits as a dotted IPv4 address. No zone index,
    /// no brackets, no surrounding space.
    public static func parseIPv6(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> IPAddress? {
        let end = range.upperBound
        var i = range.lowerBound
        var groups: (UInt64, UInt64) = (0, 0)   // up to 8 groups, appended 16 bits at a time
        var count = 0
        var gap = -1   // how many groups came before the `::`, if there is one
        func append(_ g: UInt16) {
            groups = (groups.0 << 16 | groups.1 >> 48, groups.1 << 16 | UInt64(g))
            count += 1
        }
        if end - i >= 2 && b[i] == 0x3A && b[i + 1] == 0x3A {
            gap = 0
            i += 2
        }
        while i < end {
            let start = i
            var g: UInt32 = 0
            while i < end, i - start < 5, let h = ASCIIBytes.hexValue(b[i]) {
                g = g << 4 | UInt32(h)
                i += 1
            }
            if i < end && b[i] == 0x2E {
                // The dotted IPv4 tail: the last two groups, and the end of the address.
                guard count <= 6, let v4 = parseIPv4(b, start..<end) else { return nil }
                append(UInt16(v4.ipv4Value >> 16))
                append(UInt16(truncatingIfNeeded: v4.ipv4Value))
                i = end
                break
            }
            guard i > start, i - start <= 4, count < 8 else { return nil }
            append(UInt16(g))
            if i == end { break }
            guard b[i] == 0x3A else { return nil }
            i += 1
            if i < end && b[i] == 0x3A {
                guard gap < 0 else { return nil }
                gap = count
                i += 1
            } else if i == end {
                return nil   // a trailing single colon
            }
        }
        let value = UInt128Parts(high: groups.0, low: groups.1)
        if gap < 0 {
            guard count == 8 else { return nil }
            return IPAddress(ipv6High: value.high, low: value.low)
        }
        guard count <= 7 else { return nil }
        // The groups read after the `::` stay at the end; those before it move up past the zero groups.
        let tailBits = (count - gap) * 16
        let tail = value.lowBits(tailBits)
        let head = value.shiftedRight(tailBits).shiftedLeft((8 - gap) * 16)
        return IPAddress(ipv6High: head.high | tail.high, low: head.low | tail.low)
    }

    @inline(__always)
    static func decimalDigit(_ b: UInt8) -> UInt8? {
        b >= 0x30 && b <= 0x39 ? b &- 0x30 : nil
    }
}

/// A 128-bit value as two words, with the few shifts the IPv6 parser needs.
struct UInt128Parts {
    var high: UInt64
    var low: UInt64

    func shiftedLeft(_ n: Int) -> UInt128Parts {
        if n == 0 { return self }
        if n >= 128 { return UInt128Parts(high: 0, low: 0) }
        if n >= 64 { return UInt128Parts(high: low << UInt64(n - 64), low: 0) }
        return UInt128Parts(high: high << UInt64(n) | low >> UInt64(64 - n), low: low << UInt64(n))
    }

    func shiftedRight(_ n: Int) -> UInt128Parts {
        if n == 0 { return self }
        if n >= 128 { return UInt128Parts(high: 0, low: 0) }
        if n >= 64 { return UInt128Parts(high: 0, low: high >> UInt64(n - 64)) }
        return UInt128Parts(high: high >> UInt64(n), low: low >> UInt64(n) | high << UInt64(64 - n))
    }

    /// Only the `n` least significant bits.
    func lowBits(_ n: Int) -> UInt128Parts {
        if n >= 128 { return self }
        if n == 0 { return UInt128Parts(high: 0, low: 0) }
        if n >= 64 { return UInt128Parts(high: n == 64 ? 0 : high & (UInt64.max >> UInt64(128 - n)), low: low) }
        return UInt128Parts(high: 0, low: low & (UInt64.max >> UInt64(64 - n)))
    }
}

extension UInt64 {
    @inline(__always)
    var truncatingToUInt32: UInt32 { UInt32(truncatingIfNeeded: self) }
}
