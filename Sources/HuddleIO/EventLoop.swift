// One epoll loop per worker thread: edge-triggered registrations, a timer wheel, and an eventfd inbox for other threads.
import CHuddleLinux
import HuddleSys
import Synchronization
import HuddleSync

/// Something registered with a loop. Called on the loop thread only.
public protocol EventHandler: AnyObject {
    func handleEvent(_ events: UInt32)
}

public enum Events {
    public static let readable = HUDDLE_EPOLLIN
    public static let writable = HUDDLE_EPOLLOUT
    public static let error = HUDDLE_EPOLLERR
    public static let hangup = HUDDLE_EPOLLHUP
    public static let readHangup = HUDDLE_EPOLLRDHUP
    public static let edgeTriggered = HUDDLE_EPOLLET
    /// What connections register with: everything, edge-triggered, so interest never needs changing.
    public static let all = HUDDLE_EPOLLIN | HUDDLE_EPOLLOUT | HUDDLE_EPOLLRDHUP | HUDDLE_EPOLLET
}

/// A registration handle: the slot in the loop's table and its generation, so events for a closed-and-reused slot are dropped.
public struct Registration: Sendable, Equatable {
    public var slot: UInt32
    public var generation: UInt32
    public static let none = Registration(slot: UInt32.max, generation: 0)
    @inline(__always) var packed: UInt64 { UInt64(generation) << 32 | UInt64(slot) }
}

// SAFETY: every field except `inbox`/`wakeFD` is touched on the loop thread only; `inbox` is a Mutex and
// `wakeFD` is written with an atomic syscall, so `execute` may be called from any thread.
public final class EventLoop: @unchecked Sendable {
    public let id: Int
    let epfd: Int32
    let wakeFD: Int32
    private let inbox = Locked<[@Sendable () -> Void]>([])
    private let inboxPending = Atomic<Bool>(false)
    private var handlers: [EventHandler?] = []   // on the loop thread only
    private var generations: [UInt32] = []
    private var freeSlots: [UInt32] = []
    private var events: UnsafeMutablePointer<huddle_epoll_event>
    private let maxEvents: Int32 = 512
    private var stopping = false
    /// Timers for this loop's connections.
    public let timers: TimerWheel
    /// Per-loop buffer and pipe caches.
    public let buffers: BufferPool
    public let pipes: PipePool
    /// Called once at the end of every loop turn (after events and timers): log flushing, deferred closes.
    private var endOfTurnHooks: [() -> Void] = []
    /// Handlers whose work was cut short to let others have the thread: run again next turn (see `runNextTurn`).
    private var deferred: [EventHandler] = []
    private var deferredRunning: [EventHandler] = []
    /// The loop's notion of now, refreshed once per turn (coarse monotonic ms).
    public private(set) var now: Int64

    public init(id: Int, bufferSize: Int = 16 * 1024) throws(Errno) {
        self.id = id
        epfd = try Sys.epollCreate()
        wakeFD = try Sys.eventfd()
        events = .allocate(capacity: Int(maxEvents))
        now = Sys.monotonicMs()
        timers = TimerWheel(now: now)
        buffers = BufferPool(bufferSize: bufferSize)
        pipes = PipePool()
        try Sys.epollCtl(epfd, op: HUDDLE_EPOLL_CTL_ADD, fd: wakeFD, events: Events.readable, data: UInt64.max)
    }

    deinit {
        events.deallocate()
        Sys.close(epfd)
        Sys.close(wakeFD)
    }

    // MARK: registrations (loop thread only)

    public func register(fd: Int32, events: UInt32 = Events.all, handler: EventHandler) throws(Errno) -> Registration {
        let slot: UInt32
        if let s = freeSlots.popLast() {
            slot = s
            handlers[Int(s)] = handler
        } else {
            slot = UInt32(handlers.count)
            handlers.append(handler)
            generations.append(0)
        }
        let reg = Registration(slot: slot, generation: generations[Int(slot)])
        do {
            try Sys.epollCtl(epfd, op: HUDDLE_EPOLL_CTL_ADD, fd: fd, events: events, data: reg.packed)
        } catch {
            release(reg)
            throw error
        }
        return reg
    }

