// Whether a request's Accept-Encoding accepts gzip (RFC 9110 §12.5.3), read from the raw field values.

/// Reads Accept-Encoding field values (one call per header line; they combine as one list) and says whether gzip is
/// acceptable. Codings are case-insensitive; `x-gzip` is gzip (RFC 9110 §8.4.1.3); a weight of 0 refuses a coding;
/// `*` stands for every coding not listed; an explicit gzip entry wins over `*`. A malformed weight counts as 0, so a
/// client is only ever sent gzip it clearly asked for. Allocation-free.
public struct AcceptEncodingGzip: Sendable, Equatable {
    /// The best weight (thousandths) given to gzip / x-gzip, and to `*`; nil when not listed.
    public private(set) var gzipWeight: Int? = nil
    public private(set) var anyWeight: Int? = nil

    public init() {}

    public var acceptsGzip: Bool {
        if let g = gzipWeight { return g > 0 }
        if let a = anyWeight { return a > 0 }
        return false
    }

    /// Adds one field value: `bytes[value]`.
    public mutating func add(_ value: Range<Int>, in bytes: UnsafeRawBufferPointer) {
        ASCIIBytes.forEachToken(in: value, of: bytes) { element in
            // coding *( OWS ";" OWS param ): the coding ends at the first ';' (or OWS before it).
            var end = element.lowerBound
            while end < element.upperBound && bytes[end] != 0x3B { end &+= 1 }
            let coding = ASCIIBytes.trimmingOWS(bytes, element.lowerBound..<end)
            let isGzip = ASCIIBytes.equalsCaseInsensitive(bytes, coding, "gzip") || ASCIIBytes.equalsCaseInsensitive(bytes, coding, "x-gzip")
            let isAny = !isGzip && coding.count == 1 && bytes[coding.lowerBound] == 0x2A
            guard isGzip || isAny else { return }
            let w = Self.weight(bytes, end..<element.upperBound)
            if isGzip { gzipWeight = max(gzipWeight ?? -1, w) } else { anyWeight = max(anyWeight ?? -1, w) }
        }
    }

    /// The `q` parameter among `;`-separated parameters (the range starts at the first ';' or is empty): 1000 when
    /// absent, 0 when malformed.
    static func weight(_ bytes: UnsafeRawBufferPointer, _ params: Range<Int>) -> Int {
        var start = params.lowerBound
        var weight = 1000
        while start < params.upperBound {
            // Skip the ';', find the parameter's end.
            start &+= 1
            var end = start
            while end < params.upperBound && bytes[end] != 0x3B { end &+= 1 }
            let p = ASCIIBytes.trimmingOWS(bytes, start..<end)
            if p.count >= 2 && ASCIIBytes.lowercased(bytes[p.lowerBound]) == 0x71 && bytes[p.lowerBound &+ 1] == 0x3D {
                weight = qvalue(bytes, (p.lowerBound &+ 2)..<p.upperBound) ?? 0
            }
            start = end
        }
        return weight
    }

    /// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
    static func qvalue(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int? {
        guard !r.isEmpty, r.count <= 5 else { return nil }
        let first = bytes[r.lowerBound]
        guard first == 0x30 || first == 0x31 else { return nil }
        var value = first == 0x31 ? 1000 : 0
        if r.count == 1 { return value }
        guard bytes[r.lowerBound &+ 1] == 0x2E else { return nil }
        var scale = 100
        var i = r.lowerBound &+ 2
        while i < r.upperBound {
            let b = bytes[i]
            guard b >= 0x30 && b <= 0x39 else { return nil }
            if first == 0x31 && b != 0x30 { return nil }
            value &+= Int(b &- 0x30) &* scale
            scale /= 10
            i &+= 1
        }
        return value
    }
}
