// A real DNS server for the discovery tests: Debian's dnsmasq on a loopback port, answering only from a hosts file
// and --srv-host records that the test changes (hosts: rewrite and SIGHUP; SRV records: restart on the same port).
import Foundation
import Glibc
import XCTest

final class DNSMasq {
    static let binary = "/usr/sbin/dnsmasq"
    private(set) var port: UInt16
    let directory: URL
    let hostsURL: URL
    let logURL: URL
    /// Zones answered from the files only (NXDOMAIN or NODATA for anything else, never "REFUSED").
    let zones: [String]
    private(set) var srv: [String]
    /// Started with posix_spawn, not Foundation's Process: dnsmasq closes every inherited descriptor at start, which
    /// Foundation takes for its exit, and its monitor thread then blocks in waitpid until dnsmasq really exits, so no
    /// other child's exit (huddle's) is noticed meanwhile.
    private(set) var pid: pid_t = 0

    /// `hosts`: (IP, name) lines; `srv`: dnsmasq --srv-host values `_svc._proto.name,target,port,priority,weight`.
    init(hosts: [(String, String)], srv: [String] = [], zones: [String] = ["cluster.local", "test"]) throws {
        try Self.ensureInstalled()
        port = Harness.freePort()
        directory = Harness.temporaryDirectory()
        hostsURL = directory.appendingPathComponent("hosts")
        logURL = directory.appendingPathComponent("dnsmasq.log")
        self.zones = zones
        self.srv = srv
        try setHosts(hosts, reload: false)
        // The port was free for TCP; its UDP twin may not be: another port then.
        for attempt in 1...5 {
            do {
                try start()
                return
            } catch where attempt < 5 {
                port = Harness.freePort()
            }
        }
    }

    deinit { stop() }

    /// dnsmasq-base is a test prerequisite (.ci/run installs it); a developer machine without it gets it here.
    static func ensureInstalled() throws {
        if FileManager.default.isExecutableFile(atPath: binary) { return }
        guard getuid() == 0 else { throw HarnessError("\(binary) is missing: apt-get install dnsmasq-base") }
        print("DNSMasq: \(binary) is missing; installing dnsmasq-base")
        let r = try Harness.run("/usr/bin/apt-get", ["install", "-y", "-qq", "dnsmasq-base"], timeout: 300)
        guard r.status == 0, FileManager.default.isExecutableFile(atPath: binary) else {
            throw HarnessError("cannot install dnsmasq-base (apt-get exit \(r.status)): \(r.stderr.suffix(500))")
        }
    }

    /// Starts dnsmasq; waits until it accepts TCP on its port (it serves UDP and TCP there).
    func start() throws {
        var args = ["--keep-in-foreground", "--conf-file=/dev/null", "--port=\(port)", "--listen-address=127.0.0.1",
                    "--bind-interfaces", "--no-resolv", "--no-hosts", "--addn-hosts=\(hostsURL.path)", "--local-ttl=1",
                    "--pid-file=", "--user=root", "--log-queries", "--log-facility=\(logURL.path)"]
        args += zones.map { "--local=/\($0)/" }
        args += srv.map { "--srv-host=\($0)" }
        let argv: [UnsafeMutablePointer<CChar>?] = ([Self.binary] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var child: pid_t = 0
        let rc = posix_spawn(&child, Self.binary, &actions, nil, argv, environ)
        guard rc == 0 else { throw HarnessError("cannot start dnsmasq: posix_spawn \(rc)") }
        pid = child
        let port = self.port
        var exited = false
        let up = Harness.waitFor(10) {
            var status: Int32 = 0
            exited = waitpid(child, &status, WNOHANG) == child
            return exited || Harness.isListening(port)
        }
        guard up, !exited else {
            if exited { pid = 0 } else { stop() }
            throw HarnessError("dnsmasq did not start on port \(port); log:\n\(log)")
        }
    }

    /// SIGKILL and reap: DNS is down from here on.
    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        pid = 0
    }

    /// New SRV records: dnsmasq reads them only at start, so it restarts on the same port.
    func restart(srv: [String]) throws {
        stop()
        self.srv = srv
        try start()
    }

    /// Rewrites the hosts file (atomically) and, with `reload`, has dnsmasq re-read it (SIGHUP).
    func setHosts(_ hosts: [(String, String)], reload: Bool = true) throws {
        let text = hosts.map { "\($0.0) \($0.1)" }.joined(separator: "\n") + "\n"
        try text.write(to: hostsURL, atomically: true, encoding: .utf8)
        if reload, pid > 0 { kill(pid, SIGHUP) }
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }
}
