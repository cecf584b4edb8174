// The access-log line of an exchange, written once, when the exchange ends. Its fields are views into the forwarded
// head (request line, User-Agent, Referer, X-Request-Id), so no per-request String is built.
import HuddleIO
import HuddleSys

extension ClientConnection {
    func writeAccessLog(_ x: Exchange<Net>) {
        guard worker.accessLog.enabled else { return }
        // Nothing parseable (a 400/408/431 before a complete head): who, when and what status, with empty request fields.
        let head = x.request.head?.base
        let fields = head == nil ? RequestLogFields() : x.logFields
        let line = UnsafeRawBufferPointer(start: head.map { $0 + fields.requestLine.lowerBound }, count: fields.requestLine.count)
        var sp1 = 0
        while sp1 < line.count && line[sp1] != 32 { sp1 += 1 }
        var sp2 = line.count
        while sp2 > sp1 && line[sp2 - 1] != 32 { sp2 -= 1 }
        let methodBytes = UnsafeRawBufferPointer(rebasing: line[0..<sp1])
        let pathStart = min(sp1 + 1, line.count)
        let pathBytes = UnsafeRawBufferPointer(rebasing: line[pathStart..<max(pathStart, sp2 - 1)])
        func view(_ r: Range<Int>) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: head.map { $0 + r.lowerBound }, count: head == nil ? 0 : r.count)
        }
        let now = Sys.monotonicNs()
        let upstreamMicros = x.upstreamStartNs > 0 && x.servedBy != nil ? Int64((now &- x.upstreamStartNs) / 1000) : 0
        clientIPText.withUnsafeBytes { ip in
            worker.accessLog.write(AccessRecord(
                startWallMs: x.startWallMs, client: ip, requestLine: line, method: methodBytes, path: pathBytes,
                referer: view(fields.referer), userAgent: view(fields.userAgent), requestId: view(fields.requestId),
                status: x.response.status, bytesSent: x.response.bytesSent, upstream: x.servedBy?.addressText,
                upstreamMicros: upstreamMicros, totalMicros: Int64((now &- x.startNs) / 1000)))
        }
    }
}
