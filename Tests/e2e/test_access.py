"""Bearer-token access control on every protected HTTP route and gRPC method,
and the audit log."""

import json

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

PIPELINE = "pipeline-token-0123456789abcdef"
OPS = "ops-token-0123456789abcdef0123"
TOKENS = {"tokens": [{"name": "pipeline", "token": PIPELINE, "groups": ["inference", "metadata"]},
                     {"name": "ops", "token": OPS, "groups": ["statistics", "metrics", "model-control", "metadata"]}]}

BODY = {"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": [1] * 16} for n in ("INPUT0", "INPUT1")]}
ROUTES = [("GET", "/v2"), ("GET", "/v2/models/simple"), ("GET", "/v2/models/simple/config"),
          ("GET", "/v2/models/simple/stats"), ("GET", "/v2/models/stats"), ("POST", "/v2/models/simple/infer"),
          ("POST", "/v2/repository/index"), ("POST", "/v2/repository/models/simple/load")]


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    from conftest import MODEL_REPOSITORY, RunningServer
    directory = tmp_path_factory.mktemp("secured")
    tokens = directory / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    server = RunningServer(MODEL_REPOSITORY, ["--auth-tokens-file", str(tokens), "--audit-log", "true",
                                              "--model-control-mode", "explicit", "--load-model", "simple"],
                           log_path=directory / "server.log").wait_live()
    yield server
    server.stop()


def call(server, method, path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{server.base}{path}", headers=headers, timeout=10,
                            json=BODY if path.endswith("infer") else None)


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_protected_route_refuses_missing_and_wrong_tokens(secured, method, path):
    assert call(secured, method, path).status_code == 401
    assert call(secured, method, path, "not-a-valid-token-at-all").status_code == 401


def test_groups_decide_what_a_token_may_call(secured):
    assert call(secured, "POST", "/v2/models/simple/infer", PIPELINE).status_code == 200
    assert call(secured, "GET", "/v2/models/simple/stats", PIPELINE).status_code == 403
    assert call(secured, "GET", "/v2/models/simple/stats", OPS).status_code == 200
    assert call(secured, "POST", "/v2/models/simple/infer", OPS).status_code == 403
    # A token without model-control cannot load or unload.
    assert call(secured, "POST", "/v2/repository/models/simple/unload", PIPELINE).status_code == 403
    assert call(secured, "POST", "/v2/repository/models/simple_int8/load", OPS).status_code == 200
    # Health stays open for probes; metrics need their group.
    assert requests.get(f"{secured.base}/v2/health/ready", timeout=5).status_code == 200
    metrics = f"http://127.0.0.1:{secured.metrics_port}/metrics"
    assert requests.get(metrics, timeout=5).status_code == 401
    assert requests.get(metrics, headers={"Authorization": f"Bearer {PIPELINE}"}, timeout=5).status_code == 403
    assert requests.get(metrics, headers={"Authorization": f"Bearer {OPS}"}, timeout=5).status_code == 200


def test_grpc_methods_check_tokens(secured):
    channel = grpc.insecure_channel(f"127.0.0.1:{secured.grpc_port}")
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    request = service_pb2.ModelInferRequest(model_name="simple")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(np.ones(16, np.int32).tobytes())
    calls = [(stub.ModelInfer, request), (stub.ServerMetadata, service_pb2.ServerMetadataRequest()),
             (stub.ModelStatistics, service_pb2.ModelStatisticsRequest(name="simple")),
             (stub.RepositoryModelUnload, service_pb2.RepositoryModelUnloadRequest(model_name="simple"))]
    for method, message in calls:
        with pytest.raises(grpc.RpcError) as info:
            method(message)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            method(message, metadata=[("authorization", "Bearer wrong-token-0123456789")])
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as info:
        stub.RepositoryModelUnload(service_pb2.RepositoryModelUnloadRequest(model_name="simple"),
                                   metadata=[("authorization", f"Bearer {PIPELINE}")])
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert stub.ServerLive(service_pb2.ServerLiveRequest()).live  # health is open
    channel.close()
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{secured.grpc_port}")
    tensors = []
    for name in ("INPUT0", "INPUT1"):
        t = grpcclient.InferInput(name, [1, 16], "INT32")
        t.set_data_from_numpy(np.ones((1, 16), np.int32))
        tensors.append(t)
    result = client.infer("simple", tensors, headers={"authorization": f"Bearer {PIPELINE}"})
    assert (result.as_numpy("OUTPUT0") == 2).all()
    with pytest.raises(InferenceServerException):
        client.infer("simple", tensors)
    client.close()


def test_audit_log_names_who_and_what_but_no_content(secured):
    call(secured, "POST", "/v2/models/simple/infer", PIPELINE)
    log = secured.read_log()
    audit = [line for line in log.splitlines() if "audit" in line and "/v2/models/simple/infer" in line]
    assert any("audit.principal=pipeline" in line and "http.status=200" in line for line in audit)
    assert any("audit.principal=anonymous" in line and "http.status=401" in line for line in audit)
    assert PIPELINE not in log and OPS not in log


def test_tokens_are_never_taken_from_the_command_line():
    from conftest import BINARY
    import subprocess
    help_text = subprocess.run([BINARY, "--help"], capture_output=True, text=True).stdout
    assert "--auth-tokens-file" in help_text and "--auth-token " not in help_text
