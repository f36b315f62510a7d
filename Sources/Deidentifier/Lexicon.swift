import Foundation
import InferenceCore

/// The word lists the name and place finders read: census first and last
/// names, a safe list of common English words (Philter's idea: a capitalised
/// word not known to be safe is suspect), our clinical safe words, and the
/// model's allow and deny lists. Loaded once per model version; read-only.
public struct Lexicon: Sendable {
    public var firstNames: Set<String>
    public var lastNames: Set<String>
    /// Lower-case words of an English dictionary: safe when no cue says "name".
    public var commonWords: Set<String>
    /// Clinical words, eponyms, departments and note headings that are never names.
    public var clinicalWords: Set<String>
    /// Terms never reported (compared lower-cased, whole tokens or phrases).
    public var allowList: Set<String>
    /// Terms always reported, with their type.
    public var denyList: [(terms: [String], type: EntityType)]

    public init(firstNames: Set<String> = [], lastNames: Set<String> = [], commonWords: Set<String> = [],
                clinicalWords: Set<String> = Lexicon.builtInClinicalWords, allowList: Set<String> = [],
                denyList: [(terms: [String], type: EntityType)] = []) {
        self.firstNames = firstNames
        self.lastNames = lastNames
        self.commonWords = commonWords
        self.clinicalWords = clinicalWords
        self.allowList = allowList
        self.denyList = denyList
    }

    func isSafe(_ lower: String) -> Bool {
        commonWords.contains(lower) || clinicalWords.contains(lower) || Self.structuralWords.contains(lower)
    }

    /// Words that end a name or a place however they are capitalised.
    func isStructuralWord(_ lower: String) -> Bool {
        Self.structuralWords.contains(lower) || clinicalWords.contains(lower)
    }

    /// Words that make the capitalised word before them a disease, sign or test
    /// named after a person ("Murphy's sign", "Wilson disease"), not a name.
    static let eponymHeads: Set<String> = ["disease", "syndrome", "sign", "signs", "test", "maneuver", "manoeuvre", "reflex", "palsy",
                                           "phenomenon", "score", "scale", "criteria", "classification", "lymphoma", "sarcoma", "tumor",
                                           "esophagus", "thyroiditis", "ulcer", "fracture", "node", "nodes", "catheter", "triad", "law", "point"]

    func isPlaceWord(_ lower: String) -> Bool { Self.placeWords.contains(lower) }

    static let placeWords: Set<String> = ["lake", "east", "west", "north", "south", "new", "port", "fort", "saint", "st", "mount",
                                          "springs", "city", "beach", "falls", "park", "heights", "valley", "grove", "rock", "bay", "hill"]

    /// Titles, weekdays, months, pronouns and note headings.
    static let structuralWords: Set<String> = [
        "dr", "doctor", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "nurse", "the", "a", "an", "and", "or", "of", "in",
        "on", "at", "to", "for", "with", "by", "from", "he", "she", "they", "his", "her", "their", "we", "i", "you", "it", "is",
        "was", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march",
        "april", "may", "june", "july", "august", "september", "october", "november", "december", "patient", "pt", "name",
        "date", "dob", "mrn", "md", "do", "rn", "np", "pa", "phd", "dds", "history", "assessment", "plan", "diagnosis",
        "impression", "findings", "exam", "examination", "medications", "allergies", "vitals", "labs", "results", "hospital",
        "clinic", "center", "centre", "medical", "health", "department", "unit", "service", "services", "emergency", "room",
        "floor", "ward", "icu", "er", "ed", "admission", "discharge", "summary", "report", "note", "notes", "signed", "follow",
        "up", "reason", "referral", "chief", "complaint", "course", "procedure", "radiology", "laboratory", "lab", "street",
        "avenue", "road", "county", "state", "phone", "fax", "email", "address", "sincerely", "dear", "regards", "thanks",
        "thank", "please", "yes", "no", "not", "none", "normal", "negative", "positive", "left", "right", "bilateral",
        "attending", "resident", "physician", "surgeon", "provider", "pcp", "contact", "son", "daughter", "wife", "husband",
        "mother", "father", "sister", "brother", "spouse", "hi", "hello", "re", "cc", "my", "our", "your", "this", "that", "subject", "from", "sent", "message",
        "university", "memorial", "general", "regional", "community", "saint", "mercy", "children", "practice", "family",
    ]

