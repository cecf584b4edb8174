// After a 101: bytes relayed both ways, copied through a pooled buffer while messages are small and spliced (zero-copy,
// pooled pipes) once a direction carries bulk data; copying is also the fallback where splice can't be used.
// An idle tunnel holds no buffer and no pipe: both are borrowed only while bytes are in flight.
import HuddleHTTP
import HuddleIO
import HuddleSys

/// One direction of a tunnel.
struct TunnelDirection {
    var pipe: Pipe?
    var inPipe = 0
    /// Copy fallback when no pipe can be had.
    var buffer: IOBuffer?
    var sourceEOF = false
    var shutdownSent = false
    /// Small messages are copied (one read, one write); a direction that fills whole buffers switches to splice
    /// (like HAProxy's splice-auto), and back when transfers get small.
    var preferSplice = false
    /// Server-to-client WebSocket frames are followed (never buffered) so a Close frame can be added between them.
    var frames: WebSocketFrameBoundary?
}

struct TunnelState {
    var clientToServer = TunnelDirection()
    var serverToClient = TunnelDirection()
    /// Shutting down: finish the server's current frame, then send the client a Close (1001) and close.
    var closing = false
}

/// A WebSocket Close frame from the server side: code 1001 (going away), unmasked.
private let closeGoingAway: [UInt8] = [0x88, 0x02, 0x03, 0xE9]

extension DownstreamSession {
    /// Switches to tunnelling: the 101 head (in respOut) and any bytes that came with it still go out first.
    func becomeTunnel() {
        guard let s = server else { return }
        s.inFlight.subtract(1, ordering: .relaxed)
        s.requestsTotal.add(1, ordering: .relaxed)
        writeAccessLog(status: 101)
        releaseReqHeadForTunnel()
        // An idle tunnel should cost little: the parsing state goes back to the worker's pool.
        releaseExchangeState()
        excludedUIDs = []
        phase = .tunnel
        tunnel = TunnelState()
        if upgradeIsWebSocket {
            var f = WebSocketFrameBoundary()
            // Frames the server sent right behind its 101 are already in upIn: they count.
            if let u = upIn { f.consume(u.readableBytes) }
            tunnel!.serverToClient.frames = f
        }
        worker.tunnelCount += 1
        lastActivity = loop.now
        armTimer()
        // Bytes the client sent after its handshake are tunnel data: they stay in inBuf and go first.
        tunnelStep()
    }

    private func releaseReqHeadForTunnel() {
        if let b = reqHead { loop.buffers.release(b); reqHead = nil }
    }

    func tunnelStep() {
        guard phase == .tunnel, var t = tunnel, let c = up else { return }
        var ok = true
        // Leftover user-space bytes first, in order: 101 head + early server bytes to the client, early client bytes to the server.
        ok = flushTunnelLeftovers(c)
        if ok {
            // While closing, stop taking new frames from the server once the current one is through.
            let stop = t.closing && (t.serverToClient.frames?.atBoundary ?? true)
            ok = pumpDirection(&t.serverToClient, from: c.fd, to: fd, canRead: &c.canRead, canWrite: &canWrite,
                               sourceHungUp: c.sawHangup, leftoversPending: hasServerLeftovers, readingStopped: stop)
        }
        if ok {
            ok = pumpDirection(&t.clientToServer, from: fd, to: c.fd, canRead: &canRead, canWrite: &c.canWrite,
                               sourceHungUp: sawHangup, leftoversPending: hasClientLeftovers, readingStopped: false)
        }
        tunnel = t
        if !ok {
            closeTunnel()
            return
        }
        if t.closing {
            let d = t.serverToClient
            let drained = !hasServerLeftovers && d.inPipe == 0 && (d.buffer?.readableCount ?? 0) == 0
            if drained && (d.frames?.atBoundary ?? true) {
                if d.frames != nil && canWrite {
                    // Best effort: four bytes into an empty socket buffer; if it would block, the TCP close still says it.
                    closeGoingAway.withUnsafeBytes { _ = try? Sys.write(fd, $0.baseAddress!, $0.count) }
                }
                closeTunnel()
                return
            }
        }
        let done = t.clientToServer.sourceEOF && t.serverToClient.sourceEOF && t.clientToServer.inPipe == 0 && t.serverToClient.inPipe == 0
            && (t.clientToServer.buffer?.readableCount ?? 0) == 0 && (t.serverToClient.buffer?.readableCount ?? 0) == 0
        if done {
            closeTunnel()
            return
        }
        armTimer()
    }

