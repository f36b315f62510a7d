// The vocabulary of de-identification that the de-identifier, the request
// pipeline and the Presidio routes share: entity types and detector names.

/// A kind of identifier the de-identifier finds. Raw values are Presidio's
/// entity names where Presidio has one, so Presidio clients filter and map
/// them unchanged; the rest are ours (docs/deidentification.md lists them).
public enum EntityType: String, Sendable, CaseIterable, Codable, Comparable {
    case person = "PERSON"
    case location = "LOCATION"
    case zipCode = "ZIP_CODE"
    case dateTime = "DATE_TIME"
    case ageOver89 = "AGE_OVER_89"
    case phoneNumber = "PHONE_NUMBER"
    case faxNumber = "FAX_NUMBER"
    case emailAddress = "EMAIL_ADDRESS"
    case usSSN = "US_SSN"
    case medicalRecordNumber = "MEDICAL_RECORD_NUMBER"
    case healthPlanNumber = "HEALTH_PLAN_NUMBER"
    case accountNumber = "ACCOUNT_NUMBER"
    case medicalLicense = "MEDICAL_LICENSE"
    case usDriverLicense = "US_DRIVER_LICENSE"
    case vehicleID = "VEHICLE_ID"
    case deviceID = "DEVICE_ID"
    case url = "URL"
    case ipAddress = "IP_ADDRESS"
    case creditCard = "CREDIT_CARD"
    /// Identifiers found only through a deny list of the model's.
    case custom = "CUSTOM"

    public static func < (a: EntityType, b: EntityType) -> Bool { a.rawValue < b.rawValue }

    /// The short tag of the `[NAME]` replacement style (Presidio's own style is `<PERSON>`).
    public var bracketTag: String {
        switch self {
        case .person: "NAME"
        case .location: "LOCATION"
        case .zipCode: "ZIP"
        case .dateTime: "DATE"
        case .ageOver89: "AGE"
        case .phoneNumber: "PHONE"
        case .faxNumber: "FAX"
        case .emailAddress: "EMAIL"
        case .usSSN: "SSN"
        case .medicalRecordNumber: "MRN"
        case .healthPlanNumber: "HEALTH_PLAN"
        case .accountNumber: "ACCOUNT"
        case .medicalLicense: "LICENSE"
        case .usDriverLicense: "DRIVER_LICENSE"
        case .vehicleID: "VEHICLE"
        case .deviceID: "DEVICE"
        case .url: "URL"
        case .ipAddress: "IP"
        case .creditCard: "CARD"
        case .custom: "ID"
        }
    }
}

/// Which detector found a span, so a reviewer can audit every decision.
public enum Recognizer: String, Sendable, CaseIterable, Codable {
    /// A fixed shape with validation (email, URL, IP address, phone, SSN area rules, VIN and card check digits).
    case pattern = "PatternRecognizer"
    /// A date in one of the common formats, checked to be a real calendar date.
    case date = "DateRecognizer"
    /// An identifier announced by a context word ("MRN:", "Member ID", "S/N").
    case context = "ContextRecognizer"
    /// A name after a cue ("Dr.", "Pt", "son", "signed by") or before a credential (", MD").
    case nameCue = "NameCueRecognizer"
    /// A name from the census name lists, not on the safe list of common words.
    case nameList = "NameListRecognizer"
    /// A street address, a city before a state, a county, a ZIP code.
    case address = "AddressRecognizer"
    /// An age over 89 ("92-year-old", "age 95").
    case age = "AgeRecognizer"
    /// A term of the model's deny list.
    case denyList = "DenyListRecognizer"
    /// A span a token-classification model found (the optional NER_ENTITIES
    /// input, from a `transformer_encoder` with `task: token_classification`).
    case model = "TokenClassificationRecognizer"
}

/// Names of the de-identification parameters more than one module reads.
public enum DeidentificationParameters {
    /// The de-identifier backend's name in config.pbtxt.
    public static let backend = "phi_deidentifier"
    /// Its tensors: text in; de-identified text and the spans found (JSON) out.
    public static let textInput = "TEXT"
    public static let textOutput = "DEIDENTIFIED_TEXT"
    public static let entitiesOutput = "ENTITIES"
    /// Optional: spans a token-classification model found in the same text (JSON).
    public static let modelEntitiesInput = "NER_ENTITIES"
    /// The operators it applies and reverses, by Presidio's names (and ours).
    public static let anonymizers = ["date_shift", "encrypt", "hash", "keep", "mask", "redact", "replace"]
    public static let deanonymizers = ["decrypt", "deanonymize_keep"]
    /// A model config parameter naming the de-identifier its text inputs go through.
    public static let redaction = "phi_redaction"
    /// The de-identifier's request parameter that restores encrypted spans;
    /// the pipeline admits it only on calls granted re-identification.
    public static let reidentify = "deanonymize"
}
