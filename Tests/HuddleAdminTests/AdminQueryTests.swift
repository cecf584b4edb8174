// Query parameters of admin requests: form decoding, and group keys kept as bytes.
@testable import HuddleAdmin
import XCTest

final class AdminQueryTests: XCTestCase {
    func testValuesAreFormDecoded() {
        let q = AdminQuery("upstream=chat&key=a+b%2Bc%20d&top=5")
        XCTAssertEqual(q.string("upstream"), "chat")
        XCTAssertEqual(q.string("key"), "a b+c d")
        XCTAssertEqual(q.int("top"), 5)
    }

    func testAbsentBareAndEmpty() {
        let q = AdminQuery("flag&empty=&x=1")
        XCTAssertEqual(q.bytes("flag"), [])
        XCTAssertEqual(q.bytes("empty"), [])
        XCTAssertNil(q.bytes("missing"))
        XCTAssertNil(AdminQuery("").bytes("x"))
        XCTAssertNil(AdminQuery([UInt8]()).string("x"))
    }

    func testFirstValueWinsAndNamesAreDecodedToo() {
        let q = AdminQuery("k=1&k=2&gr%6Fup=g&my+name=v")
        XCTAssertEqual(q.string("k"), "1")
        XCTAssertEqual(q.string("group"), "g")
        XCTAssertEqual(q.string("my name"), "v")
        XCTAssertNil(q.string("kk"))
    }

    func testBrokenPercentEncodingIsNoValue() {
        XCTAssertNil(AdminQuery("key=%zz").bytes("key"))
        XCTAssertNil(AdminQuery("key=abc%4").bytes("key"))
    }

    /// A group key is bytes: %FF must reach the lookup as 0xFF, not as the UTF-8 of U+FFFD.
    func testKeysThatAreNotUTF8StayBytes() {
        let q = AdminQuery("key=%FF%00%C3%A9")
        XCTAssertEqual(q.bytes("key"), [0xFF, 0x00, 0xC3, 0xA9])
        XCTAssertEqual(q.string("key"), "\u{FFFD}\u{0}é")
    }

    func testIntRejectsNonNumbers() {
        XCTAssertNil(AdminQuery("top=ten").int("top"))
        XCTAssertNil(AdminQuery("top=").int("top"))
        XCTAssertEqual(AdminQuery("top=-3").int("top"), -3)
    }
}
