// Finds where a chunked body ends (RFC 9112 7.1) so the proxy can forward it verbatim without decoding it.

/// Fed the body's bytes in order, in any split; chunk data is skipped by arithmetic, never looked at.
/// Errors carry status 400 and an offset counted from the first body byte; a proxy reading a response
/// body answers 502 instead.
public struct ChunkedBodyScanner: Sendable {
    /// Bytes of a chunk-size line without its CRLF.
    public let maxChunkLineLength: Int
    /// Bytes of the trailer field lines, CRLFs included, the final empty line not.
    public let maxTrailerSize: Int

    private enum State: UInt8, Sendable {
        case sizeStart, size, sizeWhitespace, extensions, sizeLF
        case data, dataCR, dataLF
        case trailerLineStart, trailerName, trailerValue, trailerLF, finalLF
        case finished, failed
    }

    private var state: State = .sizeStart
    private var chunkRemaining: Int64 = 0
    private var chunkSize: Int64 = 0
    private var lineLength = 0
    private var trailerBytes = 0
    /// Body bytes before the current `scan` call, for error offsets.
    private var consumedBefore: Int64 = 0
    private var failure: HTTPParseError? = nil
    public private(set) var dataBytes: Int64 = 0

    /// Chunk sizes above this are refused; 2^62 keeps every running total far from Int64 overflow.
    public static let maxChunkSize: Int64 = 1 << 62

    public init(maxChunkLineLength: Int = 4096, maxTrailerSize: Int = 16384) {
        self.maxChunkLineLength = maxChunkLineLength
        self.maxTrailerSize = maxTrailerSize
    }

    public mutating func reset() {
        state = .sizeStart
        chunkRemaining = 0
        chunkSize = 0
        lineLength = 0
        trailerBytes = 0
        consumedBefore = 0
        failure = nil
        dataBytes = 0
    }

    /// Whether the whole body has been seen.
    public var isFinished: Bool { state == .finished }

    /// Decoding: how many payload bytes follow at the current position (0 unless the scanner is inside chunk data).
    public var pendingDataBytes: Int64 { state == .data ? chunkRemaining : 0 }

    /// Decoding: takes `n` payload bytes (at most `pendingDataBytes`) that the caller consumed itself.
    public mutating func consumeData(_ n: Int) {
        precondition(state == .data && Int64(n) <= chunkRemaining, "consumeData beyond the chunk")
        chunkRemaining &-= Int64(n)
        dataBytes &+= Int64(n)
        consumedBefore &+= Int64(n)
        if chunkRemaining == 0 { state = .dataCR }
    }

