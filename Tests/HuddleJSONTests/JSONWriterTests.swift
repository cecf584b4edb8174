// The JSON writer: commas, nesting, numbers, and that every string is escaped.
import Foundation
import HuddleJSON
import XCTest

final class JSONWriterTests: XCTestCase {
    func testNestedDocument() throws {
        var w = JSONWriter()
        w.object { w in
            w.field("ok", false)
            w.field("n", 3)
            w.field("big", Int64(1) << 40)
            w.field("ms", 1.5)
            w.field("nothing", nil as String?)
            w.field("errors", array: { w in
                w.value("a \"quoted\" word")
                w.value("line\nbreak")
            })
            w.field("empty", object: { _ in })
            w.field("list", array: { w in
                w.object { w in w.field("k", bytes: [0x61, 0xFF]) }
                w.value(1)
                w.null()
            })
        }
        XCTAssertEqual(w.text, #"{"ok":false,"n":3,"big":1099511627776,"ms":1.5,"nothing":null,"errors":["a \"quoted\" word","line\nbreak"],"empty":{},"list":[{"k":"a\#u{FFFD}"},1,null]}"#)
        let o = try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: Any]
        XCTAssertEqual((o?["errors"] as? [String])?.first, "a \"quoted\" word")
    }

    func testKeysAreEscapedAndNonFiniteNumbersAreNull() throws {
        var w = JSONWriter()
        w.object { w in
            w.field("we\"ird", Double.nan)
            w.field("inf", Double.infinity)
            w.field("tiny", 0.00001)
        }
        let o = try JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: Any]
        XCTAssertTrue(o?["we\"ird"] is NSNull)
        XCTAssertTrue(o?["inf"] is NSNull)
        XCTAssertEqual(o?["tiny"] as? Double, 0.00001)
    }

    func testTopLevelArray() {
        var w = JSONWriter()
        w.array { w in
            for i in 0..<3 { w.value(i) }
        }
        XCTAssertEqual(w.text, "[0,1,2]")
    }
}