    /// Stops delivering events for `registration`. Closing the fd removes it from epoll; call this before close.
    public func deregister(fd: Int32, registration: Registration) {
        guard registration != .none else { return }
        _ = try? Sys.epollCtl(epfd, op: HUDDLE_EPOLL_CTL_DEL, fd: fd, events: 0, data: 0)
        release(registration)
    }

    /// Stops delivering events for a descriptor the caller closes right after. Closing the last reference to a file
    /// removes it from epoll by itself, so this skips the EPOLL_CTL_DEL syscall (as nginx does on close); events already
    /// collected for it in this turn are dropped by the registration's generation.
    public func deregisterClosing(registration: Registration) {
        guard registration != .none else { return }
        release(registration)
    }

    private func release(_ reg: Registration) {
        let s = Int(reg.slot)
        guard s < handlers.count, generations[s] == reg.generation else { return }
        handlers[s] = nil
        generations[s] &+= 1
        freeSlots.append(reg.slot)
    }

    public var registrationCount: Int { handlers.count - freeSlots.count }

    public func addEndOfTurnHook(_ hook: @escaping () -> Void) { endOfTurnHooks.append(hook) }

    /// Calls `handler.handleEvent(0)` in the next turn, after that turn's events, without waiting for readiness: for a
    /// handler that stopped a long run of work (compressing a large body) so other connections get the thread. While
    /// any handler is queued, the next epoll_wait does not block.
    public func runNextTurn(_ handler: EventHandler) { deferred.append(handler) }

    // MARK: cross-thread

    /// Runs `task` on the loop thread. One eventfd write per batch, not per task.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        inbox.withLock { $0.append(task) }
        if !inboxPending.exchange(true, ordering: .acquiringAndReleasing) {
            Sys.eventfdSignal(wakeFD)
        }
    }

    /// Ends `run()` after the current turn. Callable from any thread.
    public func stop() {
        execute { [unowned self] in self.stopping = true }
    }

    private func drainInbox() {
        Sys.eventfdDrain(wakeFD)
        inboxPending.store(false, ordering: .releasing)
        let tasks = inbox.withLock { q -> [@Sendable () -> Void] in
            let t = q
            q.removeAll(keepingCapacity: true)
            return t
        }
        for t in tasks { t() }
    }

    // MARK: the loop

    /// Runs until `stop()`; call on the thread that owns this loop.
    public func run() {
        while !stopping {
            runOnce(maxWaitMs: -1)
        }
        drainInbox()
    }

    /// One turn: wait for events (at most until the next timer tick), dispatch them, fire due timers, run end-of-turn hooks.
    public func runOnce(maxWaitMs: Int32) {
        var timeout = timers.isEmpty ? maxWaitMs : timers.millisecondsToNextTick(now: Sys.monotonicMs())
        if maxWaitMs >= 0 && (timeout < 0 || timeout > maxWaitMs) { timeout = maxWaitMs }
        if !deferred.isEmpty { timeout = 0 }
        let n: Int
        do {
            n = try Sys.epollWait(epfd, events, max: maxEvents, timeoutMs: timeout)
        } catch {
            n = 0
        }
        now = Sys.monotonicMs()
        for i in 0..<n {
            let ev = events[i]
            if ev.data == UInt64.max {
                drainInbox()
                continue
            }
            let slot = Int(UInt32(truncatingIfNeeded: ev.data))
            let gen = UInt32(truncatingIfNeeded: ev.data >> 32)
            guard slot < handlers.count, generations[slot] == gen, let h = handlers[slot] else { continue }
            h.handleEvent(ev.events)
        }
        if !deferred.isEmpty {
            // Those queued while these run wait for the next turn.
            swap(&deferred, &deferredRunning)
            for h in deferredRunning { h.handleEvent(0) }
            deferredRunning.removeAll(keepingCapacity: true)
        }
        timers.advance(to: now)
        for hook in endOfTurnHooks { hook() }
    }
}
