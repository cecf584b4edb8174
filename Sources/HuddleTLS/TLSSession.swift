// One TLS connection (an OpenSSL `SSL`) over a non-blocking socket: handshake, read, write, close_notify.
// Used by the Transport seam: a plain socket and a TLS socket move bytes through the same five calls.
import COpenSSL
import HuddleSys

/// What a TLS call needs before it can go on.
public enum TLSWait: Sendable, Equatable {
    case readable
    case writable
}

public enum TLSHandshakeResult: Sendable, Equatable {
    case done
    case waiting(TLSWait)
    case failed(String)
}

// SAFETY: an SSL object is used by one thread at a time: the connection's worker (or the prober's loop).
public final class TLSSession: @unchecked Sendable {
    let ssl: OpaquePointer
    /// Keeps the context (and its SNI/ticket machinery) alive while the SSL object may call back into it.
    private let context: AnyObject
    private var closed = false
    /// Client side: which server's sessions this one resumes and refreshes.
    var cacheKey: String?
    var owner: AnyObject { context }

    /// Set by the socket BIO's callback (COpenSSL's `huddle_SSL_watch_short_reads`): whether its latest recv came back
    /// short. Owned here, freed after the SSL object that points to it.
    private let shortRead: UnsafeMutablePointer<Int32>

