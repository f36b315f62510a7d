import InferenceCore

/// Identifiers with a fixed shape, each validated where its scheme allows:
/// emails, URLs, IP addresses, phone and fax numbers, SSNs (area rules), VINs
/// (check digit). Pure functions of the scanned text.
enum PatternRecognizers {
    static func findAll(_ text: ScannedText, into found: inout [DetectedEntity]) {
        emails(text, &found)
        urls(text, &found)
        ipAddresses(text, &found)
        phonesAndSSNs(text, &found)
        vins(text, &found)
        cards(text, &found)
        barePhones(text, &found)
    }

    static let phoneCues: Set<String> = ["phone", "tel", "telephone", "cell", "mobile", "call", "reached", "number", "contact",
                                         "pager", "fax", "ph", "questions", "husband", "wife", "son", "daughter", "mother", "father",
                                         "sister", "brother", "spouse", "caregiver", "guardian"]

    /// Ten digits with no separators (or eleven starting with 1) after a phone
    /// or fax word within a few tokens: "Phone: 7735515912", "reached at 2536039067".
    static func barePhones(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        let t = text.tokens
        for (i, token) in t.enumerated() where token.kind == .digits && (token.length == 10 || (token.length == 11 && token.lower.hasPrefix("1"))) {
            guard !(i > 0 && text.touchesPrevious(i) && t[i - 1].kind != .symbol) else { continue }
            var k = i - 1, seen = 0, cue = false
            while k >= 0, seen < 6 {
                if phoneCues.contains(t[k].lower) { cue = true; break }
                if t[k].kind != .symbol { seen += 1 }
                k -= 1
            }
            guard cue else { continue }
            let fax = precededBy(text, token.start, words: ["fax", "facsimile"], within: 24)
            found.append(DetectedEntity(type: fax ? .faxNumber : .phoneNumber, start: token.start, end: token.end, score: 0.7, recognizer: .context))
        }
    }

    // MARK: payment cards

    /// 13 to 19 digits, in groups split by single spaces or hyphens, passing the Luhn check.
    static func cards(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        let t = text.tokens
        var i = 0
        while i < t.count {
            guard t[i].kind == .digits, !(i > 0 && text.touchesPrevious(i) && t[i - 1].kind != .symbol) else { i += 1; continue }
            var digits = t[i].lower, last = i
            // Groups joined by hyphens, or separated by one space.
            while digits.count < 19 {
                if text.isSymbol(last + 1, "-"), text.touchesPrevious(last + 1), text.touchesPrevious(last + 2), last + 2 < t.count, t[last + 2].kind == .digits {
                    digits += t[last + 2].lower; last += 2
                } else if last + 1 < t.count, t[last + 1].kind == .digits, t[last + 1].start == t[last].end + 1 {
                    digits += t[last + 1].lower; last += 1
                } else { break }
            }
            if (13...19).contains(digits.count), luhn(digits) {
                found.append(DetectedEntity(type: .creditCard, start: t[i].start, end: t[last].end, score: 1.0, recognizer: .pattern))
                i = last + 1
            } else {
                i += 1
            }
        }
    }

    static func luhn(_ digits: String) -> Bool {
        var sum = 0
        for (index, character) in digits.reversed().enumerated() {
            guard var d = character.wholeNumberValue else { return false }
            if index % 2 == 1 { d *= 2; if d > 9 { d -= 9 } }
            sum += d
        }
        return sum % 10 == 0
    }

    // MARK: email

    static func emails(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        let s = text.scalars
        for at in s.indices where s[at] == "@" {
            var start = at
            while start > 0, isLocalPart(s[start - 1]) { start -= 1 }
            while start < at, s[start] == "." { start += 1 }
            guard start < at else { continue }
            var end = at + 1, lastDot = -1
            while end < s.count, isHostScalar(s[end]) || (s[end] == "." && end + 1 < s.count && isHostScalar(s[end + 1])) {
                if s[end] == "." { lastDot = end }
                end += 1
            }
            guard lastDot > at + 1, end - lastDot - 1 >= 2, (lastDot + 1..<end).allSatisfy({ s[$0].properties.isAlphabetic }) else { continue }
            found.append(DetectedEntity(type: .emailAddress, start: start, end: end, score: 1.0, recognizer: .pattern))
        }
    }

