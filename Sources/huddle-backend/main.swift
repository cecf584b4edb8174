// huddle-backend: runs a demo backend (HTTP/1.1 + WebSocket test server) until SIGINT/SIGTERM.
import Glibc
import HuddleDemo
import HuddleSys

let usage = """
usage: huddle-backend --listen HOST:PORT [--listen HOST:PORT ...] --name NAME [--workers N]

A fast demo/test backend: GET /healthz, /stats, /bytes/N[?chunked=1], /text/N[?type=json|html|plain&chunked=1], /headers, /hang, /slow?ms=N, /close,
/status/N, /rooms/ROOM (chat page); POST|PUT /echo; WebSocket echo on any path, chat on /rooms/ROOM/ws.
Every response carries X-Backend: NAME and X-Backend-Connection: <connection serial>.

"""

/// Straight to the descriptor: stdio's buffering would hold "listening on" back when stdout is a pipe.
func emit(_ text: String, to fd: Int32) {
    var text = text
    text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    emit("huddle-backend: \(message)\n\(usage)", to: 2)
    exit(2)
}

/// HOST:PORT or [V6]:PORT; names are resolved here, once, at startup.
func parseAddress(_ text: String) -> [SocketAddress] {
    var host = Substring(text)
    guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
        fail("bad address '\(text)' (expected HOST:PORT)")
    }
    host = text[..<colon]
    if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
    if host.isEmpty || host == "*" { host = "0.0.0.0" }
    do {
        return try SocketAddress.resolve(host: String(host), port: port)
    } catch {
        fail("cannot resolve '\(host)': \(error)")
    }
}

var addresses: [SocketAddress] = []
var name: String?
var workers = 1
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "-h", "--help":
        emit(usage, to: 1)
        exit(0)
    case "--listen", "-l":
        guard let v = args.popFirst() else { fail("--listen needs HOST:PORT") }
        addresses += parseAddress(v).prefix(1)
    case "--name", "-n":
        guard let v = args.popFirst(), !v.isEmpty else { fail("--name needs a value") }
        name = v
    case "--workers", "-w":
        guard let v = args.popFirst(), let n = Int(v), n >= 1, n <= 256 else { fail("--workers needs a number from 1 to 256") }
        workers = n
    default:
        fail("unknown argument '\(arg)'")
    }
}
guard !addresses.isEmpty else { fail("at least one --listen is required") }
guard let name else { fail("--name is required") }

// Blocked before any thread starts so the loops inherit the mask and the signals arrive only through the signalfd.
let stopSignals = [SIGINT, SIGTERM]
Sys.blockSignals(stopSignals)
_ = Sys.raiseOpenFileLimit()

let backend: DemoBackend
do {
    backend = try DemoBackend.start(DemoBackendOptions(name: name, listen: addresses, workers: workers))
} catch {
    emit("huddle-backend: cannot start: \(error)\n", to: 2)
    exit(1)
}
for a in backend.boundAddresses { emit("listening on \(a)\n", to: 1) }

do {
    let sfd = try Sys.signalfd(stopSignals)
    var pfd = pollfd(fd: sfd, events: Int16(POLLIN), revents: 0)
    // Blocking here is fine: this thread has nothing else to do.
    while Sys.readSignal(sfd) == nil { _ = poll(&pfd, 1, -1) }
} catch {
    emit("huddle-backend: signalfd failed: \(error)\n", to: 2)
}
backend.stop()
