// After a 101: bytes relayed both ways, copied through a pooled buffer while messages are small and spliced (zero-copy,
// pooled pipes) once a direction carries bulk data; copying is also the fallback where splice can't be used.
// An idle tunnel holds no buffer and no pipe: both are borrowed only while bytes are in flight.
import HuddleHTTP
import HuddleIO
import HuddleSys

/// One direction of a tunnel. Whatever it holds goes back to the pools when it is dropped.
struct TunnelDirection: ~Copyable {
    var pipe: Pipe?
    /// Copy path (and fallback when no pipe can be had).
    var buffer: IOBuffer?
    var sourceEOF = false
    var shutdownSent = false
    /// Small messages are copied (one read, one write); a direction that fills whole buffers switches to splice
    /// (like HAProxy's splice-auto), and back when transfers get small.
    var preferSplice = false
    /// Server-to-client WebSocket frames are followed (never buffered) so a Close frame can be added between them.
    var frames: WebSocketFrameBoundary?

    /// Bytes read from the source and not yet written to the destination.
    var inFlight: Int { (pipe != nil ? pipe.unwrapped.buffered : 0) + buffer.readableCountOrZero }
}

/// Why Huddle itself closes a WebSocket tunnel, and the Close code it sends both ways.
enum TunnelCloseReason {
    /// SIGTERM: 1001 (going away).
    case shutdown
    /// The group was migrated to another server: 1012 (service restart), so the client reconnects, and lands with the
    /// rest of its group on the new server.
    case groupMoved

    var code: UInt16 { self == .shutdown ? 1001 : 1012 }
}

/// A WebSocket Close frame with `code` from the server side: unmasked, no reason text.
func closeFrame(code: UInt16) -> [UInt8] { [0x88, 0x02, UInt8(code >> 8), UInt8(code & 0xFF)] }

/// The same Close as a client sends it: masked with `key` (RFC 6455 5.3).
func maskedCloseFrame(code: UInt16, key: UInt32) -> [UInt8] {
    let k: [UInt8] = [UInt8(key >> 24), UInt8(key >> 16 & 0xFF), UInt8(key >> 8 & 0xFF), UInt8(key & 0xFF)]
    return [0x88, 0x82] + k + [UInt8(code >> 8) ^ k[0], UInt8(code & 0xFF) ^ k[1]]
}

/// A tunnel owns the backend link (and so the backend connection), the group membership, its place in the worker's
/// tunnel count and its directions' pipes and buffers; its client connection drops it in its one teardown.
// SAFETY: on its worker's loop thread only.
final class Tunnel<Net: Network> {
    // SAFETY: the client connection owns the tunnel and outlives it.
    unowned(unsafe) let client: ClientConnection<Net>
    private var link: UpstreamLink?
    private var membership: GroupMembership?
    private var counted: CountToken?
    private var serverCounted: ServerTunnelCount?
    let server: ServerRuntime
    private var toServer = TunnelDirection()
    private var toClient = TunnelDirection()
    /// Shutting down or migrating: finish the current frame each way, then send both sides a Close and close.
    private var closing = false
    private var closeReason = TunnelCloseReason.shutdown
    /// The WebSocket server went away without a Close frame: once what it sent has reached the client, the tunnel
    /// closes (nothing the client sends can be answered any more).
    private var serverGone = false
    // Bytes that were already in user space when the tunnel began, sent first and in order: the 101 head and any
    // server bytes behind it go to the client, client bytes sent after its handshake go to the server.
    private var headOut: IOBuffer?
    private var serverEarly: IOBuffer?
    private var clientEarly: IOBuffer?

