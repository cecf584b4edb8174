// libFuzzer target: ProxyProtocolParser, ProxyProtocolWriter, IPAddress.
//
// 1. The input as the first bytes of a connection, with the default v2 bound and with a tight one derived from the
//    input: feeding it whole, byte by byte and in input-derived splits gives the same answer (each delivery is a
//    growing prefix whose following bytes are ASan-poisoned, so reading past what arrived is caught); a settled
//    parser repeats itself; `reset()` gives a fresh parser.
// 2. An accepted header is in bounds (v1: 15...107 bytes ending in CRLF; v2: 16 + its length field, within the
//    bound), is decided by its own bytes (the prefix of `length` bytes alone gives the same answer), and
//    re-serialised by the writer (v1 and v2) parses to the same addresses. An error's offset is within what arrived.
// 3. A header generated from the input (addresses and ports from its bytes; the writer's v1 or v2 with input-derived
//    TLVs, or v1 with IPv6 in its uncompressed form in either case) parses to exactly what was generated, in every
//    split; cut one byte short it is needMore, never an error.
import HuddleHTTP

func feedProxy(_ parser: ProxyProtocolParser, _ buf: ExactBytes, _ ends: [Int]) -> ProxyProtocolParseResult {
    var p = parser
    var result = ProxyProtocolParseResult.needMore
    var at = 0
    for end in ends {
        at = end
        result = p.parse(buf.prefix(end))
        if result != .needMore { break }
    }
    if result != .needMore {
        let again = p.parse(buf.prefix(at))
        require(again == result, "a settled parser answered \(again) after \(result)")
    }
    return result
}

/// All of the input, for a failure message (the last delivery left the bytes after it poisoned).
func unpoisoned(_ buf: ExactBytes) -> [UInt8] { Array(buf.window(0, buf.count)) }

func checkProxySplitsAgree(_ parser: ProxyProtocolParser, _ buf: ExactBytes, _ plans: [[Int]], what: String) -> ProxyProtocolParseResult {
    let whole = feedProxy(parser, buf, [buf.count])
    let bytewise = feedProxy(parser, buf, byteByByte(buf.count))
    require(bytewise == whole, "\(what): byte by byte \(bytewise) vs whole \(whole) for \(show(unpoisoned(buf)))")
    for plan in plans {
        let split = feedProxy(parser, buf, plan)
        require(split == whole, "\(what): split \(plan) gave \(split) vs whole \(whole) for \(show(unpoisoned(buf)))")
    }
    var used = parser
    _ = used.parse(buf.prefix(buf.count))
    used.reset()
    require(feedProxy(used, buf, [buf.count]) == whole, "\(what): a reset parser differs from a fresh one")
    return whole
}

func checkAccepted(_ h: ProxyProtocolHeader, _ buf: ExactBytes, _ parser: ProxyProtocolParser) {
    let n = h.length
    require(n <= buf.count, "header length \(n) past the input (\(buf.count))")
    switch h.version {
    case .v1:
        require(n >= 15 && n <= ProxyProtocolParser.maxV1Length, "v1 length \(n)")
        require(buf[n - 2] == 0x0D && buf[n - 1] == 0x0A, "v1 header does not end with CRLF")
        for i in 0..<(n - 2) { require(buf[i] != 0x0A && buf[i] != 0x0D, "CR or LF inside a v1 line") }
        require(h.addresses != .local, "v1 has no LOCAL")
    case .v2:
        require(n >= 16 && n <= parser.maxV2Length, "v2 length \(n) (bound \(parser.maxV2Length))")
        require(n == 16 + (Int(buf[14]) << 8 | Int(buf[15])), "v2 length disagrees with its length field")
    }
    // Decided by its own bytes: what follows is never looked at.
    var alone = parser
    require(alone.parse(buf.prefix(n)) == .complete(h), "the header's own \(n) bytes give another answer")
    guard case .tcp(let s, let d) = h.addresses else { return }
    require(s.address.isIPv6 == d.address.isIPv6, "one header, two families")
    for version in [ProxyProtocolHeader.Version.v1, .v2] {
        let out = ProxyProtocolWriter.header(version, source: s, destination: d)
        var q = ProxyProtocolParser()
        let back = out.withUnsafeBytes { q.parse($0) }
        require(back == .complete(ProxyProtocolHeader(version: version, length: out.count, addresses: h.addresses)),
                "re-serialised as \(version) \(show(out)) read back as \(back), expected \(h.addresses)")
    }
    // The printed addresses read back (RFC 5952 form through the strict parsers).
    for a in [s.address, d.address] {
        let text = Array(a.description.utf8)
        let again = text.withUnsafeBytes { a.isIPv6 ? IPAddress.parseIPv6($0, 0..<text.count) : IPAddress.parseIPv4($0, 0..<text.count) }
        require(again == a, "\(a) printed as \(show(text)) read back as \(String(describing: again))")
    }
}

