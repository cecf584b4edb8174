// libFuzzer target: WebSocketFrameDecoder and WebSocketFrameBoundary.
//
// The input is a byte stream from a peer. With the default and a tight (input-derived) maximum payload:
// - feeding it whole, byte by byte and in input-derived pieces (each piece ASan-fenced) yields the same frames
//   and the same final state (needs more, or the same error); with no maximum (Int.max) the decoder must not
//   crash and must agree with the default up to a frame the default refuses as too large;
// - every decoded frame matches a reference reading of its header in the raw bytes (FIN, opcode, mask bit,
//   7/16/64-bit length, payload unmasked with its key); control frames are final and at most 125 bytes; no
//   reserved bits or opcodes; nothing over the maximum;
// - every decoded frame re-encoded (`WebSocketFrame.encode`, masked with a derived key when it was masked)
//   decodes to the same frame and nothing else.
// WebSocketFrameBoundary on the same stream: after any split, consume-only and consume+skip drivers reach the
// same state; byte by byte over the decoded frames, `atBoundary` holds exactly at the frame ends.

import HuddleHTTP

enum DecodeEnd: Equatable {
    case needMore
    case error(WebSocketFrameDecoder.DecodeError)
}

struct DecodeOutcome: Equatable {
    var frames: [WebSocketFrame]
    var end: DecodeEnd
}

func decode(_ maxPayload: Int, _ buf: ExactBytes, _ ends: [Int]) -> DecodeOutcome {
    var decoder = WebSocketFrameDecoder(maxPayloadLength: maxPayload)
    var frames: [WebSocketFrame] = []
    var start = 0
    for end in ends {
        decoder.feed(buf.window(start, end))
        start = end
        while true {
            do {
                guard let frame = try decoder.nextFrame() else { break }
                frames.append(frame)
            } catch {
                return DecodeOutcome(frames: frames, end: .error(error))
            }
        }
    }
    return DecodeOutcome(frames: frames, end: .needMore)
}

/// Byte by byte and the split plans give `whole`; the frames match the raw bytes. Returns the frame ends.
func checkDeliveries(_ maxPayload: Int, _ buf: ExactBytes, _ plans: [[Int]], whole: DecodeOutcome) -> [Int] {
    let bytewise = decode(maxPayload, buf, byteByByte(buf.count))
    require(bytewise == whole, "byte by byte: \(bytewise.frames.count) frames, \(bytewise.end); whole: \(whole.frames.count), \(whole.end)")
    for plan in plans {
        let split = decode(maxPayload, buf, plan)
        require(split == whole, "split \(plan): \(split.frames.count) frames, \(split.end); whole: \(whole.frames.count), \(whole.end)")
    }
    return checkAgainstRawBytes(buf.prefix(buf.count), whole.frames, maxPayload: maxPayload)
}

/// Reads frame headers from the raw bytes and checks each decoded frame against them; returns the frame ends.
func checkAgainstRawBytes(_ b: UnsafeRawBufferPointer, _ frames: [WebSocketFrame], maxPayload: Int) -> [Int] {
    var at = 0
    var ends: [Int] = []
    for (index, f) in frames.enumerated() {
        require(at + 2 <= b.count, "frame \(index) starts past the input")
        let b0 = b[at], b1 = b[at + 1]
        require(b0 & 0x70 == 0, "frame \(index) with reserved bits accepted")
        require([0, 1, 2, 8, 9, 10].contains(b0 & 0x0F), "frame \(index) with reserved opcode \(b0 & 0x0F) accepted")
        require(f.fin == (b0 & 0x80 != 0) && f.opcode == b0 & 0x0F && f.wasMasked == (b1 & 0x80 != 0),
                "frame \(index) header bits differ from the bytes")
        var header = 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            length = UInt64(b[at + 2]) << 8 | UInt64(b[at + 3])
            header = 4
        } else if length == 127 {
            length = (0..<8).reduce(UInt64(0)) { $0 << 8 | UInt64(b[at + 2 + $1]) }
            header = 10
        }
        require(length == UInt64(f.payload.count), "frame \(index) payload \(f.payload.count) but length field \(length)")
        require(f.payload.count <= maxPayload, "frame \(index) over the maximum accepted")
        if f.isControl { require(f.fin && f.payload.count <= 125, "bad control frame \(index) accepted") }
        let key = f.wasMasked ? Array(b[(at + header)..<(at + header + 4)]) : [0, 0, 0, 0]
        let start = at + header + (f.wasMasked ? 4 : 0)
        require(start + f.payload.count <= b.count, "frame \(index) runs past the input")
        for i in 0..<f.payload.count where f.payload[i] != b[start + i] ^ key[i & 3] {
            propertyFailure("frame \(index) payload byte \(i) wrongly unmasked")
        }
        at = start + f.payload.count
        ends.append(at)
    }
    return ends
}

