"""Operations: metrics agree with what was sent, graceful drain on SIGTERM,
no patient data in logs or metrics, the command line."""

import concurrent.futures
import json
import signal
import subprocess
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families

from conftest import BINARY

IO = ('input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'
      'output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n')


def samples(server):
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found, text


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def simple_inputs(rows=1, value_=1):
    tensors = []
    for name in ("INPUT0", "INPUT1"):
        t = httpclient.InferInput(name, [rows, 16], "INT32")
        t.set_data_from_numpy(np.full((rows, 16), value_, dtype=np.int32))
        tensors.append(t)
    return tensors


def test_metrics_agree_with_requests_and_statistics(server):
    before, _ = samples(server)
    labels = {"model": "simple_int8", "version": "1"}
    with httpclient.InferenceServerClient(server.http_url) as client:
        ok = 0
        for rows in (1, 3, 8):
            tensors = []
            for name in ("INPUT0", "INPUT1"):
                t = httpclient.InferInput(name, [rows, 16], "INT8")
                t.set_data_from_numpy(np.ones((rows, 16), dtype=np.int8))
                tensors.append(t)
            client.infer("simple_int8", tensors)
            ok += 1
        # A request that validation refuses never reaches the model: not a model failure.
        bad = httpclient.InferInput("INPUT0", [1, 16], "INT32")
        bad.set_data_from_numpy(np.ones((1, 16), dtype=np.int32))
        with pytest.raises(Exception):
            client.infer("simple_int8", [bad])
        stats = client.get_inference_statistics("simple_int8")["model_stats"][0]
    after, text = samples(server)
    assert value(after, "nv_inference_request_success_total", **labels) - value(before, "nv_inference_request_success_total", **labels) == ok
    assert value(after, "nv_inference_count_total", **labels) - value(before, "nv_inference_count_total", **labels) == 12
    assert value(after, "nv_inference_exec_count_total", **labels) - value(before, "nv_inference_exec_count_total", **labels) == 3
    # Counters agree with the statistics API.
    assert value(after, "nv_inference_request_success_total", **labels) == stats["inference_stats"]["success"]["count"]
    assert value(after, "nv_inference_count_total", **labels) == stats["inference_count"]
    assert value(after, "nv_inference_exec_count_total", **labels) == stats["execution_count"]
    queue_us = value(after, "nv_inference_queue_duration_us_total", **labels)
    assert abs(queue_us - stats["inference_stats"]["queue"]["ns"] / 1000) <= stats["inference_stats"]["queue"]["count"]
    assert value(after, "batchserver_batch_size_count", **labels) == stats["execution_count"]
    assert value(after, "nv_inference_pending_request_count", **labels) == 0
    for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER"):
        assert ("nv_inference_request_failure_total", tuple(sorted({**labels, "reason": reason}.items()))) in after
    assert "nv_cpu_utilization" in text and "nv_cpu_memory_total_bytes" in text


def test_failures_are_counted_by_reason(start_server, tmp_path):
    repo = tmp_path / "repo"
    (repo / "full" / "1").mkdir(parents=True)
    (repo / "full" / "config.pbtxt").write_text(
        'name: "full"\nbackend: "add_sub"\nmax_batch_size: 8\n' + IO +
        'parameters { key: "execute_delay_ms" value: { string_value: "50" } }\n'
        'dynamic_batching { preferred_batch_size: [ 1 ] default_queue_policy { max_queue_size: 1 } }\n')
    server = start_server(repo)
    body = {"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": [1] * 16} for n in ("INPUT0", "INPUT1")]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: requests.post(f"{server.base}/v2/models/full/infer", json=body, timeout=30).status_code, range(8)))
    found, _ = samples(server)
    labels = {"model": "full", "version": "1"}
    assert value(found, "nv_inference_request_failure_total", reason="REJECTED", **labels) == codes.count(503)
    assert value(found, "nv_inference_request_success_total", **labels) == codes.count(200)
    assert codes.count(503) > 0


