"""Model control over HTTP and gRPC: explicit load/unload with requests in
flight, poll mode following the repository with zero failed requests, the
load API's config and file parameters, and index states with reasons."""

import base64
import concurrent.futures
import json
import shutil
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import MODEL_REPOSITORY

IO = ('input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'
      'output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n')


def write_model(repo, name, versions=("1",), delay_ms=0, extra=""):
    for v in versions:
        (repo / name / v).mkdir(parents=True, exist_ok=True)
    (repo / name / "config.pbtxt").write_text(
        f'name: "{name}"\nbackend: "add_sub"\nmax_batch_size: 8\n{IO}'
        f'parameters {{ key: "execute_delay_ms" value: {{ string_value: "{delay_ms}" }} }}\n{extra}')


def inputs(value=1):
    tensors = []
    for name in ("INPUT0", "INPUT1"):
        t = httpclient.InferInput(name, [1, 16], "INT32")
        t.set_data_from_numpy(np.full((1, 16), value, dtype=np.int32))
        tensors.append(t)
    return tensors


def index(server):
    return {(m["name"], m.get("version", "")): (m["state"], m.get("reason", ""))
            for m in requests.post(f"{server.base}/v2/repository/index", timeout=5).json()}


def test_explicit_load_and_unload_with_requests_in_flight(start_server, tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "slow", delay_ms=100, extra="dynamic_batching { preferred_batch_size: [ 1 ] }\n")
    write_model(repo, "other")
    server = start_server(repo, ["--model-control-mode", "explicit", "--load-model", "other"])
    assert index(server)[("slow", "")] == ("UNAVAILABLE", "unloaded")
    client = httpclient.InferenceServerClient(server.http_url, concurrency=8)
    assert not client.is_model_ready("slow")
    client.load_model("slow")
    assert client.is_model_ready("slow")

    def infer(i):
        with httpclient.InferenceServerClient(server.http_url) as c:
            return c.infer("slow", inputs(i)).as_numpy("OUTPUT0")[0, 0]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(infer, i) for i in range(6)]
        time.sleep(0.2)
        client.unload_model("slow")  # returns once the accepted requests are answered
        results = [f.result(timeout=30) for f in futures]
    assert results == [2 * i for i in range(6)]  # none lost
    with pytest.raises(InferenceServerException) as info:
        client.infer("slow", inputs())
    # Triton: an unloaded model is known, with no version available (404).
    assert info.value.status() == "404"
    assert "Request for unknown model: 'slow' has no available versions" in info.value.message()
    assert index(server)[("slow", "")] == ("UNAVAILABLE", "unloaded")
    assert client.infer("other", inputs(2)).as_numpy("OUTPUT0")[0, 0] == 4
    client.close()


def test_grpc_load_unload(start_server, tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "m")
    server = start_server(repo, ["--model-control-mode", "explicit"])
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    assert not client.is_model_ready("m")
    client.load_model("m")
    assert client.is_model_ready("m")
    index_states = {(m.name, m.version): m.state for m in client.get_model_repository_index().models}
    assert index_states[("m", "1")] == "READY"
    client.unload_model("m")
    assert not client.is_model_ready("m")
    with pytest.raises(InferenceServerException) as info:
        client.load_model("does_not_exist")
    assert "does_not_exist" in info.value.message()
    client.close()


