import Foundation
import Testing
@testable import Deidentifier
import InferenceCore

let keyA = try! DeidentificationKey(secret: Array(repeating: 7, count: 32))
let keyB = try! DeidentificationKey(secret: Array(repeating: 9, count: 32))

func span(_ text: String, _ value: String, _ type: EntityType) -> DetectedEntity {
    let scalars = Array(text.unicodeScalars), target = Array(value.unicodeScalars)
    let start = (0...(scalars.count - target.count)).first { Array(scalars[$0..<$0 + target.count]) == target }!
    return DetectedEntity(type: type, start: start, end: start + target.count, score: 1, recognizer: .pattern)
}

func table(_ operators: [String: AnonymizeOperator], fallback: AnonymizeOperator = .replace(nil)) -> OperatorTable {
    var configs: [String: [String: Any]] = [:]
    for (type, op) in operators {
        switch op {
        case .redact: configs[type] = ["type": "redact"]
        case .keep: configs[type] = ["type": "keep"]
        case .mask(let c, let n, let fromEnd): configs[type] = ["type": "mask", "masking_char": String(c), "chars_to_mask": n, "from_end": fromEnd]
        case .replace(let value): configs[type] = ["type": "replace", "new_value": value ?? ""]
        default: Issue.record("unsupported in this helper")
        }
    }
    return OperatorTable(configs: configs, fallback: fallback)
}

@Suite struct AnonymizerTests {
    let text = "Maria Lopez, DOB 03/14/1950, call 555-123-4567."
    var spans: [AnonymizeSpan] {
        [span(text, "Maria Lopez", .person), span(text, "03/14/1950", .dateTime), span(text, "555-123-4567", .phoneNumber)].map(AnonymizeSpan.init)
    }

    @Test func replaceRedactMaskAndTags() throws {
        let (bracketed, items) = try Anonymizer().anonymize(text, spans: spans, operators: OperatorTable())
        #expect(bracketed == "[NAME], DOB [DATE], call [PHONE].")
        // Presidio's order: descending start.
        #expect(items.map(\.start) == [25, 12, 0] && items.map(\.end) == [32, 18, 6])
        let presidio = try Anonymizer(tagStyle: .presidio).anonymize(text, spans: spans, operators: OperatorTable()).text
        #expect(presidio == "<PERSON>, DOB <DATE_TIME>, call <PHONE_NUMBER>.")
        let mixed = try Anonymizer().anonymize(text, spans: spans, operators: table(["PERSON": .redact, "PHONE_NUMBER": .mask(character: "*", count: 4, fromEnd: true)],
                                                                                 fallback: .replace("X"))).text
        #expect(mixed == ", DOB X, call 555-123-****.")
    }

