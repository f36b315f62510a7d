import Foundation
import InferenceCore

/// Moves a date the DateRecognizer found by a number of days and writes it
/// back in the same format (03/14/2024 stays mm/dd/yyyy, "March 14th, 2024"
/// keeps its words), so intervals between one patient's dates survive.
enum DateShift {
    static let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                             "October", "November", "December"]

    static func shift(_ value: String, byDays days: Int) -> String? {
        let text = ScannedText(value)
        let t = text.tokens
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        func move(_ year: Int?, _ month: Int, _ day: Int) -> (Int, Int, Int)? {
            // A date without a year moves within a common year.
            guard let date = calendar.date(from: DateComponents(year: year ?? 2001, month: month, day: day)),
                  let moved = calendar.date(byAdding: .day, value: days, to: date) else { return nil }
            let c = calendar.dateComponents([.year, .month, .day], from: moved)
            return (c.year!, c.month!, c.day!)
        }
        func pad(_ n: Int, like token: ScannedText.Token) -> String { token.length == 2 ? String(format: "%02d", n) : String(n) }
        // A clock time that follows the date ("2018-05-20 08:52", "10:30 PM") is kept as it is.
        let time: Set<Int> = Set(t.indices.filter { k in
            t[k].kind == .digits && ((text.isSymbol(k + 1, ":") && text.touchesPrevious(k + 1)) || (text.isSymbol(k - 1, ":") && text.touchesPrevious(k)))
        })
        let numbers = t.indices.filter { t[$0].kind == .digits && !time.contains($0) }.map { t[$0] }
        /// The date's own tokens rewritten, every other character copied.
        func rewrite(_ values: [Int: String]) -> String {
            var result = ""
            var cursor = 0
            for token in t {
                result += text.text(cursor, token.start)
                result += values[token.start] ?? text.text(token.start, token.end)
                cursor = token.end
            }
            return result + text.text(cursor, text.scalars.count)
        }
        if let monthIndex = t.firstIndex(where: { $0.kind == .letters && DateRecognizer.months[$0.lower] != nil }) {
            let month = DateRecognizer.months[t[monthIndex].lower]!
            let dayToken = t.enumerated().first { !time.contains($0.offset) && (($0.element.kind == .digits && $0.element.length <= 2) || ($0.element.kind == .mixed && $0.element.length <= 4)) }?.element
            let yearToken = numbers.first { $0.length == 4 }
            let day = dayToken.flatMap { Int($0.lower.filter(\.isNumber)) } ?? 1
            guard let (y, m, d) = move(yearToken.flatMap { Int($0.lower) }, month, day) else { return nil }
            let name = t[monthIndex]
            let full = monthNames[m - 1]
            let monthText = name.length > 4 ? full : String(full.prefix(name.lower == "sept" ? 4 : 3))
            var values = [name.start: name.allCaps ? monthText.uppercased() : monthText]
            if let dayToken { values[dayToken.start] = dayToken.kind == .mixed ? "\(d)\(ordinal(d))" : pad(d, like: dayToken) }
            if let yearToken { values[yearToken.start] = String(y) }
            return rewrite(values)
        }
        guard numbers.count >= 2 else { return nil }
        if numbers[0].length == 4, numbers.count == 3 {
            guard let y = Int(numbers[0].lower), let m = Int(numbers[1].lower), let d = Int(numbers[2].lower),
                  let (ny, nm, nd) = move(y, m, d) else { return nil }
            return rewrite([numbers[0].start: String(format: "%04d", ny), numbers[1].start: pad(nm, like: numbers[1]),
                            numbers[2].start: pad(nd, like: numbers[2])])
        }
        guard let first = Int(numbers[0].lower), let second = Int(numbers[1].lower) else { return nil }
        // Month first (US) unless the first number cannot be a month ("25/12/2024").
        let dayFirst = first > 12 && second <= 12
        let (m, d) = dayFirst ? (second, first) : (first, second)
        var year: Int? = nil
        if numbers.count >= 3, let y = Int(numbers[2].lower) { year = numbers[2].length == 2 ? 2000 + y : y }
        guard let (ny, nm, nd) = move(year, m, d) else { return nil }
        let (monthToken, dayToken) = dayFirst ? (numbers[1], numbers[0]) : (numbers[0], numbers[1])
        var values = [monthToken.start: pad(nm, like: monthToken), dayToken.start: pad(nd, like: dayToken)]
        if numbers.count >= 3 { values[numbers[2].start] = numbers[2].length == 2 ? String(format: "%02d", ny % 100) : String(ny) }
        return rewrite(values)
    }

    static func ordinal(_ day: Int) -> String {
        if (11...13).contains(day % 100) { return "th" }
        switch day % 10 {
        case 1: return "st"
        case 2: return "nd"
        case 3: return "rd"
        default: return "th"
        }
    }
}
