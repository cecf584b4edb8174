// Python peers (Tests/IntegrationTests/peers/*.py) as real subprocesses: an independent backend that records every
// byte it receives, and fault-injecting backends. Nothing here shares code with Huddle's HTTP implementation.
import Foundation
import Glibc
import XCTest

/// A `python3 -u peers/SCRIPT ARGS...` subprocess that prints "PORT <n>" once it listens, then "EVENT ..." lines.
final class PythonPeer {
    static let peersDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("peers")

    let process = Process()
    let port: UInt16
    /// Where the script writes what it records (raw_backend.py: `--record-dir`).
    let directory: URL
    let stdoutURL: URL
    let stderrURL: URL
    let script: String

    /// Starts the script; `recordDirectory` adds `--record-dir DIR` (a fresh temporary directory).
    init(script: String, arguments: [String] = [], recordDirectory: Bool = false) throws {
        self.script = script
        directory = Harness.temporaryDirectory()
        stdoutURL = directory.appendingPathComponent("peer.stdout")
        stderrURL = directory.appendingPathComponent("peer.stderr")
        let records = directory.appendingPathComponent("records")
        try FileManager.default.createDirectory(at: records, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var args = ["python3", "-u", Self.peersDirectory.appendingPathComponent(script).path] + arguments
        if recordDirectory { args += ["--record-dir", records.path] }
        process.arguments = args
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        var found: UInt16? = nil
        let stdoutURL = self.stdoutURL
        Harness.waitFor(15) {
            let text = (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix("PORT ") {
                found = UInt16(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
            }
            return found != nil
        }
        guard let p = found else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let err = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
            throw NSError(domain: "peer", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(script) did not print its port; stderr:\n\(err)"])
        }
        port = p
    }

    deinit { stop() }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var recordDirectory: URL { directory.appendingPathComponent("records") }
    var stderrText: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// The "EVENT ..." lines printed so far, without the prefix.
    var events: [String] {
        let text = (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.hasPrefix("EVENT ") }.map { String($0.dropFirst(6)) }
    }

    /// Polls for an event starting with `prefix`; returns it, or nil after `timeout` seconds.
    func waitForEvent(_ prefix: String, timeout: Double = 10) -> String? {
        var hit: String? = nil
        Harness.waitFor(timeout) {
            hit = self.events.first { $0.hasPrefix(prefix) }
            return hit != nil
        }
        return hit
    }

    /// SIGKILL (the peer has nothing to flush: it writes its records synchronously) and reap.
    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() { kill9() }

    // MARK: what raw_backend.py recorded

    struct Connection {
        var id: Int
        var bytes: [UInt8]
        /// Why it ended ("eof", "reset", "server-close"), or nil while open.
        var closed: String?
    }

    /// Every connection accepted so far, in order.
    func connections() -> [Connection] {
        let dir = recordDirectory
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".raw") }.sorted()
        return names.map { name in
            let id = Int(name.dropFirst(5).prefix(6)) ?? -1
            let raw = (try? Data(contentsOf: dir.appendingPathComponent(name))).map { [UInt8]($0) } ?? []
            let closedURL = dir.appendingPathComponent(name.replacingOccurrences(of: ".raw", with: ".closed"))
            let closed = FileManager.default.fileExists(atPath: closedURL.path)
                ? ((try? String(contentsOf: closedURL, encoding: .utf8)) ?? "") : nil
            return Connection(id: id, bytes: raw, closed: closed)
        }
    }

    /// Waits until every recorded connection is over: then every byte sent to the peer on them has been recorded
    /// (TCP delivers the FIN after the data).
    @discardableResult
    func waitUntilAllConnectionsClosed(timeout: Double = 5) -> Bool {
        Harness.waitFor(timeout) { self.connections().allSatisfy { $0.closed != nil } }
    }

    /// One entry of requests.jsonl: a parsed request or a parse error.
    struct Request {
        var object: [String: Any]
        var conn: Int { object["conn"] as? Int ?? -1 }
        var error: String? { object["error"] as? String }
        var method: String { object["method"] as? String ?? "" }
        var target: String { object["target"] as? String ?? "" }
        var version: String { object["version"] as? String ?? "" }
        var body: String { object["body"] as? String ?? "" }
        var bodyLength: Int { object["body_length"] as? Int ?? -1 }
        /// Field lines in the order received.
        var headers: [(name: String, value: String)] {
            (object["headers"] as? [[String]] ?? []).compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
        }
        /// Values of every field line named `name` (case-insensitive), in order.
        func values(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }
    }

    func requests() -> [Request] {
        let url = recordDirectory.appendingPathComponent("requests.jsonl")
        let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]).map { Request(object: $0) }
        }
    }

    /// Total bytes received over every connection so far.
    var totalBytesReceived: Int { connections().reduce(0) { $0 + $1.bytes.count } }
}

/// A parsed HTTP/1.1 response read off a raw socket (status, headers, body per Content-Length).
struct ParsedResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func value(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }

    /// Parses every complete response in `bytes` (Content-Length or no body; enough for Huddle's local answers and
    /// raw_backend.py's echoes). `headOnly` statuses (HEAD) take no body.
    static func parseAll(_ bytes: [UInt8], headRequest: Bool = false) -> [ParsedResponse] {
        var out: [ParsedResponse] = []
        var i = 0
        let crlf2: [UInt8] = [13, 10, 13, 10]
        while i < bytes.count {
            guard let end = bytes.firstRange(of: crlf2, startingAt: i) else { break }
            let head = String(decoding: bytes[i..<end], as: UTF8.self)
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst()
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else { break }
            let headers = lines.compactMap { l -> (String, String)? in
                guard let c = l.firstIndex(of: ":") else { return nil }
                return (String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces))
            }
            var r = ParsedResponse(status: status, headers: headers, body: [])
            var bodyStart = end + 4
            let noBody = headRequest || status < 200 || status == 204 || status == 304
            if !noBody, let cl = r.value("Content-Length").flatMap({ Int($0) }) {
                let stop = min(bytes.count, bodyStart + cl)
                r.body = Array(bytes[bodyStart..<stop])
                bodyStart = stop
            }
            out.append(r)
            i = bodyStart
        }
        return out
    }

    /// raw_backend.py's echo body as JSON.
    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] }
}

extension Array where Element == UInt8 {
    func firstRange(of needle: [UInt8], startingAt start: Int) -> Int? {
        guard needle.count <= count else { return nil }
        var i = start
        while i + needle.count <= count {
            if self[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