    @Test func presidiosConflictRules() throws {
        // Presidio's documented case: partial overlap of two types, the earlier cut where the later starts.
        let park = "I'm George Washington Square Park"
        let name = AnonymizeSpan(type: "NAME", start: 4, end: 21, score: 0.8), place = AnonymizeSpan(type: "LOCATION", start: 11, end: 33, score: 0.8)
        #expect(try Anonymizer(tagStyle: .presidio).anonymize(park, spans: [name, place], operators: table(["NAME": .keep])).text
                == "I'm George Washington<LOCATION>")
        #expect(try Anonymizer(tagStyle: .presidio).anonymize(park, spans: [name, place], operators: table(["LOCATION": .keep])).text
                == "I'm <NAME>Washington Square Park")
        // Contained spans go; same-type neighbours across spaces merge.
        let jane = "hello, Jane Doe here"
        let spans = [AnonymizeSpan(type: "PERSON", start: 7, end: 11, score: 0.8), AnonymizeSpan(type: "PERSON", start: 12, end: 15, score: 0.6),
                     AnonymizeSpan(type: "FIRST", start: 7, end: 11, score: 0.5)]
        let (out, items) = try Anonymizer(tagStyle: .presidio).anonymize(jane, spans: spans, operators: OperatorTable())
        #expect(out == "hello, <PERSON> here")
        #expect(items.count == 1)
        #expect(throws: DeidentificationError.self) {
            try Anonymizer().anonymize("short", spans: [AnonymizeSpan(type: "X", start: 2, end: 9, score: 1)], operators: OperatorTable())
        }
    }

    @Test func keyedHashIsStablePerKeyAndDiffersAcrossKeys() throws {
        let one = [AnonymizeSpan(span(text, "Maria Lopez", .person))]
        let hash = OperatorTable(fallback: .hash(sha512: false, salt: nil))
        let a1 = try Anonymizer(key: keyA).anonymize(text, spans: one, operators: hash).text
        let other = "Maria  LOPEZ, DOB"
        let a2 = try Anonymizer(key: keyA).anonymize(other, spans: [AnonymizeSpan(span(other, "Maria  LOPEZ", .person))], operators: hash).text
        let b = try Anonymizer(key: keyB).anonymize(text, spans: one, operators: hash).text
        #expect(a1.prefix(64) == a2.prefix(64))
        #expect(a1.prefix(64) != b.prefix(64))
        #expect(throws: DeidentificationError.self) { try Anonymizer().anonymize(text, spans: one, operators: hash) }
        // With a salt: Presidio's sha256(value + salt), no key needed.
        let salted = try Anonymizer().anonymize(text, spans: one, operators: OperatorTable(fallback: .hash(sha512: false, salt: Array("0123456789abcdef".utf8)))).text
        #expect(salted.hasPrefix("8f") || salted.count == 64 + text.count - "Maria Lopez".count)
    }

    @Test func dateShiftKeepsFormatAndIntervals() throws {
        let note = "Admitted 03/14/2024, discharged 03/20/2024, seen March 25th, 2024 and 2024-04-01."
        let found = PHIAnalyzer(lexicon: testLexicon).analyze(note, entities: [.dateTime]).map(AnonymizeSpan.init)
        #expect(found.count == 4)
        let shift = OperatorTable(fallback: .dateShift)
        let shifted = try Anonymizer(key: keyA).anonymize(note, spans: found, operators: shift, patientKey: "patient-1").text
        let again = try Anonymizer(key: keyA).anonymize(note, spans: found, operators: shift, patientKey: "patient-1").text
        #expect(shifted == again)
        #expect((1...365).contains(keyA.shiftDays(patientKey: "patient-1")))
        let scalars = Array(shifted.unicodeScalars)
        let dates = PHIAnalyzer(lexicon: testLexicon).analyze(shifted, entities: [.dateTime]).map { String(String.UnicodeScalarView(scalars[$0.start..<$0.end])) }
        #expect(dates.count == 4, "\(shifted)")
        let formatter = DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "MM/dd/yyyy"
        let first = try #require(formatter.date(from: dates[0])), second = try #require(formatter.date(from: dates[1]))
        #expect(second.timeIntervalSince(first) == 6 * 86400)
        #expect(dates[3].count == 10 && dates[3].contains("-"))
        #expect(throws: DeidentificationError.self) { try Anonymizer(key: keyA).anonymize(note, spans: found, operators: shift) }
    }

    @Test(arguments: [
        ("03/14/2024 10:30", -10, "03/04/2024 10:30"), ("2018-05-20 08:52", -20, "2018-04-30 08:52"),
        ("25/12/2024", -1, "24/12/2024"), ("March 14th, 2024 at 10:30 PM", -14, "February 29th, 2024 at 10:30 PM"),
        ("3/14", -14, "2/28"), ("14-Mar-24", -1, nil),
    ])
    func dateShiftRewritesOnlyTheDate(value: String, days: Int, expected: String?) {
        let shifted = DateShift.shift(value, byDays: days)
        if let expected { #expect(shifted == expected) } else { #expect(shifted != value) }
    }

    @Test func manySpansResolveInOnePass() throws {
        // Thousands of chained overlaps of two types: Presidio's rules, without quadratic passes.
        let text = String(repeating: "abcdefghij", count: 2_000)
        var spans: [AnonymizeSpan] = []
        for k in 0..<5_000 { spans.append(AnonymizeSpan(type: "A", start: 4 * k, end: 4 * k + 2, score: 0.5)) }
        for k in 0..<4_990 { spans.append(AnonymizeSpan(type: "B", start: 4 * k + 1, end: 4 * k + 9, score: 0.5)) }
        let (_, items) = try Anonymizer(tagStyle: .presidio).anonymize(text, spans: spans, operators: OperatorTable())
        #expect(!items.isEmpty && items.allSatisfy { $0.start <= $0.end })
    }

    @Test func encryptThenDecryptWithTheServerKeyAndWithAClientKey() throws {
        let one = [AnonymizeSpan(span(text, "Maria Lopez", .person))]
        for (encrypt, decrypt) in [(AnonymizeOperator.encrypt(key: nil), AnonymizeOperator.decrypt(key: nil)),
                                   (.encrypt(key: Array("WmZq4t7w!z%C&F)J".utf8)), .decrypt(key: Array("WmZq4t7w!z%C&F)J".utf8)))] {
            let (encrypted, items) = try Anonymizer(key: keyA).anonymize(text, spans: one, operators: OperatorTable(fallback: encrypt))
            #expect(!encrypted.contains("Maria"))
            let back = items.map { AnonymizeSpan(type: $0.source.type, start: $0.start, end: $0.end, score: nil) }
            let restored = try Anonymizer(key: keyA).deanonymize(encrypted, spans: back, operators: OperatorTable(fallback: decrypt, deanonymizer: true))
            #expect(restored.text == text)
        }
        // Presidio's documented example, decrypted here.
        let documented = try Anonymizer().deanonymize("My name is S184CMt9Drj7QaKQ21JTrpYzghnboTF9pn/neN8JME0=",
                                                      spans: [AnonymizeSpan(type: "PERSON", start: 11, end: 55, score: nil)],
                                                      operators: OperatorTable(fallback: .decrypt(key: Array("WmZq4t7w!z%C&F)J".utf8)), deanonymizer: true))
        #expect(documented.text == "My name is Chloë")
        #expect(throws: DeidentificationError.self) {
            let (encrypted, items) = try Anonymizer(key: keyA).anonymize(text, spans: [AnonymizeSpan(span(text, "Maria Lopez", .person))], operators: OperatorTable(fallback: .encrypt(key: nil)))
            _ = try Anonymizer(key: keyB).deanonymize(encrypted, spans: items.map { AnonymizeSpan(type: "PERSON", start: $0.start, end: $0.end, score: nil) },
                                                      operators: OperatorTable(fallback: .decrypt(key: nil), deanonymizer: true))
        }
    }

    @Test func operatorsParseAsPresidioSpellsThem() throws {
        #expect(try AnonymizeOperator.parse(["type": "mask", "masking_char": "#", "chars_to_mask": 3, "from_end": true])
                == .mask(character: "#", count: 3, fromEnd: true))
        #expect(throws: DeidentificationError.invalid("Invalid operator class 'shred'.")) { try AnonymizeOperator.parse(["type": "shred"]) }
        #expect(throws: DeidentificationError.invalid("Expected parameter from_end")) {
            try AnonymizeOperator.parse(["type": "mask", "masking_char": "#", "chars_to_mask": 1])
        }
        #expect(throws: DeidentificationError.invalid("Invalid input, key must be of length 128, 192 or 256 bits")) {
            try AnonymizeOperator.parse(["type": "encrypt", "key": "short"])
        }
        // Presidio checks an operator only when a span uses it.
        let lazy = try OperatorTable(json: #"{"PERSON": {"type": "bogus"}}"#, fallback: .redact)
        #expect(try lazy.operatorFor("PHONE_NUMBER") == .redact)
        #expect(throws: DeidentificationError.self) { try lazy.operatorFor("PERSON") }
    }

    @Test func keyFilesReadableByOthersAreRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("deid-key-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 32), attributes: [.posixPermissions: 0o644])
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: DeidentificationError.self) { try DeidentificationKey.read(path: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        _ = try DeidentificationKey.read(path: path)
    }
}