    init(client: ClientConnection<Net>, link: consuming UpstreamLink, membership: consuming GroupMembership?,
         headOut: consuming IOBuffer?, serverEarly: consuming IOBuffer?, clientEarly: consuming IOBuffer?, followFrames: Bool) {
        self.client = client
        server = link.typed(Net.self).server
        self.link = consume link
        self.membership = consume membership
        counted = CountToken(client.worker.counters, .tunnels)
        serverCounted = ServerTunnelCount(server)
        self.headOut = consume headOut
        self.serverEarly = consume serverEarly
        self.clientEarly = consume clientEarly
        if followFrames {
            // Frames are followed both ways so that a shutdown can insert Close frames between them. Bytes already
            // here (server frames right behind its 101, client frames right behind its handshake) count.
            var f = WebSocketFrameBoundary()
            if let b = self.serverEarly?.readableBytes { f.consume(b) }
            toClient.frames = f
            var g = WebSocketFrameBoundary()
            if let b = self.clientEarly?.readableBytes { g.consume(b) }
            toServer.frames = g
        }
    }

    var serverText: String { server.addressText }
    private var loop: EventLoop { client.worker.loop }
    private var hasServerLeftovers: Bool { (headOut?.readableCount ?? 0) > 0 || (serverEarly?.readableCount ?? 0) > 0 }
    private var hasClientLeftovers: Bool { (clientEarly?.readableCount ?? 0) > 0 }

    func step() {
        guard client.phase == .tunnel, link != nil else { return }
        let c = link.unwrapped.typed(Net.self)
        var ok = flushLeftovers(c)
        if ok {
            // While closing, stop taking new frames from the server once the current one is through.
            let stop = closing && (toClient.frames?.atBoundary ?? true)
            ok = pump(&toClient, from: c.stream, to: client.stream, canRead: &c.canRead, canWrite: &client.canWrite,
                      sourceHungUp: c.sawHangup, leftoversPending: hasServerLeftovers, readingStopped: stop, fromServer: true)
        }
        if ok {
            let stop = closing && (toServer.frames?.atBoundary ?? true)
            ok = pump(&toServer, from: client.stream, to: c.stream, canRead: &client.canRead, canWrite: &c.canWrite,
                      sourceHungUp: client.sawHangup, leftoversPending: hasClientLeftovers, readingStopped: stop, fromServer: false)
        }
        if !ok {
            client.close()
            return
        }
        if closing && !hasServerLeftovers && toClient.inFlight == 0 && (toClient.frames?.atBoundary ?? true)
            && !hasClientLeftovers && toServer.inFlight == 0 && (toServer.frames?.atBoundary ?? true) {
            if toClient.frames != nil {
                // Best effort, both ways, each a few bytes into a socket buffer that is empty now; if one would block,
                // the TCP close still says it. The client gets an unmasked Close 1001; the backend, for which Huddle is
                // the client, a masked one (RFC 6455 5.3).
                let code = closeReason.code
                if client.canWrite { closeFrame(code: code).withUnsafeBytes { _ = try? client.stream.write($0.baseAddress!, $0.count) } }
                if c.canWrite {
                    let frame = maskedCloseFrame(code: code, key: UInt32(truncatingIfNeeded: client.worker.rng.next()))
                    frame.withUnsafeBytes { _ = try? c.stream.write($0.baseAddress!, $0.count) }
                }
            }
            client.close()
            return
        }
        if serverGone && toClient.shutdownSent {
            client.close()
            return
        }
        if toServer.sourceEOF && toClient.sourceEOF && toServer.inFlight == 0 && toClient.inFlight == 0 {
            client.close()
            return
        }
        client.armTimer()
    }

    /// SIGTERM: at the next frame boundary in each direction, the WebSocket client and the backend each get a Close
    /// (1001, going away), then both sides close; other upgraded protocols just close.
    func beginShutdown() {
        closing = true
        step()
    }

    /// The placement of the group this tunnel is a member of, if any.
    var groupPlacement: UInt64? { membership?.placement }

    /// Whether the group placement this tunnel joined is still its group's (false once the group was moved).
    var membershipIsCurrent: Bool { membership?.isCurrent ?? true }

