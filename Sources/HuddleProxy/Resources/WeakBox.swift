/// A weak reference held in its own object. A closure that must not keep an object alive captures the box, not the
/// object: the first weak reference to a Swift object gives it a side table for good, after which every retain and
/// release of it takes the runtime's slow path (measured: about 1% of a worker's CPU on the request path when the
/// `Worker` had one). The box takes the side table instead.
final class WeakBox<T: AnyObject>: @unchecked Sendable {
    weak var value: T?
    init(_ value: T) { self.value = value }
}