    static func isLocalPart(_ c: Unicode.Scalar) -> Bool {
        c.isASCII && (ScannedText.isWordScalar(c) || "._%+-".unicodeScalars.contains(c))
    }

    static func isHostScalar(_ c: Unicode.Scalar) -> Bool { c.isASCII && (ScannedText.isWordScalar(c) || c == "-") }

    // MARK: URL

    static let topLevelDomains: Set<String> = ["com", "org", "net", "edu", "gov", "io", "us", "info", "health", "biz", "co", "uk", "ca", "mil", "app", "care", "med"]

    static func urls(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        let s = text.scalars
        var i = 0
        while i < s.count {
            defer { i += 1 }
            guard i == 0 || !ScannedText.isWordScalar(s[i - 1]) else { continue }
            let schemeLength = prefixLength(s, i, ["https://", "http://", "ftp://", "www."])
            if schemeLength > 0 {
                let end = urlEnd(s, from: i + schemeLength)
                guard end > i + schemeLength + 1 else { continue }
                found.append(DetectedEntity(type: .url, start: i, end: end, score: 0.95, recognizer: .pattern))
                i = end
                continue
            }
            // A bare domain (mychart.example.org/visit): labels joined by dots ending in a known top-level domain.
            guard ScannedText.isWordScalar(s[i]), s[i].isASCII else { continue }
            var j = i, dots = 0, labelStart = i
            while j < s.count, isHostScalar(s[j]) || (s[j] == "." && j + 1 < s.count && isHostScalar(s[j + 1])) {
                if s[j] == "." { dots += 1; labelStart = j + 1 }
                j += 1
            }
            guard dots >= 1 else { i = max(i, j - 1); continue }
            var tld = ""
            tld.unicodeScalars.append(contentsOf: s[labelStart..<j])
            guard topLevelDomains.contains(tld.lowercased()), !(i..<j).allSatisfy({ ScannedText.isDigit(s[$0]) || s[$0] == "." }),
                  !(j < s.count && s[j] == "@"), !(i > 0 && s[i - 1] == "@") else { i = max(i, j - 1); continue }
            let end = j < s.count && s[j] == "/" ? urlEnd(s, from: j) : j
            found.append(DetectedEntity(type: .url, start: i, end: end, score: 0.6, recognizer: .pattern))
            i = end
        }
    }

    static func prefixLength(_ s: [Unicode.Scalar], _ i: Int, _ prefixes: [String]) -> Int {
        // Most positions start with none of the prefixes' first letters.
        let value = s[i].value
        guard value < 128, let first = Unicode.Scalar(value >= 65 && value <= 90 ? value + 32 : value),
              prefixes.contains(where: { $0.unicodeScalars.first == first }) else { return 0 }
        for prefix in prefixes {
            let p = Array(prefix.unicodeScalars)
            guard i + p.count <= s.count else { continue }
            if (0..<p.count).allSatisfy({ Character(s[i + $0]).lowercased() == String(Character(p[$0])) }) { return p.count }
        }
        return 0
    }

    /// Where a URL that continues at `from` ends: at space or a quote, less trailing punctuation.
    static func urlEnd(_ s: [Unicode.Scalar], from: Int) -> Int {
        var end = from
        while end < s.count, !ScannedText.isSpace(s[end]), !"\"<>|{}".unicodeScalars.contains(s[end]) { end += 1 }
        while end > from, ".,;:!?)]'".unicodeScalars.contains(s[end - 1]) { end -= 1 }
        return end
    }

    // MARK: IP addresses

