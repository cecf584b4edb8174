// One admin request on its own connection: read the head, answer, close.
import HuddleHTTP
import HuddleIO
import HuddleSys

/// What the endpoints need of a request.
struct AdminRequest {
    var method: HTTPMethod
    var path: String
    var query: AdminQuery
    /// The first Authorization header's value.
    var authorization: String?
}

// SAFETY: on the control loop's thread only.
final class AdminConnection: EventHandler {
    unowned let server: AdminServer
    let fd: Int32
    var registration = Registration.none
    var buffer: [UInt8] = []
    var parser = HTTPRequestParser(maxHeaderSize: 16384)
    var head = HTTPRequestHead()
    var out: [UInt8] = []
    var outIndex = 0
    var done = false

    init(server: AdminServer, fd: Int32) {
        self.server = server
        self.fd = fd
    }

    func handleEvent(_ events: UInt32) {
        if out.isEmpty {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let r = chunk.withUnsafeMutableBytes { p in try? Sys.read(fd, p.baseAddress!, p.count) }
                guard let r else { close(); return }
                switch r {
                case .wouldBlock:
                    break
                case .done(0):
                    close()
                    return
                case .done(let n):
                    buffer.append(contentsOf: chunk[0..<n])
                    continue
                }
                break
            }
            let result = buffer.withUnsafeBytes { parser.parse($0, into: &head) }
            switch result {
            case .needMore:
                if buffer.count > 16384 { answer(.text(431, "request head too large\n")) }
                else { return }
            case .error(let e):
                answer(.text(e.status, "\(e)\n"))
            case .complete:
                let request: AdminRequest = buffer.withUnsafeBytes { b in
                    let authorization = head.headers.first {
                        ASCIIBytes.equalsCaseInsensitive(b, $0.name, "authorization")
                    }.map { String(decoding: b[$0.value], as: UTF8.self) }
                    return AdminRequest(method: head.method, path: String(decoding: b[head.path], as: UTF8.self),
                                        query: AdminQuery(head.query.map { Array(b[$0]) } ?? []), authorization: authorization)
                }
                answer(server.respond(request))
            }
        }
        flush()
    }

    private func answer(_ r: AdminResponse) {
        let h = "HTTP/1.1 \(r.status) \(HTTPStatus.reasonPhrase(r.status))\r\nContent-Type: \(r.contentType)\r\nContent-Length: \(r.body.count)\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        out = Array(h.utf8) + (head.method == .head ? [] : r.body)
    }

    private func flush() {
        while outIndex < out.count {
            let r = out.withUnsafeBytes { p in try? Sys.write(fd, p.baseAddress! + outIndex, p.count - outIndex) }
            guard let r else { close(); return }
            switch r {
            case .wouldBlock: return
            case .done(let n): outIndex += n
            }
        }
        if !out.isEmpty {
            Sys.shutdown(fd, .write)
            close()
        }
    }

    private func close() {
        guard !done else { return }
        done = true
        server.loop.deregister(fd: fd, registration: registration)
        Sys.close(fd)
    }
}
