// POST /api/reload's answer: always valid JSON, whatever the error messages and file names contain.
import Foundation
@testable import HuddleAdmin
import HuddleConfig
import HuddleJSON
import XCTest

final class ReloadOutcomeTests: XCTestCase {
    private func json(_ o: ReloadOutcome) throws -> [String: Any] {
        var w = JSONWriter()
        o.write(to: &w)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(w.bytes)) as? [String: Any], w.text)
    }

    func testInvalidNamesFileLineAndColumnWhateverTheyContain() throws {
        let file = "/tmp/we\"ird\\dir/huddle.conf"
        let message = "unknown directive \"a\\\"b\"\nsecond line\t\u{1}"
        let o = try json(.invalid([ConfigError(location: SourceLocation(file: file, line: 12, column: 5), message: message)]))
        XCTAssertEqual(o["ok"] as? Bool, false)
        XCTAssertEqual(o["errors"] as? [String], ["\(file):12:5: error: \(message)"])
        let p = try XCTUnwrap((o["problems"] as? [[String: Any]])?.first)
        XCTAssertEqual(p["file"] as? String, file)
        XCTAssertEqual(p["line"] as? Int, 12)
        XCTAssertEqual(p["column"] as? Int, 5)
        XCTAssertEqual(p["message"] as? String, message)
        XCTAssertEqual(ReloadOutcome.invalid([]).httpStatus, 400)
    }

    func testOtherOutcomes() throws {
        XCTAssertEqual(try json(.reloaded(generation: 3))["generation"] as? Int, 3)
        XCTAssertEqual(try json(.reloaded(generation: 3))["ok"] as? Bool, true)
        XCTAssertEqual(ReloadOutcome.reloaded(generation: 3).httpStatus, 200)
        XCTAssertEqual(try json(.failed("cannot \"x\""))["errors"] as? [String], ["cannot \"x\""])
        XCTAssertEqual(try json(.unavailable("no \"file\""))["error"] as? String, "no \"file\"")
    }
}
