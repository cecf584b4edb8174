// Shared by the request and response parser targets: reference character classes written from the RFCs (not
// from the parser's tables), checks that every accepted header field is well formed, and byte-level summaries
// of a head so that two parses of different buffers can be compared.
import HuddleHTTP

/// RFC 9110 5.6.2 tchar, spelled out.
func isTChar(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
        return true
    default:
        return tcharSymbols.contains(b)
    }
}
private let tcharSymbols: [UInt8] = Array("!#$%&'*+-.^_`|~".utf8)

/// RFC 9110 5.5 field-vchar / SP / HTAB (obs-text included).
func isFieldByte(_ b: UInt8) -> Bool { b == 0x09 || (b >= 0x20 && b != 0x7F) }

func isOWSByte(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

func bytes(_ b: UnsafeRawBufferPointer, _ r: Range<Int>?) -> [UInt8]? {
    guard let r else { return nil }
    return Array(b[r])
}

func lowerASCII(_ x: UInt8) -> UInt8 { x >= 0x41 && x <= 0x5A ? x | 0x20 : x }

func equalsCI(_ b: UnsafeRawBufferPointer, _ r: Range<Int>, _ s: StaticString) -> Bool {
    guard r.count == s.utf8CodeUnitCount else { return false }
    let u = s.utf8Start
    for (i, x) in r.enumerated() where lowerASCII(b[x]) != lowerASCII(u[i]) { return false }
    return true
}

/// Elements of a comma-separated list (RFC 9110 5.6.1), OWS-trimmed, empty ones dropped.
func listElements(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var start = r.lowerBound
    for i in r.lowerBound...r.upperBound where i == r.upperBound || b[i] == UInt8(ascii: ",") {
        var lo = start, hi = i
        while lo < hi && isOWSByte(b[lo]) { lo += 1 }
        while hi > lo && isOWSByte(b[hi - 1]) { hi -= 1 }
        if lo < hi { out.append(lo..<hi) }
        start = i + 1
    }
    return out
}

/// The header kind a name should get, by a plain lowercase compare against the names the parser knows.
func expectedKind(_ b: UnsafeRawBufferPointer, _ name: Range<Int>) -> HTTPHeaderKind {
    for (known, kind) in knownHeaderNames where known.count == name.count {
        if (0..<known.count).allSatisfy({ lowerASCII(b[name.lowerBound + $0]) == known[$0] }) { return kind }
    }
    return .other
}

private let knownHeaderNames: [([UInt8], HTTPHeaderKind)] = ([
    ("host", .host), ("content-length", .contentLength), ("transfer-encoding", .transferEncoding),
    ("connection", .connection), ("keep-alive", .keepAlive), ("proxy-connection", .proxyConnection), ("te", .te),
    ("trailer", .trailer), ("upgrade", .upgrade), ("expect", .expect), ("cookie", .cookie),
    ("x-forwarded-for", .xForwardedFor), ("x-forwarded-proto", .xForwardedProto), ("x-forwarded-host", .xForwardedHost),
    ("x-request-id", .xRequestId), ("sec-websocket-key", .secWebSocketKey), ("sec-websocket-version", .secWebSocketVersion),
] as [(String, HTTPHeaderKind)]).map { (Array($0.0.utf8), $0.1) }

/// Every field lies in the head on its own line `name ":" OWS value OWS CRLF`, in order, with a token name,
/// no control byte in the value, and the right kind and hop-by-hop flag.
func checkHeaderFields(_ b: UnsafeRawBufferPointer, _ fields: [HTTPHeaderField], firstLineEnd: Int, headLength: Int) {
    var lineStart = firstLineEnd  // just after the previous CRLF
    for (index, f) in fields.enumerated() {
        func what() -> String { "header \(index) \(show(b[f.name.clamped(to: 0..<headLength)]))" }
        require(f.name.lowerBound == lineStart, "\(what()) does not start its line (\(f.name) vs \(lineStart))")
        require(f.name.upperBound < headLength, "\(what()): name range \(f.name) out of the head")
        require(!f.name.isEmpty && f.name.allSatisfy { isTChar(b[$0]) }, "\(what()): name is not a token")
        require(b[f.name.upperBound] == UInt8(ascii: ":"), "\(what()): no colon after the name")
        require(f.value.lowerBound > f.name.upperBound && f.value.upperBound < headLength, "\(what()): value range \(f.value) out of place")
        for i in (f.name.upperBound + 1)..<f.value.lowerBound {
            require(isOWSByte(b[i]), "\(what()): non-OWS byte skipped before the value")
        }
        require(f.value.allSatisfy { isFieldByte(b[$0]) }, "\(what()): control byte in value \(show(b[f.value]))")
        if !f.value.isEmpty {
            require(!isOWSByte(b[f.value.lowerBound]) && !isOWSByte(b[f.value.upperBound - 1]), "\(what()): value not OWS-trimmed")
        }
        var e = f.value.upperBound
        while e < headLength && isOWSByte(b[e]) { e += 1 }
        require(e + 1 < headLength && b[e] == 0x0D && b[e + 1] == 0x0A, "\(what()): value not followed by OWS CRLF")
        lineStart = e + 2
        require(f.kind == expectedKind(b, f.name), "\(what()): kind \(f.kind) but expected \(expectedKind(b, f.name))")
        if f.kind.isHopByHop { require(f.isHopByHop, "\(what()): \(f.kind) must be hop-by-hop") }
        if f.kind == .host || f.kind == .contentLength { require(!f.isHopByHop, "\(what()): \(f.kind) must never be dropped") }
    }
    require(lineStart + 2 == headLength && b[lineStart] == 0x0D && b[lineStart + 1] == 0x0A,
            "the head does not end with an empty line right after the last field (at \(lineStart), length \(headLength))")
}

/// Connection options over all Connection headers.
struct ConnectionOptions {
    var close = false, keepAlive = false, upgrade = false
    init(_ b: UnsafeRawBufferPointer, _ fields: [HTTPHeaderField]) {
        for f in fields where f.kind == .connection {
            for t in listElements(b, f.value) {
                if equalsCI(b, t, "close") { close = true }
                if equalsCI(b, t, "keep-alive") { keepAlive = true }
                if equalsCI(b, t, "upgrade") { upgrade = true }
            }
        }
    }
    func keepAlive(versionMinor: Int) -> Bool { versionMinor == 1 ? !close : (keepAlive && !close) }
}

/// Transfer codings over all Transfer-Encoding headers, in order.
func transferCodings(_ b: UnsafeRawBufferPointer, _ fields: [HTTPHeaderField]) -> (lines: Int, codings: [Range<Int>]) {
    var lines = 0
    var codings: [Range<Int>] = []
    for f in fields where f.kind == .transferEncoding {
        lines += 1
        codings += listElements(b, f.value)
    }
    return (lines, codings)
}

/// 1*DIGIT as Int64, nil if not digits or too large.
func decimal(_ b: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int64? {
    guard !r.isEmpty else { return nil }
    var n: Int64 = 0
    for i in r {
        let d = b[i] &- 0x30
        guard d <= 9 else { return nil }
        let (m, o1) = n.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(Int64(d))
        if o1 || o2 { return nil }
        n = s
    }
    return n
}

/// One header field by its bytes, for comparing parses of two different buffers.
struct FieldSummary: Equatable {
    var name: [UInt8]
    var value: [UInt8]
    var kind: HTTPHeaderKind
    var isHopByHop: Bool
}

func summarize(_ b: UnsafeRawBufferPointer, _ fields: [HTTPHeaderField]) -> [FieldSummary] {
    fields.map { FieldSummary(name: Array(b[$0.name]), value: Array(b[$0.value]), kind: $0.kind, isHopByHop: $0.isHopByHop) }
}

/// `name ":" [SP] value CRLF` for each field, then the empty line.
func serializeFields(_ b: UnsafeRawBufferPointer, _ fields: [HTTPHeaderField], space: Bool, into out: inout [UInt8]) {
    for f in fields {
        out += b[f.name]
        out.append(UInt8(ascii: ":"))
        if space { out.append(0x20) }
        out += b[f.value]
        out += [0x0D, 0x0A]
    }
    out += [0x0D, 0x0A]
}
