import Foundation
import InferenceCore
import Testing
@testable import AccessControl

@Suite struct AccessPolicyTests {
    let policy = try! AccessPolicy(json: Data("""
        {"tokens": [{"name": "pipeline", "token": "pipeline-token-0123456789", "groups": ["inference", "metadata"]},
                    {"name": "ops", "token": "ops-token-0123456789abcdef", "groups": ["model-control", "metrics", "statistics"]}]}
        """.utf8), source: "tokens.json", openHealth: true)

    @Test func grantsOnlyTheTokensGroups() throws {
        #expect(try policy.authorize("Bearer pipeline-token-0123456789", for: .inference) == "pipeline")
        #expect(try policy.authorize("bearer ops-token-0123456789abcdef", for: .modelControl) == "ops")
        let denied = #expect(throws: InferenceError.self) { try policy.authorize("Bearer pipeline-token-0123456789", for: .modelControl) }
        #expect(denied?.code == .permissionDenied)
    }

    @Test(arguments: [nil, "", "Bearer", "Bearer wrong-token-0123456789", "Basic cGlwZWxpbmU=", "Bearer pipeline-token-012345678"])
    func refusesMissingOrUnknownTokens(_ header: String?) {
        let error = #expect(throws: InferenceError.self) { try policy.authorize(header, for: .inference) }
        #expect(error?.code == .unauthenticated)
    }

    @Test func healthCanStayOpen() throws {
        #expect(try policy.authorize(nil, for: .health) == nil)
        let closed = try AccessPolicy(json: Data(#"{"tokens": [{"name": "a", "token": "aaaaaaaaaaaaaaaaaaaa", "groups": ["health"]}]}"#.utf8),
                                      source: "t", openHealth: false)
        #expect(throws: InferenceError.self) { try closed.authorize(nil, for: .health) }
        #expect(try closed.authorize("Bearer aaaaaaaaaaaaaaaaaaaa", for: .health) == "a")
    }

    @Test func openPolicyAllowsEverything() throws {
        #expect(try AccessPolicy.open.authorize(nil, for: .modelControl) == nil)
    }

    @Test(arguments: [#"{"tokens": []}"#, #"{"tokens": [{"name": "a", "token": "short", "groups": []}]}"#,
                      #"{"tokens": [{"name": "a", "token": "aaaaaaaaaaaaaaaaaaaa", "groups": ["everything"]}]}"#, "not json"])
    func rejectsBadTokenFilesWithoutEchoingThem(_ text: String) {
        let error = #expect(throws: InferenceError.self) { try AccessPolicy(json: Data(text.utf8), source: "tokens.json", openHealth: true) }
        #expect(error?.message.hasPrefix("tokens.json") == true)
        #expect(error?.message.contains("aaaaaaaaaaaaaaaaaaaa") == false)
    }

    @Test func constantTimeEquality() {
        #expect(AccessPolicy.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!AccessPolicy.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!AccessPolicy.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!AccessPolicy.constantTimeEqual([], Array("a".utf8)))
    }

    @Test(arguments: [("/v2/health/ready", EndpointGroup.health), ("/v2/models/m/ready", .health), ("/v2", .metadata),
                      ("/v2/models/m/versions/1/config", .metadata), ("/v2/models/m/infer", .inference),
                      ("/v2/models/m/stats", .statistics), ("/v2/models/stats", .statistics), ("/v2/repository/index", .metadata),
                      ("/v2/repository/models/m/load", .modelControl), ("/metrics", .metrics)])
    func httpRoutesMapToGroups(path: String, group: EndpointGroup) {
        #expect(EndpointGroups.forHTTP(path: path) == group)
    }

    @Test func grpcMethodsMapToGroups() {
        #expect(EndpointGroups.forGRPC(method: "/inference.GRPCInferenceService/ModelStreamInfer") == .inference)
        #expect(EndpointGroups.forGRPC(method: "/inference.GRPCInferenceService/SystemSharedMemoryRegister") == .sharedMemory)
        #expect(EndpointGroups.forGRPC(method: "/inference.GRPCInferenceService/CudaSharedMemoryStatus") == .sharedMemory)
        #expect(EndpointGroups.forGRPC(method: "/inference.GRPCInferenceService/LogSettings") == .logging)
        #expect(EndpointGroups.forGRPC(method: "/inference.GRPCInferenceService/TraceSetting") == .trace)
        #expect(EndpointGroups.forHTTP(path: "/v2/systemsharedmemory/region/r/register") == .sharedMemory)
        #expect(EndpointGroups.forHTTP(path: "/v2/cudasharedmemory/status") == .sharedMemory)
        #expect(EndpointGroups.forHTTP(path: "/v2/logging") == .logging)
        #expect(EndpointGroups.forHTTP(path: "/v2/models/m/trace/setting") == .trace)
        #expect(EndpointGroups.forGRPC(method: "/inference.GRPCInferenceService/RepositoryModelUnload") == .modelControl)
        #expect(EndpointGroups.forGRPC(method: "/grpc.health.v1.Health/Check") == .health)
        #expect(EndpointGroups.forGRPC(method: "/inference.GRPCInferenceService/ModelConfig") == .metadata)
    }
}
