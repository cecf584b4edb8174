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
    /// One bit per slot, set while the slot holds a node: lets the loop sleep until the next slot that has work
    /// instead of waking every tick (an idle proxy would otherwise wake 100 times a second).
    private var occupied: [UInt64]

    init(now: Int64) {
        heads = Array(repeating: nil, count: slotCount)
        occupied = Array(repeating: 0, count: slotCount / 64)
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
        occupied[s >> 6] |= 1 << UInt64(s & 63)
        count += 1
    }

    public func cancel(_ node: TimerNode) {
        if node.slot >= 0 { unlink(node) } else if node.slot == Self.dueSlot { node.slot = -1 }
    }

    /// The slot of a node collected as due but not fired yet: a callback cancelling it must still stop it.
    private static let dueSlot = -2

    private func unlink(_ node: TimerNode) {
        if let p = node.prev { p.next = node.next } else {
            heads[node.slot] = node.next
            if node.next == nil { occupied[node.slot >> 6] &= ~(1 << UInt64(node.slot & 63)) }
        }
        node.next?.prev = node.prev
        node.prev = nil
        node.next = nil
        node.slot = -1
        count -= 1
    }

    /// How long the loop may sleep: until the tick of the next occupied slot (at most one lap). Nodes in that slot
    /// may be due only laps later; then the loop wakes, finds nothing due, and sleeps again.
    func millisecondsToNextTick(now: Int64) -> Int32 {
        guard count > 0 else { return -1 }
        let start = Int((currentTick + 1) % Int64(slotCount))
        var ahead = 0
        while ahead < slotCount {
            let s = (start + ahead) % slotCount
            let word = occupied[s >> 6] >> UInt64(s & 63)
            if word != 0 {
                ahead += word.trailingZeroBitCount
                break
            }
            ahead += 64 - (s & 63)
        }
        let next = (currentTick + 1 + Int64(min(ahead, slotCount - 1))) * Self.tickMs
        return Int32(max(0, min(next - now, Int64(Int32.max))))
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
