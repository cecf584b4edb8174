// A backend server's state as operators see it, derived from independent causes that can hold at once.
//
// Each cause is one bit: an active check failing, a passive ejection, an operator's drain, an operator's (or the
// config's `down`) disable. The reported state is the strongest cause present; a server takes traffic only with none.

/// Server states as the admin API spells them.
public enum ServerState: UInt8, Sendable, CaseIterable {
    case healthy = 0, unhealthy, ejected, draining, disabled

    public var name: String {
        switch self {
        case .healthy: return "healthy"
        case .unhealthy: return "unhealthy"
        case .ejected: return "ejected"
        case .draining: return "draining"
        case .disabled: return "disabled"
        }
    }
}

/// The causes that keep a server from taking new traffic, as bits of one word (read with one atomic load per pick).
public struct HealthFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Active checks failed `fall` times in a row (cleared after `rise` successes).
    public static let activeDown = HealthFlags(rawValue: 1)
    /// Passive health ejected it for a while.
    public static let ejected = HealthFlags(rawValue: 2)
    /// An operator is draining it: no new requests or groups; existing groups stay until their members leave.
    public static let draining = HealthFlags(rawValue: 4)
    /// `down` in the config, or an operator disabled it.
    public static let disabled = HealthFlags(rawValue: 8)

    /// The state an operator sees: the strongest cause present.
    public var state: ServerState {
        if contains(.disabled) { return .disabled }
        if contains(.draining) { return .draining }
        if contains(.ejected) { return .ejected }
        if contains(.activeDown) { return .unhealthy }
        return .healthy
    }

    /// New requests and new groups may go here.
    @inline(__always) public var takesTraffic: Bool { rawValue == 0 }

    /// Members of a group already pinned here may still join it: a draining server keeps its groups whole until their
    /// members leave; a server that is down or ejected does not.
    @inline(__always) public var keepsGroups: Bool { self == .draining || rawValue == 0 }
}