    static func ipAddresses(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        let t = text.tokens
        var i = 0
        while i + 6 < t.count {
            defer { i += 1 }
            guard t[i].kind == .digits, !(i > 0 && text.touchesPrevious(i) && t[i - 1].kind != .symbol) else { continue }
            if i > 0, text.touchesPrevious(i), text.isSymbol(i - 1, ".") { continue }
            var octets: [Int] = [], k = i
            while octets.count < 4, k < t.count, t[k].kind == .digits, t[k].length <= 3, let v = Int(t[k].lower), v <= 255 {
                octets.append(v)
                if octets.count == 4 { break }
                guard text.isSymbol(k + 1, "."), text.touchesPrevious(k + 1), text.touchesPrevious(k + 2) else { break }
                k += 2
            }
            guard octets.count == 4 else { continue }
            // Not a longer dotted number (a version, a section 1.2.3.4.5).
            if text.isSymbol(k + 1, "."), text.touchesPrevious(k + 1), k + 2 < t.count, t[k + 2].kind == .digits, text.touchesPrevious(k + 2) { continue }
            found.append(DetectedEntity(type: .ipAddress, start: t[i].start, end: t[k].end, score: 0.95, recognizer: .pattern))
            i = k
        }
        // IPv6: hex groups joined by colons, at least two colons and a hex letter or "::".
        let s = text.scalars
        var j = 0
        while j < s.count {
            guard j == 0 || !(isHex(s[j - 1]) || s[j - 1] == ":") else { j += 1; continue }
            var end = j, colons = 0, hexLetters = 0, groupLength = 0, valid = true
            while end < s.count, isHex(s[end]) || s[end] == ":" {
                if s[end] == ":" { colons += 1; groupLength = 0 } else {
                    groupLength += 1
                    if !ScannedText.isDigit(s[end]) { hexLetters += 1 }
                    if groupLength > 4 { valid = false }
                }
                end += 1
            }
            if valid, colons >= 2, colons <= 7, end - j >= 6, hexLetters > 0 || (j..<end - 1).contains(where: { s[$0] == ":" && s[$0 + 1] == ":" }),
               end == s.count || !ScannedText.isWordScalar(s[end]) {
                found.append(DetectedEntity(type: .ipAddress, start: j, end: end, score: 0.8, recognizer: .pattern))
            }
            j = max(end, j + 1)
        }
    }

    static func isHex(_ c: Unicode.Scalar) -> Bool {
        ScannedText.isDigit(c) || ("a"..."f").contains(c) || ("A"..."F").contains(c)
    }

    // MARK: phone, fax, SSN

    static func phonesAndSSNs(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        let s = text.scalars
        var i = 0
        while i < s.count {
            let startsHere = (s[i] == "(" || s[i] == "+" || ScannedText.isDigit(s[i])) && (i == 0 || !ScannedText.isWordScalar(s[i - 1]))
            guard startsHere else { i += 1; continue }
            if let end = phoneEnd(s, i) {
                let fax = precededBy(text, i, words: ["fax", "facsimile"], within: 24)
                found.append(DetectedEntity(type: fax ? .faxNumber : .phoneNumber, start: i, end: end,
                                            score: 0.85, recognizer: .pattern))
                i = end
                continue
            }
            if let end = ssnEnd(s, i) {
                found.append(DetectedEntity(type: .usSSN, start: i, end: end, score: 0.85, recognizer: .pattern))
                i = end
                continue
            }
            i += 1
        }
    }

    /// Reads `count` digits at `i`; returns the index after them.
    static func digits(_ s: [Unicode.Scalar], _ i: Int, _ count: Int) -> Int? {
        guard i + count <= s.count, (i..<i + count).allSatisfy({ ScannedText.isDigit(s[$0]) }) else { return nil }
        return i + count
    }

    static func isBoundary(_ s: [Unicode.Scalar], _ i: Int) -> Bool {
        i >= s.count || !(ScannedText.isWordScalar(s[i]) || (s[i] == "-" && i + 1 < s.count && ScannedText.isDigit(s[i + 1])))
    }

