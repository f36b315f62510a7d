import ExampleBackends
import Foundation
import InferenceCore
import Logging
import Testing
@testable import ModelRepository

/// One config per row, valid or not; each invalid one must fail with a message
/// naming the field (and model) at fault.
struct ConfigCase: CustomTestStringConvertible, Sendable {
    let label: String
    let config: String
    /// nil: the config loads. Otherwise a fragment the failure reason must contain.
    let expected: String?
    var testDescription: String { label }
}

let io = """
    input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
    output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
    """

func model(_ body: String, batch: Int? = 8, withIO: Bool = true) -> String {
    var text = "name: \"m\"\nbackend: \"add_sub\"\n"
    if let batch { text += "max_batch_size: \(batch)\n" }
    if withIO { text += io + "\n" }
    return text + body
}

let configCases: [ConfigCase] = [
    // Valid configurations Triton accepts.
    ConfigCase(label: "minimal", config: model(""), expected: nil),
    ConfigCase(label: "no batching", config: model("", batch: 0), expected: nil),
    ConfigCase(label: "dynamic batching defaults", config: model("dynamic_batching { }"), expected: nil),
    ConfigCase(label: "preferred sizes and delay", config: model("dynamic_batching { preferred_batch_size: [ 2, 4 ] max_queue_delay_microseconds: 100 }"), expected: nil),
    ConfigCase(label: "priorities with policies", config: model("""
        dynamic_batching { priority_levels: 3 default_priority_level: 2
          default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 1000 allow_timeout_override: true max_queue_size: 4 }
          priority_queue_policy { key: 1 value: { max_queue_size: 8 } } }
        """), expected: nil),
    ConfigCase(label: "preserve ordering", config: model("dynamic_batching { preserve_ordering: true }"), expected: nil),
    ConfigCase(label: "version policy latest 2", config: model("version_policy: { latest: { num_versions: 2 } }"), expected: nil),
    ConfigCase(label: "version policy specific", config: model("version_policy: { specific: { versions: [ 1 ] } }"), expected: nil),
    ConfigCase(label: "instance groups", config: model("instance_group [ { count: 2 kind: KIND_CPU } ]"), expected: nil),
    ConfigCase(label: "parameters", config: model("parameters { key: \"execute_delay_ms\" value: { string_value: \"0\" } }"), expected: nil),
    ConfigCase(label: "warmup zero data", config: model("""
        model_warmup [ { name: "w" batch_size: 2 count: 2 inputs { key: "INPUT0" value: { data_type: TYPE_INT32 dims: [ 16 ] zero_data: true } }
          inputs { key: "INPUT1" value: { data_type: TYPE_INT32 dims: [ 16 ] random_data: true } } } ]
        """), expected: nil),
    ConfigCase(label: "angle brackets and comments", config: model("# comment\ndynamic_batching < max_queue_delay_microseconds: 5 >"), expected: nil),
    ConfigCase(label: "optimization block parses", config: model("optimization { cuda { graphs: true } }"), expected: nil),
    ConfigCase(label: "default_model_filename", config: model("default_model_filename: \"model.bin\""), expected: nil),
    // Syntax errors: file, line and column.
    ConfigCase(label: "unclosed brace", config: model("dynamic_batching {"), expected: "config.pbtxt:6:18: syntax error: '{' is never closed"),
    ConfigCase(label: "unterminated string", config: "name: \"m\nbackend: \"add_sub\"", expected: "config.pbtxt:1:7: syntax error: unterminated string"),
    ConfigCase(label: "missing value", config: model("max_queue_delay_microseconds:"), expected: "config.pbtxt:6:1: syntax error: field 'max_queue_delay_microseconds' has no value"),
    ConfigCase(label: "stray symbol", config: model("} "), expected: "config.pbtxt:6:1: syntax error: expected a field name, found '}'"),
    ConfigCase(label: "mismatched bracket", config: model("dynamic_batching { preferred_batch_size: [ 4 }"), expected: "syntax error"),
    // Unknown fields and bad values, located and named.
    ConfigCase(label: "unknown top-level field", config: model("no_such_field: 1"), expected: "config.pbtxt:6:1: unknown field 'no_such_field'"),
    ConfigCase(label: "unknown nested field", config: model("dynamic_batching {\n  max_queue_delay: 100\n}"), expected: "config.pbtxt:7:3: unknown field 'dynamic_batching.max_queue_delay'"),
    ConfigCase(label: "unknown field in a list element", config: model("instance_group [ { count: 1 }, { cout: 2 } ]"), expected: "config.pbtxt:6:34: unknown field 'instance_group.cout'"),
    ConfigCase(label: "bad enum value", config: model("instance_group [ { kind: KIND_TPU } ]"), expected: "invalid value for field 'instance_group.kind'"),
    ConfigCase(label: "malformed number", config: model("", batch: nil) + "max_batch_size: eight", expected: "invalid value for field 'max_batch_size'"),
    // Triton's rules after normalization, naming model, field and value.
    ConfigCase(label: "name differs from directory", config: model("").replacingOccurrences(of: "name: \"m\"", with: "name: \"x\""), expected: "model 'x': name 'x' does not match its directory 'm'"),
    ConfigCase(label: "negative max_batch_size", config: model("", batch: -1), expected: "model 'm': max_batch_size must be >= 0, got -1"),
    ConfigCase(label: "no inputs", config: model("output [ { name: \"O\" data_type: TYPE_INT32 dims: [ 1 ] } ]", withIO: false), expected: "model 'm': input: at least one input is required"),
    ConfigCase(label: "no outputs", config: model("input [ { name: \"I\" data_type: TYPE_INT32 dims: [ 1 ] } ]", withIO: false), expected: "model 'm': output: at least one output is required"),
    ConfigCase(label: "zero dim", config: model("", withIO: false) + io.replacingOccurrences(of: "name: \"INPUT1\" data_type: TYPE_INT32 dims: [ 16 ]", with: "name: \"INPUT1\" data_type: TYPE_INT32 dims: [ 0 ]"), expected: "input 'INPUT1': dims must be positive or -1, got 0"),
    ConfigCase(label: "dim below -1", config: model("", withIO: false) + io.replacingOccurrences(of: "name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ]", with: "name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ -2 ]"), expected: "output 'OUTPUT0': dims must be positive or -1, got -2"),
    ConfigCase(label: "invalid data type", config: model("", withIO: false) + io.replacingOccurrences(of: "name: \"INPUT0\" data_type: TYPE_INT32", with: "name: \"INPUT0\" data_type: TYPE_INVALID"), expected: "input 'INPUT0': data_type"),
    ConfigCase(label: "duplicate input", config: model("", withIO: false) + io.replacingOccurrences(of: "INPUT1", with: "INPUT0"), expected: "input: duplicate name 'INPUT0'"),
    ConfigCase(label: "preferred size above max", config: model("dynamic_batching { preferred_batch_size: [ 16 ] }"), expected: "dynamic_batching.preferred_batch_size 16 must be within 1...8"),
    ConfigCase(label: "preferred size zero", config: model("dynamic_batching { preferred_batch_size: [ 0 ] }"), expected: "dynamic_batching.preferred_batch_size 0 must be within 1...8"),
    ConfigCase(label: "dynamic batching without batching", config: model("dynamic_batching { }", batch: 0), expected: "dynamic_batching requires max_batch_size > 0, got 0"),
    ConfigCase(label: "default priority above levels", config: model("dynamic_batching { priority_levels: 2 default_priority_level: 3 }"), expected: "dynamic_batching.default_priority_level 3 must be within 1...2"),
    ConfigCase(label: "default priority without levels", config: model("dynamic_batching { default_priority_level: 2 }"), expected: "dynamic_batching.default_priority_level 2 needs priority_levels >= 2"),
    ConfigCase(label: "priority policy for a missing level", config: model("dynamic_batching { priority_levels: 2 default_priority_level: 1 priority_queue_policy { key: 5 value: { } } }"), expected: "priority_queue_policy level 5 must be within 1...2"),
    ConfigCase(label: "preserve ordering with priorities", config: model("dynamic_batching { preserve_ordering: true priority_levels: 2 default_priority_level: 1 }"), expected: "preserve_ordering cannot be combined with priority_levels 2"),
    ConfigCase(label: "preserve ordering with DELAY", config: model("dynamic_batching { preserve_ordering: true default_queue_policy { timeout_action: DELAY } }"), expected: "preserve_ordering cannot be combined with timeout_action DELAY"),
    ConfigCase(label: "negative instance count", config: model("instance_group [ { count: -1 } ]"), expected: "instance_group 'm_0': count must be >= 1, got -1"),
    ConfigCase(label: "unknown backend", config: model("").replacingOccurrences(of: "add_sub", with: "nosuchbackend"), expected: "unknown backend 'nosuchbackend'"),
    ConfigCase(label: "Triton backend not served", config: model("").replacingOccurrences(of: "add_sub", with: "tensorflow"), expected: "backend 'tensorflow' (TensorFlow models) is not available in BatchServer"),
    ConfigCase(label: "backend rejects outputs", config: model("", withIO: false) + io.replacingOccurrences(of: "name: \"OUTPUT1\" data_type: TYPE_INT32", with: "name: \"OUTPUT1\" data_type: TYPE_FP32"), expected: "'OUTPUT1' is TYPE_FP32, not TYPE_INT32"),
    ConfigCase(label: "bad max_batch_tokens", config: model("dynamic_batching { }\nparameters { key: \"max_batch_tokens\" value: { string_value: \"lots\" } }"), expected: "parameters.max_batch_tokens must be a positive integer, got 'lots'"),
    ConfigCase(label: "bad execute delay", config: model("parameters { key: \"execute_delay_ms\" value: { string_value: \"-5\" } }"), expected: "parameters.execute_delay_ms must be a non-negative integer, got '-5'"),
    ConfigCase(label: "missing label file", config: model("", withIO: false) + io.replacingOccurrences(of: "name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ]", with: "name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ] label_filename: \"labels.txt\""), expected: "label_filename 'labels.txt' cannot be read"),
    ConfigCase(label: "label file outside the model", config: model("", withIO: false) + io.replacingOccurrences(of: "name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ]", with: "name: \"OUTPUT0\" data_type: TYPE_INT32 dims: [ 16 ] label_filename: \"../secret\""), expected: "label_filename '../secret' must name a file in the model directory"),
    ConfigCase(label: "specific version not present", config: model("version_policy: { specific: { versions: [ 7 ] } }"), expected: "no version directory matches its version_policy"),
    ConfigCase(label: "warmup with an unknown input", config: model("model_warmup [ { name: \"w\" batch_size: 1 inputs { key: \"NOPE\" value: { data_type: TYPE_INT32 dims: [ 16 ] zero_data: true } } } ]"), expected: "warmup sample 'w' failed"),
    ConfigCase(label: "warmup batch without batching", config: model("model_warmup [ { name: \"w\" batch_size: 4 } ]", batch: 0), expected: "model_warmup 'w' batch_size 4 needs a model that batches"),
    // Sections whose semantics are not built yet fail rather than serve wrongly.
    ConfigCase(label: "sequence batching", config: model("""
        sequence_batching { max_sequence_idle_microseconds: 1000
          control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ] }
        """), expected: nil),
    ConfigCase(label: "sequence control without values", config: model("""
        sequence_batching { control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START } ] } ] }
        """), expected: "sequence_batching.control_input 'START' must set exactly one of int32_false_true"),
    ConfigCase(label: "sequence CORRID of a float type", config: model("""
        sequence_batching { control_input [ { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_FP32 } ] } ] }
        """), expected: "CONTROL_SEQUENCE_CORRID needs data_type"),
    ConfigCase(label: "decoupled with dynamic batching", config: model("model_transaction_policy { decoupled: true }\ndynamic_batching { }"),
               expected: "dynamic_batching and sequence_batching are not supported with decoupled: true"),
]

