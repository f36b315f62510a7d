// The de-identifier on untrusted text: every recognizer over the scan, the
// span resolver, the operators (mask, replace, date shift, encrypt and
// decrypt under a fixed key) with spans drawn from the input, and Presidio's
// conflict rules. A trap here would take the whole server down with a note.
@testable import Deidentifier
import InferenceCore

let lexicon = Lexicon(firstNames: ["john", "maria", "amelia", "will"], lastNames: ["smith", "lopez", "chen", "brown"],
                      commonWords: ["will", "brown", "the", "patient", "pain"])
let analyzer = PHIAnalyzer(lexicon: lexicon)
let key = try! DeidentificationKey(secret: Array(repeating: 42, count: 32))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeidentifier(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start, count > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    // Byte 0 picks the operator; bytes 1-8 four client spans (start, length); the rest is the text.
    let text = String(decoding: bytes.dropFirst(min(9, bytes.count)), as: UTF8.self)
    let length = text.unicodeScalars.count
    let found = analyzer.analyze(text, threshold: Double(bytes[0] % 4) / 4)
    let ops: [AnonymizeOperator] = [.replace(nil), .redact, .mask(character: "*", count: Int(bytes[0] % 7), fromEnd: bytes[0] & 1 == 0),
                                    .dateShift, .encrypt(key: nil), .hash(sha512: false, salt: nil), .keep]
    let op = ops[Int(bytes[0]) % ops.count]
    let anonymizer = Anonymizer(tagStyle: bytes[0] & 2 == 0 ? .brackets : .presidio, key: key)
    if let (out, items) = try? anonymizer.anonymize(text, spans: found.map(AnonymizeSpan.init), operators: OperatorTable(fallback: op),
                                                    patientKey: "fuzz") {
        precondition(items.allSatisfy { $0.start <= $0.end && $0.end <= out.unicodeScalars.count })
        if case .encrypt = op {
            let back = items.map { AnonymizeSpan(type: $0.source.type, start: $0.start, end: $0.end, score: nil) }
            let restored = try? anonymizer.deanonymize(out, spans: back, operators: OperatorTable(fallback: .decrypt(key: nil), deanonymizer: true))
            precondition(restored == nil || restored!.text == text || items.count != found.count)
        }
    }
    // Client spans anywhere, overlapping, past the end: refused or applied, never a trap.
    var spans: [AnonymizeSpan] = []
    for k in stride(from: 1, to: min(9, bytes.count), by: 2) where k + 1 < bytes.count {
        let s = Int(bytes[k]) % (length + 2), e = s + Int(bytes[k + 1]) % 8 - 1
        spans.append(AnonymizeSpan(type: k % 4 == 1 ? "PERSON" : "DATE_TIME", start: s, end: e, score: Double(bytes[k + 1]) / 255))
    }
    _ = try? anonymizer.anonymize(text, spans: spans, operators: OperatorTable(fallback: op), patientKey: "fuzz")
    _ = try? anonymizer.deanonymize(text, spans: spans, operators: OperatorTable(fallback: .deanonymizeKeep, deanonymizer: true))
    return 0
}
