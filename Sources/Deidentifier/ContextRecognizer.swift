import InferenceCore

/// Identifiers announced by a context word: "MRN: 4471234", "Member ID
/// XJH-88231", "S/N PX-22091", "DEA # AB1234563", "SSN 123456789"; and ages
/// over 89 ("92-year-old", "age 95"). The cue chooses the type.
enum ContextRecognizer {
    /// Cue phrases (lower-cased tokens) and the type of the identifier that follows.
    static let cues: [([String], EntityType)] = [
        (["medical", "record", "number"], .medicalRecordNumber), (["medical", "record"], .medicalRecordNumber),
        (["record", "number"], .medicalRecordNumber), (["chart", "number"], .medicalRecordNumber),
        (["mrn"], .medicalRecordNumber), (["mr", "#"], .medicalRecordNumber),
        (["member", "id"], .healthPlanNumber), (["member", "number"], .healthPlanNumber), (["member", "#"], .healthPlanNumber),
        (["policy", "number"], .healthPlanNumber), (["policy", "#"], .healthPlanNumber), (["policy"], .healthPlanNumber),
        (["subscriber", "id"], .healthPlanNumber), (["beneficiary", "number"], .healthPlanNumber), (["beneficiary", "id"], .healthPlanNumber),
        (["health", "plan", "id"], .healthPlanNumber), (["health", "plan", "number"], .healthPlanNumber),
        (["insurance", "id"], .healthPlanNumber), (["group", "number"], .healthPlanNumber),
        (["medicare", "number"], .healthPlanNumber), (["medicaid", "number"], .healthPlanNumber),
        (["medicare", "id"], .healthPlanNumber), (["medicaid", "id"], .healthPlanNumber), (["mbi"], .healthPlanNumber),
        (["account", "number"], .accountNumber), (["account", "#"], .accountNumber), (["account"], .accountNumber),
        (["acct"], .accountNumber), (["billing", "number"], .accountNumber), (["invoice"], .accountNumber),
        (["medical", "license"], .medicalLicense), (["license", "number"], .medicalLicense), (["license", "#"], .medicalLicense),
        (["dea", "number"], .medicalLicense), (["dea"], .medicalLicense), (["npi"], .medicalLicense),
        (["certificate", "number"], .medicalLicense), (["certificate"], .medicalLicense), (["license"], .medicalLicense),
        (["driver", "'", "s", "license"], .usDriverLicense), (["drivers", "license"], .usDriverLicense),
        (["driver", "license"], .usDriverLicense), (["dl"], .usDriverLicense), (["lic"], .medicalLicense),
        (["med", "rec"], .medicalRecordNumber), (["sn"], .deviceID), (["identifier", "("], .healthPlanNumber),
        (["license", "plate"], .vehicleID), (["plate"], .vehicleID), (["vin"], .vehicleID), (["vehicle", "id"], .vehicleID),
        (["serial", "number"], .deviceID), (["serial", "no"], .deviceID), (["serial"], .deviceID), (["s", "/", "n"], .deviceID),
        (["device", "id"], .deviceID), (["udi"], .deviceID), (["model", "number"], .deviceID), (["imei"], .deviceID),
        (["ssn"], .usSSN), (["social", "security", "number"], .usSSN), (["social", "security"], .usSSN),
        (["mrn", "#"], .medicalRecordNumber),
    ]
    /// Tokens allowed between a cue and its identifier.
    static let fillers: Set<String> = [":", "#", "-", ".", "no", "number", "num", "is", "id", "=", "(", ")", "of", "mbi"]
    /// Cues that are also units or words in lower case ("mg/dL", "sn"): they count only in capitals.
    static let capitalOnlyCues: Set<String> = ["dl", "sn", "lic"]

    /// Longest cue first at each position.
    static let cuesByFirstWord: [String: [([String], EntityType)]] = {
        var table: [String: [([String], EntityType)]] = [:]
        for cue in cues { table[cue.0[0], default: []].append(cue) }
        return table.mapValues { $0.sorted { $0.0.count > $1.0.count } }
    }()

