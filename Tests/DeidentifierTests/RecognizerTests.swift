import Testing
@testable import Deidentifier
import InferenceCore

/// A small lexicon standing in for the census and dictionary lists.
let testLexicon = Lexicon(
    firstNames: ["john", "maria", "amelia", "daniel", "priya", "will", "rose"],
    lastNames: ["smith", "lopez", "chen", "okafor", "natarajan", "reyes", "brown"],
    commonWords: ["will", "rose", "brown", "patient", "denies", "pain", "the", "and", "was", "seen", "today", "in", "clinic",
                  "lives", "with", "her", "his", "follow", "up", "call", "at", "on", "for", "a", "is"])

func found(_ text: String, _ types: Set<EntityType> = Set(EntityType.allCases), threshold: Double = 0.5) -> [(EntityType, String)] {
    let scalars = Array(text.unicodeScalars)
    return PHIAnalyzer(lexicon: testLexicon).analyze(text, entities: types, threshold: threshold).map {
        ($0.type, String(String.UnicodeScalarView(scalars[$0.start..<$0.end])))
    }
}

func has(_ text: String, _ type: EntityType, _ value: String) -> Bool {
    found(text).contains { $0.0 == type && $0.1 == value }
}

@Suite struct DateRecognizerTests {
    @Test(arguments: [
        ("Seen on 03/14/2024 in clinic", "03/14/2024"), ("Seen on 3/14/24 in clinic", "3/14/24"),
        ("Admitted 14 Mar 2024.", "14 Mar 2024"), ("Admitted March 14th, 2024 at noon", "March 14th, 2024"),
        ("Follow up March 14 with labs", "March 14"), ("Drawn 2024-03-14.", "2024-03-14"),
        ("Seen 3/14 for follow up", "3/14"), ("Born 14-Mar-1950.", "14-Mar-1950"), ("Last seen March 2024.", "March 2024"),
        ("On Mar. 3, 2023 she fell", "Mar. 3, 2023"), ("2/29/2024 was a leap day", "2/29/2024"),
    ])
    func datesInCommonFormats(text: String, date: String) {
        #expect(has(text, .dateTime, date), "\(found(text))")
    }

    @Test(arguments: ["Take 1/2 tab daily", "BP 120/80 today", "Feb 30, 2024 is no date", "2/29/2023 is no date",
                      "Score 13/12 noted", "In 2024 she moved", "You may call", "version 1.2.3"])
    func notDates(text: String) {
        #expect(!found(text).contains { $0.0 == .dateTime }, "\(found(text))")
    }
}

@Suite struct PatternRecognizerTests {
    @Test(arguments: [
        ("Call 555-123-4567 today", "555-123-4567"), ("Call (555) 123-4567.", "(555) 123-4567"),
        ("Call 555.123.4567", "555.123.4567"), ("Call +1 555 123 4567 now", "+1 555 123 4567"),
        ("Call 1-800-555-0199 x1234 now", "1-800-555-0199 x1234"),
    ])
    func phones(text: String, phone: String) {
        #expect(has(text, .phoneNumber, phone), "\(found(text))")
    }

    @Test func faxIsTellByItsCue() {
        #expect(has("Fax: 555-987-6543", .faxNumber, "555-987-6543"))
    }

    @Test(arguments: [("SSN 123-45-6789.", true), ("id 000-12-3456", false), ("id 666-12-3456", false),
                      ("id 900-12-3456", false), ("id 123-00-4567", false), ("id 123-45-0000", false), ("SSN: 123456789", true)])
    func ssnAreaRules(text: String, valid: Bool) {
        #expect(found(text).contains { $0.0 == .usSSN } == valid, "\(found(text))")
    }

    @Test func emailsURLsAndIPs() {
        #expect(has("mail jane.doe+x@mercy-health.org now", .emailAddress, "jane.doe+x@mercy-health.org"))
        #expect(has("see https://portal.example.org/p?id=4. Thanks", .url, "https://portal.example.org/p?id=4"))
        #expect(has("see www.example.com.", .url, "www.example.com"))
        #expect(has("from 192.168.10.254 at", .ipAddress, "192.168.10.254"))
        #expect(!found("value 300.1.2.3 here").contains { $0.0 == .ipAddress })
        #expect(has("host fe80::1ff:fe23:4567:890a up", .ipAddress, "fe80::1ff:fe23:4567:890a"))
    }

    @Test func vinCheckDigit() {
        #expect(has("car 1M8GDM9AXKP042788 parked", .vehicleID, "1M8GDM9AXKP042788"))
        #expect(!found("car 1M8GDM9A1KP042788 parked").contains { $0.0 == .vehicleID && $0.1.count == 17 && true } || has("car 1M8GDM9A1KP042788 parked", .vehicleID, "x") == false)
        #expect(!PatternRecognizers.validVIN(Array("1M8GDM9A1KP042788".unicodeScalars)))
    }
}