@Suite struct ConfigTableTests {
    @Test func thereAreAtLeastThirtyCases() {
        #expect(configCases.count >= 30)
        #expect(configCases.filter { $0.expected != nil }.count >= 30)
    }

    @Test(arguments: configCases)
    func config(_ testCase: ConfigCase) async throws {
        let repository = try TemporaryRepository()
        try repository.addModel("m", config: testCase.config)
        let manager = ModelManager(repositoryPath: repository.path, backends: BackendRegistry(ExampleBackends.all),
                                   logger: Logger(label: "test"), makeRunner: { spec, backend in
                                       try EchoRunner(spec: spec, backend: backend)
                                   })
        try await manager.loadAll()
        let rows = manager.index()
        if let expected = testCase.expected {
            #expect(!rows.contains { $0.state == .ready }, "\(testCase.label) should not load")
            let reasons = rows.map(\.reason).joined(separator: " | ")
            #expect(reasons.contains(expected), "\(testCase.label): \(reasons)")
        } else {
            #expect(rows.allSatisfy { $0.state == .ready }, "\(testCase.label): \(rows)")
        }
    }
}

/// Runs requests through a real backend instance inline: enough for warmup.
struct EchoRunner: InferenceRunner {
    let instance: any ModelInstance
    init(spec: ModelSpec, backend: any ModelBackend) throws {
        instance = try backend.makeInstance(for: spec, index: 0)
    }
    func infer(_ request: ValidatedRequest) async throws -> InferenceResponse {
        let outputs = try instance.execute(Batch(items: [request]))
        return InferenceResponse(id: request.request.id, modelName: "m", modelVersion: 1, outputs: outputs[0])
    }
    func statistics() -> ModelStatistics { ModelStatistics() }
    func shutdown() async {}
}
