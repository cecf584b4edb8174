// The first phase of a connection on a `listen ... proxy_protocol` listener: the PROXY protocol header, read before
// anything else (HAProxy's proxy-protocol.txt: the receiver must not process the connection before it has a complete
// and valid header). Its source address becomes the connection's client; what follows it is the first request.
import HuddleHTTP
import HuddleIO
import HuddleSys

extension ClientConnection {
    /// Returns true when the header is complete and the phase moved on to reading requests (or to the TLS handshake).
    func readProxyHeader() -> Bool {
        if stream.tls != nil { return readProxyHeaderBeforeTLS() }
        while true {
            if let n = inBuf?.readableCount, n > 0 {
                switch proxyHeaderParser!.parse(inBuf.unwrapped.readableBytes) {
                case .complete(let h):
                    proxyHeaderReceived(h)
                    return true
                case .error(let e):
                    // Nothing is answered: the peer may not speak HTTP at all (or speaks it to the wrong port).
                    log.warn("client \(socketPeerText): invalid PROXY protocol header on a proxy_protocol listener: \(e.reason) (at byte \(e.offset) of \(n) received); closing")
                    close()
                    return false
                case .needMore:
                    break
                }
            }
            guard canRead else {
                armTimer()
                return false
            }
            // Room for the largest v2 header and a request head after it.
            switch readIntoInput(minimumCapacity: max(block.config.maxHeaderSize, ProxyProtocolParser.defaultMaxV2Length)) {
            case .drained, .read:
                break
            case .failed(let error):
                log.debug("client \(socketPeerText): read failed before a complete PROXY protocol header: \(error)")
                close()
                return false
            case .closed(let received):
                if received > 0 {
                    log.warn("client \(socketPeerText): closed the connection before a complete PROXY protocol header (\(received) bytes received)")
                } else {
                    // What a load balancer's TCP health check does: not worth a warning.
                    log.debug("client \(socketPeerText): closed the connection without sending anything")
                }
                close()
                return false
            }
        }
    }

    private var socketPeerText: String { socketPeer?.description ?? "-" }

    /// On a `tls proxy_protocol` listener the header comes before the TLS handshake, on the raw socket: it is looked at
    /// with MSG_PEEK and only its own bytes are taken, so everything after it (the ClientHello) stays for OpenSSL.
    private func readProxyHeaderBeforeTLS() -> Bool {
        if inBuf == nil { inBuf = loop.buffers.acquire(minimumCapacity: ProxyProtocolParser.defaultMaxV2Length) }
        let r: IOResult<Int>
        do {
            inBuf.unwrapped.clear()
            r = try Sys.peek(stream.fd, inBuf.unwrapped.writePointer, inBuf.unwrapped.writableCount)
        } catch {
            log.debug("client \(socketPeerText): read failed before a complete PROXY protocol header: \(error)")
            close()
            return false
        }
        switch r {
        case .wouldBlock:
            canRead = false
            inBuf = nil
            armTimer()
            return false
        case .done(0):
            log.debug("client \(socketPeerText): closed the connection without a PROXY protocol header")
            close()
            return false
        case .done(let n):
            inBuf.unwrapped.writeIndex = n
        }
        // A fresh parser each time: the peeked bytes start from the beginning of the stream again.
        var parser = ProxyProtocolParser()
        switch parser.parse(inBuf.unwrapped.readableBytes) {
        case .complete(let h):
            // Take exactly the header's bytes off the socket.
            var taken = 0
            while taken < h.length {
                guard case .done(let m) = (try? Sys.recv(stream.fd, inBuf.unwrapped.base, h.length - taken)) ?? .done(0), m > 0 else {
                    close()
                    return false
                }
                taken += m
            }
            inBuf = nil
            proxyHeaderReceived(h, keepBuffer: false)
            return true
        case .error(let e):
            log.warn("client \(socketPeerText): invalid PROXY protocol header on a proxy_protocol listener: \(e.reason) (at byte \(e.offset) of \(inBuf?.readableCount ?? 0) received); closing")
            close()
            return false
        case .needMore:
            // Nothing consumed: the rest of the header raises a new edge when it arrives.
            canRead = false
            inBuf = nil
            armTimer()
            return false
        }
    }

    /// The header is in: its addresses (if it names a TCP connection) become the client's, its bytes are dropped, and
    /// whatever followed them stays in the input buffer as the start of the first request.
    private func proxyHeaderReceived(_ h: ProxyProtocolHeader, keepBuffer: Bool = true) {
        if case .tcp(let source, let destination) = h.addresses,
           let s = SocketAddress(ipBytes: source.address.bytes, port: source.port),
           let d = SocketAddress(ipBytes: destination.address.bytes, port: destination.port) {
            setClient(s, destination: d)
            log.debug("client \(s) via \(socketPeerText) (PROXY protocol \(h.version), to \(d))")
        } else {
            // LOCAL or UNKNOWN: the connection is the sender's own, or it had nothing to say; the socket's peer stays.
            log.debug("client \(socketPeerText): PROXY protocol \(h.version) header without a client address (\(h.addresses)); using the socket's")
        }
        proxyHeaderParser = nil
        if keepBuffer {
            inBuf.unwrapped.readIndex += h.length
            if inBuf.unwrapped.readableCount == 0 { inBuf = nil }
        }
        // The request's own header_timeout starts with its first byte (beginHead), as on any listener; a TLS
        // connection's handshake comes first, with its own timeout.
        if stream.tls != nil {
            phase = .handshaking
            phaseStart = loop.now
            armTimer()
            return
        }
        phase = .idle
        lastActivity = loop.now
        armTimer()
    }
}
