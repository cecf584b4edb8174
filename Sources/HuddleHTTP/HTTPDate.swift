// HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the two obsolete forms recipients must accept, to and from Unix
// seconds. Allocation-free on the parsing side.

public enum HTTPDate {
    private static let months: [StaticString] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let days: [StaticString] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let monthNames: [StaticString] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since the Unix epoch of `bytes[range]`, or nil when it is not an HTTP-date:
    ///   `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate), `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850: a two-digit year more
    ///   than 50 years ahead is in the past century, §5.6.7), `Sun Nov  6 08:49:37 1994` (asctime).
    /// The day name is not checked against the date (recipients are not asked to).
    public static func parse(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, nowSeconds: Int64) -> Int64? {
        let r = ASCIIBytes.trimmingOWS(bytes, range)
        var i = r.lowerBound
        let end = r.upperBound
        // The day name, up to "," (IMF-fixdate, RFC 850) or " " (asctime).
        while i < end && isLetter(bytes[i]) { i &+= 1 }
        guard i > r.lowerBound, i < end else { return nil }
        if bytes[i] == 0x2C {
            i &+= 1
            guard i < end, bytes[i] == 0x20 else { return nil }
            i &+= 1
            guard let day = digits(bytes, &i, end, count: 2) else { return nil }
            if i < end && bytes[i] == 0x20 {
                // IMF-fixdate: DD SP Mon SP YYYY SP hh:mm:ss SP GMT
                i &+= 1
                guard let month = month(bytes, &i, end), i < end, bytes[i] == 0x20 else { return nil }
                i &+= 1
                guard let year = digits(bytes, &i, end, count: 4) else { return nil }
                return time(bytes, &i, end, year: year, month: month, day: day, gmt: true)
            }
            // RFC 850: DD-Mon-YY SP hh:mm:ss SP GMT
            guard i < end, bytes[i] == 0x2D else { return nil }
            i &+= 1
            guard let month = month(bytes, &i, end), i < end, bytes[i] == 0x2D else { return nil }
            i &+= 1
            guard let yy = digits(bytes, &i, end, count: 2) else { return nil }
            // The year with those last two digits nearest to now: one that would be more than 50 years in the future is
            // the most recent past one (RFC 9110 §5.6.7).
            let nowYear = Int(civil(fromDays: nowSeconds / 86400).year)
            var year = nowYear - nowYear % 100 + yy
            if year > nowYear + 50 { year -= 100 } else if year < nowYear - 50 { year += 100 }
            return time(bytes, &i, end, year: year, month: month, day: day, gmt: true)
        }
        // asctime: Day SP Mon SP (DD | SP D) SP hh:mm:ss SP YYYY
        guard bytes[i] == 0x20 else { return nil }
        i &+= 1
        guard let month = month(bytes, &i, end), i < end, bytes[i] == 0x20 else { return nil }
        i &+= 1
        guard i < end else { return nil }
        if bytes[i] == 0x20 { i &+= 1 }
        let dayStart = i
        while i < end && isDigit(bytes[i]) && i - dayStart < 2 { i &+= 1 }
        guard i > dayStart, let day = number(bytes, dayStart..<i), i < end, bytes[i] == 0x20 else { return nil }
        i &+= 1
        guard let clock = clockSeconds(bytes, &i, end), i < end, bytes[i] == 0x20 else { return nil }
        i &+= 1
        guard let year = digits(bytes, &i, end, count: 4), i == end else { return nil }
        return seconds(year: year, month: month, day: day, clock: clock)
    }

    /// `hh:mm:ss SP GMT` to the end of the value.
    private static func time(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int, year: Int, month: Int, day: Int, gmt: Bool) -> Int64? {
        guard i < end, bytes[i] == 0x20 else { return nil }
        i &+= 1
        guard let clock = clockSeconds(bytes, &i, end) else { return nil }
        guard end - i == 4, bytes[i] == 0x20, bytes[i &+ 1] == 0x47, bytes[i &+ 2] == 0x4D, bytes[i &+ 3] == 0x54 else { return nil }
        return seconds(year: year, month: month, day: day, clock: clock)
    }

    private static func clockSeconds(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int) -> Int64? {
        guard let h = digits(bytes, &i, end, count: 2), i < end, bytes[i] == 0x3A else { return nil }
        i &+= 1
        guard let m = digits(bytes, &i, end, count: 2), i < end, bytes[i] == 0x3A else { return nil }
        i &+= 1
        guard let s = digits(bytes, &i, end, count: 2) else { return nil }
        // 60 is a leap second (RFC 9110 allows it).
        guard h < 24, m < 60, s <= 60 else { return nil }
        return Int64(h * 3600 + m * 60 + s)
    }

    private static func seconds(year: Int, month: Int, day: Int, clock: Int64) -> Int64? {
        guard day >= 1, day <= 31, year >= 1 else { return nil }
        return days(year: Int64(year), month: Int64(month), day: Int64(day)) * 86400 + clock
    }

    private static func month(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int) -> Int? {
        guard end - i >= 3 else { return nil }
        let r = i..<(i &+ 3)
        for (n, m) in months.enumerated() where ASCIIBytes.equalsCaseInsensitive(bytes, r, m) {
            i &+= 3
            return n + 1
        }
        return nil
    }

    private static func digits(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, _ end: Int, count: Int) -> Int? {
        guard end - i >= count else { return nil }
        guard let n = number(bytes, i..<(i &+ count)) else { return nil }
        i &+= count
        return n
    }

    private static func number(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> Int? {
        var n = 0
        for j in r {
            guard isDigit(bytes[j]) else { return nil }
            n = n * 10 + Int(bytes[j] - 0x30)
        }
        return n
    }

    @inline(__always) private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    @inline(__always) private static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of a day number (civil_from_days).
    static func civil(fromDays z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    /// IMF-fixdate of Unix seconds: `Sun, 06 Nov 1994 08:49:37 GMT` (29 bytes).
    public static func format(_ seconds: Int64) -> String {
        let dayNumber = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secs = seconds - dayNumber * 86400
        let (y, m, d) = civil(fromDays: dayNumber)
        let weekday = Int(((dayNumber % 7) + 11) % 7)   // 1970-01-01 was a Thursday
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var year = "\(y)"
        while year.count < 4 { year = "0" + year }
        return "\(days[weekday]), \(two(d)) \(monthNames[Int(m) - 1]) \(year) \(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60)) GMT"
    }
}
