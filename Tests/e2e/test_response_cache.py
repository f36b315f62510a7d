"""Triton's response cache through the real server: off unless
--cache-config is given and the model opts in; a repeated request is a hit
answering identical bytes without running the model; hits and misses in the
statistics API and Prometheus under Triton's names; LRU eviction at the byte
bound; models Triton refuses; and the redis cache shared by two servers, whose
Redis holds no request or result in clear."""

import os
import pathlib
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import MODEL_REPOSITORY, free_port

CANARY = "Zebulon Quarterfield MRN 4417-9023"


def cached_repository(tmp_path, models, extra=""):
    """Copies of shipped models whose configs enable the response cache."""
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    for model in models:
        source = pathlib.Path(MODEL_REPOSITORY) / model
        (repo / model).mkdir()
        for entry in source.iterdir():
            if entry.name != "config.pbtxt":
                (repo / model / entry.name).symlink_to(entry.resolve())
        config = (source / "config.pbtxt").read_text()
        (repo / model / "config.pbtxt").write_text(config + "\nresponse_cache { enable: true }\n" + extra)
    return repo


def simple_body(first):
    return {"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": list(range(first, first + 16))},
                       {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": [1] * 16}]}


def text_body(text):
    return {"inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [text]}]}


def identity_body(text):
    return {"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "BYTES", "data": [text]}]}


def post(server, model, body, **kwargs):
    response = requests.post(f"{server.base}/v2/models/{model}/infer", json=body, timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    return response


def stats(server, model):
    return requests.get(f"{server.base}/v2/models/{model}/stats", timeout=5).json()["model_stats"][0]


def metric(server, name, **labels):
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_the_cache_is_off_by_default(start_server, tmp_path):
    server = start_server(cached_repository(tmp_path, ["simple"]))
    for _ in range(2):
        post(server, "simple", simple_body(0))
    s = stats(server, "simple")
    assert s["inference_stats"]["cache_hit"]["count"] == 0 and s["inference_stats"]["cache_miss"]["count"] == 0
    assert s["execution_count"] == 2
    assert metric(server, "nv_cache_num_hits_per_model") is None


def test_a_repeated_request_is_a_hit_with_identical_bytes(start_server, tmp_path):
    server = start_server(cached_repository(tmp_path, ["simple", "distilbert_sst2"]), ["--cache-config", "local,size=1048576"])
    for model, body in [("simple", simple_body(0)), ("distilbert_sst2", text_body("a quietly moving film"))]:
        first = post(server, model, body)
        second = post(server, model, body)
        assert second.content == first.content
        s = stats(server, model)
        assert s["inference_stats"]["cache_hit"]["count"] == 1, s
        assert s["inference_stats"]["cache_miss"]["count"] == 1, s
        assert s["inference_stats"]["success"]["count"] == 2 and s["inference_stats"]["queue"]["count"] == 2
        # A hit runs nothing: Triton's inference and execution counts leave it out.
        assert s["inference_count"] == 1 and s["execution_count"] == 1
        assert metric(server, "nv_cache_num_hits_per_model", model=model, version="1") == 1
        assert metric(server, "nv_cache_num_misses_per_model", model=model, version="1") == 1
        assert metric(server, "nv_inference_request_success", model=model, version="1") == 2
        assert metric(server, "nv_inference_count", model=model, version="1") == 1
    # Binary outputs and gRPC hit the same entry.
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    a = grpcclient.InferInput("INPUT0", [1, 16], "INT32")
    b = grpcclient.InferInput("INPUT1", [1, 16], "INT32")
    a.set_data_from_numpy(np.arange(16, dtype=np.int32).reshape(1, 16))
    b.set_data_from_numpy(np.ones((1, 16), dtype=np.int32))
    result = client.infer("simple", [a, b])
    assert result.as_numpy("OUTPUT0").tolist() == [list(range(1, 17))]
    assert stats(server, "simple")["inference_stats"]["cache_hit"]["count"] == 2
    # A different input, or other requested outputs, is a different entry.
    post(server, "simple", simple_body(1))
    post(server, "simple", {**simple_body(0), "outputs": [{"name": "OUTPUT1"}]})
    assert stats(server, "simple")["execution_count"] == 3
    assert metric(server, "nv_cache_num_entries") == 4
    # gRPC's statistics carry the same counts.
    grpc_stats = client.get_inference_statistics("simple", as_json=True)["model_stats"][0]["inference_stats"]
    assert int(grpc_stats["cache_hit"]["count"]) == 2 and int(grpc_stats["cache_miss"]["count"]) == 3


def test_least_recently_used_entries_are_evicted_at_the_byte_bound(start_server, tmp_path):
    # An entry of `simple` is about 500 bytes here: room for two.
    server = start_server(cached_repository(tmp_path, ["simple"]), ["--cache-config", "local,size=1100"])
    for first in (0, 100, 0, 200):    # A, B, A (hit; now the most recent), C evicts B
        post(server, "simple", simple_body(first))
    assert stats(server, "simple")["execution_count"] == 3
    post(server, "simple", simple_body(0))      # A: still there
    assert stats(server, "simple")["execution_count"] == 3
    post(server, "simple", simple_body(100))    # B: evicted, runs again
    assert stats(server, "simple")["execution_count"] == 4
    assert metric(server, "nv_cache_num_evictions") >= 1
    assert metric(server, "nv_cache_num_entries") == 2
    assert 0 < metric(server, "nv_cache_util") <= 1


def test_models_triton_refuses_to_cache(start_server, tmp_path):
    repo = cached_repository(tmp_path, ["simple_sequence", "repeat_int32", "simple"])
    server = start_server(repo, ["--cache-config", "local,size=1048576"])
    index = {m["name"]: m for m in requests.post(f"{server.base}/v2/repository/index", json={}, timeout=5).json()}
    assert index["simple"]["state"] == "READY"
    assert index["simple_sequence"]["state"] == "UNAVAILABLE"
    assert ("Response Cache does not currently support model simple_sequence with sequence batching scheduler. "
            "Please disable the response cache.") in index["simple_sequence"]["reason"]
    assert "with 'decoupled' transaction policy" in index["repeat_int32"]["reason"]


def test_bad_cache_flags_stop_the_server_with_triton_texts(tmp_path):
    from conftest import BINARY, server_environment
    for flags, text in [(["--cache-config", "local"], "No cache specified."),
                        (["--cache-config", "local,size=1", "--cache-config", "redis,host=x"],
                         "found multiple cache configurations, but only a single cache is currently supported"),
                        (["--cache-config", "redis,host=127.0.0.1"], "didn't specify address"),
                        (["--response-cache-byte-size", "10", "--cache-config", "local,size=1"], "Incompatible flags")]:
        done = subprocess.run([BINARY, "--model-repository", str(MODEL_REPOSITORY), *flags], capture_output=True, text=True,
                              timeout=60, env=server_environment())
        assert done.returncode != 0 and text in done.stderr + done.stdout, (flags, done.stderr)


# --- redis ---------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/setup.sh")
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(10)


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, timeout=10, check=True).stdout


def test_redis_is_shared_by_two_servers_and_holds_nothing_in_clear(start_server, tmp_path, redis_server):
    key_file = tmp_path / "cache.key"
    key_file.write_bytes(os.urandom(32))
    repo = cached_repository(tmp_path, ["simple_identity", "distilbert_sst2"])
    flags = ["--cache-config", "redis,host=127.0.0.1", "--cache-config", f"redis,port={redis_server}",
             "--cache-config", f"redis,key_file={key_file}"]
    one, two = start_server(repo, flags), start_server(repo, flags)
    note = f"Patient {CANARY} seen today"
    first = post(one, "simple_identity", identity_body(note))
    second = post(two, "simple_identity", identity_body(note))
    assert second.json()["outputs"] == first.json()["outputs"]
    assert first.json()["outputs"][0]["data"] == [note]
    assert stats(two, "simple_identity")["inference_stats"]["cache_hit"]["count"] == 1
    assert stats(two, "simple_identity")["execution_count"] == 0
    post(one, "distilbert_sst2", text_body(note))
    post(two, "distilbert_sst2", text_body(note))
    assert stats(two, "distilbert_sst2")["inference_stats"]["cache_hit"]["count"] == 1
    keys = redis_cli(redis_server, "--scan").split()
    assert len(keys) == 2
    for key in keys:
        value = redis_cli(redis_server, "--no-raw", "GET", key)
        raw = redis_cli(redis_server, "GET", key)
        for needle in (CANARY, "Zebulon", "4417-9023"):
            assert needle.encode() not in key and needle.encode() not in raw and needle.encode() not in value
    # A server with another key finds nothing it can open: misses, never errors.
    other_key = tmp_path / "other.key"
    other_key.write_bytes(os.urandom(32))
    three = start_server(repo, flags[:-1] + [f"redis,key_file={other_key}"])
    assert post(three, "simple_identity", identity_body(note)).json()["outputs"][0]["data"] == [note]
    assert stats(three, "simple_identity")["inference_stats"]["cache_hit"]["count"] == 0


def test_an_unreachable_redis_stops_the_server(tmp_path):
    from conftest import BINARY, server_environment
    key_file = tmp_path / "cache.key"
    key_file.write_bytes(os.urandom(32))
    done = subprocess.run([BINARY, "--model-repository", str(MODEL_REPOSITORY), "--cache-config", "redis,host=127.0.0.1",
                           "--cache-config", f"redis,port={free_port()}", "--cache-config", f"redis,key_file={key_file}"],
                          capture_output=True, text=True, timeout=60, env=server_environment())
    assert done.returncode != 0 and "Failed to initialize RedisCache" in done.stderr + done.stdout


def test_a_redis_that_goes_away_costs_misses_not_requests(start_server, tmp_path, redis_server):
    key_file = tmp_path / "cache.key"
    key_file.write_bytes(os.urandom(32))
    server = start_server(cached_repository(tmp_path, ["simple"]),
                          ["--cache-config", "redis,host=127.0.0.1", "--cache-config", f"redis,port={redis_server}",
                           "--cache-config", f"redis,key_file={key_file}"])
    post(server, "simple", simple_body(0))
    subprocess.run(["redis-cli", "-p", str(redis_server), "SHUTDOWN", "NOSAVE"], capture_output=True, timeout=10)
    for first in (0, 5, 1, 2, 3, 4, 6, 7):
        assert post(server, "simple", simple_body(first)).json()["outputs"][0]["data"][0] == first + 1
    assert requests.get(f"{server.base}/v2/health/ready", timeout=5).status_code == 200
    # Eight requests, each failing a lookup and an insert: one line of each in the log, not eight.
    log = server.read_log()
    assert log.count("response cache: lookup failed") == 1
    assert log.count("Failed to insert key into response cache") <= 1
