import InferenceCore

/// Spans a token-classification model found in the same text (the optional
/// NER_ENTITIES input: the ENTITIES JSON of a `transformer_encoder` with
/// `task: token_classification`, usually wired by an ensemble). They join the
/// rules' findings before spans are resolved, as a fifth recognizer.
///
/// A model's labels become entity types: our own names as they are, the
/// labels of common NER and clinical de-identification corpora and
/// checkpoints (CoNLL, i2b2 2014, obi/deid_bert_i2b2, Stanford's
/// de-identifier) by the table below, and the config's `ner_labels`
/// (`LABEL=TYPE,…`) before both. A label that names nothing Safe Harbor
/// covers (a state, a country, an organisation, a profession, any age) is
/// dropped: the rules still find ages over 89.
struct ModelEntityLabels: Sendable {
    static let known: [String: EntityType] = [
        "PER": .person, "PERSON": .person, "NAME": .person, "PATIENT": .person, "DOCTOR": .person, "STAFF": .person,
        "HCW": .person, "USERNAME": .person, "FIRST_NAME": .person, "LAST_NAME": .person,
        "LOC": .location, "LOCATION": .location, "GPE": .location, "CITY": .location, "STREET": .location,
        "ADDRESS": .location, "HOSPITAL": .location, "COUNTY": .location, "LOCATION_OTHER": .location,
        "ZIP": .zipCode, "DATE": .dateTime, "TIME": .dateTime,
        "PHONE": .phoneNumber, "FAX": .faxNumber, "EMAIL": .emailAddress, "SSN": .usSSN,
        "MEDICALRECORD": .medicalRecordNumber, "MRN": .medicalRecordNumber, "HEALTHPLAN": .healthPlanNumber,
        "ACCOUNT": .accountNumber, "LICENSE": .medicalLicense, "VEHICLE": .vehicleID, "DEVICE": .deviceID,
        "URL": .url, "IPADDR": .ipAddress, "IP": .ipAddress, "IDNUM": .custom, "BIOID": .custom,
        // obi/deid_bert_i2b2 (BILOU) and StanfordAIMI/stanford-deidentifier-base label sets.
        "HOSP": .location, "ID": .custom, "OTHERPHI": .custom, "PATORG": .custom,
    ]

    let table: [String: EntityType]

    /// `configured`: the model's `ner_labels` parameter.
    init(configured: String?) throws {
        var table = Self.known
        for type in EntityType.allCases { table[type.rawValue] = type }
        for pair in (configured ?? "").split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let type = EntityType(rawValue: parts[1]) else {
                throw DeidentificationError.invalid("parameters.ner_labels must be LABEL=TYPE pairs with our entity types, got '\(pair)'")
            }
            table[parts[0].uppercased()] = type
        }
        self.table = table
    }

    func type(of label: String) -> EntityType? { table[label.uppercased()] }

    /// One text's model spans: checked against the text, labels mapped, the
    /// rest dropped. A span without a score counts as 0.85 (a model's word
    /// with no confidence given, like a cue-word finding).
    func entities(_ json: String, textLength: Int) throws -> [DetectedEntity] {
        let spans = try SpanJSON.decode(json, scoreRequired: false)
        try Anonymizer.checkBounds(spans, length: textLength)
        return spans.compactMap { span in
            type(of: span.type).map {
                DetectedEntity(type: $0, start: span.start, end: span.end, score: min(max(span.score ?? 0.85, 0), 1), recognizer: .model)
            }
        }
    }
}
