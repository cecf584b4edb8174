// One question asked of the nameservers, on the resolver thread: UDP first; a truncated answer is asked again over
// TCP (RFC 7766) on the same nameserver; a timeout, a socket error, SERVFAIL/REFUSED or a malformed answer costs an
// attempt, and the retry goes to the next nameserver. Datagrams with another ID are ignored (stray or spoofed).
import Glibc
import HuddleDNS
import HuddleSys

// SAFETY: created, driven and dropped on the resolver thread only.
final class DNSExchange {
    enum Phase {
        case udp
        case tcpConnecting
        /// Sending the 2-byte length and the query; how much has gone.
        case tcpSending(Int)
        /// Reading the 2-byte length and the answer.
        case tcpReceiving
    }

    let question: DNSQuestion
    private let settings: ResolverSettings
    private let completion: (Result<DNSAnswer, DNSFailure>) -> Void
    private(set) var fd: Int32 = -1
    private(set) var phase = Phase.udp
    private(set) var deadline: Int64 = 0
    private(set) var finished = false
    private var id: UInt16 = 0
    private var query: [UInt8] = []
    private var edns = true
    private var attempt = 0
    private var server = 0
    private var tcpBuffer: [UInt8] = []

    init(question: DNSQuestion, settings: ResolverSettings, completion: @escaping (Result<DNSAnswer, DNSFailure>) -> Void) {
        self.question = question
        self.settings = settings
        self.completion = completion
    }

    var wantsWrite: Bool {
        switch phase {
        case .tcpConnecting, .tcpSending: return true
        default: return false
        }
    }

    var nameserver: SocketAddress { settings.nameservers[server % settings.nameservers.count] }

    func start(now: Int64) {
        guard !settings.nameservers.isEmpty else { return finish(.failure(.noNameserver)) }
        send(now: now)
    }

    /// A fresh socket (so a fresh random source port) and a fresh ID for every attempt.
    private func send(now: Int64) {
        closeSocket()
        id = UInt16.random(in: 0...UInt16.max)
        query = DNSQuery.encode(id: id, name: question.name, type: question.type, edns: edns)
        // `now` is truncated to the millisecond, so the attempt may have started up to 1 ms after it: one more
        // millisecond makes the wait at least `timeoutMs`, never less.
        deadline = now + settings.timeoutMs + 1
        phase = .udp
        do {
            fd = try Sys.datagramSocket(family: nameserver.family)
            // A connected UDP socket receives only from the nameserver, and reports its ICMP errors (refused).
            _ = try Sys.connect(fd, nameserver)
            _ = try sendBytes(query[...])
        } catch {
            attemptFailed(.network("\(nameserver): \(error.message)"), now: now)
        }
    }

    private func startTCP(now: Int64) {
        closeSocket()
        deadline = now + settings.timeoutMs + 1  // at least `timeoutMs`: see `send`
        tcpBuffer = []
        do {
            fd = try Sys.socket(family: nameserver.family)
            switch try Sys.connect(fd, nameserver) {
            case .done:
                phase = .tcpSending(0)
                handle(revents: Sys.pollOut, now: now)
            case .wouldBlock:
                phase = .tcpConnecting
            }
        } catch {
            attemptFailed(.network("\(nameserver) (TCP): \(error.message)"), now: now)
        }
    }

    func handle(revents: Int16, now: Int64) {
        guard !finished else { return }
        do {
            switch phase {
            case .udp:
                try receiveDatagrams(now: now)
            case .tcpConnecting:
                let e = Sys.socketError(fd)
                guard e == 0 else { return attemptFailed(.network("\(nameserver) (TCP): \(Errno(e).message)"), now: now) }
                phase = .tcpSending(0)
                try sendTCP(now: now)
            case .tcpSending:
                try sendTCP(now: now)
            case .tcpReceiving:
                try receiveTCP(now: now)
            }
        } catch {
            attemptFailed(.network("\(nameserver): \(error.message)"), now: now)
        }
    }

    func timedOut(now: Int64) {
        guard !finished, now >= deadline else { return }
        attemptFailed(.timeout, now: now)
    }

    private func receiveDatagrams(now: Int64) throws(Errno) {
        var buffer = [UInt8](repeating: 0, count: 65_535)
        while !finished {
            let got = try receive(into: &buffer)
            guard case .done(let n) = got else { return }
            let datagram = Array(buffer[0..<n])
            let header = datagram.withUnsafeBytes { DNSHeader($0) }
            guard let header, header.isResponse, header.id == id else { continue }
            if header.isTruncated { return startTCP(now: now) }
            answered(datagram, now: now)
        }
    }

    private func sendTCP(now: Int64) throws(Errno) {
        guard case .tcpSending(var sent) = phase else { return }
        let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        while sent < framed.count {
            let r = try sendBytes(framed[sent...])
            guard case .done(let n) = r else {
                phase = .tcpSending(sent)
                return
            }
            sent += n
        }
        phase = .tcpReceiving
        try receiveTCP(now: now)
    }

    private func receiveTCP(now: Int64) throws(Errno) {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while !finished {
            let r = try receive(into: &chunk)
            guard case .done(let n) = r else { return }
            guard n > 0 else { return attemptFailed(.network("\(nameserver) (TCP): closed before the whole answer"), now: now) }
            tcpBuffer += chunk[0..<n]
            guard tcpBuffer.count >= 2 else { continue }
            let length = Int(tcpBuffer[0]) << 8 | Int(tcpBuffer[1])
            if tcpBuffer.count >= 2 + length {
                return answered(Array(tcpBuffer[2..<(2 + length)]), now: now)
            }
        }
    }

    private func sendBytes(_ bytes: ArraySlice<UInt8>) throws(Errno) -> IOResult<Int> {
        let fd = self.fd
        return try bytes.withUnsafeBytes { b in Result { () throws(Errno) in try Sys.write(fd, b.baseAddress!, b.count) } }.get()
    }

    private func receive(into buffer: inout [UInt8]) throws(Errno) -> IOResult<Int> {
        let fd = self.fd
        return try buffer.withUnsafeMutableBytes { b in Result { () throws(Errno) in try Sys.recv(fd, b.baseAddress!, b.count) } }.get()
    }

    private func answered(_ bytes: [UInt8], now: Int64) {
        let message: DNSMessage
        do {
            message = try DNSMessage.parse(bytes)
        } catch {
            return attemptFailed(.malformed(error), now: now)
        }
        let result = DNSResponse.interpret(message, id: id, question: question)
        switch result {
        case .failure(.rcode(.formatError)) where edns:
            // A server that does not know EDNS0 answers FORMERR: ask again without it (not counted as an attempt).
            edns = false
            attempt -= 1
            attemptFailed(.rcode(.formatError), now: now)
        case .failure(let f):
            attemptFailed(f, now: now)
        case .success:
            finish(result)
        }
    }

    private func attemptFailed(_ failure: DNSFailure, now: Int64) {
        guard !finished else { return }
        attempt += 1
        guard attempt < settings.attempts else { return finish(.failure(failure)) }
        // The retry goes to the next nameserver (the same one when there is only one); FORMERR's retry stays.
        if failure != .rcode(.formatError) { server += 1 }
        send(now: now)
    }

    private func finish(_ result: Result<DNSAnswer, DNSFailure>) {
        finished = true
        closeSocket()
        completion(result)
    }

    func cancel() {
        finished = true
        closeSocket()
    }

    private func closeSocket() {
        if fd >= 0 { Sys.close(fd) }
        fd = -1
    }

    deinit { closeSocket() }
}