    /// Scans the next bytes of the body. `.consumed(n)` means all `n` bytes belong to the body and more is
    /// expected; `.finished(n)` means the body ends after the first `n` of them (the rest is the next message).
    /// With `stopAtData` (decoding), scanning stops where chunk payload begins: `.consumed(n)` then covers only the
    /// framing before it, and the caller takes the payload with `pendingDataBytes` and `consumeData`.
    public mutating func scan(_ bytes: UnsafeRawBufferPointer, stopAtData: Bool = false) -> ChunkedScanResult {
        if state == .finished { return .finished(0) }
        if state == .failed { return .error(failure!) }
        let count = bytes.count
        var i = 0
        while i < count {
            switch state {
            case .data:
                if stopAtData {
                    consumedBefore &+= Int64(i)
                    return .consumed(i)
                }
                // The bulk skip: payload is never inspected.
                let available = Int64(count &- i)
                let take = min(available, chunkRemaining)
                i &+= Int(take)
                chunkRemaining &-= take
                dataBytes &+= take
                if chunkRemaining == 0 { state = .dataCR }
                continue
            case .sizeStart:
                let b = bytes[i]
                guard let d = ASCIIBytes.hexValue(b) else { return fail(.badChunkSize, i) }
                chunkSize = Int64(d)
                lineLength = 1
                state = .size
            case .size:
                let b = bytes[i]
                if let d = ASCIIBytes.hexValue(b) {
                    if chunkSize > (Self.maxChunkSize &- Int64(d)) >> 4 { return fail(.chunkSizeOverflow, i) }
                    chunkSize = chunkSize << 4 | Int64(d)
                } else if b == 0x3B {
                    state = .extensions
                } else if b == 0x0D {
                    state = .sizeLF
                } else if ASCIIBytes.isOWS(b) {
                    state = .sizeWhitespace
                } else {
                    return fail(b == 0x0A ? .bareLF : .badChunkSize, i)
                }
                if b != 0x0D, let error = countLineByte(i) { return error }
            case .sizeWhitespace:
                // BWS is allowed only before a chunk-ext's ';' (RFC 9112 7.1.1).
                let b = bytes[i]
                if b == 0x3B { state = .extensions } else if !ASCIIBytes.isOWS(b) { return fail(.badChunkSize, i) }
                if let error = countLineByte(i) { return error }
            case .extensions:
                // Extensions are forwarded untouched; only bytes that could end or split the line matter.
                let b = bytes[i]
                if b == 0x0D {
                    state = .sizeLF
                } else if b == 0x0A {
                    return fail(.bareLF, i)
                } else if !ASCIIBytes.isFieldValueByte(b) {
                    return fail(.badChunkExtension, i)
                }
                if b != 0x0D, let error = countLineByte(i) { return error }
            case .sizeLF:
                if bytes[i] != 0x0A { return fail(.bareCR, i) }
                if chunkSize == 0 {
                    state = .trailerLineStart
                    trailerBytes = 0
                } else {
                    chunkRemaining = chunkSize
                    state = .data
                }
            case .dataCR:
                if bytes[i] != 0x0D { return fail(.missingChunkDataCRLF, i) }
                state = .dataLF
            case .dataLF:
                if bytes[i] != 0x0A { return fail(.missingChunkDataCRLF, i) }
                state = .sizeStart
            case .trailerLineStart:
                let b = bytes[i]
                if b == 0x0D {
                    state = .finalLF
                } else if ASCIIBytes.isTokenByte(b) {
                    state = .trailerName
                } else {
                    return fail(b == 0x0A ? .bareLF : .badTrailer, i)
                }
                if b != 0x0D, let error = countTrailerByte(i) { return error }
            case .trailerName:
                let b = bytes[i]
                if b == 0x3A { state = .trailerValue } else if !ASCIIBytes.isTokenByte(b) { return fail(.badTrailer, i) }
                if let error = countTrailerByte(i) { return error }
            case .trailerValue:
                let b = bytes[i]
                if b == 0x0D {
                    state = .trailerLF
                } else if !ASCIIBytes.isFieldValueByte(b) {
                    return fail(b == 0x0A ? .bareLF : .badTrailer, i)
                }
                if let error = countTrailerByte(i) { return error }
            case .trailerLF:
                if bytes[i] != 0x0A { return fail(.bareCR, i) }
                state = .trailerLineStart
                if let error = countTrailerByte(i) { return error }
            case .finalLF:
                if bytes[i] != 0x0A { return fail(.bareCR, i) }
                state = .finished
                return .finished(i &+ 1)
            case .finished, .failed:
                preconditionFailure("unreachable: handled before the loop")
            }
            i &+= 1
        }
        consumedBefore &+= Int64(count)
        return .consumed(count)
    }

    @inline(__always)
    private mutating func countLineByte(_ i: Int) -> ChunkedScanResult? {
        lineLength &+= 1
        return lineLength > maxChunkLineLength ? fail(.chunkLineTooLong, i) : nil
    }

    @inline(__always)
    private mutating func countTrailerByte(_ i: Int) -> ChunkedScanResult? {
        trailerBytes &+= 1
        return trailerBytes > maxTrailerSize ? fail(.trailerTooLarge, i) : nil
    }

    private mutating func fail(_ reason: HTTPParseError.Reason, _ i: Int) -> ChunkedScanResult {
        let error = HTTPParseError.request(reason, at: Int(consumedBefore) &+ i)
        state = .failed
        failure = error
        return .error(error)
    }
}

public enum ChunkedScanResult: Equatable, Sendable {
    /// All of the bytes are body, more is to come.
    case consumed(Int)
    /// The body (including last-chunk, trailers and the final CRLF) ends after this many bytes.
    case finished(Int)
    case error(HTTPParseError)
}