    /// Its group was migrated: at the next frame boundary each way, Close 1012 (service restart) to the client and to
    /// the backend, then both sides close; the client reconnects and joins the group on its new server. Shutdown wins
    /// if it already began.
    func beginMigration() {
        guard !closing else { return }
        closeReason = .groupMoved
        closing = true
        step()
    }

    /// Returns false on a fatal socket error.
    private func flushLeftovers(_ c: UpstreamConnection<Net>) -> Bool {
        while client.canWrite && (headOut?.readableCount ?? 0) > 0 {
            guard let n = write(client.stream, headOut.unwrapped.readPointer, headOut.unwrapped.readableCount, &client.canWrite, toServer: false) else { return false }
            if n == 0 { break }
            headOut.unwrapped.readIndex += n
        }
        if headOut?.readableCount == 0 { headOut = nil }
        if headOut == nil {
            while client.canWrite && (serverEarly?.readableCount ?? 0) > 0 {
                guard let n = write(client.stream, serverEarly.unwrapped.readPointer, serverEarly.unwrapped.readableCount, &client.canWrite, toServer: false) else { return false }
                if n == 0 { break }
                serverEarly.unwrapped.readIndex += n
                client.lastActivity = loop.now
            }
            if serverEarly?.readableCount == 0 { serverEarly = nil }
        }
        while c.canWrite && (clientEarly?.readableCount ?? 0) > 0 {
            guard let n = write(c.stream, clientEarly.unwrapped.readPointer, clientEarly.unwrapped.readableCount, &c.canWrite, toServer: true) else { return false }
            if n == 0 { break }
            clientEarly.unwrapped.readIndex += n
            client.lastActivity = loop.now
        }
        if clientEarly?.readableCount == 0 { clientEarly = nil }
        return true
    }

    /// Writes; nil on a fatal error, 0 when the socket would block.
    private func write(_ dst: Net.Stream, _ p: UnsafeRawPointer, _ n: Int, _ canWrite: inout Bool, toServer: Bool) -> Int? {
        do {
            switch try dst.write(p, n) {
            case .wouldBlock:
                canWrite = false
                return 0
            case .done(let w):
                return w
            }
        } catch {
            ended(toServer ? .serverError("write to the server failed: \(error)") : .clientError("write to the client failed: \(error)"))
            return nil
        }
    }