    private var hasServerLeftovers: Bool { (respOut?.readableCount ?? 0) > 0 || (upIn?.readableCount ?? 0) > 0 }
    private var hasClientLeftovers: Bool { (inBuf?.readableCount ?? 0) > 0 }

    /// Returns false on a fatal socket error.
    private func flushTunnelLeftovers(_ c: UpstreamConnection) -> Bool {
        while canWrite, let o = respOut, o.readableCount > 0 {
            guard let n = tunnelWrite(fd, o.readPointer, o.readableCount, &canWrite) else { return false }
            if n == 0 { break }
            respOut!.readIndex += n
        }
        if let o = respOut, o.readableCount == 0 { loop.buffers.release(o); respOut = nil }
        if respOut == nil {
            while canWrite, let u = upIn, u.readableCount > 0 {
                guard let n = tunnelWrite(fd, u.readPointer, u.readableCount, &canWrite) else { return false }
                if n == 0 { break }
                upIn!.readIndex += n
                lastActivity = loop.now
            }
            if let u = upIn, u.readableCount == 0 { loop.buffers.release(u); upIn = nil }
        }
        while c.canWrite, let b = inBuf, b.readableCount > 0 {
            guard let n = tunnelWrite(c.fd, b.readPointer, b.readableCount, &c.canWrite) else { return false }
            if n == 0 { break }
            inBuf!.readIndex += n
            lastActivity = loop.now
        }
        if let b = inBuf, b.readableCount == 0 { loop.buffers.release(b); inBuf = nil }
        return true
    }

