// Small text helpers shared by the error messages: quoting user text and "did you mean" suggestions.

enum ConfigText {
    /// Quotes user text for a message so that stray quotes or control characters cannot garble the line.
    static func quoted(_ s: some StringProtocol) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// The candidate closest to `word` when it is within edit distance 2 (and not a wild guess for short words).
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        var best: (name: String, distance: Int)?
        let lower = Array(word.lowercased())
        for candidate in candidates {
            let c = Array(candidate.lowercased())
            // A longer or shorter spelling of a known word ("warning" for "warn") is as telling as a typo.
            if c.count >= 3, lower.count >= 3, lower.starts(with: c) || c.starts(with: lower) {
                if best == nil || best!.distance > 1 { best = (candidate, 1) }
                continue
            }
            // The distance is at least the difference in length; only distances up to 2 are of use.
            guard abs(lower.count - c.count) <= 2 else { continue }
            let d = editDistance(lower, c, limit: 2)
            guard d <= 2, d < max(lower.count, c.count) else { continue }
            if best == nil || d < best!.distance { best = (candidate, d) }
        }
        return best?.name
    }

    /// `; did you mean "x"?` or nothing.
    static func didYouMean(_ word: String, among candidates: [String]) -> String {
        guard let s = suggestion(for: word, among: candidates), s != word else { return "" }
        return "; did you mean \(quoted(s))?"
    }

    /// Optimal string alignment distance: Levenshtein plus adjacent transpositions, since "wieght" is one slip, not two.
    static func editDistance(_ a: String, _ b: String) -> Int {
        editDistance(Array(a), Array(b), limit: Int.max - 1)
    }

    /// The distance, or `limit + 1` as soon as every alignment of a prefix of `a` costs more than `limit`.
    static func editDistance(_ a: [Character], _ b: [Character], limit: Int) -> Int {
        if a.isEmpty { return min(b.count, limit + 1) }
        if b.isEmpty { return min(a.count, limit + 1) }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var rowMin = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var d = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d = min(d, previous2[j - 2] + 1)
                }
                current[j] = d
                rowMin = min(rowMin, d)
            }
            // Every later cell descends from this row or the one before it (a transposition skips one row, at a
            // cost of 1), so once both rows exceed the limit so does the answer.
            if rowMin > limit, i > 1, (previous.min() ?? 0) > limit { return limit + 1 }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return min(previous[b.count], limit + 1)
    }
}
