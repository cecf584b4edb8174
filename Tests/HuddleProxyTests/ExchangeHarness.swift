// A worker on the in-memory network, with the test playing client and backends, and the check that everything an
// exchange borrowed is back: the same invariant the integration tests check through the admin port, read directly.
import Foundation
@testable import HuddleProxy
import HuddleConfig
import HuddleIO
import HuddleSys
import XCTest

final class ExchangeHarness {
    let net = MemoryNetworkForTesting()
    let worker: Worker<MemoryNetworkForTesting>
    let runtime: RuntimeConfig
    let logPath: String

    /// `config` is a Huddle config without `error_log` (the harness sends the log to a file it can read).
    init(config: String) throws {
        logPath = NSTemporaryDirectory() + "huddle-exchange-\(getpid())-\(UUID().uuidString.prefix(8)).log"
        let text = "error_log \(logPath) level=debug;\naccess_log \(logPath);\n" + config
        let parsed = try ConfigParser.parse(text: text, file: "exchange-test.conf")
        runtime = try RuntimeConfig.build(parsed, generation: 1, previous: nil, log: { _ in })
        worker = try Worker(id: 0, network: net, config: runtime, errorLog: ErrorLog(parsed.errorLog), listenFDs: [])
    }

    deinit {
        worker.forceClose()
        try? FileManager.default.removeItem(atPath: logPath)
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// A new client connection, accepted by the worker (from 127.0.0.1:40000), as on a `proxy_protocol` listener if
    /// asked.
    func client(proxyProtocol: Bool = false) -> MemoryConnection {
        let (c, s) = net.newClient()
        worker.adopt(s, peer: SocketAddress(ip: "127.0.0.1", port: 40000), blockIndex: 0, proxyProtocol: proxyProtocol)
        return c
    }

    /// The n-th backend connection the worker opened.
    func backend(_ n: Int) -> MemoryConnection? {
        n < net.backendConnections.count ? net.backendConnections[n].connection : nil
    }

    /// Delivers readiness and runs the loop's timers until `condition` holds or `seconds` pass.
    @discardableResult
    func run(for seconds: Double = 3, until condition: () -> Bool = { false }) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            net.deliver()
            if condition() { return true }
            worker.loop.runOnce(maxWaitMs: 5)
            net.deliver()
            if condition() { return true }
        } while Date() < deadline
        return condition()
    }

    func server(_ port: UInt16) -> ServerRuntime {
        runtime.upstreams.flatMap(\.servers).first { $0.address?.port == port }!
    }

    /// Every counter, pool and descriptor an exchange can hold is back at rest. Pooled keep-alive connections are
    /// allowed (they belong to the worker's pool, not to an exchange), but each must be open and idle.
    func assertAtRest(file: StaticString = #filePath, line: UInt = #line) {
        net.deliver()
        // The access log keeps a buffer until the end of the loop turn; the turn is over.
        worker.accessLog.flush()
        for u in runtime.upstreams {
            for s in u.servers {
                XCTAssertEqual(s.inFlight.load(ordering: .relaxed), 0, "in_flight of \(s.addressText)", file: file, line: line)
                XCTAssertEqual(s.activeConnections.load(ordering: .relaxed), 0, "active_connections of \(s.addressText)", file: file, line: line)
            }
            XCTAssertEqual(u.groups.totals(nowMs: Sys.monotonicMs()).members, 0, "group members of \(u.name)", file: file, line: line)
            XCTAssertEqual(u.queue.length.load(ordering: .relaxed), 0, "requests queued for \(u.name)", file: file, line: line)
            XCTAssertEqual(u.queue.workers.map(\.entries.count).reduce(0, +), 0, "queue entries of \(u.name)", file: file, line: line)
        }
        XCTAssertEqual(worker.counters.tunnels, 0, "tunnels", file: file, line: line)
        XCTAssertEqual(worker.counters.upstreamConnections, worker.upstreamPool.idleCount, "backend connections beyond the idle pool", file: file, line: line)
        XCTAssertEqual(worker.exchanges.outstanding, 0, "exchanges lent", file: file, line: line)
        XCTAssertEqual(worker.loop.buffers.outstanding, 0, "buffers lent", file: file, line: line)
        XCTAssertEqual(worker.gzipBuffers.outstanding, 0, "gzip buffers lent", file: file, line: line)
        XCTAssertEqual(worker.loop.pipes.outstanding, 0, "pipes lent", file: file, line: line)
        XCTAssertEqual(worker.gzipStreams.outstanding, 0, "zlib streams lent", file: file, line: line)
        XCTAssertEqual(worker.counters.cacheReads, 0, "stored cache entries held", file: file, line: line)
        XCTAssertEqual(worker.counters.cacheWaits, 0, "requests waiting on a collapsed fill", file: file, line: line)
        XCTAssertEqual(worker.counters.cacheLeads, 0, "collapsed fills led", file: file, line: line)
        XCTAssertEqual(worker.counters.cacheFills, 0, "responses being stored", file: file, line: line)
        for c in runtime.routeCaches {
            for s in c.stores { XCTAssertEqual(s.fillsInProgress, 0, "fills in progress in the cache of \(c.route)", file: file, line: line) }
        }
        for c in net.allConnections {
            XCTAssertLessThanOrEqual(c.proxyCloses, 1, "\(c.label) closed \(c.proxyCloses) times", file: file, line: line)
        }
        let open = net.allConnections.filter { !$0.proxyClosed }.count
        XCTAssertEqual(open, worker.counters.clientConnections + worker.counters.upstreamConnections,
                       "connections the proxy holds open vs. the ones it counts", file: file, line: line)
    }
}

extension String {
    /// The status code of the first HTTP/1.1 status line in the text.
    var statusCode: Int? {
        guard let r = range(of: "HTTP/1.1 ") else { return nil }
        return Int(self[r.upperBound...].prefix(3))
    }
}
