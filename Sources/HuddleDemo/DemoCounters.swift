// One worker's counters for /stats: relaxed atomics written by that worker only, summed by whoever asks.
import Synchronization

final class DemoCounters: Sendable {
    let connectionsAccepted = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    let webSocketsOpen = Atomic<Int>(0)
}
