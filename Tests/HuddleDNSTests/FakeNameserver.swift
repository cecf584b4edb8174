// A nameserver on 127.0.0.1 (UDP and TCP on one port) whose every answer the test decides: silence, wrong IDs,
// truncation, SERVFAIL... what dnsmasq will not do on demand.
import Glibc
import HuddleDNS
import HuddleSync

final class FakeNameserver: @unchecked Sendable {
    // SAFETY: `udp`/`tcp`/`wake` are set in init and closed after the thread is joined; `seen` is locked.
    struct Query: Equatable {
        var question: DNSQuestion
        var tcp: Bool
        var edns: Bool
    }

    /// What to send back for a query: nil for silence. `udp` is false for a query that came over TCP.
    typealias Handler = @Sendable (_ query: DNSMessage, _ udp: Bool) -> [UInt8]?

    let port: UInt16
    private let udp: Int32
    private let tcp: Int32
    private let wake: [Int32]
    private let handler: Handler
    private var thread = pthread_t()
    private let seen = Locked<[Query]>([])

    var queries: [Query] { seen.withLock { $0 } }

    init(_ handler: @escaping Handler) {
        self.handler = handler
        // TCP on a free port, then UDP on the same number; another try if someone holds that UDP port.
        var udp: Int32 = -1, tcp: Int32 = -1, port: UInt16 = 0
        for _ in 0..<50 {
            tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let size = len
            guard withUnsafePointer(to: &addr, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcp, $0, size) } }) == 0 else {
                close(tcp)
                continue
            }
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(tcp, $0, &len) } }
            udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            if withUnsafePointer(to: &addr, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(udp, $0, size) } }) == 0 {
                port = UInt16(bigEndian: addr.sin_port)
                break
            }
            close(udp)
            close(tcp)
        }
        precondition(port != 0, "no port free for both UDP and TCP")
        listen(tcp, 16)
        self.udp = udp
        self.tcp = tcp
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        wake = fds
        self.port = port
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { arg in
            let me = Unmanaged<FakeNameserver>.fromOpaque(arg!).takeRetainedValue()
            me.run()
            return nil
        }, box)
    }

    func stop() {
        var b: UInt8 = 1
        _ = write(wake[1], &b, 1)
        pthread_join(thread, nil)
        for fd in [udp, tcp] + wake { close(fd) }
    }

    private func record(_ m: DNSMessage, tcp: Bool) {
        guard let q = m.questions.first else { return }
        seen.withLock { $0.append(Query(question: q, tcp: tcp, edns: m.additionals.contains { $0.type == .opt })) }
    }

    private func run() {
        var buf = [UInt8](repeating: 0, count: 65_535)
        while true {
            var fds = [pollfd(fd: udp, events: Int16(POLLIN), revents: 0), pollfd(fd: tcp, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 3, -1) > 0, fds[2].revents == 0 else { return }
            if fds[0].revents != 0 {
                var from = sockaddr_storage()
                var fromLen = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &from) { p in
                    p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(udp, &buf, buf.count, 0, $0, &fromLen) }
                }
                if n > 0, let m = try? DNSMessage.parse(Array(buf[0..<n])) {
                    record(m, tcp: false)
                    if let reply = handler(m, true) {
                        _ = withUnsafePointer(to: &from) { p in
                            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(udp, reply, reply.count, 0, $0, fromLen) }
                        }
                    }
                }
            }
            if fds[1].revents != 0 {
                let c = accept(tcp, nil, nil)
                guard c >= 0 else { continue }
                var tv = timeval(tv_sec: 2, tv_usec: 0)
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var got: [UInt8] = []
                while got.count < 2 || got.count < 2 + (Int(got[0]) << 8 | Int(got[1])) {
                    let n = recv(c, &buf, buf.count, 0)
                    if n <= 0 { break }
                    got += buf[0..<n]
                }
                if got.count >= 2, let m = try? DNSMessage.parse(Array(got.dropFirst(2))) {
                    record(m, tcp: true)
                    if let reply = handler(m, false) {
                        let framed = [UInt8(reply.count >> 8), UInt8(reply.count & 0xFF)] + reply
                        _ = send(c, framed, framed.count, Int32(MSG_NOSIGNAL))
                    }
                }
                close(c)
            }
        }
    }

    /// The answer to `query` with `records` of its own name, or another RCODE, TC bit or ID.
    static func reply(to query: DNSMessage, rcode: UInt16 = 0, tc: Bool = false, id: UInt16? = nil, answers: [DNSRecord] = [],
                      additionals: [DNSRecord] = []) -> [UInt8] {
        let flags: UInt16 = 0x8180 | (tc ? DNSHeader.truncatedFlag : 0) | rcode
        return DNSMessage(header: DNSHeader(id: id ?? query.header.id, flags: flags), questions: query.questions, answers: answers,
                          additionals: additionals).encode()
    }

    /// An A record for the query's name.
    static func a(_ query: DNSMessage, _ last: UInt8, ttl: UInt32 = 30) -> DNSRecord {
        DNSRecord(name: query.questions[0].name, type: .a, ttl: ttl, data: .a([10, 0, 0, last]))
    }
}
