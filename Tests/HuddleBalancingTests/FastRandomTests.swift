// FastRandom: the published xoshiro256** sequence (seeded through splitmix64), reproducible and well spread.

import HuddleBalancing
import XCTest

final class FastRandomTests: XCTestCase {
    /// Computed once from the reference definitions (splitmix64 seeding, xoshiro256** output) and pasted.
    func testSequenceMatchesReference() {
        var zero = FastRandom(seed: 0)
        XCTAssertEqual((0..<4).map { _ in zero.next() },
                       [0x99EC_5F36_CB75_F2B4, 0xBF6E_1F78_4956_452A, 0x1A5F_849D_4933_E6E0, 0x6AA5_94F1_262D_2D2C])
        var answer = FastRandom(seed: 42)
        XCTAssertEqual((0..<4).map { _ in answer.next() },
                       [0x1578_0B2E_0C2E_C716, 0x6104_D986_6D11_3A7E, 0xAE17_5332_39E4_99A1, 0xECB8_AD47_03B3_60A1])
    }

    func testUniformOverSmallRange() {
        var rng = FastRandom(seed: 7)
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<100_000 { counts[Int.random(in: 0..<10, using: &rng)] += 1 }
        // Binomial(100k, 0.1): sd ≈ 95, so ±500 is over 5 sd.
        for c in counts { XCTAssertEqual(c, 10_000, accuracy: 500) }
    }
}
