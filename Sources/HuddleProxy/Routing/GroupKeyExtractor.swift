// A request's group key: the first configured source (path segment, header, cookie, query parameter) that is present.
import HuddleConfig
import HuddleHTTP

enum GroupKeyExtractor {
    /// The decoded key bytes, or nil when no source is present (or each present one is empty).
    static func extract(_ sources: [GroupKeySource], head: HTTPRequestHead, bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        for s in sources {
            switch s {
            case .path(let n):
                if let seg = GroupKeyBytes.pathSegment(n, path: head.path, in: bytes),
                   let k = GroupKeyBytes.percentDecode(bytes[seg], plusAsSpace: false), !k.isEmpty {
                    return k
                }
            case .query(let name):
                if let q = head.query, let v = GroupKeyBytes.queryValue(name: Array(name.utf8), query: q, in: bytes),
                   let k = GroupKeyBytes.percentDecode(bytes[v], plusAsSpace: true), !k.isEmpty {
                    return k
                }
            case .header(let name):
                for h in head.headers where equalsIgnoringCase(bytes, h.name, name) && !h.value.isEmpty {
                    return Array(bytes[h.value])
                }
            case .cookie(let name):
                for h in head.headers where h.kind == .cookie {
                    if let v = GroupKeyBytes.cookieValue(name: Array(name.utf8), cookieHeaderValue: h.value, in: bytes), !v.isEmpty {
                        return Array(bytes[v])
                    }
                }
            }
        }
        return nil
    }

    /// The sources as an error message names them.
    static func describe(_ keys: [GroupKeySource]) -> String {
        keys.map { k -> String in
            switch k {
            case .path(let n): return "path segment \(n)"
            case .header(let h): return "header \(h)"
            case .cookie(let c): return "cookie \(c)"
            case .query(let q): return "query parameter \(q)"
            }
        }.joined(separator: ", ")
    }
}
