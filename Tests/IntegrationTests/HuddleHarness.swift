// Test harness: runs the real `huddle` binary as a subprocess in front of real backends, on loopback ports.
import Foundation
import Glibc
import HuddleDemo
import HuddleSys
import XCTest

/// A harness problem that must fail the test loudly (a missing binary, a process that did not start).
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

enum Harness {
    /// Repository root, from this file's path.
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `huddle` binary every integration test runs: `$HUDDLE_BINARY` exactly when that is set, otherwise the
    /// `huddle` next to the running test bundle (the one `swift test` just built). No other fallback: a stale binary
    /// elsewhere (say an old `.build/debug/huddle`) must never be tested by accident. Throws, naming the paths looked
    /// at, when the binary is missing; prints once which binary is used.
    static var huddleBinary: String {
        get throws(HarnessError) { try resolvedHuddle.get() }
    }

    private static let resolvedHuddle: Result<String, HarnessError> = resolveBinary(named: "huddle", variable: "HUDDLE_BINARY")

    /// The running test bundle (on Linux the `.xctest` is itself the executable).
    static var testBundleExecutable: URL {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 { return URL(fileURLWithPath: String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        return Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    }

    static func resolveBinary(named name: String, variable: String) -> Result<String, HarnessError> {
        let fm = FileManager.default
        if let value = ProcessInfo.processInfo.environment[variable] {
            let path = URL(fileURLWithPath: value).standardizedFileURL.path
            guard !value.isEmpty, fm.isExecutableFile(atPath: path) else {
                let message = "\(variable)=\(value.debugDescription) is set but \(path) is not an executable file"
                print("IntegrationTests: error: \(message)")
                return .failure(HarnessError(message))
            }
            print("IntegrationTests: using \(name) binary \(path) (from \(variable))")
            return .success(path)
        }
        let bundle = testBundleExecutable
        let candidate = bundle.deletingLastPathComponent().appendingPathComponent(name).path
        guard fm.isExecutableFile(atPath: candidate) else {
            let message = "no executable \(name) next to the test bundle: looked at \(candidate) (test bundle \(bundle.path)); "
                + "build it with `swift build --build-tests`, or set \(variable) to the binary to test"
            print("IntegrationTests: error: \(message)")
            return .failure(HarnessError(message))
        }
        print("IntegrationTests: using \(name) binary \(candidate) (next to the test bundle; set \(variable) to test another)")
        return .success(candidate)
    }

    /// A port that was free a moment ago (bind to 0, read it back, close).
    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: addr.sin_port)
    }

    /// Whether something accepts TCP connections on 127.0.0.1:port.
    static func isListening(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return r == 0
    }

    /// Polls `condition` every 20 ms until it holds or `seconds` pass.
    @discardableResult
    static func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    static func startBackend(_ name: String, workers: Int = 1) throws -> DemoBackend {
        try DemoBackend.start(DemoBackendOptions(name: name, listen: [SocketAddress(ip: "127.0.0.1", port: 0)!], workers: workers))
    }

    static func temporaryDirectory() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("huddle-test-\(getpid())-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    struct CommandResult {
        var status: Int32
        var stdout: Data
        var stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs a command to completion (bounded by `timeout` seconds; killed after that).
    @discardableResult
    static func run(_ executable: String, _ args: [String], timeout: Double = 60, stdin: Data? = nil) throws -> CommandResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        // Output goes to files, not pipes: no reader threads, and a chatty child can never block on a full pipe.
        let dir = temporaryDirectory()
        let outURL = dir.appendingPathComponent("stdout")
        let errURL = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer {
            try? outHandle.close()
            try? errHandle.close()
            try? FileManager.default.removeItem(at: dir)
        }
        p.standardOutput = outHandle
        p.standardError = errHandle
        let inPipe = Pipe()
        p.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
        try p.run()
        if let stdin {
            inPipe.fileHandleForWriting.write(stdin)
            try? inPipe.fileHandleForWriting.close()
        }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(5_000) }
        if p.isRunning {
            p.terminate()
            usleep(100_000)
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        let outData = (try? Data(contentsOf: outURL)) ?? Data()
        let errData = (try? Data(contentsOf: errURL)) ?? Data()
        return CommandResult(status: p.terminationStatus, stdout: outData, stderr: String(decoding: errData, as: UTF8.self))
    }