    /// `ssl` must already have its socket (`SSL_set_fd`).
    init(ssl: OpaquePointer, context: AnyObject) {
        self.ssl = ssl
        self.context = context
        shortRead = .allocate(capacity: 1)
        shortRead.initialize(to: 0)
        _ = huddle_SSL_set_mode(ssl, Int(SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        huddle_SSL_watch_short_reads(ssl, shortRead)
    }

    deinit {
        SSL_free(ssl)
        shortRead.deallocate()
    }

    // The thread's OpenSSL error queue must be empty when an I/O call starts, or SSL_get_error misreads a would-block as
    // a failure. As in HAProxy, it is emptied after every call that may leave something in it (a failure, a handshake,
    // a shutdown) rather than before every read and write: clearing costs a thread-local lookup per call, about 1.5%
    // of a keep-alive HTTPS request's CPU (perf, 2026-12-03).

    /// Drives the handshake as far as the socket allows.
    public func handshake() -> TLSHandshakeResult {
        ERR_clear_error()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            ERR_clear_error()
            return .done
        }
        let e = SSL_get_error(ssl, r)
        switch e {
        case SSL_ERROR_WANT_READ: return .waiting(.readable)
        case SSL_ERROR_WANT_WRITE: return .waiting(.writable)
        default:
            let text = failureText(e, r)
            ERR_clear_error()
            return .failed(text)
        }
    }

    /// Decrypted bytes into `buffer`: keeps reading records until the buffer is full or the socket is drained, so a
    /// short result means what a short read means on a plain socket (nothing more to read until the next edge).
    public func read(_ buffer: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        var total = 0
        while total < count {
            var n = 0
            if SSL_read_ex(ssl, buffer + total, count - total, &n) == 1 {
                total += n
                // Nothing buffered in OpenSSL and the socket came up short at its latest recv: drained, as a short read
                // on a plain socket says. Asking again would cost a recv that fails with EAGAIN (one per request on a
                // keep-alive connection). With RELEASE_BUFFERS the emptied read buffer is already given back.
                if shortRead.pointee != 0 && SSL_has_pending(ssl) == 0 { return .done(total) }
                continue
            }
            let e = SSL_get_error(ssl, 0)
            let sysErr = Errno.current
            if e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE { ERR_clear_error() }
            switch e {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                // The socket is drained. SSL_MODE_RELEASE_BUFFERS gives the record read buffer (about 17 KiB) back
                // only when a record was consumed, not after a read that found nothing, so every connection waiting
                // for its peer would keep one: give it back now unless part of a record is still buffered (then
                // SSL_free_buffers refuses anyway). An idle TLS tunnel or keep-alive connection holds no buffer.
                if e == SSL_ERROR_WANT_READ && SSL_has_pending(ssl) == 0 { _ = SSL_free_buffers(ssl) }
                return total > 0 ? .done(total) : .wouldBlock
            case SSL_ERROR_ZERO_RETURN:
                // close_notify: the end of the stream. Bytes before it are returned first.
                return .done(total)
            case SSL_ERROR_SYSCALL:
                if total > 0 { return .done(total) }
                if sysErr.code == 0 { return .done(0) }   // EOF without close_notify (SSL_OP_IGNORE_UNEXPECTED_EOF)
                throw sysErr
            default:
                if total > 0 { return .done(total) }
                throw Errno(EPROTO)
            }
        }
        return .done(total)
    }

    /// Encrypts and sends `count` bytes (one record, or several up to 16 KiB each).
    public func write(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> {
        if count == 0 { return .done(0) }
        var n = 0
        if SSL_write_ex(ssl, buffer, count, &n) == 1 { return .done(n) }
        let e = SSL_get_error(ssl, 0)
        let sysErr = Errno.current
        if e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE { ERR_clear_error() }
        switch e {
        case SSL_ERROR_WANT_WRITE, SSL_ERROR_WANT_READ:
            return .wouldBlock
        case SSL_ERROR_SYSCALL:
            throw sysErr.code == 0 ? Errno(EPIPE) : sysErr
        default:
            throw Errno(EPROTO)
        }
    }

    /// Two regions as one TLS record when they fit in one (a response head and a small body: one record, one
    /// encryption, one packet), else one after the other. A retry after a would-block presents the same bytes again.
    public func writev(_ a: UnsafeRawPointer?, _ aCount: Int, _ b: UnsafeRawPointer?, _ bCount: Int) throws(Errno) -> IOResult<Int> {
        if aCount == 0 { return bCount == 0 ? .done(0) : try write(b!, bCount) }
        if bCount == 0 { return try write(a!, aCount) }
        if aCount + bCount <= TLSScratch.size {
            let s = TLSScratch.buffer()
            s.copyMemory(from: a!, byteCount: aCount)
            (s + aCount).copyMemory(from: b!, byteCount: bCount)
            return try write(s, aCount + bCount)
        }
        guard case .done(let n) = try write(a!, aCount) else { return .wouldBlock }
        if n < aCount { return .done(n) }
        switch try write(b!, bCount) {
        case .done(let m): return .done(n + m)
        case .wouldBlock: return .done(n)
        }
    }

    /// Sends close_notify once (without waiting for the peer's).
    public func shutdown() {
        guard !closed else { return }
        closed = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()   // a peer already gone leaves an error behind
    }

    /// The protocol agreed ("TLSv1.3") and whether the session was resumed.
    public var version: String { String(cString: SSL_get_version(ssl)) }
    public var resumed: Bool { SSL_session_reused(ssl) == 1 }

    /// The server name the client asked for (SNI), if any.
    public var serverName: String? {
        guard let p = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else { return nil }
        return String(cString: p)
    }

    /// A session to resume on a later connection to the same server (client side).
    func takeSession() -> OpaquePointer? { SSL_get1_session(ssl) }

    private func failureText(_ e: Int32, _ r: Int32) -> String {
        var parts: [String] = []
        let verify = SSL_get_verify_result(ssl)
        if verify != Int(X509_V_OK) {
            parts.append("certificate verify failed: " + String(cString: X509_verify_cert_error_string(verify)))
        }
        let queued = TLSErrors.drain()
        if !queued.isEmpty { parts.append(queued) }
        if parts.isEmpty {
            switch e {
            case SSL_ERROR_SYSCALL:
                let err = Errno.current
                parts.append(err.code == 0 ? "the peer closed the connection during the handshake" : "\(err)")
            case SSL_ERROR_ZERO_RETURN:
                parts.append("the peer closed the connection during the handshake")
            default:
                parts.append("TLS error \(e)")
            }
        }
        return parts.joined(separator: "; ")
    }
}

/// OpenSSL's thread-local error queue, as text.
public enum TLSErrors {
    /// Every queued error as "reason (lib)", joined; the queue is left empty.
    public static func drain() -> String {
        var out: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            let text = String(cBuffer: buf)
            // "error:0A000086:SSL routines::certificate verify failed" -> the part after the last "::" or ":".
            let reason = text.split(separator: ":", omittingEmptySubsequences: false).last.map(String.init) ?? text
            out.append(reason.isEmpty ? text : reason)
        }
        return out.joined(separator: "; ")
    }
}

extension String {
    /// The text of a NUL-terminated C buffer.
    init(cBuffer buf: [CChar]) {
        let end = buf.firstIndex(of: 0) ?? buf.count
        self = String(decoding: buf[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
