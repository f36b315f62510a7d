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
        let numbers = t.filter { $0.kind == .digits }
        if let monthIndex = t.firstIndex(where: { $0.kind == .letters && DateRecognizer.months[$0.lower] != nil }) {
            let month = DateRecognizer.months[t[monthIndex].lower]!
            let dayToken = t.first { ($0.kind == .digits && $0.length <= 2) || ($0.kind == .mixed && $0.length <= 4) }
            let yearToken = numbers.first { $0.length == 4 }
            let day = dayToken.flatMap { Int($0.lower.filter(\.isNumber)) } ?? 1
            guard let (y, m, d) = move(yearToken.flatMap { Int($0.lower) }, month, day) else { return nil }
            let name = t[monthIndex]
            let full = monthNames[m - 1]
            let monthText = name.length > 4 ? full : String(full.prefix(name.lower == "sept" ? 4 : 3))
            var result = ""
            var cursor = 0
            let scalars = text.scalars
            for token in t {
                result += text.text(cursor, token.start)
                if token.start == name.start { result += name.allCaps ? monthText.uppercased() : monthText }
                else if let dayToken, token.start == dayToken.start {
                    result += token.kind == .mixed ? "\(d)\(ordinal(d))" : pad(d, like: token)
                } else if let yearToken, token.start == yearToken.start { result += String(y) }
                else { result += text.text(token.start, token.end) }
                cursor = token.end
            }
            result += text.text(cursor, scalars.count)
            return result
        }
        guard numbers.count >= 2 else { return nil }
        let separator = t.first { $0.kind == .symbol }?.lower ?? "/"
        if numbers[0].length == 4, numbers.count == 3 {
            guard let y = Int(numbers[0].lower), let m = Int(numbers[1].lower), let d = Int(numbers[2].lower),
                  let (ny, nm, nd) = move(y, m, d) else { return nil }
            return String(format: "%04d", ny) + separator + pad(nm, like: numbers[1]) + separator + pad(nd, like: numbers[2])
        }
        guard let m = Int(numbers[0].lower), let d = Int(numbers[1].lower) else { return nil }
        var year: Int? = nil
        if numbers.count == 3, let y = Int(numbers[2].lower) { year = numbers[2].length == 2 ? 2000 + y : y }
        guard let (ny, nm, nd) = move(year, m, d) else { return nil }
        var result = pad(nm, like: numbers[0]) + separator + pad(nd, like: numbers[1])
        if numbers.count == 3 { result += separator + (numbers[2].length == 2 ? String(format: "%02d", ny % 100) : String(ny)) }
        return result
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
