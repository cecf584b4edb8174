// `send_proxy_protocol v1|v2`: the header a new backend connection starts with, and the rule that such a connection
// serves one client connection only. The backend attributes everything on a connection to the client its header named,
// so a connection that carried client A's header must never carry client B's requests (HAProxy likewise treats
// send-proxy connections as private to their session). It is kept between this client's requests instead, and closed
// with the client connection.
import HuddleConfig
import HuddleHTTP
import HuddleSys

extension ClientConnection {
    /// The header for a new backend connection: the client (from the listener's PROXY header if there was one) and
    /// what it connected to. Without a known client address: `PROXY UNKNOWN` (v1) or LOCAL (v2).
    func proxyProtocolHeader(_ version: ProxyProtocolVersion) -> [UInt8] {
        let source = client.map { ProxyEndpoint($0) }
        let destination = clientLocalAddress.map { ProxyEndpoint($0) }
        return ProxyProtocolWriter.header(version == .v1 ? .v1 : .v2, source: source, destination: destination)
    }

    /// This client's idle backend connection to `s`, if it has one that is still open.
    func takePrivateUpstream(_ s: ServerRuntime) -> UpstreamConnection<Net>? {
        guard let c = privateUpstream, c.server === s else { return nil }
        privateUpstream = nil
        loop.timers.cancel(c)
        return c.isClosed ? nil : c
    }

    /// A private backend connection finished a clean exchange: it waits here for this client's next request (one at a
    /// time; a newer one replaces it), with the upstream's keepalive_timeout, unless the pool is off (keepalive 0),
    /// Huddle is stopping, or this connection is closing.
    func keepPrivateUpstream(_ c: UpstreamConnection<Net>) {
        let pooling = c.server.pooling
        guard phase != .closed, pooling.keepalive > 0, !worker.shuttingDown else {
            c.close()
            return
        }
        if let old = privateUpstream, old !== c { old.close() }
        c.reused = true
        c.canWrite = true
        privateUpstream = c
        // An idle private connection behaves like a pooled one: its timer and a server close end it (through
        // UpstreamPool.discard, which closes a connection it does not hold); `takePrivateUpstream` skips it then.
        loop.timers.schedule(c, at: loop.now + pooling.keepaliveTimeoutMs)
    }
}

extension ProxyEndpoint {
    init(_ a: SocketAddress) {
        self.init(address: IPAddress(bytes: a.ipBytes)!, port: a.port)
    }
}
