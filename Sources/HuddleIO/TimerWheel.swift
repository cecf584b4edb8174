// A hashed timer wheel: O(1) arm/cancel, cheap enough for one timeout per connection.
import HuddleSys

/// Subclass to receive a timer. A node is in at most one slot; re-arming moves it.
/// Owners usually re-check their own deadline in `timerFired` (lazy timeouts: activity just moves a timestamp).
open class TimerNode {
    fileprivate var prev: TimerNode?
    fileprivate var next: TimerNode?
    fileprivate var slot: Int = -1
    public fileprivate(set) var deadline: Int64 = 0
    public init() {}
    public var isArmed: Bool { slot >= 0 }
    open func timerFired(now: Int64) {}
}

// SAFETY: used only by its loop's thread.
public final class TimerWheel {
    public static let tickMs: Int64 = 10
    private let slotCount = 1024
    private var heads: [TimerNode?]
    private var currentTick: Int64
    public private(set) var count = 0
    private var due: [TimerNode] = []

    init(now: Int64) {
        heads = Array(repeating: nil, count: slotCount)
        currentTick = now / Self.tickMs
    }

    public var isEmpty: Bool { count == 0 }

    /// Arms (or re-arms) `node` to fire at `deadline` (monotonic ms).
    public func schedule(_ node: TimerNode, at deadline: Int64) {
        if node.slot >= 0 { unlink(node) }
        node.deadline = deadline
        // Round up: a node placed in the tick its deadline falls inside would be visited before it is due and
        // then not again for a whole lap (10 s).
        var tick = (deadline + Self.tickMs - 1) / Self.tickMs
        if tick <= currentTick { tick = currentTick + 1 }
        let s = Int(tick % Int64(slotCount))
        node.slot = s
        node.prev = nil
        node.next = heads[s]
        heads[s]?.prev = node
        heads[s] = node
        count += 1
    }

    public func cancel(_ node: TimerNode) {
        if node.slot >= 0 { unlink(node) } else if node.slot == Self.dueSlot { node.slot = -1 }
    }

    /// The slot of a node collected as due but not fired yet: a callback cancelling it must still stop it.
    private static let dueSlot = -2

    private func unlink(_ node: TimerNode) {
        if let p = node.prev { p.next = node.next } else { heads[node.slot] = node.next }
        node.next?.prev = node.prev
        node.prev = nil
        node.next = nil
        node.slot = -1
        count -= 1
    }

    func millisecondsToNextTick(now: Int64) -> Int32 {
        let next = (currentTick + 1) * Self.tickMs
        return Int32(max(0, min(next - now, Self.tickMs)))
    }

    /// Fires every node whose deadline has passed, walking the slots between the last tick and now.
    func advance(to now: Int64) {
        let target = now / Self.tickMs
        guard target > currentTick, count > 0 else {
            if target > currentTick { currentTick = target }
            return
        }
        // After a long stall, one lap covers every slot.
        let first = max(currentTick + 1, target - Int64(slotCount) + 1)
        currentTick = target
        var t = first
        while t <= target {
            let s = Int(t % Int64(slotCount))
            var node = heads[s]
            while let n = node {
                node = n.next
                if n.deadline <= now {
                    unlink(n)
                    n.slot = Self.dueSlot
                    due.append(n)
                }
            }
            t += 1
        }
        // Fire after collecting: a callback may cancel or re-arm any node, including ones in this slot.
        for n in due where n.slot == Self.dueSlot {
            n.slot = -1
            n.timerFired(now: now)
        }
        due.removeAll(keepingCapacity: true)
    }
}
