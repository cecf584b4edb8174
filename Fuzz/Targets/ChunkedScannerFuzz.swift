// libFuzzer target: ChunkedBodyScanner.
//
// 1. The input as a chunked body, with the default limits and with tight ones derived from the input: scanning
//    it whole, byte by byte and in input-derived pieces gives the same outcome (where the body ends, data bytes
//    counted, or the same error at the same offset). Each piece is handed over alone with the rest of the input
//    ASan-poisoned. `.consumed(n)` always covers the whole piece; a finished or failed scanner repeats itself;
//    `reset()` gives a fresh scanner.
// 2. A valid body generated from the input (its bytes as chunk data, input-derived chunk sizes in either hex
//    case with leading zeros, extensions with BWS and quoted strings, trailers, then bytes of a next message)
//    must end exactly where it was built to end with the right data byte count, in every split; with limits
//    set exactly to its longest chunk line and its trailer size it is still accepted, one byte less is refused.
import HuddleHTTP

enum ChunkedOutcome: Equatable {
    case needMore(dataBytes: Int64)
    case finished(at: Int, dataBytes: Int64)
    case error(HTTPParseError)
}

func scanPieces(_ scanner: ChunkedBodyScanner, _ buf: ExactBytes, _ ends: [Int]) -> ChunkedOutcome {
    var s = scanner
    var start = 0
    for end in ends {
        let piece = buf.window(start, end)
        switch s.scan(piece) {
        case .consumed(let n):
            require(n == end - start, "consumed(\(n)) of a \(end - start)-byte piece")
            require(!s.isFinished, "consumed but finished")
            start = end
        case .finished(let n):
            require(n >= 1 && n <= end - start, "finished(\(n)) in a \(end - start)-byte piece")
            require(s.isFinished, "finished but not isFinished")
            let data = s.dataBytes
            require(s.scan(buf.window(0, 0)) == .finished(0) && s.scan(buf.window(0, min(1, buf.count))) == .finished(0),
                    "a finished scanner did not repeat finished(0)")
            require(s.dataBytes == data, "dataBytes changed after the end")
            return .finished(at: start + n, dataBytes: data)
        case .error(let e):
            require(!s.isFinished, "failed but isFinished")
            require(s.scan(buf.window(0, min(1, buf.count))) == .error(e), "a failed scanner did not repeat its error")
            return .error(e)
        }
    }
    return .needMore(dataBytes: s.dataBytes)
}

func checkSplitsAgree(_ scanner: ChunkedBodyScanner, _ buf: ExactBytes, _ plans: [[Int]], what: String) -> ChunkedOutcome {
    let whole = scanPieces(scanner, buf, [buf.count])
    let bytewise = scanPieces(scanner, buf, byteByByte(buf.count))
    require(bytewise == whole, "\(what): byte by byte \(bytewise) vs whole \(whole)")
    for plan in plans {
        let split = scanPieces(scanner, buf, plan)
        require(split == whole, "\(what): split \(plan) gave \(split) vs whole \(whole)")
    }
    var used = scanner
    _ = used.scan(buf.window(0, buf.count))
    used.reset()
    require(scanPieces(used, buf, [buf.count]) == whole, "\(what): reset scanner differs from a fresh one")
    if case .error(let e) = whole {
        require(e.status == 400 && e.offset >= 0 && e.offset < buf.count, "\(what): error \(e) out of place")
    }
    return whole
}

