// Hand-built wire bytes for the tests: a header, names written label by label, records with any RDATA.
@testable import HuddleDNS

enum Wire {
    static func u16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
    static func u32(_ v: UInt32) -> [UInt8] { u16(Int(v >> 16)) + u16(Int(v & 0xFFFF)) }

    /// A response header: ID 0x1234, QR and RD/RA set, the given RCODE and counts.
    static func header(id: Int = 0x1234, rcode: Int = 0, tc: Bool = false, qd: Int = 1, an: Int = 0, ns: Int = 0, ar: Int = 0) -> [UInt8] {
        let flags = 0x8180 | (tc ? 0x0200 : 0) | rcode
        return u16(id) + u16(flags) + u16(qd) + u16(an) + u16(ns) + u16(ar)
    }

    /// `www.example.com` as labels (no compression).
    static func name(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in text.split(separator: ".") {
            out.append(UInt8(label.utf8.count))
            out += Array(label.utf8)
        }
        return out + [0]
    }

    static func pointer(_ offset: Int) -> [UInt8] { [UInt8(0xC0 | (offset >> 8)), UInt8(offset & 0xFF)] }

    static func question(_ name: String, type: Int) -> [UInt8] { self.name(name) + u16(type) + u16(1) }

    static func record(_ owner: [UInt8], type: Int, ttl: UInt32 = 30, data: [UInt8]) -> [UInt8] {
        owner + u16(type) + u16(1) + u32(ttl) + u16(data.count) + data
    }

    /// A whole answer to `name`/`type` with the given answer records (already encoded).
    static func answer(_ name: String, type: Int, rcode: Int = 0, answers: [[UInt8]] = [], authority: [[UInt8]] = [],
                       additional: [[UInt8]] = []) -> [UInt8] {
        header(rcode: rcode, an: answers.count, ns: authority.count, ar: additional.count) + question(name, type: type)
            + answers.flatMap { $0 } + authority.flatMap { $0 } + additional.flatMap { $0 }
    }

    /// The question's name starts right after the 12-byte header.
    static let questionName = 12
}

func dn(_ s: String) -> DNSName { DNSName(s)! }
func question(_ n: String, _ t: DNSRecordType) -> DNSQuestion { DNSQuestion(name: dn(n), type: t) }