    /// Medicines, diseases, eponyms and other capitalised clinical words the
    /// census lists contain or that look like names (Parkinson, Graves, Bell).
    public static let builtInClinicalWords: Set<String> = [
        "parkinson", "parkinsons", "alzheimer", "alzheimers", "crohn", "crohns", "hodgkin", "hodgkins", "down", "cushing", "cushings", "addisons", "wilsons", "huntingtons", "raynaud",
        "kaposi", "barretts", "guillain", "barre", "epstein", "barr", "hashimoto", "hashimotos", "meniere",
        "sjogren", "tourette", "marfan", "pagets", "lyme", "ganz",
        "babinski", "romberg", "mcburney", "homan", "homans", "kernig", "brudzinski", "tinel", "phalen",
        "lachman", "mcmurray", "trendelenburg", "valsalva", "heimlich", "doppler", "holter", "gram", "coombs", 
        "metformin", "lisinopril", "atorvastatin", "amlodipine", "metoprolol", "warfarin", "heparin", "insulin", "aspirin",
        "tylenol", "advil", "lasix", "furosemide", "prednisone", "albuterol", "levothyroxine", "omeprazole", "gabapentin",
        "hydrochlorothiazide", "losartan", "simvastatin", "eliquis", "xarelto", "coumadin", "plavix", "zoloft", "lexapro",
        "ceftriaxone", "vancomycin", "zosyn", "azithromycin", "amoxicillin", "keflex", "cipro", "flagyl", "morphine",
        "dilaudid", "oxycodone", "norco", "ativan", "haldol", "seroquel", "zofran", "protonix", "lovenox", "humalog",
        "lantus", "januvia", "jardiance", "ozempic", "entresto", "spironolactone", "carvedilol", "digoxin", "amiodarone",
        "hypertension", "diabetes", "mellitus", "copd", "chf", "cad", "ckd", "afib", "pneumonia", "sepsis", "covid",
        "influenza", "asthma", "cancer", "carcinoma", "lymphoma", "leukemia", "melanoma", "stroke", "mi", "dvt", "pe",
        "ct", "mri", "cxr", "ekg", "ecg", "echo", "ultrasound", "xray", "x-ray", "pet", "cbc", "bmp", "cmp", "inr", "ptt",
        "hba1c", "a1c", "tsh", "bnp", "troponin", "creatinine", "sodium", "potassium", "glucose", "hemoglobin", "platelets",
        "medicare", "medicaid", "aetna", "cigna", "humana", "kaiser", "unitedhealthcare",
        "tablet", "tablets", "capsule", "daily", "twice", "bid", "tid", "qid", "prn", "po", "iv", "im", "subq", "mg", "ml",
        "english", "spanish", "caucasian", "hispanic", "african", "american", "asian",
        "mychart", "epic", "cerner", "internal", "medicine", "cardiology", "oncology", "neurology", "nephrology", "orthopedics",
        "pulmonology", "gastroenterology", "endocrinology", "dermatology", "psychiatry", "pediatrics", "urology", "surgery",
        "obstetrics", "gynecology", "ob", "gyn", "ent", "ophthalmology", "rheumatology", "hematology", "infectious", "disease",
        "primary", "care", "urgent", "outpatient", "inpatient", "intensive", "telemetry", "rehab", "rehabilitation", "hospice",
        "pharmacy", "imaging", "pathology", "anesthesia", "respiratory", "therapy", "physical", "occupational", "speech",
    ]

    /// Reads a list file: one term per line, `#` comments, lower-cased.
    public static func readList(_ path: String) throws -> Set<String> {
        let content = try String(contentsOfFile: path, encoding: .utf8)
        var words = Set<String>()
        for line in content.split(whereSeparator: \.isNewline) {
            let term = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            } ?? ""
            if !term.isEmpty { words.insert(term) }
        }
        return words
    }
}
