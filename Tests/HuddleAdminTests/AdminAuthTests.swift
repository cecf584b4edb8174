// The admin token check: Bearer scheme (any case), the exact token, nothing else.
@testable import HuddleAdmin
import XCTest

final class AdminAuthTests: XCTestCase {
    func testOnlyTheExactBearerTokenMatches() {
        XCTAssertTrue(AdminAuth.bearerMatches("Bearer s3cret", token: "s3cret"))
        XCTAssertTrue(AdminAuth.bearerMatches("bearer s3cret", token: "s3cret"))
        XCTAssertTrue(AdminAuth.bearerMatches("BEARER  s3cret ", token: "s3cret"), "spaces around the token are not part of it")
        for wrong in ["Bearer s3cre", "Bearer s3cretX", "Bearer S3CRET", "Bearer", "Bearer ", "s3cret", "Basic s3cret",
                      "Bearers3cret", "Bearer s3cret x", "", "Bearer \u{0}s3cret"] {
            XCTAssertFalse(AdminAuth.bearerMatches(wrong, token: "s3cret"), wrong.debugDescription)
        }
        XCTAssertFalse(AdminAuth.bearerMatches("Bearer ", token: ""), "an empty token never matches")
        XCTAssertTrue(AdminAuth.bearerMatches("Bearer é\"x", token: "é\"x"))
    }
}
