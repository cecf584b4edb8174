// A response body compressed into HTTP/1.1 chunks, one chunk per buffer fill: the buffer is the bounded queue between
// zlib and the client socket (nothing more is compressed, and nothing more read from the backend, until it is written).
import HuddleIO

/// Layout of `out` while a chunk is open: [headRoom bytes reserved][compressed bytes...][room for the tail]. When the
/// chunk is closed its size line is written into the reserved bytes right before the data ("1f3a\r\n"), its CRLF
/// after it (and after the last one "0\r\n\r\n"), so the whole chunk is one contiguous run for a single write.
struct GzipChunkEncoder: ~Copyable {
    /// "hhhhhh\r\n": six hex digits cover any buffer up to 16 MiB.
    static let headRoom = 8
    /// "\r\n" after the data, and "0\r\n\r\n" after the last chunk.
    static let tailRoom = 7

    /// The zlib state, dropped (back to the worker's pool) as soon as the gzip trailer is out.
    private(set) var stream: GzipStream?
    private(set) var out: IOBuffer
    /// `out` holds a closed chunk (or the last one) that must be written before anything more is compressed.
    private(set) var chunkReady = false
    /// Input went into zlib since the last flush: before waiting for the backend, a sync flush must push it out.
    private(set) var unflushed = false
    /// The last chunk has been produced (it may still be waiting in `out`).
    private(set) var finished = false
    /// Body bytes compressed so far.
    private(set) var bytesIn: Int64 = 0

    init(stream: consuming GzipStream, buffer: consuming IOBuffer) {
        self.stream = consume stream
        out = consume buffer
        out.readIndex = Self.headRoom
        out.writeIndex = Self.headRoom
    }

    /// Everything has been produced and written.
    var isDone: Bool { finished && out.readableCount == 0 }

    /// Bytes of the closed chunk waiting to be written (0 while a chunk is open).
    var readyCount: Int { chunkReady ? out.readableCount : 0 }

    /// Compresses from `input` into the open chunk and closes the chunk when it is full or a flush completed.
    /// Returns how many bytes of `input` were taken (all of them unless the chunk filled), or nil if zlib failed.
    /// Call only while `!chunkReady && !finished`.
    mutating func compress(_ input: UnsafeRawBufferPointer, flush: GzipStream.Flush) -> Int? {
        precondition(!chunkReady && !finished, "compress with a chunk waiting or after the end")
        guard stream != nil else { return nil }
        let room = out.capacity - out.writeIndex - Self.tailRoom
        guard let step = stream.unwrapped.deflate(input, into: out.writePointer, capacity: room, flush: flush) else { return nil }
        // Z_FINISH with room to spare always ends the stream; anything else would never make progress.
        if flush == .finish && !step.ended && !step.outputFull { return nil }
        out.writeIndex += step.produced
        bytesIn += Int64(step.consumed)
        if step.consumed > 0 { unflushed = true }
        if step.ended {
            finished = true
            unflushed = false
            stream = nil
            closeChunk(last: true)
        } else if step.outputFull {
            closeChunk(last: false)
        } else if flush == .sync {
            // Room was left and the input is all in: the flush is complete.
            unflushed = false
            closeChunk(last: false)
        }
        return step.consumed
    }

    /// The client took `n` bytes of the ready chunk.
    mutating func wrote(_ n: Int) {
        out.readIndex += n
        if out.readableCount == 0 && !finished {
            out.readIndex = Self.headRoom
            out.writeIndex = Self.headRoom
            chunkReady = false
        }
    }

    /// The pointer to the ready chunk's unwritten bytes.
    var readyPointer: UnsafeRawPointer { UnsafeRawPointer(out.readPointer) }

    private mutating func closeChunk(last: Bool) {
        let size = out.writeIndex - Self.headRoom
        if size > 0 {
            var digits = 0
            var v = size
            while v > 0 { digits += 1; v >>= 4 }
            let start = Self.headRoom - digits - 2
            let hex: StaticString = "0123456789abcdef"
            v = size
            for i in stride(from: start + digits - 1, through: start, by: -1) {
                out.base.storeBytes(of: hex.utf8Start[v & 15], toByteOffset: i, as: UInt8.self)
                v >>= 4
            }
            out.base.storeBytes(of: 13, toByteOffset: Self.headRoom - 2, as: UInt8.self)
            out.base.storeBytes(of: 10, toByteOffset: Self.headRoom - 1, as: UInt8.self)
            out.readIndex = start
            out.append("\r\n")
        } else {
            out.readIndex = Self.headRoom
        }
        if last { out.append("0\r\n\r\n") }
        chunkReady = out.readableCount > 0
    }
}