// MARK: - generated headers

/// An address from input bytes; IPv6 sometimes sparse (zero runs) or IPv4-mapped.
func generatedAddress(_ rng: inout SplitMix, _ input: UnsafeRawBufferPointer, ipv6: Bool) -> IPAddress {
    func byte() -> UInt8 { input.isEmpty ? UInt8(truncatingIfNeeded: rng.next()) : input[rng.below(input.count)] }
    if !ipv6 { return IPAddress(bytes: (0..<4).map { _ in byte() })! }
    switch rng.below(4) {
    case 0: return IPAddress(bytes: [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + (0..<4).map { _ in byte() })!
    case 1: return IPAddress(bytes: (0..<16).map { _ in rng.below(3) == 0 ? byte() : 0 })!
    default: return IPAddress(bytes: (0..<16).map { _ in byte() })!
    }
}

/// Another valid text form of `a`: all eight groups with leading zeros, in either case (RFC 4291 allows it).
func longForm(_ a: IPAddress, upper: Bool) -> String {
    let b = a.bytes
    return (0..<8).map { g -> String in
        let v = UInt16(b[2 * g]) << 8 | UInt16(b[2 * g + 1])
        let hex = String(v, radix: 16, uppercase: upper)
        return String(repeating: "0", count: 4 - hex.count) + hex
    }.joined(separator: ":")
}

func checkGenerated(_ bytes: [UInt8], _ expected: ProxyProtocolHeader, what: String) {
    let buf = ExactBytes.make(bytes)
    let plans = bytes.withUnsafeBytes { splitPlans($0) }
    let parser = ProxyProtocolParser()
    let got = checkProxySplitsAgree(parser, buf, plans, what: what)
    require(got == .complete(expected), "\(what) \(show(bytes, limit: 400)) gave \(got), expected \(expected)")
    checkAccepted(expected, buf, parser)
    let short = feedProxy(parser, buf, [expected.length - 1])
    require(short == .needMore, "\(what) one byte short gave \(short)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func proxyProtocolFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let buf = ExactBytes(input)
    var rng = SplitMix(seed: fnv1a(input))
    let plans = splitPlans(input)

    let tight = ProxyProtocolParser(maxV2Length: 16 + rng.below(300))
    for parser in [ProxyProtocolParser(), tight] {
        switch checkProxySplitsAgree(parser, buf, plans, what: "input") {
        case .needMore:
            break
        case .complete(let h):
            checkAccepted(h, buf, parser)
        case .error(let e):
            require(e.offset >= 0 && e.offset <= size, "error offset \(e.offset) outside the input (\(size))")
        }
    }

    // A generated header must be accepted exactly: one kind per input (each costs about as much as the input's own
    // checks), chosen by the input's hash.
    let ipv6 = rng.below(2) == 0
    let s = ProxyEndpoint(address: generatedAddress(&rng, input, ipv6: ipv6), port: UInt16(truncatingIfNeeded: rng.next()))
    let d = ProxyEndpoint(address: generatedAddress(&rng, input, ipv6: ipv6), port: UInt16(truncatingIfNeeded: rng.next()))
    let tail: [UInt8] = Array(input.prefix(rng.below(40)))
    let expected = ProxyProtocolHeader.Addresses.tcp(source: s, destination: d)
    switch rng.below(3) {
    case 0:
        let v1 = ProxyProtocolWriter.v1(source: s, destination: d)
        checkGenerated(v1 + tail, ProxyProtocolHeader(version: .v1, length: v1.count, addresses: expected), what: "written v1")
    case 1:
        let text = ipv6 ? "PROXY TCP6 \(longForm(s.address, upper: rng.below(2) == 0)) \(longForm(d.address, upper: rng.below(2) == 0))"
                        : "PROXY TCP4 \(s.address) \(d.address)"
        let line = Array("\(text) \(s.port) \(d.port)\r\n".utf8)
        checkGenerated(line + tail, ProxyProtocolHeader(version: .v1, length: line.count, addresses: expected), what: "long-form v1")
    default:
        var v2 = ProxyProtocolWriter.v2(source: s, destination: d)
        // TLVs from the input: type, two length bytes, value; the header's length field grows to cover them.
        var tlvs: [UInt8] = []
        var at = 0
        while at < input.count && tlvs.count < 600 && rng.below(4) != 0 {
            let n = min(input.count - at, rng.below(64))
            tlvs += [input[at], UInt8(n >> 8), UInt8(n & 0xFF)] + input[at..<(at + n)]
            at += max(1, n)
        }
        let total = v2.count - 16 + tlvs.count
        v2[14] = UInt8(total >> 8)
        v2[15] = UInt8(total & 0xFF)
        v2 += tlvs
        checkGenerated(v2 + tail, ProxyProtocolHeader(version: .v2, length: v2.count, addresses: expected), what: "written v2")
    }
    return 0
}
