// Certificates made by the tests with the openssl command line: a CA and ECDSA P-256 leaves for given names.
import Foundation
import XCTest

final class TestCertificates {
    let directory: URL
    var caPath: String { directory.appendingPathComponent("ca.pem").path }

    init() throws {
        directory = Harness.temporaryDirectory()
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("ca.key"),
                     "-out", path("ca.pem"), "-days", "2", "-subj", "/CN=Huddle Test CA \(UUID().uuidString.prefix(8))"])
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A leaf for `names` (subjectAltName DNS entries; the first is also the CN), signed by this CA (or by a fresh,
    /// untrusted one when `selfSigned`). Returns (certificate, key) paths.
    @discardableResult
    func leaf(_ file: String, names: [String], ipAddresses: [String] = [], selfSigned: Bool = false) throws -> (cert: String, key: String) {
        let key = path("\(file).key"), csr = path("\(file).csr"), cert = path("\(file).pem"), ext = path("\(file).ext")
        let san = (names.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }).joined(separator: ",")
        try "subjectAltName=\(san)\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n".write(toFile: ext, atomically: true, encoding: .utf8)
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=\(names.first ?? file)"])
        if selfSigned {
            try openssl(["x509", "-req", "-in", csr, "-signkey", key, "-out", cert, "-days", "2", "-extfile", ext])
        } else {
            try openssl(["x509", "-req", "-in", csr, "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext])
        }
        return (cert, key)
    }

    private func openssl(_ args: [String]) throws {
        let r = try Harness.run("/usr/bin/openssl", args, timeout: 30)
        guard r.status == 0 else { throw NSError(domain: "openssl", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: "openssl \(args.joined(separator: " ")): \(r.stderr)"]) }
    }
}
