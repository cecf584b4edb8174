// The last good answer of one lookup, kept for a while when lookups fail or come back empty: a DNS outage or a
// nameserver answering NXDOMAIN by mistake must not empty an upstream at once.

struct HeldSet<Item: Equatable>: Equatable {
    /// What the snapshot uses.
    private(set) var items: [Item] = []
    /// When a non-empty answer last confirmed `items` (monotonic ms).
    private(set) var goodAtMs: Int64? = nil

    /// `answer` nil is a failed lookup, empty an answer with no records.
    mutating func update(_ answer: [Item]?, nowMs: Int64, holdMs: Int64) -> HoldEvent {
        if let answer, !answer.isEmpty {
            items = answer
            goodAtMs = nowMs
            return .answered
        }
        guard !items.isEmpty else { return .nothingHeld }
        let until = (goodAtMs ?? nowMs) + holdMs
        if nowMs < until { return .holding(untilMs: until) }
        items = []
        goodAtMs = nil
        return .expired
    }
}

/// What one answer did to a `HeldSet`.
enum HoldEvent: Equatable {
    /// A non-empty answer (the same items or new ones).
    case answered
    /// Empty or failed, and nothing was held: nothing changes.
    case nothingHeld
    /// Empty or failed: the items stay until `untilMs`.
    case holding(untilMs: Int64)
    /// Empty or failed for longer than the hold time: the items are dropped now.
    case expired
}
