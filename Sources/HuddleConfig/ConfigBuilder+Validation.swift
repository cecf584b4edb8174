// Checks that need the whole file: references to upstreams and addresses used twice.

extension ConfigBuilder {
    mutating func validateReferences() {
        let names = config.upstreams.map(\.name)
        if !inputTruncated {
            for (prefix, name) in upstreamReferences where upstreamLocations[name.text] == nil {
                error(name.location, "route \(ConfigText.quoted(prefix)) uses undefined upstream \(ConfigText.quoted(name.text))"
                    + ConfigText.didYouMean(name.text, among: names))
            }
        }

        // Port 0 asks the kernel for a fresh port each time, so two of them never collide.
        let sites = addressSites.filter { $0.address.port != 0 }.sorted { x, y in
            (x.location.line, x.location.column) < (y.location.line, y.location.column)
        }
        var first: [String: (location: SourceLocation, isAdmin: Bool)] = [:]
        for site in sites {
            let key = site.address.description
            guard let earlier = first[key] else {
                first[key] = (site.location, site.isAdmin)
                continue
            }
            switch (earlier.isAdmin, site.isAdmin) {
            case (true, false):
                error(site.location, "listen \(key) collides with the admin address (first at \(earlier.location))")
            case (false, true):
                error(site.location, "admin \(key) collides with a listen address (first at \(earlier.location))")
            default:
                error(site.location, "duplicate listen \(key) (first at \(earlier.location))")
            }
        }
    }
}
