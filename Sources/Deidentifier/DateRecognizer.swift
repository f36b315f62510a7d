import InferenceCore

/// Dates other than a year alone (HIPAA keeps the year): 03/14/2024, 3/14/24,
/// 3/14, 2024-03-14, 14 Mar 2024, 14-Mar-2024, March 14th, 2024, Mar. 14,
/// March 2024. Each is checked to be a real calendar date.
enum DateRecognizer {
    static let months: [String: Int] = [
        "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
        "september": 9, "october": 10, "november": 11, "december": 12,
        "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
    ]
    static let ordinalSuffixes: Set<String> = ["st", "nd", "rd", "th"]
    /// Words after a bare m/d that say it is a dose or a ratio, not a date.
    static let notDateAfter: Set<String> = ["tab", "tabs", "tablet", "tablets", "mg", "ml", "strength", "of", "dose", "cup", "inch", "in"]

    static func daysIn(month: Int, year: Int?) -> Int {
        switch month {
        case 2: guard let year else { return 29 }
            return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    static func valid(month: Int, day: Int, year: Int?) -> Bool {
        (1...12).contains(month) && day >= 1 && day <= daysIn(month: month, year: year)
    }

    static func findAll(_ text: ScannedText, into found: inout [DetectedEntity]) {
        let t = text.tokens
        var i = 0
        while i < t.count {
            if let (last, score) = numeric(text, i) ?? named(text, i) {
                let end = withTime(text, last)
                found.append(DetectedEntity(type: .dateTime, start: t[i].start, end: t[end].end, score: score, recognizer: .date))
                i = end + 1
            } else {
                i += 1
            }
        }
    }

    /// A clock time right after a date belongs to it: "2018-05-20 08:52", "04/17/2017 20:42:10 PM".
    static func withTime(_ text: ScannedText, _ last: Int) -> Int {
        let t = text.tokens
        var k = last + 1
        if text.isSymbol(k, ",") || (k < t.count && t[k].lower == "at") { k += 1 }
        guard k + 2 < t.count, t[k].kind == .digits, t[k].length <= 2, text.isSymbol(k + 1, ":"), text.touchesPrevious(k + 1),
              text.touchesPrevious(k + 2), t[k + 2].kind == .digits, t[k + 2].length == 2,
              t[k].start - t[last].end <= 4 else { return last }
        var end = k + 2
        if text.isSymbol(end + 1, ":"), text.touchesPrevious(end + 1), end + 2 < t.count, t[end + 2].kind == .digits, text.touchesPrevious(end + 2) { end += 2 }
        if end + 1 < t.count, ["am", "pm"].contains(t[end + 1].lower) { end += 1 }
        return end
    }

    static func number(_ text: ScannedText, _ i: Int, maxLength: Int) -> Int? {
        guard i < text.tokens.count, text.tokens[i].kind == .digits, text.tokens[i].length <= maxLength else { return nil }
        return Int(text.tokens[i].lower)
    }

    static func year(_ text: ScannedText, _ i: Int) -> Int? {
        guard let value = number(text, i, maxLength: 4), text.tokens[i].length == 4 || text.tokens[i].length == 2 else { return nil }
        return text.tokens[i].length == 2 ? 2000 + value : value
    }

    /// A separator token that touches both neighbours.
    static func joined(_ text: ScannedText, _ i: Int, _ separators: Set<String>) -> Bool {
        i < text.tokens.count && text.tokens[i].kind == .symbol && separators.contains(text.tokens[i].lower)
            && text.touchesPrevious(i) && text.touchesPrevious(i + 1)
    }

    /// 03/14/2024, 3-14-24, 3.14.2024, 2024-03-14, 2024/03/14, 3/14; returns the last token's index.
    static func numeric(_ text: ScannedText, _ i: Int) -> (Int, Double)? {
        let t = text.tokens
        guard t[i].kind == .digits, !(i > 0 && text.touchesPrevious(i) && (t[i - 1].kind != .symbol || "/-.".contains(t[i - 1].lower))) else { return nil }
        if t[i].length == 4, let y = number(text, i, maxLength: 4), joined(text, i + 1, ["-", "/"]),
           let m = number(text, i + 2, maxLength: 2), i + 3 < t.count, t[i + 3].lower == t[i + 1].lower, joined(text, i + 3, ["-", "/"]),
           let d = number(text, i + 4, maxLength: 2), valid(month: m, day: d, year: y), endsCleanly(text, i + 4) {
            return (i + 4, 1.0)
        }
        guard t[i].length <= 2, let m = number(text, i, maxLength: 2), joined(text, i + 1, ["/", "-", "."]),
              let d = number(text, i + 2, maxLength: 2) else { return nil }
        let separator = t[i + 1].lower
        if i + 3 < t.count, t[i + 3].lower == separator, joined(text, i + 3, [separator]), let y = year(text, i + 4) {
            // Month first (US); day first where the first number cannot be a month.
            guard valid(month: m, day: d, year: y) || valid(month: d, day: m, year: y), endsCleanly(text, i + 4) else { return nil }
            return (i + 4, 1.0)
        }
        // m/d alone: only with a slash, a real date, and not a dose, ratio or score.
        guard separator == "/", valid(month: m, day: d, year: nil), endsCleanly(text, i + 2) else { return nil }
        if let next = text.lower(i + 3), notDateAfter.contains(next) { return nil }
        if i > 0, ["x", "bp", "of", "pain", "score", "strength", "grade", "ratio", "scale", "rated", "gcs", "murmur"].contains(t[i - 1].lower) { return nil }
        // Scores out of 10 or 5 ("pain 7/10") unless a preposition says date ("on 8/10").
        if d == 10 || d == 5, m <= d, !(i > 0 && ["on", "since", "from", "until", "by", "around", "before", "after", "of"].contains(t[i - 1].lower)) { return nil }
        return (i + 2, 0.6)
    }

    /// No digit, slash or further numeric piece directly after the date.
    static func endsCleanly(_ text: ScannedText, _ last: Int) -> Bool {
        let next = last + 1
        guard next < text.tokens.count, text.touchesPrevious(next) else { return true }
        let token = text.tokens[next]
        if token.kind != .symbol { return false }
        if ["/", "-"].contains(token.lower) { return false }
        if token.lower == ".", next + 1 < text.tokens.count, text.touchesPrevious(next + 1), text.tokens[next + 1].kind == .digits { return false }
        return true
    }

    static func month(_ text: ScannedText, _ i: Int) -> (month: Int, last: Int)? {
        guard i < text.tokens.count, text.tokens[i].kind == .letters, let m = months[text.tokens[i].lower] else { return nil }
        // "may" and "mar" are words as well as months: only capitalized.
        if ["may", "mar", "jan", "dec", "sept", "sep", "jun", "jul", "aug", "oct", "nov", "feb", "apr"].contains(text.tokens[i].lower),
           !text.tokens[i].capitalized { return nil }
        if text.isSymbol(i + 1, "."), text.touchesPrevious(i + 1), text.tokens[i].length <= 4 { return (m, i + 1) }
        return (m, i)
    }

    /// A day number, with an optional ordinal suffix (14th); returns its value and last token.
    static func day(_ text: ScannedText, _ i: Int) -> (Int, Int)? {
        let t = text.tokens
        guard i < t.count else { return nil }
        if t[i].kind == .digits, t[i].length <= 2, let d = Int(t[i].lower) {
            return (d, i)
        }
        // "14th" is one mixed token.
        if t[i].kind == .mixed, t[i].length <= 4, ordinalSuffixes.contains(String(t[i].lower.suffix(2))),
           let d = Int(t[i].lower.dropLast(2)) {
            return (d, i)
        }
        return nil
    }

    /// 14 Mar 2024, 14-Mar-2024, March 14th, 2024, Mar. 14, March 2024.
    static func named(_ text: ScannedText, _ i: Int) -> (Int, Double)? {
        let t = text.tokens
        // Day first: "14 March 2024", "14-Mar-2024", "14 March".
        if let (d, dayLast) = day(text, i) {
            var k = dayLast + 1
            let dashed = joined(text, k, ["-"])
            if dashed { k += 1 }
            if let (m, monthLast) = month(text, k) {
                var last = monthLast
                var y: Int? = nil
                if dashed, joined(text, last + 1, ["-"]), let value = year(text, last + 2) { y = value; last += 2 }
                else if !dashed, let value = year(text, last + 1), t[last + 1].length == 4 { y = value; last += 1 }
                else if !dashed, text.isSymbol(last + 1, ","), let value = year(text, last + 2), t[last + 2].length == 4 { y = value; last += 2 }
                guard valid(month: m, day: d, year: y) else { return nil }
                return (last, y == nil ? 0.85 : 1.0)
            }
            return nil
        }
        // Month first.
        guard let (m, monthLast) = month(text, i) else { return nil }
        if let (d, dayLast) = day(text, monthLast + 1), d <= 31 {
            var last = dayLast
            var y: Int? = nil
            if text.isSymbol(last + 1, ","), let value = year(text, last + 2), t[last + 2].length == 4 { y = value; last += 2 }
            else if let value = year(text, last + 1), t[last + 1].length == 4 { y = value; last += 1 }
            guard valid(month: m, day: d, year: y) else { return nil }
            return (last, y == nil ? 0.85 : 1.0)
        }
        // "March 2024" names a month of a year: a date element other than the year.
        if let _ = year(text, monthLast + 1), t[monthLast + 1].length == 4 { return (monthLast + 1, 0.85) }
        if text.isSymbol(monthLast + 1, ","), let _ = year(text, monthLast + 2), t[monthLast + 2].length == 4 { return (monthLast + 2, 0.85) }
        return nil
    }
}
