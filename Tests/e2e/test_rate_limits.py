"""Rate limits through the real server: a token's own limits (requests per
second, requests in flight) answered 429 with Retry-After over HTTP and
RESOURCE_EXHAUSTED over gRPC while other tokens are served; and Triton's
resource rate limiter (--rate-limit=execution_count) keeping two models that
share a resource from running at once."""

import concurrent.futures
import json
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from test_batching import write_model

BULK = "bulk-token-0123456789abcdef"
CLINIC = "clinic-token-0123456789abcdef"
BODY = {"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": [1] * 16} for n in ("INPUT0", "INPUT1")]}


def metric(server, name, **labels):
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5,
                        headers={"Authorization": f"Bearer {CLINIC}"}).text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def tokens_file(tmp_path, bulk_limits):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [
        {"name": "bulk", "token": BULK, "groups": ["inference", "metadata"], "limits": bulk_limits},
        {"name": "clinic", "token": CLINIC, "groups": ["inference", "metadata", "metrics"]}]}))
    return path


def infer(server, token, model="simple"):
    return requests.post(f"{server.base}/v2/models/{model}/infer", json=BODY, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})


def test_a_tokens_rate_is_enforced_with_retry_after(start_server, tmp_path):
    from conftest import MODEL_REPOSITORY
    server = start_server(MODEL_REPOSITORY, ["--auth-tokens-file", str(tokens_file(tmp_path, {"requests_per_second": 1, "burst": 2}))])
    codes = [infer(server, BULK).status_code for _ in range(2)]
    refused = infer(server, BULK)
    assert codes == [200, 200] and refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert "token 'bulk' is limited to 1 inference requests per second" in refused.json()["error"]
    # The clinical token is not held back, and metadata is not limited.
    assert all(infer(server, CLINIC).status_code == 200 for _ in range(5))
    assert requests.get(f"{server.base}/v2/models/simple", headers={"Authorization": f"Bearer {BULK}"}, timeout=5).status_code == 200
    # gRPC: RESOURCE_EXHAUSTED, unary and per stream message.
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    a = grpcclient.InferInput("INPUT0", [1, 16], "INT32")
    b = grpcclient.InferInput("INPUT1", [1, 16], "INT32")
    a.set_data_from_numpy(np.ones((1, 16), dtype=np.int32))
    b.set_data_from_numpy(np.ones((1, 16), dtype=np.int32))
    with pytest.raises(InferenceServerException) as raised:
        client.infer("simple", [a, b], headers={"authorization": f"Bearer {BULK}"})
    assert raised.value.status() == "StatusCode.RESOURCE_EXHAUSTED" and "retry after" in raised.value.message()
    assert metric(server, "batchserver_rate_limited_total", principal="bulk", reason="rate") >= 2
    # After the wait, the bulk token is served again.
    time.sleep(float(refused.headers["Retry-After"]))
    assert infer(server, BULK).status_code == 200


def test_a_tokens_requests_in_flight_are_capped(start_server, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    write_model(repo, "slow", 'parameters { key: "execute_delay_ms" value: { string_value: "400" } }\n'
                "dynamic_batching { preferred_batch_size: [ 1 ] }\ninstance_group [ { count: 4 kind: KIND_CPU } ]")
    server = start_server(repo, ["--auth-tokens-file", str(tokens_file(tmp_path, {"max_concurrent": 2}))])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(lambda _: infer(server, BULK, "slow").status_code, range(4)))
    assert codes == [200, 200, 429, 429], codes
    assert metric(server, "batchserver_rate_limited_total", principal="bulk", reason="concurrency") == 2
    assert infer(server, BULK, "slow").status_code == 200     # the slots came back


def two_models_sharing(repo, count_a=1, count_b=1, extra=""):
    for name, count in (("model_a", count_a), ("model_b", count_b)):
        write_model(repo, name, 'parameters { key: "execute_delay_ms" value: { string_value: "500" } }\n'
                    "instance_group [ { count: 1 kind: KIND_CPU rate_limiter { resources [ { name: \"R\" count: %d } ] %s } } ]"
                    % (count, extra))


def both_at_once(server):
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(lambda m: requests.post(f"{server.base}/v2/models/{m}/infer", json=BODY, timeout=30).status_code,
                              ["model_a", "model_b"]))
    assert codes == [200, 200]
    return time.monotonic() - started


@pytest.mark.parametrize("flags, serialized", [
    ([], False),                                                                   # no rate limiter: both run at once
    (["--rate-limit", "execution_count"], True),                                   # R has 1 copy: one at a time
    (["--rate-limit", "execution_count", "--rate-limit-resource", "R:2"], False),  # 2 copies: both at once
])
def test_models_sharing_a_resource_take_turns(start_server, tmp_path, flags, serialized):
    repo = tmp_path / "repo"
    repo.mkdir()
    two_models_sharing(repo)
    server = start_server(repo, flags)
    elapsed = both_at_once(server)
    if serialized:
        assert elapsed >= 0.95, elapsed
    else:
        assert elapsed < 0.95, elapsed


def test_a_resource_the_flag_cannot_cover_fails_the_load_in_tritons_words(start_server, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    two_models_sharing(repo, count_a=3, count_b=1)
    server = start_server(repo, ["--rate-limit", "execution_count", "--rate-limit-resource", "R:2"])
    index = {m["name"]: m for m in requests.post(f"{server.base}/v2/repository/index", json={}, timeout=5).json()}
    assert index["model_b"]["state"] == "READY"
    assert index["model_a"]["state"] == "UNAVAILABLE"
    assert ('Resource count for "R" is limited to 2 which will prevent scheduling of one or more model instances, '
            "the minimum required count is 3") in index["model_a"]["reason"]
