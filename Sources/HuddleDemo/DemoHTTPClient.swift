// A small blocking HTTP/1.1 client for tests: raw sends (so tests can pipeline) and framed response reads.
import HuddleHTTP
import HuddleSys

public struct DemoHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Whether the body came chunked.
    public var wasChunked: Bool

    /// The first header with this name (case-insensitive).
    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.name.lowercased() == n }?.value
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

public final class DemoHTTPClient {
    private let socket: BlockingSocket

    public init(address: SocketAddress, timeoutSeconds: Int = 10) throws {
        socket = try BlockingSocket(address: address, timeoutSeconds: timeoutSeconds)
    }

    public func send(_ bytes: some Collection<UInt8>) throws { try socket.send(bytes) }
    public func send(_ text: String) throws { try socket.send(Array(text.utf8)) }
    public func shutdownWrite() { socket.shutdownWrite() }
    public func close() { socket.close() }

    /// Sends one request with Host and (when there is a body) Content-Length, and reads its response.
    public func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil) throws -> DemoHTTPResponse {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: demo\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        try socket.send(Array(head.utf8) + (body ?? []))
        return try readResponse(isHead: method == "HEAD")
    }

    /// Reads the next final response (1xx interim responses other than 101 are skipped).
    public func readResponse(isHead: Bool = false) throws -> DemoHTTPResponse {
        while true {
            let (head, framing) = try socket.readResponseHead(isHead: isHead)
            if head.status >= 100 && head.status < 200 && head.status != 101 { continue }
            var response = head
            switch framing {
            case .none:
                break
            case .contentLength(let n):
                response.body = try socket.take(Int(n))
            case .chunked:
                response.wasChunked = true
                response.body = try socket.readChunkedBody()
            case .untilClose:
                response.body = try socket.takeAll()
            }
            return response
        }
    }

    /// True when the server has closed the connection (reads until end of stream, discarding).
    public func waitForClose() throws -> Bool {
        _ = try socket.takeAll()
        return true
    }
}

extension BlockingSocket {
    /// The next response head (body empty) and how its body is framed; the bytes behind it stay in `pending`.
    func readResponseHead(isHead: Bool) throws -> (DemoHTTPResponse, BodyFraming) {
        var parser = HTTPResponseParser()
        var head = HTTPResponseHead()
        while true {
            let r = pending.withUnsafeBytes { parser.parse($0, into: &head) }
            if r == .complete { break }
            if case .error(let e) = r { throw DemoClientError("bad response head: \(e)") }
            if try !receiveMore() { throw DemoClientError("connection closed before a response head") }
        }
        var headers: [(name: String, value: String)] = []
        for f in head.headers {
            headers.append((String(decoding: pending[f.name], as: UTF8.self), String(decoding: pending[f.value], as: UTF8.self)))
        }
        pending.removeFirst(head.headLength)
        let framing: BodyFraming = head.status == 101 ? .none : head.bodyFraming(requestMethod: isHead ? .head : .get)
        return (DemoHTTPResponse(status: head.status, headers: headers, body: [], wasChunked: false), framing)
    }

    func readChunkedBody() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = try takeLine()
            var size = 0
            for b in line {
                guard let d = ASCIIBytes.hexValue(b) else { break }
                size = size * 16 + Int(d)
            }
            if size == 0 {
                // Trailers, up to the empty line.
                while try !takeLine().isEmpty {}
                return body
            }
            body += try take(size)
            guard try take(2) == [0x0D, 0x0A] else { throw DemoClientError("chunk not followed by CRLF") }
        }
    }
}