def test_load_with_config_and_file_parameters(start_server, tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "m")
    server = start_server(repo, ["--model-control-mode", "explicit"])
    config = {"name": "m", "backend": "add_sub", "max_batch_size": 4,
              "input": [{"name": n, "data_type": "TYPE_INT32", "dims": [16]} for n in ("INPUT0", "INPUT1")],
              "output": [{"name": n, "data_type": "TYPE_INT32", "dims": [16]} for n in ("OUTPUT0", "OUTPUT1")]}
    with httpclient.InferenceServerClient(server.http_url) as client:
        client.load_model("m", config=json.dumps(config))
        assert client.get_model_config("m")["max_batch_size"] == 4
        # Files land in a private directory the model loads from.
        client.load_model("m", config=json.dumps(config), files={"file:3/weights.bin": b"\x00\x01"})
        assert client.get_model_metadata("m")["versions"] == ["3"]
        for bad in ("file:../escape.bin", "file:/etc/passwd", "file:1/../../x", "file:weights.bin"):
            response = requests.post(f"{server.base}/v2/repository/models/m/load", timeout=5, json={
                "parameters": {"config": json.dumps(config), bad: base64.b64encode(b"x").decode()}})
            assert response.status_code == 400, bad
            assert bad in response.json()["error"]
        response = requests.post(f"{server.base}/v2/repository/models/m/load", timeout=5,
                                 json={"parameters": {"config": '{"name": "m", "bogus_field": 1}'}})
        assert response.status_code == 400 and "config" in response.json()["error"]
        assert client.is_model_ready("m")  # a failed reload leaves the serving copy alone


def test_control_api_refused_outside_explicit_mode(server):
    response = requests.post(f"{server.base}/v2/repository/models/simple/unload", timeout=5)
    assert response.status_code == 503
    assert "not allowed" in response.json()["error"]
    assert requests.get(f"{server.base}/v2/models/simple/ready", timeout=5).status_code == 200


def test_poll_mode_follows_the_repository_with_zero_failed_requests(start_server, tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "m", versions=("1",))
    server = start_server(repo, ["--model-control-mode", "poll", "--repository-poll-secs", "1"])
    failures, successes, versions_seen = [], [0], set()
    stop = threading.Event()

    def client_loop():
        with httpclient.InferenceServerClient(server.http_url) as c:
            while not stop.is_set():
                try:
                    result = c.infer("m", inputs(3))
                    assert result.as_numpy("OUTPUT0")[0, 0] == 6
                    versions_seen.add(result.get_response()["model_version"])
                    successes[0] += 1
                except Exception as error:  # noqa: BLE001 -- every failure is recorded and asserted on
                    failures.append(str(error))

    thread = threading.Thread(target=client_loop)
    thread.start()
    try:
        time.sleep(0.5)
        (repo / "m" / "2").mkdir()  # a new version: latest(1) moves to version 2
        wait_for(lambda: index(server).get(("m", "2"), ("",))[0] == "READY")
        write_model(repo, "m", versions=(), delay_ms=5)  # a changed config: swapped in once ready
        time.sleep(2.5)
        write_model(repo, "fresh")  # a new model appears
        wait_for(lambda: index(server).get(("fresh", "1"), ("",))[0] == "READY")
        shutil.rmtree(repo / "fresh")  # and disappears
        wait_for(lambda: index(server).get(("fresh", ""), ("",))[0] == "UNAVAILABLE")
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert successes[0] > 20
    assert versions_seen == {"1", "2"}


def wait_for(condition, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError("condition not reached")


def test_broken_model_serves_the_others_and_reports_why(start_server, tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "good")
    (repo / "bad" / "1").mkdir(parents=True)
    (repo / "bad" / "config.pbtxt").write_text('name: "bad"\nbackend: "add_sub"\nmax_batch_size: 8\nmystery_field: 3\n')
    server = start_server(repo)
    rows = index(server)
    assert rows[("good", "1")] == ("READY", "")
    state, reason = rows[("bad", "")]
    assert state == "UNAVAILABLE"
    assert "bad/config.pbtxt:4:1: unknown field 'mystery_field'" in reason
    with httpclient.InferenceServerClient(server.http_url) as client:
        assert client.infer("good", inputs(1)).as_numpy("OUTPUT0")[0, 0] == 2
        with pytest.raises(InferenceServerException) as info:
            client.infer("bad", inputs(1))
        assert info.value.status() == "404"
        assert "has no available versions (failed to load: " in info.value.message()
