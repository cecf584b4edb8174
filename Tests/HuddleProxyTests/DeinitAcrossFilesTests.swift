// Pins the Swift compiler behaviour that shapes Huddle's ownership types: see `StreamOwner`.
@testable import HuddleProxy
import HuddleSys
import XCTest

/// A transport that records its close, so a test can see the owner's deinit run.
struct ClosingProbe: Transport {
    let fd: Int32
    let log: ProbeLog
    var spliceFD: Int32? { nil }
    func read(_ buffer: UnsafeMutableRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> { .wouldBlock }
    func write(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> { .wouldBlock }
    func writev(_ a: UnsafeRawPointer?, _ aCount: Int, _ b: UnsafeRawPointer?, _ bCount: Int) throws(Errno) -> IOResult<Int> { .wouldBlock }
    func shutdownWrite() {}
    func closeTransport() { log.closed.append(fd) }
    var tls: TLSSession? { nil }
    func writeRaw(_ buffer: UnsafeRawPointer, _ count: Int) throws(Errno) -> IOResult<Int> { try write(buffer, count) }
}

final class ProbeLog { var closed: [Int32] = [] }

/// Holds an owner in an optional, generic over the transport like the connections are.
final class OwnerHolder<T: Transport> {
    var owner: StreamOwner?
    init(_ t: T) { owner = StreamOwner(t) }
}

final class DeinitAcrossFilesTests: XCTestCase {
    func testDroppingAnOwnerClosesItsStreamOnce() {
        let log = ProbeLog()
        let h = OwnerHolder(ClosingProbe(fd: 7, log: log))
        XCTAssertEqual(log.closed, [])
        h.owner = nil
        XCTAssertEqual(log.closed, [7], "the owner's deinit closed the stream")
        h.owner = nil
        XCTAssertEqual(log.closed, [7], "dropping nothing closes nothing")
        do { _ = OwnerHolder(ClosingProbe(fd: 8, log: log)) }
        XCTAssertEqual(log.closed, [7, 8], "an owner goes with its holder")
    }
}
