// Shared by every fuzz target (compiled into each binary): property checks that crash the run, an exact-size
// copy of the input whose bytes outside the window being fed are ASan-poisoned, and split points derived from it.

#if canImport(Glibc)
import Glibc
#endif

/// A violated property: print why and abort, so libFuzzer records the input as a crash.
@inline(never)
func propertyFailure(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    var text = "PROPERTY VIOLATED at \(file):\(line): \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

@inline(__always)
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { propertyFailure(message(), file: file, line: line) }
}

/// Printable form of bytes for failure messages.
func show(_ bytes: some Collection<UInt8>, limit: Int = 200) -> String {
    var out = ""
    for b in bytes.prefix(limit) {
        switch b {
        case 0x0D: out += "\\r"
        case 0x0A: out += "\\n"
        case 0x20...0x7E where b != 0x5C: out.unicodeScalars.append(Unicode.Scalar(b))
        default: out += "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
        }
    }
    return "\"" + out + (bytes.count > limit ? "...\"" : "\"")
}

// MARK: - ASan poisoning

private typealias PoisonFunction = @convention(c) (UnsafeRawPointer?, Int) -> Void

/// ASan's public interface, looked up at run time so the support file needs no C shim (nil without ASan).
private let asanPoison: PoisonFunction? =
    dlsym(nil, "__asan_poison_memory_region").map { unsafeBitCast($0, to: PoisonFunction.self) }
private let asanUnpoison: PoisonFunction? =
    dlsym(nil, "__asan_unpoison_memory_region").map { unsafeBitCast($0, to: PoisonFunction.self) }

/// The input copied into its own malloc block of exactly its size, so any read past the end is an ASan error.
/// `window(lo, hi)` additionally poisons the bytes outside `lo..<hi`: a parser handed a prefix (or a scanner handed
/// a piece) that reads beyond it is caught even though those bytes exist. ASan tracks 8-byte granules, so reads
/// just before an unaligned `lo` can go unseen; reads after `hi` are always seen.
final class ExactBytes {
    let base: UnsafeMutableRawPointer
    let count: Int
    private var lo = 0
    private var hi: Int

    init(_ bytes: UnsafeRawBufferPointer) {
        count = bytes.count
        base = malloc(max(count, 1))!
        if count > 0 { base.copyMemory(from: bytes.baseAddress!, byteCount: count) }
        hi = count
    }

    static func make(_ array: [UInt8]) -> ExactBytes {
        array.withUnsafeBytes { ExactBytes($0) }
    }

    deinit {
        asanUnpoison?(base, count)
        free(base)
    }

    subscript(_ i: Int) -> UInt8 { base.load(fromByteOffset: i, as: UInt8.self) }

    var all: [UInt8] { Array(UnsafeRawBufferPointer(start: base, count: count)) }

    /// The bytes `from..<to`, with everything else poisoned until the next call.
    func window(_ from: Int, _ to: Int) -> UnsafeRawBufferPointer {
        precondition(0 <= from && from <= to && to <= count)
        if let poison = asanPoison, let unpoison = asanUnpoison {
            if from < lo || to < hi {
                // Moving backwards: start over.
                unpoison(base, count)
                lo = 0
                hi = count
            }
            if to > hi { unpoison(base + hi, to - hi) }
            if from > lo { poison(base + lo, from - lo) }
            if to < hi { poison(base + to, hi - to) }
            lo = from
            hi = to
        }
        return UnsafeRawBufferPointer(start: base + from, count: to - from)
    }

    func prefix(_ n: Int) -> UnsafeRawBufferPointer { window(0, n) }

    /// The whole buffer (offsets unchanged) with everything outside `from..<to` poisoned, for functions that
    /// take a buffer plus a range and must stay inside the range.
    func fenced(_ from: Int, _ to: Int) -> UnsafeRawBufferPointer {
        _ = window(from, to)
        return UnsafeRawBufferPointer(start: base, count: count)
    }
}

// MARK: - Split points

/// SplitMix64, seeded from the input so that every run of one input is identical.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476C_E5E4_D9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// Ways to cut `count` bytes into consecutive deliveries, as increasing end offsets ending at `count`
/// (byte by byte is separate: callers run it themselves). Derived from the input: halves, cuts around every
/// CR and LF (where line-oriented parsers resume), and a pseudo-random split seeded by the content.
func splitPlans(_ bytes: UnsafeRawBufferPointer) -> [[Int]] {
    let count = bytes.count
    guard count > 1 else { return [] }
    var plans: [[Int]] = [[count / 2, count]]
    var aroundLines: [Int] = []
    for i in 0..<count where bytes[i] == 0x0D || bytes[i] == 0x0A {
        if i > 0, aroundLines.last != i { aroundLines.append(i) }
        if i + 1 < count { aroundLines.append(i + 1) }
    }
    aroundLines.append(count)
    plans.append(aroundLines)
    var rng = SplitMix(seed: fnv1a(bytes))
    var cuts: [Int] = []
    var at = 0
    let step = 1 + rng.below(max(1, count / 3))
    while at < count {
        at = min(count, at + 1 + rng.below(step))
        cuts.append(at)
    }
    plans.append(cuts)
    return plans.map { plan in
        var out: [Int] = []
        for c in plan where c > 0 && c <= count && (out.last ?? 0) < c { out.append(c) }
        if out.last != count { out.append(count) }
        return out
    }
}

/// Every end offset from 1 to `count`: one byte per delivery.
func byteByByte(_ count: Int) -> [Int] { count == 0 ? [0] : Array(1...count) }

/// The libFuzzer input as a raw buffer.
@inline(__always)
func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: data, count: size)
}