/// Bytes allowed in a field value / chunk extension, from arbitrary input.
func fieldSafe(_ b: UInt8) -> UInt8 { isFieldValueByteRef(b) ? b : UInt8(ascii: "x") }
func isFieldValueByteRef(_ b: UInt8) -> Bool { b == 0x09 || (b >= 0x20 && b != 0x7F) }
func tokenSafe(_ b: UInt8) -> UInt8 { tchars[Int(b) % tchars.count] }
private let tchars: [UInt8] = Array("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)

struct GeneratedBody {
    var bytes: [UInt8] = []
    var end = 0
    var dataBytes: Int64 = 0
    var longestLine = 0
    var trailerBytes = 0
}

func generateBody(_ input: UnsafeRawBufferPointer, _ rng: inout SplitMix) -> GeneratedBody {
    var g = GeneratedBody()
    func crlf() { g.bytes += [0x0D, 0x0A] }
    func snippet(_ n: Int, _ map: (UInt8) -> UInt8) -> [UInt8] {
        (0..<n).map { _ in input.isEmpty ? UInt8(ascii: "v") : map(input[rng.below(input.count)]) }
    }
    func sizeLine(_ size: Int) {
        let lineStart = g.bytes.count
        g.bytes += Array(repeating: UInt8(ascii: "0"), count: rng.below(4))
        g.bytes += Array(String(size, radix: 16, uppercase: rng.below(2) == 0).utf8)
        for _ in 0..<rng.below(3) {
            // BWS is allowed only before a ';'.
            g.bytes += (0..<rng.below(3)).map { _ in rng.below(2) == 0 ? 0x20 : 0x09 }
            g.bytes.append(UInt8(ascii: ";"))
            g.bytes += snippet(1 + rng.below(6), tokenSafe)
            switch rng.below(3) {
            case 0: break
            case 1: g.bytes.append(UInt8(ascii: "=")); g.bytes += snippet(rng.below(8), tokenSafe)
            default:
                g.bytes += Array("=\"".utf8)
                g.bytes += snippet(rng.below(12), fieldSafe)
                g.bytes.append(UInt8(ascii: "\""))
            }
        }
        g.longestLine = max(g.longestLine, g.bytes.count - lineStart)
        crlf()
    }
    var pos = 0
    while pos < input.count {
        let size = rng.below(4) == 0 ? input.count - pos : 1 + rng.below(min(input.count - pos, 1 << rng.below(10)))
        sizeLine(size)
        g.bytes += input[pos..<(pos + size)]
        crlf()
        pos += size
        g.dataBytes += Int64(size)
    }
    sizeLine(0)
    for _ in 0..<rng.below(4) {
        let start = g.bytes.count
        g.bytes += snippet(1 + rng.below(12), tokenSafe)
        g.bytes.append(UInt8(ascii: ":"))
        g.bytes += snippet(rng.below(20), fieldSafe)
        crlf()
        g.trailerBytes += g.bytes.count - start
    }
    crlf()
    g.end = g.bytes.count
    // Whatever follows belongs to the next message.
    g.bytes += Array("GET / HTTP/1.1\r\n".utf8).prefix(rng.below(17))
    return g
}

@_cdecl("LLVMFuzzerTestOneInput")
public func chunkedScannerFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let buf = ExactBytes(input)
    var rng = SplitMix(seed: fnv1a(input))
    let plans = splitPlans(input)
    let tight = ChunkedBodyScanner(maxChunkLineLength: 1 + rng.below(40), maxTrailerSize: rng.below(80))
    for scanner in [ChunkedBodyScanner(), tight] {
        let outcome = checkSplitsAgree(scanner, buf, plans, what: "input")
        if case .finished(let at, _) = outcome { require(at <= size, "finished past the input") }
    }

    let g = generateBody(input, &rng)
    let body = ExactBytes.make(g.bytes)
    let bodyPlans = g.bytes.withUnsafeBytes { splitPlans($0) }
    let expected = ChunkedOutcome.finished(at: g.end, dataBytes: g.dataBytes)
    let exact = ChunkedBodyScanner(maxChunkLineLength: g.longestLine, maxTrailerSize: g.trailerBytes)
    for scanner in [ChunkedBodyScanner(), exact] {
        let got = checkSplitsAgree(scanner, body, bodyPlans, what: "generated body")
        require(got == expected, "generated body \(show(g.bytes, limit: 400)) gave \(got), expected \(expected)")
    }
    // (A limit of 0 is not meaningful: the first byte of a size line is not counted against it.)
    if g.longestLine >= 2 {
        let shortLine = scanPieces(ChunkedBodyScanner(maxChunkLineLength: g.longestLine - 1, maxTrailerSize: g.trailerBytes),
                                   body, [body.count])
        guard case .error(let e) = shortLine, e.reason == .chunkLineTooLong else {
            propertyFailure("a \(g.longestLine)-byte chunk line passed a limit of \(g.longestLine - 1): \(shortLine)")
        }
    }
    if g.trailerBytes > 0 {
        let shortTrailer = scanPieces(ChunkedBodyScanner(maxChunkLineLength: g.longestLine, maxTrailerSize: g.trailerBytes - 1),
                                      body, [body.count])
        guard case .error(let e) = shortTrailer, e.reason == .trailerTooLarge else {
            propertyFailure("\(g.trailerBytes) trailer bytes passed a limit of \(g.trailerBytes - 1): \(shortTrailer)")
        }
    }
    return 0
}
