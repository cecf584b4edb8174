// One 16 KiB buffer per thread for assembling a TLS record from two regions: no per-write allocation, and nothing
// held per connection (an idle connection must cost little).
import Glibc

enum TLSScratch {
    static let size = 16 * 1024

    // SAFETY: created once; each thread only touches its own buffer through pthread_getspecific.
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        precondition(pthread_key_create(&k, { p in p?.deallocate() }) == 0, "pthread_key_create failed")
        return k
    }()

    @inline(__always)
    static func buffer() -> UnsafeMutableRawPointer {
        if let p = pthread_getspecific(key) { return p }
        let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        _ = pthread_setspecific(key, p)
        return p
    }
}
