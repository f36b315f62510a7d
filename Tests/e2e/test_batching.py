"""Dynamic batching through the real server: batch sizes seen in the
statistics API, priorities, timeouts, queue limits and oversize splitting."""

import concurrent.futures
import pathlib
import shutil
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import MODEL_REPOSITORY

SIMPLE_IO = """
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
"""


def write_model(repo: pathlib.Path, name: str, body: str):
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "add_sub"\nmax_batch_size: 8\n{SIMPLE_IO}\n{body}\n')


@pytest.fixture
def batching_server(start_server, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    delay = 'parameters { key: "execute_delay_ms" value: { string_value: "30" } }'
    write_model(repo, "unbatched", delay)
    write_model(repo, "batched", delay + "\ndynamic_batching { max_queue_delay_microseconds: 20000 }")
    write_model(repo, "prioritized", 'parameters { key: "execute_delay_ms" value: { string_value: "40" } }\n'
                "dynamic_batching { preferred_batch_size: [ 1 ] priority_levels: 2 default_priority_level: 2 }")
    write_model(repo, "timed", delay + "\ndynamic_batching { preferred_batch_size: [ 1 ] "
                "default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 1000000 "
                "allow_timeout_override: true max_queue_size: 2 } }")
    return start_server(repo)


def inputs(rows=1, value=1):
    a = np.full((rows, 16), value, dtype=np.int32)
    b = np.ones((rows, 16), dtype=np.int32)
    tensors = []
    for name, data in (("INPUT0", a), ("INPUT1", b)):
        t = httpclient.InferInput(name, list(data.shape), "INT32")
        t.set_data_from_numpy(data)
        tensors.append(t)
    return tensors


def batch_sizes(client, model):
    stats = client.get_inference_statistics(model)["model_stats"][0]
    return {s["batch_size"]: s["compute_infer"]["count"] for s in stats["batch_stats"]}, stats


def run_concurrently(url, model, count, **kwargs):
    def one(i):
        with httpclient.InferenceServerClient(url) as c:
            return c.infer(model, inputs(value=i), **kwargs).as_numpy("OUTPUT0")[0, 0]
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_concurrent_load_forms_batches_only_with_dynamic_batching(batching_server):
    url = batching_server.http_url
    with httpclient.InferenceServerClient(url) as client:
        for model in ("unbatched", "batched"):
            results = run_concurrently(url, model, 16)
            assert results == [i + 1 for i in range(16)]
        unbatched, stats = batch_sizes(client, "unbatched")
        assert unbatched == {1: 16}
        assert stats["execution_count"] == 16
        batched, stats = batch_sizes(client, "batched")
        assert sum(size * count for size, count in batched.items()) == 16
        assert stats["inference_count"] == 16
        assert stats["execution_count"] < 16, batched
        assert max(batched) > 1, batched


def test_request_larger_than_max_batch_size_is_split(batching_server):
    with httpclient.InferenceServerClient(batching_server.http_url) as client:
        result = client.infer("batched", inputs(rows=20, value=5))
        assert result.as_numpy("OUTPUT0").shape == (20, 16)
        assert (result.as_numpy("OUTPUT0") == 6).all()
        sizes, _ = batch_sizes(client, "batched")
        assert max(sizes) <= 8


def test_priority_requests_overtake_bulk(batching_server):
    url = batching_server.http_url
    finished = []
    lock = threading.Lock()

    def bulk(i):
        with httpclient.InferenceServerClient(url) as c:
            c.infer("prioritized", inputs(value=i))
        with lock:
            finished.append(("bulk", i))

    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(bulk, i) for i in range(8)]
        time.sleep(0.1)  # the bulk requests are queued behind the one executing
        with httpclient.InferenceServerClient(url) as c:
            c.infer("prioritized", inputs(value=99), priority=1)
        with lock:
            finished.append(("priority", 99))
        for f in futures:
            f.result()
    # At most the executing request and the one formed ahead of it finish
    # before the priority request, besides those done before it arrived.
    after = finished[finished.index(("priority", 99)) + 1:]
    assert len(after) >= 3, finished


def test_timeout_parameter_rejects_expired_requests(batching_server):
    url = batching_server.http_url

    def slow():
        with httpclient.InferenceServerClient(url) as c:
            c.infer("timed", inputs())

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        busy = pool.submit(slow)
        time.sleep(0.01)
        # 1 ms timeout (microseconds) while the instance is busy for 30 ms.
        with httpclient.InferenceServerClient(url) as c:
            with pytest.raises(InferenceServerException) as info:
                c.infer("timed", inputs(), timeout=1000)
        assert info.value.status() == "503"
        assert "Request timeout expired" in info.value.message()
        busy.result()
    with httpclient.InferenceServerClient(url) as c:
        _, stats = batch_sizes(c, "timed")
        assert stats["inference_stats"]["fail"]["count"] >= 1


def test_full_queue_answers_503(batching_server):
    url = batching_server.http_url
    body = {"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": [1] * 16} for n in ("INPUT0", "INPUT1")]}

    def post(_):
        return requests.post(f"http://{url}/v2/models/timed/infer", json=body, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, range(12)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 3, codes  # one executing plus max_queue_size queued, at least
    full = [r for r in responses if r.status_code == 503]
    assert full, codes
    assert all("Exceeds maximum queue size" in r.json()["error"] for r in full)


def test_default_max_queue_size_bounds_models_without_one(start_server, tmp_path):
    """A model whose config sets no max_queue_size still refuses past the server's
    --default-max-queue-size, with 503, and the server stays live."""
    repo = tmp_path / "repo"
    repo.mkdir()
    write_model(repo, "slow", 'parameters { key: "execute_delay_ms" value: { string_value: "200" } }\n'
                "dynamic_batching { preferred_batch_size: [ 1 ] }")
    server = start_server(repo, ["--default-max-queue-size", "2"])
    body = {"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": [1] * 16} for n in ("INPUT0", "INPUT1")]}

    def post(_):
        return requests.post(f"{server.base}/v2/models/slow/infer", json=body, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(10)))
    codes = sorted(r.status_code for r in responses)
    assert 3 <= codes.count(200) <= 4, codes  # executing, formed ahead, and the two queued
    assert all("Exceeds maximum queue size" in r.json()["error"] for r in responses if r.status_code == 503), codes
    assert requests.get(f"{server.base}/v2/health/live", timeout=5).status_code == 200