def test_sigterm_drains_queued_and_in_flight_requests(start_server, tmp_path):
    repo = tmp_path / "repo"
    (repo / "slow" / "1").mkdir(parents=True)
    (repo / "slow" / "config.pbtxt").write_text(
        'name: "slow"\nbackend: "add_sub"\nmax_batch_size: 8\n' + IO +
        'parameters { key: "execute_delay_ms" value: { string_value: "150" } }\n'
        'dynamic_batching { preferred_batch_size: [ 1 ] }\n')
    server = start_server(repo)
    assert requests.get(f"{server.base}/v2/health/ready", timeout=5).status_code == 200

    def infer(i):
        with httpclient.InferenceServerClient(server.http_url, network_timeout=60) as c:
            return c.infer("slow", simple_inputs(value_=i)).as_numpy("OUTPUT0")[0, 0]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(infer, i) for i in range(6)]
        time.sleep(0.3)  # one executing, the rest queued
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        ready = requests.get(f"{server.base}/v2/health/ready", timeout=5)
        live = requests.get(f"{server.base}/v2/health/live", timeout=5)
        late = requests.post(f"{server.base}/v2/models/slow/infer", timeout=5, json={
            "inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": [1] * 16} for n in ("INPUT0", "INPUT1")]})
        results = [f.result(timeout=60) for f in futures]
    assert ready.status_code == 400
    assert live.status_code == 200
    assert late.status_code == 503
    assert results == [2 * i for i in range(6)]
    assert server.process.wait(timeout=30) == 0


def test_no_patient_data_in_logs_or_metrics(start_server, tmp_path):
    server = start_server(extra_args=["--log-verbose", "3", "--log-format", "json"])
    secret_text = "Jane Roe MRN 4471-XYZ chest pain"
    secret_number = 918273645
    with httpclient.InferenceServerClient(server.http_url) as client:
        t = httpclient.InferInput("INPUT0", [1, 1], "BYTES")
        t.set_data_from_numpy(np.array([[secret_text.encode()]], dtype=np.object_))
        client.infer("simple_identity", [t], request_id="req-42")
        tensors = []
        for name in ("INPUT0", "INPUT1"):
            x = httpclient.InferInput(name, [1, 16], "INT32")
            x.set_data_from_numpy(np.full((1, 16), secret_number, dtype=np.int32))
            tensors.append(x)
        client.infer("simple", tensors, request_id="req-43")
        bad = httpclient.InferInput("INPUT0", [1, 16], "BYTES")
        bad.set_data_from_numpy(np.array([[secret_text.encode()] * 16], dtype=np.object_))
        with pytest.raises(Exception):
            client.infer("simple_string", [bad, bad])
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    g = grpcclient.InferInput("INPUT0", [1, 1], "BYTES")
    g.set_data_from_numpy(np.array([[secret_text.encode()]], dtype=np.object_))
    grpc.infer("simple_identity", [g], request_id="req-44")
    grpc.close()
    _, metrics = samples(server)
    server.stop()
    log = server.read_log()
    assert "req-42" in log and "req-44" in log  # the request was logged, by id
    for haystack in (log, metrics):
        assert secret_text not in haystack
        assert "4471-XYZ" not in haystack
        assert str(secret_number) not in haystack
        assert str(2 * secret_number) not in haystack
    for line in log.splitlines():
        json.loads(line)  # every line is one JSON object


def test_help_gives_units_and_defaults_and_version():
    help_text = subprocess.run([BINARY, "--help"], capture_output=True, text=True, check=True).stdout
    for flag, default in (("--http-port", "8000"), ("--grpc-port", "8001"), ("--metrics-port", "8002"),
                          ("--exit-timeout-secs", "30"), ("--strict-readiness", "true"), ("--allow-metrics", "true"),
                          ("--http-max-input-size", "67108864"), ("--log-verbose", "0")):
        assert flag in help_text
        assert f"(default: {default})" in " ".join(help_text.split(flag, 1)[1].split("--", 1)[0].split())
    assert "in seconds" in help_text and "in bytes" in help_text
    version = subprocess.run([BINARY, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert version.count(".") == 2


def test_strict_readiness_and_disabled_endpoints(start_server, tmp_path):
    repo = tmp_path / "repo"
    (repo / "good" / "1").mkdir(parents=True)
    (repo / "good" / "config.pbtxt").write_text('name: "good"\nbackend: "add_sub"\nmax_batch_size: 8\n' + IO)
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "config.pbtxt").write_text('name: "broken"\nmax_batch_size: [')
    strict = start_server(repo)
    assert requests.get(f"{strict.base}/v2/health/ready", timeout=5).status_code == 400
    assert requests.get(f"{strict.base}/v2/models/good/ready", timeout=5).status_code == 200
    lenient = start_server(repo, ["--strict-readiness", "false", "--allow-metrics", "false"])
    assert requests.get(f"{lenient.base}/v2/health/ready", timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{lenient.metrics_port}/metrics", timeout=2)