    /// curl with `-s`; returns stdout and the exit status.
    @discardableResult
    static func curl(_ args: [String], timeout: Double = 60) throws -> CommandResult {
        try run("/usr/bin/curl", ["-s", "--max-time", String(Int(timeout))] + args, timeout: timeout + 5)
    }
}

/// A running `huddle -c FILE` subprocess; stderr (the logs) goes to a file the test can read.
///
/// Every HuddleProcess has an admin port (an `admin 127.0.0.1:{ADMIN};` line is added when the config has none), records
/// its descriptor baseline once it is up, and registers with the running HuddleTestCase, whose tearDown checks that it
/// is back at rest (Invariants.assertQuiescent) and then stops it. It must be created inside a HuddleTestCase.
final class HuddleProcess {
    let process = Process()
    let configURL: URL
    let logURL: URL
    let port: UInt16
    /// From `{ADMIN}` in the config, or the admin line added for the end-of-test check.
    let adminPort: UInt16
    /// Open descriptors once up, before any traffic (see Invariants.descriptorBaseline).
    private(set) var descriptorBaseline = 0
    /// True once the test asked it to stop (stop(), or SIGTERM/SIGINT/SIGQUIT/SIGKILL through signal()): an exit
    /// without that is reported by the end-of-test check.
    private(set) var exitExpected = false
    /// Set by quiescenceCheckNotWanted(because:): the end-of-test check is skipped, with this reason printed.
    private(set) var quiescenceOptOut: String?