    /// Writes; nil on a fatal error, 0 when the socket would block.
    private func tunnelWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int, _ canWrite: inout Bool) -> Int? {
        do {
            switch try Sys.write(fd, p, n) {
            case .wouldBlock:
                canWrite = false
                return 0
            case .done(let w):
                return w
            }
        } catch {
            log.debug("tunnel \(peerText): write failed: \(error)")
            return nil
        }
    }

    /// Moves what it can from `src` to `dst`. Returns false on a fatal error.
    private func pumpDirection(_ d: inout TunnelDirection, from src: Int32, to dst: Int32, canRead: inout Bool, canWrite: inout Bool, sourceHungUp: Bool, leftoversPending: Bool, readingStopped: Bool) -> Bool {
        if leftoversPending { return true }
        while true {
            // Drain what is in flight first.
            if d.inPipe > 0, let p = d.pipe {
                guard canWrite else { return true }
                do {
                    switch try Sys.splice(from: p.readFD, to: dst, count: d.inPipe) {
                    case .wouldBlock:
                        canWrite = false
                        return true
                    case .done(let n):
                        d.inPipe -= n
                        lastActivity = loop.now
                        continue
                    }
                } catch {
                    log.debug("tunnel \(peerText): splice out failed: \(error)")
                    return false
                }
            }
            if let b = d.buffer, b.readableCount > 0 {
                guard canWrite else { return true }
                guard let n = tunnelWrite(dst, b.readPointer, b.readableCount, &canWrite) else { return false }
                if n == 0 { return true }
                d.buffer!.readIndex += n
                lastActivity = loop.now
                continue
            }
            // Nothing in flight: give the pipe/buffer back so an idle tunnel holds neither.
            if let p = d.pipe {
                loop.pipes.release(p, isEmpty: true)
                d.pipe = nil
            }
            if let b = d.buffer {
                loop.buffers.release(b)
                d.buffer = nil
            }
            if d.sourceEOF {
                if !d.shutdownSent {
                    d.shutdownSent = true
                    Sys.shutdown(dst, .write)
                }
                return true
            }
            guard canRead && !readingStopped else { return true }
            // With frames followed, splice only up to the next frame header; headers go through the copy path.
            let spliceLimit = d.frames.map { Int(min(UInt64(1 << 16), $0.bytesBeforeNextHeader)) } ?? 1 << 16
            if d.preferSplice, spliceLimit > 0, let p = loop.pipes.acquire() {
                d.pipe = p
                do {
                    switch try Sys.splice(from: src, to: p.writeFD, count: spliceLimit, more: true) {
                    case .wouldBlock:
                        // The pipe is empty, so EAGAIN means the socket is: wait for the next edge.
                        canRead = false
                        loop.pipes.release(p, isEmpty: true)
                        d.pipe = nil
                        return true
                    case .done(0):
                        d.sourceEOF = true
                        continue
                    case .done(let n):
                        // A splice's short count does not prove the socket drained (the pipe can fill its slots
                        // with small segments), so no short-read shortcut here; small traffic goes back to copying.
                        if n < 16 * 1024 && n < spliceLimit { d.preferSplice = false }
                        d.frames?.skip(n)
                        d.inPipe = n
                        lastActivity = loop.now
                        continue
                    }
                } catch {
                    if error.code == 22 /* EINVAL */ || error.code == 38 /* ENOSYS */ {
                        // This socket type can't splice: copy from now on.
                        loop.pipes.release(p, isEmpty: true)
                        d.pipe = nil
                        loop.pipes.markUnsupported()
                        continue
                    }
                    log.debug("tunnel \(peerText): splice in failed: \(error)")
                    loop.pipes.release(p, isEmpty: false)
                    d.pipe = nil
                    return false
                }
            }
            // Copy fallback.
            var b = loop.buffers.acquire()
            do {
                switch try Sys.read(src, b.writePointer, b.writableCount) {
                case .wouldBlock:
                    canRead = false
                    loop.buffers.release(b)
                    return true
                case .done(0):
                    loop.buffers.release(b)
                    d.sourceEOF = true
                    continue
                case .done(let n):
                    // TCP reads return what is queued, up to the size asked: a short read means drained, and a later
                    // arrival raises a new edge, so skip the EAGAIN read (unless a FIN was signalled: read to EOF).
                    if n < b.capacity && !sourceHungUp { canRead = false }
                    // A full buffer means bulk traffic: move it with splice, zero-copy, from now on.
                    if n == b.capacity { d.preferSplice = true }
                    b.writeIndex += n
                    d.frames?.consume(b.readableBytes)
                    d.buffer = b
                    lastActivity = loop.now
                    continue
                }
            } catch {
                loop.buffers.release(b)
                log.debug("tunnel \(peerText): read failed: \(error)")
                return false
            }
        }
    }

    /// SIGTERM while tunnelling: a WebSocket client gets a Close (1001, going away) at the next frame boundary, then
    /// both sides close; other upgraded protocols just close.
    func tunnelShutdown() {
        guard phase == .tunnel, tunnel != nil else { return }
        tunnel!.closing = true
        tunnelStep()
    }

    func closeTunnel() {
        guard phase == .tunnel else { return }
        if var t = tunnel {
            for p in [t.clientToServer.pipe, t.serverToClient.pipe].compactMap({ $0 }) {
                loop.pipes.release(p, isEmpty: false)
            }
            if let b = t.clientToServer.buffer { loop.buffers.release(b) }
            if let b = t.serverToClient.buffer { loop.buffers.release(b) }
            t.clientToServer = TunnelDirection()
            t.serverToClient = TunnelDirection()
            tunnel = nil
        }
        worker.tunnelCount -= 1
        if let g = groupServer, let key = groupKey, let u = route?.upstream {
            u.groups.leave(key: key, keyHash: groupKeyHash, server: g, nowMs: loop.now, lingerMs: u.config.groupLinger)
            groupServer = nil
        }
        if let c = up {
            up = nil
            c.server.activeConnections.subtract(1, ordering: .relaxed)
            c.close()
        }
        server = nil
        loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
        finishClosed()
    }
}