    static func findAll(_ text: ScannedText, into found: inout [DetectedEntity]) {
        let t = text.tokens
        var i = 0
        while i < t.count {
            guard let candidates = cuesByFirstWord[t[i].lower],
                  let (phrase, type) = candidates.first(where: { text.matches($0.0, at: i) }),
                  !(Self.capitalOnlyCues.contains(t[i].lower) && !t[i].capitalized),
                  !(t[i].lower == "dl" && (text.isSymbol(i - 1, "/") || !t[i].allCaps)) else { i += 1; continue }
            var k = i + phrase.count
            var skipped = 0
            while k < t.count, skipped < 3, fillers.contains(t[k].lower), t[k].kind != .digits { k += 1; skipped += 1 }
            guard let (start, end, last) = identifier(text, k, type: type) else { i += 1; continue }
            found.append(DetectedEntity(type: type, start: start, end: end, score: 0.85, recognizer: .context))
            i = last + 1
        }
        ages(text, &found)
    }

    /// An identifier at token `k`: letters and digits, possibly joined by '-'
    /// or '.', with at least one digit (plates and IDs) and at least 4 characters.
    static func identifier(_ text: ScannedText, _ k: Int, type: EntityType) -> (Int, Int, Int)? {
        let t = text.tokens
        guard k < t.count, t[k].kind != .symbol else { return nil }
        var last = k
        var hasDigit = t[k].kind != .letters
        while last + 2 < t.count, ["-", "."].contains(t[last + 1].lower), text.touchesPrevious(last + 1), text.touchesPrevious(last + 2),
              t[last + 2].kind != .symbol {
            last += 2
            if t[last].kind != .letters { hasDigit = true }
        }
        // Plates: "RVG 3896", "324 TUR".
        if type == .vehicleID, last == k, last + 1 < t.count, t[last + 1].start == t[last].end + 1, t[last + 1].kind != .symbol,
           t[last + 1].length <= 4, (t[last].kind == .letters) != (t[last + 1].kind == .letters) || t[last + 1].kind == .mixed {
            last += 1
            hasDigit = true
        }
        // "123 456 789": digit groups split by single spaces belong together.
        while last + 1 < t.count, t[last].kind == .digits, t[last + 1].kind == .digits, t[last + 1].start == t[last].end + 1,
              type == .healthPlanNumber || type == .accountNumber || type == .usSSN || type == .medicalRecordNumber {
            last += 1
        }
        let length = t[last].end - t[k].start
        guard hasDigit, length >= 4 else { return nil }
        if type == .usSSN {
            let digits = text.text(t[k].start, t[last].end).filter(\.isNumber)
            guard digits.count == 9, let area = Int(digits.prefix(3)), let group = Int(digits.dropFirst(3).prefix(2)),
                  let serial = Int(digits.suffix(4)), PatternRecognizers.validSSN(area: area, group: group, serial: serial) else { return nil }
        }
        return (t[k].start, t[last].end, last)
    }

    /// Ages over 89: "92-year-old", "92 year old", "92 yo", "92 y/o", "age 95", "aged 101".
    static func ages(_ text: ScannedText, _ found: inout [DetectedEntity]) {
        let t = text.tokens
        for token in t where token.kind == .mixed && token.length <= 5 {
            // "101yo", "92y": one token.
            let digits = token.lower.prefix { $0.isNumber }
            guard ["yo", "y", "yr", "yrs"].contains(String(token.lower.dropFirst(digits.count))), let age = Int(digits), age >= 90, age <= 125 else { continue }
            found.append(DetectedEntity(type: .ageOver89, start: token.start, end: token.start + digits.count, score: 0.95, recognizer: .age))
        }
        for (i, token) in t.enumerated() where token.kind == .digits && token.length <= 3 {
            guard let age = Int(token.lower), age >= 90, age <= 125 else { continue }
            var k = i + 1
            if text.isSymbol(k, "-") { k += 1 }
            let after = text.lower(k)
            let yearsFollow = ["year", "years", "yo", "yr", "yrs", "y"].contains(after ?? "")
            let ageBefore = i > 0 && (["age", "aged"].contains(t[i - 1].lower)
                || (i > 1 && t[i - 1].lower == ":" && t[i - 2].lower == "age"))
            guard yearsFollow || ageBefore else { continue }
            if after == "y", !(text.isSymbol(k + 1, "/") || text.isSymbol(k + 1, ".")) { continue }
            found.append(DetectedEntity(type: .ageOver89, start: token.start, end: token.end, score: 0.95, recognizer: .age))
        }
    }
}