    /// Moves what it can from `src` to `dst`. Returns false on a fatal error.
    private func pump(_ d: inout TunnelDirection, from src: Net.Stream, to dst: Net.Stream, canRead: inout Bool, canWrite: inout Bool,
                      sourceHungUp: Bool, leftoversPending: Bool, readingStopped: Bool, fromServer: Bool) -> Bool {
        if leftoversPending { return true }
        while true {
            // Drain what is in flight first.
            if (d.pipe?.buffered ?? 0) > 0 {
                guard canWrite, let out = dst.spliceFD else { return true }
                do {
                    switch try Sys.splice(from: d.pipe.unwrapped.readFD, to: out, count: d.pipe.unwrapped.buffered) {
                    case .wouldBlock:
                        canWrite = false
                        return true
                    case .done(let n):
                        d.pipe.unwrapped.buffered -= n
                        client.lastActivity = loop.now
                        continue
                    }
                } catch {
                    ended(fromServer ? .clientError("splice to the client failed: \(error)") : .serverError("splice to the server failed: \(error)"))
                    return false
                }
            }
            if (d.buffer?.readableCount ?? 0) > 0 {
                guard canWrite else { return true }
                guard let n = write(dst, d.buffer.unwrapped.readPointer, d.buffer.unwrapped.readableCount, &canWrite, toServer: !fromServer) else { return false }
                if n == 0 { return true }
                d.buffer.unwrapped.readIndex += n
                client.lastActivity = loop.now
                continue
            }
            // Nothing in flight: give the pipe and buffer back so an idle tunnel holds neither.
            d.pipe = nil
            d.buffer = nil
            if d.sourceEOF {
                if !d.shutdownSent {
                    d.shutdownSent = true
                    dst.shutdownWrite()
                }
                return true
            }
            guard canRead && !readingStopped else { return true }
            // With frames followed, splice only up to the next frame header; headers go through the copy path.
            let spliceLimit = d.frames.map { Int(min(UInt64(1 << 16), $0.bytesBeforeNextHeader)) } ?? 1 << 16
            if d.preferSplice, spliceLimit > 0, let inFD = src.spliceFD, dst.spliceFD != nil, let p = loop.pipes.acquire() {
                d.pipe = consume p
                do {
                    switch try Sys.splice(from: inFD, to: d.pipe.unwrapped.writeFD, count: spliceLimit, more: true) {
                    case .wouldBlock:
                        // The pipe is empty, so EAGAIN means the socket is: wait for the next edge.
                        canRead = false
                        d.pipe = nil
                        return true
                    case .done(0):
                        d.sourceEOF = true
                        sourceEnded(d, fromServer: fromServer)
                        continue
                    case .done(let n):
                        // A splice's short count does not prove the socket drained (the pipe can fill its slots
                        // with small segments), so no short-read shortcut here; small traffic goes back to copying.
                        if n < 16 * 1024 && n < spliceLimit { d.preferSplice = false }
                        d.frames?.skip(n)
                        d.pipe.unwrapped.buffered = n
                        client.lastActivity = loop.now
                        continue
                    }
                } catch {
                    d.pipe = nil
                    if error.code == 22 /* EINVAL */ || error.code == 38 /* ENOSYS */ {
                        // This socket type can't splice: copy from now on.
                        loop.pipes.markUnsupported()
                        continue
                    }
                    ended(fromServer ? .serverError("splice from the server failed: \(error)") : .clientError("splice from the client failed: \(error)"))
                    return false
                }
            }
            // Copy path.
            var b = loop.buffers.acquire()
            do {
                switch try src.read(b.writePointer, b.writableCount) {
                case .wouldBlock:
                    canRead = false
                    return true
                case .done(0):
                    d.sourceEOF = true
                    sourceEnded(d, fromServer: fromServer)
                    continue
                case .done(let n):
                    // TCP reads return what is queued, up to the size asked: a short read means drained, and a later
                    // arrival raises a new edge, so skip the EAGAIN read (unless a FIN was signalled: read to EOF).
                    if n < b.capacity && !sourceHungUp { canRead = false }
                    // A full buffer means bulk traffic: move it with splice, zero-copy, from now on.
                    if n == b.capacity { d.preferSplice = true }
                    b.writeIndex += n
                    d.frames?.consume(b.readableBytes)
                    d.buffer = consume b
                    client.lastActivity = loop.now
                    continue
                }
            } catch {
                ended(fromServer ? .serverError("read from the server failed: \(error)") : .clientError("read from the client failed: \(error)"))
                return false
            }
        }
    }

    enum EndCause {
        case serverError(String)
        case clientError(String)
    }

    /// A fatal socket error ends the tunnel: one that involves the backend is worth the operator's attention.
    private func ended(_ cause: EndCause) {
        switch cause {
        case .serverError(let why):
            client.log.warn("tunnel \(client.clientText) <-> server \(server.addressText): \(why); closing both sides")
        case .clientError(let why):
            client.log.debug("tunnel \(client.clientText) <-> server \(server.addressText): \(why); closing both sides")
        }
    }

    /// One side finished sending. A WebSocket server that closes without a Close frame went away abruptly (a crash, a
    /// killed pod): say so, naming it; an orderly end is not news.
    private func sourceEnded(_ d: borrowing TunnelDirection, fromServer: Bool) {
        if fromServer, let f = d.frames, !f.sawClose {
            serverGone = true
            client.log.warn("tunnel \(client.clientText) <-> server \(server.addressText): the server closed the connection without a WebSocket Close frame")
        } else {
            client.log.debug("tunnel \(client.clientText) <-> server \(server.addressText): \(fromServer ? "server" : "client") finished sending")
        }
    }
}