struct BoundaryState: Equatable {
    var atBoundary: Bool
    var payloadRemaining: UInt64
    var bytesBeforeNextHeader: UInt64
    init(_ t: WebSocketFrameBoundary) {
        atBoundary = t.atBoundary
        payloadRemaining = t.payloadRemaining
        bytesBeforeNextHeader = t.bytesBeforeNextHeader
    }
}

/// Follows the stream in pieces; with `skipping`, payload bytes the tracker says it need not see are skipped.
func followBoundaries(_ buf: ExactBytes, _ ends: [Int], skipping: Bool) -> BoundaryState {
    var t = WebSocketFrameBoundary()
    var start = 0
    for end in ends {
        var at = start
        while at < end {
            let free = t.bytesBeforeNextHeader
            if skipping && free > 0 {
                let n = Int(min(free, UInt64(end - at)))
                t.skip(n)
                at += n
            } else {
                // Up to the next header byte when skipping, else the whole rest of the piece.
                let n = skipping ? 1 : end - at
                t.consume(buf.window(at, at + n))
                at += n
            }
        }
        start = end
    }
    return BoundaryState(t)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func webSocketFrameFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    let buf = ExactBytes(input)
    var rng = SplitMix(seed: fnv1a(input))
    let plans = splitPlans(input)
    // The default maximum gets every check; a tight (input-derived) one every delivery; none at all (Int.max) must
    // agree with the default, except that the default may refuse a frame as too large where it waits for more.
    let whole = decode(16 << 20, buf, [size])
    let frameEnds = checkDeliveries(16 << 20, buf, plans, whole: whole)
    for frame in whole.frames {
        let key: UInt32? = frame.wasMasked ? UInt32(truncatingIfNeeded: rng.next()) : nil
        let wire = WebSocketFrame.encode(opcode: frame.opcode, payload: frame.payload, fin: frame.fin, maskKey: key)
        let n = frame.payload.count
        let header = 2 + (n < 126 ? 0 : n <= 0xFFFF ? 2 : 8) + (key == nil ? 0 : 4)
        require(wire.count == header + n, "encoded frame of \(n) bytes is \(wire.count) long")
        let again = decode(16 << 20, ExactBytes.make(wire), [wire.count])
        require(again == DecodeOutcome(frames: [frame], end: .needMore), "re-encoded frame decodes to \(again)")
    }
    let tight = rng.below(200)
    _ = checkDeliveries(tight, buf, plans, whole: decode(tight, buf, [size]))
    let unlimited = decode(Int.max, buf, [size])
    _ = checkAgainstRawBytes(buf.prefix(size), unlimited.frames, maxPayload: Int.max)
    if whole.end == .error(.frameTooLarge) {
        require(Array(unlimited.frames.prefix(whole.frames.count)) == whole.frames, "no maximum changed earlier frames")
    } else {
        require(unlimited == whole, "no maximum: \(unlimited.frames.count) frames, \(unlimited.end); default: \(whole.frames.count), \(whole.end)")
    }

    // Boundary tracker: the same state however the stream is delivered and whether payload is skipped.
    let reference = followBoundaries(buf, [size], skipping: false)
    for plan in [byteByByte(size)] + plans {
        require(followBoundaries(buf, plan, skipping: false) == reference, "boundary state differs for split \(plan)")
        require(followBoundaries(buf, plan, skipping: true) == reference, "boundary state differs when skipping, split \(plan)")
    }
    // Over the frames the decoder accepted, boundaries are exactly the frame ends.
    if let last = frameEnds.last {
        var t = WebSocketFrameBoundary()
        var next = 0
        require(t.atBoundary, "a new tracker is not at a boundary")
        for k in 1...last {
            t.consume(buf.window(k - 1, k))
            let isEnd = frameEnds[next] == k
            if isEnd { next += 1 }
            require(t.atBoundary == isEnd, "atBoundary \(t.atBoundary) after \(k) bytes; frame ends \(frameEnds.prefix(8))")
            if next == frameEnds.count { break }
        }
    }
    return 0
}