@Suite struct ContextAndAddressTests {
    @Test(arguments: [
        ("MRN: 4471234", EntityType.medicalRecordNumber, "4471234"), ("Member ID XJH-88231", .healthPlanNumber, "XJH-88231"),
        ("S/N PX-22091-B", .deviceID, "PX-22091-B"), ("DEA # AB1234563", .medicalLicense, "AB1234563"),
        ("Account number 99812-77", .accountNumber, "99812-77"), ("license plate 7ABC123", .vehicleID, "7ABC123"),
        ("driver's license D1234567", .usDriverLicense, "D1234567"),
    ])
    func identifiersAfterCues(text: String, type: EntityType, value: String) {
        #expect(has(text, type, value), "\(found(text))")
    }

    @Test func agesOver89Only() {
        #expect(has("A 92-year-old woman", .ageOver89, "92"))
        #expect(has("age 95, lives alone", .ageOver89, "95"))
        #expect(!found("A 45-year-old man").contains { $0.0 == .ageOver89 })
    }

    @Test func addressesCitiesAndZips() {
        let text = "Lives at 1200 W Oak Street, Apt 4B, Springfield, IL 62704."
        #expect(has(text, .location, "1200 W Oak Street, Apt 4B"), "\(found(text))")
        #expect(has(text, .location, "Springfield"), "\(found(text))")
        #expect(has(text, .zipCode, "62704"), "\(found(text))")
        #expect(has("Resides in Cook County.", .location, "Cook County"))
        #expect(!found("Follow up in clinic").contains { $0.0 == .location })
    }
}

@Suite struct NameRecognizerTests {
    @Test func namesAfterCuesAndBeforeCredentials() {
        #expect(has("Seen by Dr. Amelia Chen today", .person, "Amelia Chen"))
        #expect(has("Patient: Maria Lopez", .person, "Maria Lopez"))
        #expect(has("lives with her son Daniel", .person, "Daniel"))
        #expect(has("Signed, Priya Natarajan, MD", .person, "Priya Natarajan"))
        #expect(has("Mrs Okafor was seen", .person, "Okafor"))
        #expect(has("Call John Smith at home", .person, "John Smith"))
    }

    @Test func commonWordsAndEponymsAreNotNames() {
        #expect(!found("Patient denies pain. Will follow up.").contains { $0.0 == .person }, "\(found("Patient denies pain. Will follow up."))")
        #expect(!found("History of Parkinson's disease and Metformin use").contains { $0.0 == .person })
        #expect(has("Rose Brown was seen today", .person, "Rose Brown"))
    }

    @Test func offsetsAreScalarsInMultiByteText() {
        let text = "Zoë Ångström 🙂 called 555-123-4567"
        let spans = PHIAnalyzer(lexicon: testLexicon).analyze(text)
        let phone = spans.first { $0.type == .phoneNumber }
        // Python's indices: the emoji is one character, as are ë and Å.
        #expect(phone?.start == 22 && phone?.end == 34, "\(spans)")
    }
}

@Suite struct SpanResolverTests {
    @Test func higherScoreThenLongerWins() {
        let a = DetectedEntity(type: .url, start: 0, end: 20, score: 0.6, recognizer: .pattern)
        let b = DetectedEntity(type: .emailAddress, start: 5, end: 20, score: 1.0, recognizer: .pattern)
        let c = DetectedEntity(type: .person, start: 30, end: 35, score: 0.85, recognizer: .nameCue)
        let d = DetectedEntity(type: .person, start: 30, end: 40, score: 0.85, recognizer: .nameList)
        #expect(SpanResolver.resolve([a, b, c, d]) == [b, d])
    }
}

@Suite struct ModelEntityTests {
    @Test func labelsMapOntoEntityTypesOrAreDropped() throws {
        let labels = try ModelEntityLabels(configured: "codename=PERSON, WARD=LOCATION")
        #expect(labels.type(of: "PER") == .person)
        #expect(labels.type(of: "patient") == .person)
        #expect(labels.type(of: "CODENAME") == .person)
        #expect(labels.type(of: "ward") == .location)
        #expect(labels.type(of: "MEDICAL_RECORD_NUMBER") == .medicalRecordNumber)
        #expect(labels.type(of: "STATE") == nil)
        #expect(labels.type(of: "AGE") == nil)
        #expect(throws: DeidentificationError.self) { try ModelEntityLabels(configured: "X=NOT_A_TYPE") }
        #expect(throws: DeidentificationError.self) { try ModelEntityLabels(configured: "PERSON") }
    }

    @Test func spansAreCheckedAgainstTheTextAndJoinTheRules() throws {
        let labels = try ModelEntityLabels(configured: nil)
        let text = "Plan reviewed with Quixby today."
        let json = #"[{"entity_type":"PATIENT","start":19,"end":25,"score":0.97},{"entity_type":"ORG","start":0,"end":4}]"#
        let spans = try labels.entities(json, textLength: text.unicodeScalars.count)
        #expect(spans == [DetectedEntity(type: .person, start: 19, end: 25, score: 0.97, recognizer: .model)])
        #expect(throws: DeidentificationError.self) { try labels.entities(#"[{"entity_type":"PER","start":19,"end":99}]"#, textLength: 31) }
        let found = PHIAnalyzer(lexicon: testLexicon).analyze(text, modelSpans: spans)
        #expect(found.contains { $0.recognizer == .model && $0.start == 19 && $0.end == 25 })
        #expect(PHIAnalyzer(lexicon: testLexicon).analyze(text).isEmpty)
    }
}