    /// Writes `config` (with `{PORT}` and `{ADMIN}` replaced) and starts huddle; waits until it accepts connections on
    /// both ports. `directoryName`, when given, is a subdirectory of the temporary one to hold the config (file names
    /// in messages). `launcher` runs huddle through another program that execs it (`["/usr/bin/prlimit", ...]`).
    /// `withAdmin` is kept for existing callers: the admin port is always on now.
    init(config: String, workers: Int = 1, withAdmin: Bool = true, directoryName: String? = nil, launcher: [String] = [],
         file: StaticString = #filePath, line: UInt = #line) throws {
        _ = withAdmin
        guard let testCase = HuddleTestCase.current else {
            throw HarnessError("HuddleProcess started outside a HuddleTestCase (\(file):\(line)): derive the test class from HuddleTestCase so its end-of-test invariant check runs")
        }
        let binary = try Harness.huddleBinary
        var dir = Harness.temporaryDirectory()
        if let d = directoryName {
            dir = dir.appendingPathComponent(d)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        port = Harness.freePort()
        var text = config.replacingOccurrences(of: "{PORT}", with: String(port))
        let hasAdminLine = text.split(separator: "\n").contains {
            let t = $0.drop { $0 == " " || $0 == "\t" }
            return t.hasPrefix("admin ") || t.hasPrefix("admin\t")
        }
        if hasAdminLine && !text.contains("{ADMIN}") {
            throw HarnessError("the config's admin line has a fixed address; write `admin 127.0.0.1:{ADMIN};` (or leave it out) so the end-of-test check can reach it")
        }
        let admin = Harness.freePort()
        adminPort = admin
        if !hasAdminLine { text += "\nadmin 127.0.0.1:{ADMIN};\n" }
        text = text.replacingOccurrences(of: "{ADMIN}", with: String(admin))
        if !text.contains("workers ") { text = "workers \(workers);\n" + text }
        configURL = dir.appendingPathComponent("huddle.conf")
        logURL = dir.appendingPathComponent("huddle.log")
        try text.write(to: configURL, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + [binary, "-c", configURL.path]
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["-c", configURL.path]
        }
        let log = try FileHandle(forWritingTo: logURL)
        process.standardError = log
        process.standardOutput = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let port = self.port
        let up = Harness.waitFor(15) { Harness.isListening(port) && Harness.isListening(admin) }
        if !up {
            stop()
            throw HarnessError("huddle did not start (\(binary)); log:\n\(self.log)")
        }
        descriptorBaseline = Invariants.descriptorBaseline(self, file: file, line: line)
        testCase.register(self, file: file, line: line)
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }
    var url: String { "http://127.0.0.1:\(port)" }
    var adminURL: String { "http://127.0.0.1:\(adminPort)" }
    var pid: Int32 { process.processIdentifier }

    func signal(_ sig: Int32) {
        if [SIGTERM, SIGINT, SIGQUIT, SIGKILL].contains(sig) { exitExpected = true }
        kill(process.processIdentifier, sig)
    }

    /// Skips the end-of-test quiescence check for this process; `reason` says what it leaves running on purpose.
    func quiescenceCheckNotWanted(because reason: String) { quiescenceOptOut = reason }

    /// SIGTERM, then SIGKILL if it has not exited within a few seconds.
    func stop() {
        exitExpected = true
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        if !Harness.waitFor(10, { !self.process.isRunning }) {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A plain blocking TCP client for byte-exact tests (pipelining, malformed requests, slow clients).
final class RawClient {
    let fd: Int32

    init(port: UInt16, receiveTimeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r != 0 { throw Errno.current }
        var tv = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ s: String) { send(Array(s.utf8)) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until EOF, error or receive timeout.
    func readAll() -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    /// Reads until `predicate` holds on what arrived, EOF, or the receive timeout.
    func read(until predicate: ([UInt8]) -> Bool) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while !predicate(out) {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    /// True if the peer closed (recv returns 0) within the receive timeout; bytes that arrive first are returned too.
    func waitForClose() -> (closed: Bool, bytes: [UInt8]) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (true, out) }
            if n < 0 { return (errno == ECONNRESET, out) }
            out.append(contentsOf: buf[0..<n])
        }
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
    /// Number of non-overlapping occurrences of `needle`.
    func occurrences(of needle: String) -> Int {
        let n = Array(needle.utf8)
        guard !n.isEmpty, count >= n.count else { return 0 }
        var c = 0
        var i = 0
        while i <= count - n.count {
            if self[i..<(i + n.count)].elementsEqual(n) { c += 1; i += n.count } else { i += 1 }
        }
        return c
    }
}

/// A seeded generator (SplitMix64): the same sequence for the same seed on every run and machine, so a failing random
/// case can be replayed from the seed a test prints.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<n from this generator alone (no standard-library algorithm in between, so a seed replays the
    /// same choices whatever the Swift version).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// An element of `a` (not empty).
    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }

    /// The seed for a randomized test: `HUDDLE_TEST_SEED` (decimal or 0x-hex) when set, else a fresh random one.
    static func testSeed() throws -> UInt64 {
        guard let text = ProcessInfo.processInfo.environment["HUDDLE_TEST_SEED"] else { return UInt64.random(in: 0...UInt64.max) }
        let t = text.trimmingCharacters(in: .whitespaces)
        let value = t.lowercased().hasPrefix("0x") ? UInt64(t.dropFirst(2), radix: 16) : UInt64(t)
        guard let value else { throw HarnessError("HUDDLE_TEST_SEED=\(text.debugDescription) is not a decimal or 0x-hex UInt64") }
        return value
    }
}

extension Array where Element == UInt8 {
    /// Printable ASCII as is, everything else as \r, \n, \t or \xNN: for reading bytes in a failure message.
    var escapedForDisplay: String {
        var out = ""
        for b in self {
            switch b {
            case 13: out += "\\r"
            case 10: out += "\\n"
            case 9: out += "\\t"
            case 0x5C: out += "\\\\"
            case 0x22: out += "\\\""
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(b))
            default: out += "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
            }
        }
        return "\"" + out + "\""
    }
}
