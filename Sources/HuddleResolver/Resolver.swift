// The resolver thread: every DNS exchange Huddle makes runs here, never on an event loop. Lookups are posted from
// any thread; many run at once (non-blocking sockets, one poll(2)); each completion is called on this thread, and
// its caller forwards the result where it belongs (discovery posts it to the control loop).
import Glibc
import HuddleDNS
import HuddleIO
import HuddleSync
import HuddleSys

// SAFETY: `inbox` is behind a mutex and `wakeFD` is an eventfd; everything else is touched on the resolver thread only
// (after `start`), except `thread`, which only `start` and `stop` touch, from the thread that owns the resolver.
public final class Resolver: @unchecked Sendable {
    private let inbox = Locked<[@Sendable () -> Void]>([])
    private let wakeFD: Int32
    private var settings: ResolverSettings
    private var exchanges: [DNSExchange] = []
    private var running = true
    private var thread: pthread_t?

    public init(settings: ResolverSettings) throws(Errno) {
        self.settings = settings
        wakeFD = try Sys.eventfd()
    }

    deinit { Sys.close(wakeFD) }

    public func start() {
        guard thread == nil else { return }
        thread = LoopThread.spawn(name: "huddle-dns") { [self] in run() }
    }

    /// Ends the thread; lookups in flight are dropped without their completions.
    public func stop() {
        guard let t = thread else { return }
        post { [self] in running = false }
        LoopThread.join(t)
        thread = nil
    }

    /// New nameservers or search list (a reload); lookups in flight finish with the old ones.
    public func update(_ settings: ResolverSettings) {
        post { [self] in self.settings = settings }
    }

    /// A and AAAA for `name`, through the search list; `completion` runs on the resolver thread.
    public func lookupAddresses(_ name: String, completion: @escaping @Sendable (AddressLookup) -> Void) {
        post { [self] in startAddressLookup(name, completion: completion) }
    }

    /// SRV for `name` (through the search list), then the targets' addresses; `completion` runs on the resolver thread.
    public func lookupService(_ name: String, completion: @escaping @Sendable (ServiceLookup) -> Void) {
        post { [self] in startServiceLookup(name, completion: completion) }
    }

    private func post(_ task: @escaping @Sendable () -> Void) {
        inbox.withLock { $0.append(task) }
        Sys.eventfdSignal(wakeFD)
    }

    // MARK: - on the resolver thread

    /// Asks one question; `completion` runs on this thread.
    func ask(_ name: DNSName, _ type: DNSRecordType, completion: @escaping (Result<DNSAnswer, DNSFailure>) -> Void) {
        let e = DNSExchange(question: DNSQuestion(name: name, type: type), settings: settings, completion: completion)
        exchanges.append(e)
        e.start(now: Resolver.nowMs())
    }

    var currentSettings: ResolverSettings { settings }

    /// The precise monotonic clock in whole milliseconds. Not the event loops' coarse clock: that one lags by up to
    /// a scheduler tick (4 ms), which made a 300 ms query timeout fire after 298.4 ms. Resolution is off the hot
    /// path, and a DNS timeout must never be shorter than configured (see `DNSExchange.send`).
    static func nowMs() -> Int64 { Int64(Sys.monotonicNs() / 1_000_000) }

    private func run() {
        var fds: [pollfd] = []
        while running {
            exchanges.removeAll { $0.finished }
            let polled = exchanges
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeFD, events: Sys.pollIn, revents: 0))
            for e in polled { fds.append(pollfd(fd: e.fd, events: e.wantsWrite ? Sys.pollOut : Sys.pollIn, revents: 0)) }
            let now = Resolver.nowMs()
            let timeout = polled.map(\.deadline).min().map { Int32(clamping: max(0, $0 - now)) } ?? -1
            let ready = (try? fds.withUnsafeMutableBufferPointer { (b) throws(Errno) -> Int in
                try Sys.poll(b.baseAddress!, count: b.count, timeoutMs: timeout)
            }) ?? 0
            let after = Resolver.nowMs()
            if ready > 0 {
                for (i, e) in polled.enumerated() where fds[i + 1].revents != 0 { e.handle(revents: fds[i + 1].revents, now: after) }
            }
            for e in polled where !e.finished { e.timedOut(now: after) }
            if fds[0].revents != 0 {
                Sys.eventfdDrain(wakeFD)
                let tasks = inbox.withLock { q -> [@Sendable () -> Void] in
                    defer { q.removeAll() }
                    return q
                }
                for t in tasks { t() }
            }
        }
        for e in exchanges { e.cancel() }
        exchanges.removeAll()
    }
}
