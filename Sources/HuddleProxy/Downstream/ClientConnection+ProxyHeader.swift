// The first phase of a connection on a `listen ... proxy_protocol` listener: the PROXY protocol header, read before
// anything else (HAProxy's proxy-protocol.txt: the receiver must not process the connection before it has a complete
// and valid header). Its source address becomes the connection's client; what follows it is the first request.
import HuddleHTTP
import HuddleIO
import HuddleSys

extension ClientConnection {
    /// Returns true when the header is complete and the phase moved on to reading requests.
    func readProxyHeader() -> Bool {
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
            if inBuf == nil {
                // Room for the largest v2 header and a request head after it.
                inBuf = loop.buffers.acquire(minimumCapacity: max(block.config.maxHeaderSize, ProxyProtocolParser.defaultMaxV2Length))
            }
            let r: IOResult<Int>
            do {
                r = try stream.read(inBuf.unwrapped.writePointer, inBuf.unwrapped.writableCount)
            } catch {
                log.debug("client \(socketPeerText): read failed before a complete PROXY protocol header: \(error)")
                close()
                return false
            }
            switch r {
            case .wouldBlock:
                canRead = false
            case .done(0):
                if let n = inBuf?.readableCount, n > 0 {
                    log.warn("client \(socketPeerText): closed the connection before a complete PROXY protocol header (\(n) bytes received)")
                } else {
                    // What a load balancer's TCP health check does: not worth a warning.
                    log.debug("client \(socketPeerText): closed the connection without sending anything")
                }
                close()
                return false
            case .done(let n):
                if n < inBuf.unwrapped.writableCount && !sawHangup { canRead = false }
                inBuf.unwrapped.writeIndex += n
                lastActivity = loop.now
            }
        }
    }

    private var socketPeerText: String { socketPeer?.description ?? "-" }

    /// The header is in: its addresses (if it names a TCP connection) become the client's, its bytes are dropped, and
    /// whatever followed them stays in the input buffer as the start of the first request.
    private func proxyHeaderReceived(_ h: ProxyProtocolHeader) {
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
        inBuf.unwrapped.readIndex += h.length
        if inBuf.unwrapped.readableCount == 0 { inBuf = nil }
        // The request's own header_timeout starts with its first byte (beginHead), as on any listener.
        phase = .idle
        lastActivity = loop.now
        armTimer()
    }
}
