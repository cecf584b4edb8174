// TLS to backends (and to their health checks): verify the chain and the name by default, send SNI, and resume the
// last session with each server on the next connection to it.
import COpenSSL
import Glibc
import HuddleSync
import HuddleSys

// SAFETY: `ctx` is only configured in init; the session cache is behind a lock.
public final class ClientTLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let verify: Bool
    /// The name to send as SNI and verify, when the config gives one (else each server's own host).
    public let serverName: String?
    /// The newest resumable session per server (its address as written), owned here (one reference each).
    private let sessions = Locked<[String: OpaquePointer]>([:])

    public init(verify: Bool, caFile: String?, serverName: String?) throws {
        guard let c = SSL_CTX_new(huddle_TLS_client_method()) else { throw TLSLoadError("cannot create a TLS context: \(TLSErrors.drain())") }
        ctx = c
        self.verify = verify
        self.serverName = serverName
        _ = huddle_SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION)
        _ = huddle_SSL_CTX_set_options64(c, huddle_SSL_OP_NO_COMPRESSION | huddle_SSL_OP_IGNORE_UNEXPECTED_EOF | huddle_SSL_OP_NO_RENEGOTIATION)
        _ = huddle_SSL_CTX_set_mode(c, Int(SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        // Read ahead: one read(2) takes whole records (several when they are there) instead of a 5-byte header read and
        // a body read per record. Reads go on until WANT_READ, so nothing is left behind for an edge-triggered loop.
        huddle_SSL_CTX_set_read_ahead(c, 1)
        if verify {
            SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nil)
            ERR_clear_error()
            if let ca = caFile {
                guard SSL_CTX_load_verify_locations(c, ca, nil) == 1 else {
                    SSL_CTX_free(c)
                    throw TLSLoadError("cannot load CA bundle \(ca): \(TLSErrors.drain())")
                }
            } else {
                _ = SSL_CTX_set_default_verify_paths(c)
            }
        } else {
            SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nil)
        }
        // Sessions reach us through the callback (TLS 1.3 tickets come after the handshake); OpenSSL keeps none itself.
        _ = huddle_SSL_CTX_set_session_cache_mode(c, Int(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE))
        SSL_CTX_sess_set_new_cb(c, newSessionCallback)
    }

    deinit {
        sessions.withLock { for s in $0.values { SSL_SESSION_free(s) } }
        SSL_CTX_free(ctx)
    }

    /// A client-side session on a connected (or connecting) socket to `host` (the server's host as written);
    /// `cacheKey` identifies the server for session resumption.
    public func session(fd: Int32, host: String, cacheKey: String) -> TLSSession? {
        guard let ssl = SSL_new(ctx) else { return nil }
        _ = SSL_set_fd(ssl, fd)
        SSL_set_connect_state(ssl)
        let name = serverName ?? host
        let isIP = Self.isIPLiteral(name)
        // RFC 6066: SNI carries host names only, never an address literal.
        if !isIP { _ = huddle_SSL_set_tlsext_host_name(ssl, name) }
        if verify {
            if isIP {
                _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
            } else {
                _ = SSL_set1_host(ssl, name)
            }
        }
        let s = TLSSession(ssl: ssl, context: self)
        s.cacheKey = cacheKey
        _ = huddle_SSL_set_app_data(ssl, Unmanaged.passUnretained(s).toOpaque())
        let cached: OpaquePointer? = sessions.withLock { $0[cacheKey] }
        if let cached { _ = SSL_set_session(ssl, cached) }
        return s
    }

    /// Keeps `session` (whose reference the caller hands over) as the one to resume with `key`.
    fileprivate func store(_ session: OpaquePointer, key: String) {
        let old: OpaquePointer? = sessions.withLock { d in
            let o = d[key]
            d[key] = session
            return o
        }
        if let old { SSL_SESSION_free(old) }
    }

    static func isIPLiteral(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        let bare = s.hasPrefix("[") && s.hasSuffix("]") ? String(s.dropFirst().dropLast()) : s
        return inet_pton(AF_INET, bare, &v4) == 1 || inet_pton(AF_INET6, bare, &v6) == 1
    }
}

/// A new resumable session (TLS 1.2 at the end of the handshake, TLS 1.3 with each ticket): keep it for the server.
private let newSessionCallback: @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32 = { ssl, session in
    guard let ssl, let session, let p = huddle_SSL_get_app_data(ssl) else { return 0 }
    let s = Unmanaged<TLSSession>.fromOpaque(p).takeUnretainedValue()
    guard let key = s.cacheKey, let owner = s.owner as? ClientTLSContext else { return 0 }
    owner.store(session, key: key)
    return 1   // we own the reference now
}