    /// North American numbers: (555) 123-4567, 555-123-4567, 555.123.4567,
    /// 555 123 4567, +1 555 123 4567, 1-800-555-0199, with an optional
    /// extension; the separators between groups agree.
    static func phoneEnd(_ s: [Unicode.Scalar], _ start: Int) -> Int? {
        var i = start
        if s[i] == "+" {
            guard i + 1 < s.count, s[i + 1] == "1" else { return nil }
            i += 2
            if i < s.count, s[i] == " " || s[i] == "-" || s[i] == "." { i += 1 }
        } else if s[i] == "1", i + 1 < s.count, s[i + 1] == "-" || s[i + 1] == " " || s[i + 1] == ".",
                  i + 2 < s.count, ScannedText.isDigit(s[i + 2]) || s[i + 2] == "(" {
            i += 2
        }
        var separator: Unicode.Scalar? = nil
        if i < s.count, s[i] == "(" {
            guard let afterArea = digits(s, i + 1, 3), afterArea < s.count, s[afterArea] == ")" else { return nil }
            i = afterArea + 1
            if i < s.count, s[i] == " " || s[i] == "-" { i += 1 }
        } else {
            guard let afterArea = digits(s, i, 3), afterArea < s.count else { return nil }
            separator = s[afterArea]
            guard separator == "-" || separator == "." || separator == " " else { return nil }
            i = afterArea + 1
        }
        guard let afterExchange = digits(s, i, 3), afterExchange < s.count else { return nil }
        let second = s[afterExchange]
        guard second == "-" || second == "." || (second == " " && separator != "-" && separator != ".") else { return nil }
        if let separator, separator != second { return nil }
        guard let end = digits(s, afterExchange + 1, 4), isBoundary(s, end) else { return nil }
        // An extension: " x123", " ext. 123", " ext 1234".
        var j = end
        while j < s.count, s[j] == " " { j += 1 }
        for marker in ["ext.", "ext", "x"] {
            let m = Array(marker.unicodeScalars)
            if j + m.count < s.count, (0..<m.count).allSatisfy({ Character(s[j + $0]).lowercased() == String(Character(m[$0])) }) {
                var k = j + m.count
                while k < s.count, s[k] == " " { k += 1 }
                var e = k
                while e < s.count, e - k < 6, ScannedText.isDigit(s[e]) { e += 1 }
                if e > k, isBoundary(s, e) { return e }
            }
        }
        return end
    }

    /// 123-45-6789 or 123 45 6789 with the Social Security Administration's
    /// rules: area not 000, 666 or 900-999; group not 00; serial not 0000.
    static func ssnEnd(_ s: [Unicode.Scalar], _ start: Int) -> Int? {
        guard let a = digits(s, start, 3), a < s.count, s[a] == "-" || s[a] == " ",
              let g = digits(s, a + 1, 2), g < s.count, s[g] == s[a],
              let end = digits(s, g + 1, 4), isBoundary(s, end) else { return nil }
        func number(_ from: Int, _ to: Int) -> Int { (from..<to).reduce(0) { $0 * 10 + Int(s[$1].value - 48) } }
        return validSSN(area: number(start, a), group: number(a + 1, g), serial: number(g + 1, end)) ? end : nil
    }

    static func validSSN(area: Int, group: Int, serial: Int) -> Bool {
        area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
    }

    /// Whether one of `words` ends within `within` scalars before `offset`.
    static func precededBy(_ text: ScannedText, _ offset: Int, words: Set<String>, within: Int) -> Bool {
        var index = text.firstToken(atOrAfter: offset)
        while index > 0 {
            index -= 1
            let token = text.tokens[index]
            if offset - token.end > within { return false }
            if words.contains(token.lower) { return true }
        }
        return false
    }

    // MARK: VIN

    /// 17 characters without I, O or Q whose ninth is the check digit of the others.
    static func vins(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        for token in text.tokens where token.kind == .mixed && token.length == 17 {
            let chars = Array(text.scalars[token.start..<token.end])
            if validVIN(chars) {
                found.append(DetectedEntity(type: .vehicleID, start: token.start, end: token.end, score: 1.0, recognizer: .pattern))
            }
        }
    }

    static func validVIN(_ chars: [Unicode.Scalar]) -> Bool {
        let weights = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]
        var sum = 0
        for (k, c) in chars.enumerated() {
            let upper = Character(c).uppercased().unicodeScalars.first!
            guard let value = transliteration(upper) else { return false }
            sum += value * weights[k]
        }
        let check = sum % 11
        let ninth = Character(chars[8]).uppercased()
        return check == 10 ? ninth == "X" : ninth == String(check)
    }

    static func transliteration(_ c: Unicode.Scalar) -> Int? {
        if ScannedText.isDigit(c) { return Int(c.value - 48) }
        let table: [Unicode.Scalar: Int] = [
            "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8, "J": 1, "K": 2, "L": 3, "M": 4, "N": 5,
            "P": 7, "R": 9, "S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9,
        ]
        return table[c]
    }
}
