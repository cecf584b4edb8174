// The dashboard's HTML escaping.
@testable import HuddleAdmin
import XCTest

final class HTMLTextTests: XCTestCase {
    func testDashboardTextIsEscaped() {
        XCTAssertEqual(HTMLText.escape(#"<b x="1">'a' & b</b>"#), "&lt;b x=&quot;1&quot;&gt;&#39;a&#39; &amp; b&lt;/b&gt;")
        XCTAssertEqual(HTMLText.escape("plain é"), "plain é")
    }
}
