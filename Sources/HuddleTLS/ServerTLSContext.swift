// TLS termination for one server block: a certificate per name set, chosen by SNI (exact names first, then
// *.wildcards, else the first pair), ALPN http/1.1, TLS 1.2/1.3 with a modern cipher list, a session cache and
// session tickets sealed with keys Huddle rotates.
import COpenSSL
import HuddleSys

public struct TLSLoadError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One certificate chain and key, and the DNS names it serves (from subjectAltName, else the subject's CN).
struct CertifiedContext {
    let ctx: OpaquePointer
    let exactNames: Set<String>
    /// Wildcard names without the leading "*." (lower case).
    let wildcardSuffixes: Set<String>
}

// SAFETY: built once, then only read; OpenSSL's SSL_CTX is safe to use from several threads.
public final class ServerTLSContext: @unchecked Sendable {
    private let contexts: [CertifiedContext]
    private let tickets: TicketKeyRing
    /// Handshakes that resumed a session (cache or ticket) and all handshakes, as OpenSSL counts them.
    public var resumedHandshakes: Int { Int(huddle_SSL_CTX_get_session_cache_hits(contexts[0].ctx)) }

    /// Mozilla's "intermediate" TLS 1.2 suites (forward secret AEADs only); TLS 1.3 uses OpenSSL's defaults.
    static let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    /// Loads every pair (certificate chain file, key file); any unreadable file or key that does not match its
    /// certificate is an error naming the file, and nothing is kept.
    public init(pairs: [(certificate: String, key: String)], minVersion: Int32, maxVersion: Int32, tickets: TicketKeyRing) throws {
        precondition(!pairs.isEmpty, "a TLS listener needs at least one certificate")
        self.tickets = tickets
        var built: [CertifiedContext] = []
        do {
            for p in pairs {
                guard let ctx = SSL_CTX_new(huddle_TLS_server_method()) else { throw TLSLoadError("cannot create a TLS context: \(TLSErrors.drain())") }
                built.append(CertifiedContext(ctx: ctx, exactNames: [], wildcardSuffixes: []))
                try Self.configure(ctx, minVersion: minVersion, maxVersion: maxVersion)
                ERR_clear_error()
                guard SSL_CTX_use_certificate_chain_file(ctx, p.certificate) == 1 else {
                    throw TLSLoadError("cannot load certificate \(p.certificate): \(TLSErrors.drain())")
                }
                guard SSL_CTX_use_PrivateKey_file(ctx, p.key, SSL_FILETYPE_PEM) == 1 else {
                    let why = TLSErrors.drain()
                    if why.contains("mismatch") {
                        throw TLSLoadError("private key \(p.key) does not match certificate \(p.certificate): \(why)")
                    }
                    throw TLSLoadError("cannot load private key \(p.key): \(why)")
                }
                guard SSL_CTX_check_private_key(ctx) == 1 else {
                    throw TLSLoadError("private key \(p.key) does not match certificate \(p.certificate): \(TLSErrors.drain())")
                }
                let names = Self.dnsNames(ctx)
                built[built.count - 1] = CertifiedContext(ctx: ctx, exactNames: Set(names.filter { !$0.hasPrefix("*.") }),
                                                          wildcardSuffixes: Set(names.filter { $0.hasPrefix("*.") }.map { String($0.dropFirst(2)) }))
            }
        } catch {
            for c in built { SSL_CTX_free(c.ctx) }
            throw error
        }
        contexts = built
        let me = Unmanaged.passUnretained(self).toOpaque()
        for c in contexts {
            // The ticket callback finds the key ring through the context's app data (ex_data slot 0).
            _ = SSL_CTX_set_ex_data(c.ctx, 0, me)
            // Every context can be the one a handshake starts on (the first) or switches to (by SNI); all share the
            // ticket keys, so a ticket issued under one name resumes under it on any worker.
            _ = huddle_SSL_CTX_set_tlsext_servername_callback(c.ctx, serverNameCallback)
            _ = huddle_SSL_CTX_set_tlsext_servername_arg(c.ctx, me)
            _ = huddle_SSL_CTX_set_tlsext_ticket_key_cb(c.ctx, ticketKeyCallback)
            SSL_CTX_set_alpn_select_cb(c.ctx, alpnCallback, nil)
        }
    }

    deinit {
        for c in contexts { SSL_CTX_free(c.ctx) }
    }

    private static func configure(_ ctx: OpaquePointer, minVersion: Int32, maxVersion: Int32) throws {
        guard huddle_SSL_CTX_set_min_proto_version(ctx, minVersion) == 1, huddle_SSL_CTX_set_max_proto_version(ctx, maxVersion) == 1 else {
            throw TLSLoadError("cannot set the TLS versions: \(TLSErrors.drain())")
        }
        guard SSL_CTX_set_cipher_list(ctx, tls12Ciphers) == 1 else { throw TLSLoadError("cannot set the cipher list: \(TLSErrors.drain())") }
        _ = huddle_SSL_CTX_set_options64(ctx, huddle_SSL_OP_NO_COMPRESSION | huddle_SSL_OP_CIPHER_SERVER_PREFERENCE
            | huddle_SSL_OP_IGNORE_UNEXPECTED_EOF | huddle_SSL_OP_NO_RENEGOTIATION)
        _ = huddle_SSL_CTX_set_mode(ctx, Int(SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        // Read ahead: one read(2) takes whole records (several when they are there) instead of a 5-byte header read and
        // a body read per record. Reads go on until WANT_READ, so nothing is left behind for an edge-triggered loop.
        huddle_SSL_CTX_set_read_ahead(ctx, 1)
        _ = huddle_SSL_CTX_set_session_cache_mode(ctx, Int(SSL_SESS_CACHE_SERVER))
        _ = huddle_SSL_CTX_sess_set_cache_size(ctx, 20_000)
        _ = SSL_CTX_set_timeout(ctx, 3600)
        let sid: [UInt8] = Array("huddle".utf8)
        _ = SSL_CTX_set_session_id_context(ctx, sid, UInt32(sid.count))
        // TLS 1.3: send two tickets (the client may open two connections); they are sealed by our rotating keys.
        _ = SSL_CTX_set_num_tickets(ctx, 2)
    }

    /// The DNS names a certificate serves, lower case.
    private static func dnsNames(_ ctx: OpaquePointer) -> [String] {
        guard let cert = SSL_CTX_get0_certificate(ctx) else { return [] }
        var names: [String] = []
        if let sans = huddle_X509_subject_alt_names(cert) {
            for i in 0..<huddle_sk_GENERAL_NAME_num(sans) {
                var data: UnsafePointer<UInt8>? = nil
                var len: Int32 = 0
                if huddle_GENERAL_NAME_dns(huddle_sk_GENERAL_NAME_value(sans, i), &data, &len) == 1, let d = data {
                    names.append(String(decoding: UnsafeBufferPointer(start: d, count: Int(len)), as: UTF8.self).lowercased())
                }
            }
            huddle_GENERAL_NAMES_free(sans)
        }
        if names.isEmpty, let subject = X509_get_subject_name(cert) {
            var buf = [CChar](repeating: 0, count: 256)
            if X509_NAME_get_text_by_NID(subject, NID_commonName, &buf, Int32(buf.count)) > 0 {
                names.append(String(cBuffer: buf).lowercased())
            }
        }
        return names
    }

    /// The context whose certificate serves `name`: an exact name, else a wildcard one label deep, else the first.
    func context(for name: String?) -> OpaquePointer {
        guard let raw = name else { return contexts[0].ctx }
        let n = raw.lowercased()
        if let c = contexts.first(where: { $0.exactNames.contains(n) }) { return c.ctx }
        if let dot = n.firstIndex(of: ".") {
            let suffix = String(n[n.index(after: dot)...])
            if let c = contexts.first(where: { $0.wildcardSuffixes.contains(suffix) }) { return c.ctx }
        }
        return contexts[0].ctx
    }

    /// The names each certificate serves, in config order (for logs and tests).
    public var servedNames: [[String]] { contexts.map { Array($0.exactNames).sorted() + $0.wildcardSuffixes.sorted().map { "*." + $0 } } }

    /// A server-side session for an accepted socket.
    public func session(fd: Int32) -> TLSSession? {
        guard let ssl = SSL_new(contexts[0].ctx) else { return nil }
        _ = SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
        return TLSSession(ssl: ssl, context: self)
    }

    fileprivate var ticketKeys: TicketKeyRing { tickets }
}

/// SNI: switch the handshake to the certificate that serves the requested name.
private let serverNameCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { ssl, _, arg in
    guard let ssl, let arg else { return SSL_TLSEXT_ERR_OK }
    let me = Unmanaged<ServerTLSContext>.fromOpaque(arg).takeUnretainedValue()
    let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
    let ctx = me.context(for: name)
    if ctx != SSL_get_SSL_CTX(ssl) { _ = SSL_set_SSL_CTX(ssl, ctx) }
    return SSL_TLSEXT_ERR_OK
}

/// ALPN: HTTP/1.1 is what Huddle speaks; a client offering only other protocols gets no ALPN answer.
private let alpnCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
                                          UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?) -> Int32 = { _, out, outlen, input, inlen, _ in
    guard let out, let outlen, let input else { return SSL_TLSEXT_ERR_NOACK }
    var i = 0
    while i < Int(inlen) {
        let n = Int(input[i])
        if i + 1 + n > Int(inlen) { break }
        if n == 8 && memcmp(input + i + 1, http11ALPN, 8) == 0 {
            out.pointee = input + i + 1
            outlen.pointee = 8
            return SSL_TLSEXT_ERR_OK
        }
        i += 1 + n
    }
    return SSL_TLSEXT_ERR_NOACK
}

// SAFETY: written once at initialisation, then only read.
nonisolated(unsafe) private let http11ALPN: UnsafeMutablePointer<UInt8> = {
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 8)
    for (i, b) in "http/1.1".utf8.enumerated() { p[i] = b }
    return p
}()

/// Session tickets: sealed with the current key, opened with the current or a recent one (then renewed).
private let ticketKeyCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?,
                                               OpaquePointer?, OpaquePointer?, Int32) -> Int32 = { ssl, name, iv, cipher, mac, enc in
    guard let ssl, let name, let iv, let cipher, let mac, let arg = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0) else { return -1 }
    let ring = Unmanaged<ServerTLSContext>.fromOpaque(arg).takeUnretainedValue().ticketKeys
    if enc == 1 {
        let k = ring.current()
        k.name.withUnsafeBytes { name.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: 16) }
        guard RAND_bytes(iv, 16) == 1 else { return -1 }
        return TicketKeyRing.initialize(cipher: cipher, mac: mac, key: k, iv: iv, encrypt: true) ? 1 : -1
    }
    guard let (k, isCurrent) = ring.find(name: UnsafeRawBufferPointer(start: name, count: 16)) else { return 0 }
    guard TicketKeyRing.initialize(cipher: cipher, mac: mac, key: k, iv: iv, encrypt: false) else { return -1 }
    // A ticket under an older key still resumes, and the client gets a fresh one under the current key.
    return isCurrent ? 1 : 2
}
