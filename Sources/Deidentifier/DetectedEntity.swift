import InferenceCore

/// One identifier found in a text: offsets in Unicode scalars (Python's
/// string indices, as Presidio reports them), end exclusive.
public struct DetectedEntity: Sendable, Hashable, Codable {
    public var type: EntityType
    public var start: Int
    public var end: Int
    /// 0…1. 1.0: validated structure (checksum, calendar, area rules) or a
    /// deny-list term; 0.85: a shape with a context word or cue; 0.6: a shape
    /// or list membership alone. Spans under the model's threshold are dropped.
    public var score: Double
    public var recognizer: Recognizer

    public init(type: EntityType, start: Int, end: Int, score: Double, recognizer: Recognizer) {
        self.type = type
        self.start = start
        self.end = end
        self.score = score
        self.recognizer = recognizer
    }

    public var length: Int { end - start }
}
