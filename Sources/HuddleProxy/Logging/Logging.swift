// Error log (shared, one write(2) per line) and access log (per-worker buffer flushed once per loop turn).
import Glibc
import HuddleConfig
import HuddleIO
import HuddleJSON
import HuddleSys
import Synchronization
import HuddleSync

/// Opens a log target; nil for `.off`.
func openLogTarget(_ t: LogTarget) -> Int32? {
    switch t {
    case .off: return nil
    case .stderr: return 2
    case .stdout: return 1
    case .file(let path):
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        return fd >= 0 ? fd : 2
    }
}

/// Formats wall-clock times; caches the formatted second so a busy worker formats once per second.
struct TimeFormatter {
    private var cachedSecond: Int64 = -1
    private var iso = [UInt8](repeating: 0, count: 19)     // 2026-11-22T14:00:00
    private var clf = [UInt8](repeating: 0, count: 26)     // 22/Nov/2026:14:00:00 +0000

    private static let months: [StaticString] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private mutating func refresh(_ ms: Int64) {
        let sec = ms / 1000
        if sec == cachedSecond { return }
        cachedSecond = sec
        var t = time_t(sec)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func put(_ a: inout [UInt8], _ at: Int, _ v: Int32, _ width: Int) {
            var v = v
            for k in stride(from: at + width - 1, through: at, by: -1) {
                a[k] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        let y = tmv.tm_year + 1900
        put(&iso, 0, y, 4); iso[4] = 45; put(&iso, 5, tmv.tm_mon + 1, 2); iso[7] = 45; put(&iso, 8, tmv.tm_mday, 2)
        iso[10] = 84; put(&iso, 11, tmv.tm_hour, 2); iso[13] = 58; put(&iso, 14, tmv.tm_min, 2); iso[16] = 58; put(&iso, 17, tmv.tm_sec, 2)
        put(&clf, 0, tmv.tm_mday, 2); clf[2] = 47
        let m = Self.months[Int(tmv.tm_mon)]
        m.withUTF8Buffer { for k in 0..<3 { clf[3 + k] = $0[k] } }
        clf[6] = 47; put(&clf, 7, y, 4); clf[11] = 58; put(&clf, 12, tmv.tm_hour, 2); clf[14] = 58
        put(&clf, 15, tmv.tm_min, 2); clf[17] = 58; put(&clf, 18, tmv.tm_sec, 2)
        let tail: [UInt8] = Array(" +0000".utf8)
        for k in 0..<6 { clf[20 + k] = tail[k] }
    }

    /// `2026-11-22T14:00:00.123Z`
    mutating func iso8601(_ ms: Int64, into b: inout IOBuffer) {
        refresh(ms)
        iso.withUnsafeBytes { _ = b.append($0) }
        b.append(byte: 46)
        let frac = ms % 1000
        b.append(byte: UInt8(48 + frac / 100)); b.append(byte: UInt8(48 + frac / 10 % 10)); b.append(byte: UInt8(48 + frac % 10))
        b.append(byte: 90)
    }

    /// `22/Nov/2026:14:00:00 +0000`
    mutating func common(_ ms: Int64, into b: inout IOBuffer) {
        refresh(ms)
        clf.withUnsafeBytes { _ = b.append($0) }
    }

    mutating func iso8601String(_ ms: Int64) -> String {
        refresh(ms)
        return String(decoding: iso, as: UTF8.self)
    }
}

/// The error log: shared by all threads; lines are rare, so each is one write(2) (atomic for lines under PIPE_BUF).
public final class ErrorLog: Sendable {
    private let fd: Int32?
    public let level: LogLevel
    private let formatter = Locked(TimeFormatter())

    public init(_ config: ErrorLogConfig) {
        fd = openLogTarget(config.target)
        level = config.level
    }

    @inline(__always) public func enabled(_ l: LogLevel) -> Bool { fd != nil && l >= level }

    public func log(_ l: LogLevel, _ message: @autoclosure () -> String) {
        guard let fd, l >= level else { return }
        let name: String
        switch l {
        case .debug: name = "debug"
        case .info: name = "info"
        case .warn: name = "warn"
        case .error: name = "error"
        }
        let time = formatter.withLock { $0.iso8601String(Sys.wallClockMs()) }
        var line = "\(time) [\(name)] \(message())\n"
        line.withUTF8 { p in
            var off = 0
            while off < p.count {
                let n = Glibc.write(fd, p.baseAddress! + off, p.count - off)
                if n <= 0 { break }
                off += n
            }
        }
    }

    public func debug(_ m: @autoclosure () -> String) { if enabled(.debug) { log(.debug, m()) } }
    public func info(_ m: @autoclosure () -> String) { if enabled(.info) { log(.info, m()) } }
    public func warn(_ m: @autoclosure () -> String) { if enabled(.warn) { log(.warn, m()) } }
    public func error(_ m: @autoclosure () -> String) { if enabled(.error) { log(.error, m()) } }
}

/// What one access-log line says. Strings here are views into buffers that live until the line is written.
struct AccessRecord {
    var startWallMs: Int64
    /// The client's IP as text (cached per connection).
    var client: UnsafeRawBufferPointer
    var requestLine: UnsafeRawBufferPointer      // "GET /path HTTP/1.1"
    var method: UnsafeRawBufferPointer
    var path: UnsafeRawBufferPointer
    var referer: UnsafeRawBufferPointer
    var userAgent: UnsafeRawBufferPointer
    var requestId: UnsafeRawBufferPointer
    var status: Int
    var bytesSent: Int64
    var upstream: String?
    var upstreamMicros: Int64
    var totalMicros: Int64
}

/// One worker's access log: formats into a buffer in place, written out once per loop turn.
// SAFETY: on its worker's loop thread only.
final class AccessLog {
    let fd: Int32?
    let format: LogFormat
    private var buffer: IOBuffer?
    private var time = TimeFormatter()
    private let pool: BufferPool

    init(_ config: AccessLogConfig, pool: BufferPool) {
        fd = openLogTarget(config.target)
        format = config.format
        self.pool = pool
    }

    var enabled: Bool { fd != nil }

    /// `bytes` as a quoted JSON string, escaped in place into the buffer (no String, no allocation). At most `limit`
    /// bytes of escaped text: a longer field is cut at a character boundary, so the line stays valid JSON.
    private static func appendJSONString(_ bytes: UnsafeRawBufferPointer, limit: Int, into b: inout IOBuffer) {
        b.append(byte: 34)
        let room = max(0, min(limit, b.writableCount - 1))
        let r = JSONEscaping.escape(bytes, into: UnsafeMutableRawBufferPointer(start: b.writePointer, count: room))
        b.writeIndex += r.written
        b.append(byte: 34)
    }

    private static func appendJSONString(_ s: String, limit: Int, into b: inout IOBuffer) {
        var s = s
        s.withUTF8 { appendJSONString(UnsafeRawBufferPointer($0), limit: limit, into: &b) }
    }

    /// A quoted field of the combined format; at most `limit` bytes inside the quotes.
    private static func appendQuotedCLF(_ bytes: UnsafeRawBufferPointer, limit: Int, into b: inout IOBuffer) {
        b.append(byte: 34)
        if bytes.isEmpty { b.append(byte: 45) }
        var used = 0
        for c in bytes {
            if c == 34 || c == 92 || c < 32 || c == 127 {
                guard used + 2 <= limit else { break }
                b.append(byte: 92)
                b.append(byte: c < 32 || c == 127 ? 63 : c)
                used += 2
            } else {
                guard used + 1 <= limit else { break }
                b.append(byte: c)
                used += 1
            }
        }
        b.append(byte: 34)
    }

    /// Room for a line's fixed text (time, names, numbers, punctuation) with margin; the fields are bounded apart.
    private static let fixedReserve = 512

    private static func appendMillis(_ micros: Int64, into b: inout IOBuffer) {
        b.append(decimal: micros / 1000)
        b.append(byte: 46)
        let f = micros % 1000
        b.append(byte: UInt8(48 + f / 100)); b.append(byte: UInt8(48 + f / 10 % 10)); b.append(byte: UInt8(48 + f % 10))
    }

    func write(_ r: AccessRecord) {
        guard fd != nil else { return }
        // Worst case of the variable fields once quoted: JSON escapes grow a byte to at most 6, the CLF quoting to 2.
        let upstreamCount = r.upstream?.utf8.count ?? 1
        let fields: Int
        let variable: Int
        switch format {
        case .json:
            fields = 6
            variable = JSONEscaping.maxExpansion * (r.client.count + r.method.count + r.path.count + r.requestId.count + r.userAgent.count + upstreamCount)
        case .combined:
            fields = 6
            variable = r.client.count + 2 * (r.requestLine.count + r.referer.count + r.userAgent.count) + upstreamCount + r.requestId.count
        }
        let need = Self.fixedReserve + variable
        if buffer == nil { buffer = pool.acquire() }
        if buffer.unwrapped.writableCount < need { flush(); if buffer == nil { buffer = pool.acquire() } }
        guard buffer.unwrapped.writableCount >= Self.fixedReserve + 64 * fields else { return }
        // Normally every field fits whole; a line whose worst case exceeds even an empty buffer gets equal shares.
        let limit = buffer.unwrapped.writableCount >= need ? Int.max : (buffer.unwrapped.writableCount - Self.fixedReserve) / fields
        var b = buffer.take()!
        switch format {
        case .combined:
            b.append(r.client)
            b.append(" - - [")
            time.common(r.startWallMs, into: &b)
            b.append("] ")
            Self.appendQuotedCLF(r.requestLine, limit: limit, into: &b)
            b.append(byte: 32)
            b.append(decimal: Int64(r.status))
            b.append(byte: 32)
            b.append(decimal: r.bytesSent)
            b.append(byte: 32)
            Self.appendQuotedCLF(r.referer, limit: limit, into: &b)
            b.append(byte: 32)
            Self.appendQuotedCLF(r.userAgent, limit: limit, into: &b)
            b.append(" upstream=")
            b.append(r.upstream ?? "-")
            b.append(" upstream_time=")
            Self.appendMillis(r.upstreamMicros, into: &b)
            b.append(" time=")
            Self.appendMillis(r.totalMicros, into: &b)
            b.append(" request_id=")
            b.append(r.requestId)
            b.append(byte: 10)
        case .json:
            b.append("{\"time\":\"")
            time.iso8601(r.startWallMs, into: &b)
            b.append("\",\"client\":")
            Self.appendJSONString(r.client, limit: limit, into: &b)
            b.append(",\"method\":")
            Self.appendJSONString(r.method, limit: limit, into: &b)
            b.append(",\"path\":")
            Self.appendJSONString(r.path, limit: limit, into: &b)
            b.append(",\"status\":")
            b.append(decimal: Int64(r.status))
            b.append(",\"bytes\":")
            b.append(decimal: r.bytesSent)
            b.append(",\"upstream\":")
            if let u = r.upstream { Self.appendJSONString(u, limit: limit, into: &b) } else { b.append("null") }
            b.append(",\"upstream_time_ms\":")
            Self.appendMillis(r.upstreamMicros, into: &b)
            b.append(",\"total_time_ms\":")
            Self.appendMillis(r.totalMicros, into: &b)
            b.append(",\"request_id\":")
            Self.appendJSONString(r.requestId, limit: limit, into: &b)
            b.append(",\"user_agent\":")
            Self.appendJSONString(r.userAgent, limit: limit, into: &b)
            b.append("}\n")
        }
        buffer = consume b
    }

    /// Writes out what has accumulated; called at the end of each loop turn.
    func flush() {
        guard let fd, var b = buffer.take() else { return }
        while b.readableCount > 0 {
            let n = Glibc.write(fd, b.readPointer, b.readableCount)
            if n <= 0 { break }
            b.readIndex += n
        }
    }
}
