// The backend side of one exchange: the server it is assigned to (an in-flight claim), the connection it uses (a link),
// the group membership of an upgrade, and what retries are left. Dropping a field releases what it holds.
import HuddleIO

struct UpstreamAttempt<Net: Network>: ~Copyable {
    /// The server this attempt is on; its in-flight count includes this exchange while the claim exists.
    var claim: InFlightClaim?
    /// The backend connection in use.
    var link: UpstreamLink?
    /// For an upgrade to a grouped route: this member's place in its group.
    var membership: GroupMembership?
    /// The index of the claimed server in its upstream (-1 when a group chose it): whose sticky cookie the response sets.
    var serverIndex = -1
    /// Server uids already tried by this exchange (a retry goes elsewhere).
    var excluded: [Int] = []
    var retriesLeft = 0
    /// Why the previous attempt failed: if no other server is left to retry on, the client gets its status.
    var lastFailure: UpstreamFailure?
    /// The exchange's place in its upstream's queue while it waits for a server below `max_conns`.
    var queued: QueueTicket?
    /// The request's class in the queue, read from the head once (`priority header`); nil until it first queues.
    var priority: Int?

    var server: ServerRuntime? { claim != nil ? claim.unwrapped.server : nil }
    var connection: UpstreamConnection<Net>? { link != nil ? link.unwrapped.typed(Net.self) : nil }
    var holdsAnything: Bool { claim != nil || link != nil || membership != nil || queued != nil }

    mutating func reset() {
        claim = nil
        link = nil
        membership = nil
        serverIndex = -1
        excluded.removeAll(keepingCapacity: true)
        retriesLeft = 0
        lastFailure = nil
        queued = nil
        priority = nil
    }
}
