// Lookups made of several questions, on the resolver thread: A and AAAA together through the search list, and SRV
// followed by its targets' addresses.
import Glibc
import HuddleDNS

extension Resolver {
    func startAddressLookup(_ name: String, completion: @escaping @Sendable (AddressLookup) -> Void) {
        guard let candidates = currentSettings.candidates(for: name) else {
            let bad = DNSFailure.mismatched("\(name) is not a valid name")
            return completion(AddressLookup(name: name, ipv4: .failure(bad), ipv6: .failure(bad)))
        }
        addresses(candidates[...], completion: completion)
    }

    /// Tries each candidate until one has an address or a question fails (glibc's search: NXDOMAIN and NODATA move
    /// on; a failure stops, so a broken nameserver never makes a later search domain's answer win).
    private func addresses(_ candidates: ArraySlice<DNSName>, completion: @escaping @Sendable (AddressLookup) -> Void) {
        let name = candidates.first!
        var v4: Result<AddressSet, DNSFailure>?
        var v6: Result<AddressSet, DNSFailure>?
        let done = { [self] in
            guard let a = v4, let b = v6 else { return }
            let found = ((try? a.get().addresses.isEmpty) == false) || ((try? b.get().addresses.isEmpty) == false)
            let failed = (try? a.get()) == nil || (try? b.get()) == nil
            if found || failed || candidates.count == 1 {
                completion(AddressLookup(name: name.description, ipv4: a, ipv6: b))
            } else {
                addresses(candidates.dropFirst(), completion: completion)
            }
        }
        ask(name, .a) { v4 = $0.map(Self.addressSet); done() }
        ask(name, .aaaa) { v6 = $0.map(Self.addressSet); done() }
    }

    static func addressSet(_ answer: DNSAnswer) -> AddressSet {
        AddressSet(addresses: Set(answer.records.compactMap { address(of: $0) }).sorted(by: addressOrder), ttl: answer.ttl)
    }

    /// The IP literal of an A or AAAA record.
    static func address(of r: DNSRecord) -> String? {
        switch r.data {
        case .a(let b):
            return b.map(String.init).joined(separator: ".")
        case .aaaa(let b):
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: b) }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            guard inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil else { return nil }
            return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        default:
            return nil
        }
    }

    /// Numeric order for IPv4 (so 10.0.0.9 comes before 10.0.0.10), text order for IPv6, IPv4 first.
    static func addressOrder(_ x: String, _ y: String) -> Bool {
        let (px, py) = (x.split(separator: ".").compactMap { Int($0) }, y.split(separator: ".").compactMap { Int($0) })
        switch (px.count == 4, py.count == 4) {
        case (true, true): return px.lexicographicallyPrecedes(py)
        case (true, false): return true
        case (false, true): return false
        default: return x < y
        }
    }

    func startServiceLookup(_ name: String, completion: @escaping @Sendable (ServiceLookup) -> Void) {
        guard let candidates = currentSettings.candidates(for: name) else {
            return completion(ServiceLookup(name: name, result: .failure(.mismatched("\(name) is not a valid name"))))
        }
        service(candidates[...], completion: completion)
    }

    private func service(_ candidates: ArraySlice<DNSName>, completion: @escaping @Sendable (ServiceLookup) -> Void) {
        let name = candidates.first!
        ask(name, .srv) { [self] result in
            switch result {
            case .failure(let f):
                completion(ServiceLookup(name: name.description, result: .failure(f)))
            case .success(let answer) where answer.records.isEmpty && candidates.count > 1:
                service(candidates.dropFirst(), completion: completion)
            case .success(let answer):
                targets(of: answer, name: name, completion: completion)
            }
        }
    }

    /// The lowest-priority targets (RFC 2782: higher priorities are fallbacks, and Huddle has no fallback tier yet),
    /// except "." (the service is decidedly not available) and names that are not host names. Each target's address
    /// comes from the additional section when the nameserver put it there, else from its own A/AAAA questions.
    private func targets(of answer: DNSAnswer, name: DNSName, completion: @escaping @Sendable (ServiceLookup) -> Void) {
        let services = answer.records.compactMap { r -> DNSService? in
            if case .srv(let s) = r.data, s.target.isHostName { return s }
            return nil
        }
        let best = services.map(\.priority).min()
        let chosen = services.filter { $0.priority == best }
        var ttl = answer.ttl
        guard !chosen.isEmpty else {
            return completion(ServiceLookup(name: name.description, result: .success((targets: [], ttl: ttl))))
        }
        var addresses: [DNSName: Result<AddressSet, DNSFailure>] = [:]
        var pending = Set(chosen.map(\.target))
        let finish = {
            var out: [ServiceTarget] = []
            for s in chosen {
                switch addresses[s.target] {
                case .failure(let f)?:
                    return completion(ServiceLookup(name: name.description, result: .failure(f)))
                case .success(let set)?:
                    if let t = set.ttl { ttl = min(ttl ?? t, t) }
                    guard let first = set.addresses.first else { continue }
                    out.append(ServiceTarget(host: s.target.lowercased.description, port: s.port, weight: s.weight, address: first))
                case nil:
                    continue
                }
            }
            completion(ServiceLookup(name: name.description, result: .success((targets: out, ttl: ttl))))
        }
        for target in pending {
            let extra = answer.additionals.filter { $0.name == target && ($0.type == .a || $0.type == .aaaa) }
            if !extra.isEmpty {
                let ttl = extra.map { DNSResponse.effectiveTTL($0.ttl) }.min()
                addresses[target] = .success(AddressSet(addresses: Set(extra.compactMap { Self.address(of: $0) }).sorted(by: Self.addressOrder), ttl: ttl))
                pending.remove(target)
            }
        }
        if pending.isEmpty { return finish() }
        for target in pending {
            var v4: Result<AddressSet, DNSFailure>?
            var v6: Result<AddressSet, DNSFailure>?
            let both = {
                guard let a = v4, let b = v6 else { return }
                switch (a, b) {
                case (.failure(let f), _), (_, .failure(let f)):
                    addresses[target] = .failure(f)
                case (.success(let x), .success(let y)):
                    let ttl = [x.ttl, y.ttl].compactMap { $0 }.min()
                    addresses[target] = .success(AddressSet(addresses: x.addresses + y.addresses, ttl: ttl))
                }
                pending.remove(target)
                if pending.isEmpty { finish() }
            }
            ask(target, .a) { v4 = $0.map(Self.addressSet); both() }
            ask(target, .aaaa) { v6 = $0.map(Self.addressSet); both() }
        }
    }
}
