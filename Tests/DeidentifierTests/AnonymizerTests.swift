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

@Suite struct AnonymizerTests {
    let text = "Maria Lopez, DOB 03/14/1950, call 555-123-4567."

    @Test func replaceRedactMaskAndTags() throws {
        let spans = [span(text, "Maria Lopez", .person), span(text, "03/14/1950", .dateTime), span(text, "555-123-4567", .phoneNumber)]
        let (bracketed, items) = try Anonymizer().anonymize(text, entities: spans)
        #expect(bracketed == "[NAME], DOB [DATE], call [PHONE].")
        #expect(items.map(\.start) == [0, 12, 25] && items.map(\.end) == [6, 18, 32])
        let presidio = try Anonymizer(tagStyle: .presidio).anonymize(text, entities: spans).text
        #expect(presidio == "<PERSON>, DOB <DATE_TIME>, call <PHONE_NUMBER>.")
        let mixed = try Anonymizer(operators: [.person: .redact, .phoneNumber: .mask(character: "*", count: 4, fromEnd: true)],
                                   defaultOperator: .replace("X")).anonymize(text, entities: spans).text
        #expect(mixed == ", DOB X, call 555-123-****.")
    }

    @Test func keyedHashIsStablePerKeyAndDiffersAcrossKeys() throws {
        let spans = [span(text, "Maria Lopez", .person)]
        let a1 = try Anonymizer(defaultOperator: .hash(sha512: false), key: keyA).anonymize(text, entities: spans).text
        let a2 = try Anonymizer(defaultOperator: .hash(sha512: false), key: keyA).anonymize("Maria  LOPEZ, DOB", entities: [span("Maria  LOPEZ, DOB", "Maria  LOPEZ", .person)]).text
        let b = try Anonymizer(defaultOperator: .hash(sha512: false), key: keyB).anonymize(text, entities: spans).text
        #expect(a1.prefix(64) == a2.prefix(64))
        #expect(a1.prefix(64) != b.prefix(64))
        #expect(throws: DeidentificationError.self) { try Anonymizer(defaultOperator: .hash(sha512: false)).anonymize(text, entities: spans) }
    }

    @Test func dateShiftKeepsFormatAndIntervals() throws {
        let note = "Admitted 03/14/2024, discharged 03/20/2024, seen March 25th, 2024 and 2024-04-01."
        let spans = PHIAnalyzer(lexicon: testLexicon).analyze(note, entities: [.dateTime])
        #expect(spans.count == 4)
        let shifted = try Anonymizer(defaultOperator: .dateShift, key: keyA).anonymize(note, entities: spans, patientKey: "patient-1").text
        let again = try Anonymizer(defaultOperator: .dateShift, key: keyA).anonymize(note, entities: spans, patientKey: "patient-1").text
        #expect(shifted == again)
        let days = keyA.shiftDays(patientKey: "patient-1")
        #expect((1...365).contains(days))
        let dates = PHIAnalyzer(lexicon: testLexicon).analyze(shifted, entities: [.dateTime]).map { String(Array(shifted)[$0.start..<$0.end]) }
        #expect(dates.count == 4, "\(shifted)")
        let formatter = DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "MM/dd/yyyy"
        let first = formatter.date(from: dates[0])!, second = formatter.date(from: dates[1])!
        #expect(second.timeIntervalSince(first) == 6 * 86400)
        #expect(dates[3].count == 10 && dates[3].contains("-"))
    }

    @Test func encryptThenDecrypt() throws {
        let spans = [span(text, "Maria Lopez", .person)]
        let (encrypted, items) = try Anonymizer(defaultOperator: .encrypt, key: keyA).anonymize(text, entities: spans)
        let restored = try Deanonymizer.restore(encrypted, items: items.map { DeanonymizeItem(start: $0.start, end: $0.end, type: "PERSON") },
                                                key: keyA, model: "m")
        #expect(restored.0 == text)
        #expect(throws: InferenceError.self) {
            try Deanonymizer.restore(encrypted, items: items.map { DeanonymizeItem(start: $0.start, end: $0.end, type: "PERSON") }, key: keyB, model: "m")
        }
    }

    @Test func operatorsParseAsPresidioSpellsThem() throws {
        #expect(try AnonymizeOperator.parse(["type": "mask", "masking_char": "#", "chars_to_mask": 3, "from_end": true], field: "f")
                == .mask(character: "#", count: 3, fromEnd: true))
        #expect(throws: DeidentificationError.self) { try AnonymizeOperator.parse(["type": "shred"], field: "anonymizers.PERSON") }
        #expect(throws: DeidentificationError.self) { try AnonymizeOperator.parse(["type": "mask", "masking_char": "##", "chars_to_mask": 1], field: "f") }
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
