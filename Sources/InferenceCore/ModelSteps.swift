/// The per-request steps a model's own backend and config add around its
/// scheduler: `prepare` before (the backend tokenizes text, checks and counts
/// token ids: `ModelBackend.prepare`) and `finish` after (Triton's
/// classification extension on outputs requested with `classification: N`).
///
/// The request pipeline runs them as steps of its sequence; the paths that
/// run a model without passing through the pipeline (an ensemble's steps,
/// warm-up samples, the de-identifier behind a redaction) take the same steps
/// through `run`, so no scheduler or runner prepares or classifies.
public struct ModelSteps: Sendable {
    public let spec: ModelSpec
    private let backend: (any ModelBackend)?
    private let clock: any SchedulerClock
    /// The model's text tokenizer, for the routes that tokenize or count
    /// tokens; nil where its backend has none (or no backend: an ensemble).
    public let tokenizer: (any TextTokenizer)?

    public init(spec: ModelSpec, backend: (any ModelBackend)?, clock: any SchedulerClock = SystemSchedulerClock()) {
        self.spec = spec
        self.backend = backend
        self.clock = clock
        tokenizer = try? backend?.tokenizer(for: spec)
    }

    /// Tokenizes and checks the request (before it is queued); returns how
    /// long tokenizing took (zero where nothing was tokenized). Errors fail
    /// this request alone.
    public func prepare(_ request: inout ValidatedRequest) throws -> Duration {
        guard let backend else { return .zero }
        let began = clock.now
        try backend.prepare(&request, spec: spec)
        return request.tokenized == nil ? .zero : clock.now - began
    }

    /// The response as the client asked for it: outputs in the requested
    /// order with the classification extension applied, the tokens prepare
    /// counted and the time it took.
    public func finish(_ response: inout InferenceResponse, for request: ValidatedRequest, tokenize: Duration) throws {
        response.outputs = try response.outputs.map { tensor in
            guard let count = request.outputs.first(where: { $0.name == tensor.name })?.classificationCount else { return tensor }
            let labels = spec.outputs.first { $0.name == tensor.name }?.labels ?? []
            return try Classification.topClasses(tensor, count: count, labels: labels, batched: spec.maxBatchSize > 0)
        }
        response.tokenCount = request.rowTokens?.reduce(0, +)
        response.timing.tokenize = tokenize
    }

    /// prepare → the runner → finish, for the paths outside the pipeline.
    public func run(_ request: ValidatedRequest, on runner: any InferenceRunner) async throws -> InferenceResponse {
        var request = request
        let tokenize = try prepare(&request)
        var response = try await runner.infer(request)
        try finish(&response, for: request, tokenize: tokenize)
        return response
    }
}
