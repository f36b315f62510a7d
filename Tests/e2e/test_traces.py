"""Triton-mode traces through the real server: `--trace-config` and the
trace-setting APIs drive which requests are traced; the trace file is
Triton's JSON (one model entry per trace, then one entry per timestamp) with
ordered timestamps, for HTTP, gRPC, a gRPC stream, an ensemble and a batch of
8; rate, count and log-frequency honoured."""

import concurrent.futures
import json
import queue

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import MODEL_REPOSITORY, RunningServer

ORDER = ["REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END", "REQUEST_END"]


def start(tmp_path, *settings, name="trace.json"):
    trace_file = tmp_path / name
    args = []
    for setting in (f"triton,file={trace_file}",) + settings:
        args += ["--trace-config", setting]
    return RunningServer(MODEL_REPOSITORY, args, log_path=tmp_path / f"{name}.log").wait_live(), trace_file


def traces_in(*files):
    """Trace id -> {"model": entry, "stamps": [(name, ns)]}, from Triton-format files."""
    traces = {}
    for f in files:
        for entry in json.loads(f.read_text()):
            trace = traces.setdefault(entry["id"], {"model": None, "stamps": []})
            if "model_name" in entry:
                trace["model"] = entry
            elif "activity" in entry:
                trace.setdefault("tensors", []).append(entry)
            else:
                (stamp,) = entry["timestamps"]
                trace["stamps"].append((stamp["name"], stamp["ns"]))
    return traces


def simple_inputs(module, rows=1):
    a = module.InferInput("INPUT0", [rows, 16], "INT32")
    b = module.InferInput("INPUT1", [rows, 16], "INT32")
    a.set_data_from_numpy(np.arange(16 * rows, dtype=np.int32).reshape(rows, 16))
    b.set_data_from_numpy(np.ones((rows, 16), dtype=np.int32))
    return [a, b]


def text_input(module, texts):
    text = module.InferInput("TEXT", [len(texts), 1], "BYTES")
    text.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    return text


def check_ordered(trace):
    names = [n for n, _ in trace["stamps"]]
    assert names[0] == "REQUEST_START" and names[-1] == "REQUEST_END", names
    times = [t for _, t in trace["stamps"]]
    assert times == sorted(times), trace["stamps"]
    positions = [names.index(n) for n in ORDER]
    assert positions == sorted(positions), names


def test_every_protocol_writes_ordered_triton_traces(tmp_path):
    server, trace_file = start(tmp_path, "level=TIMESTAMPS", "rate=1")
    try:
        http = httpclient.InferenceServerClient(server.http_url)
        grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        http.infer("simple", simple_inputs(httpclient), request_id="http-1")
        grpc.infer("simple", simple_inputs(grpcclient), request_id="grpc-1")
        results = queue.Queue()
        grpc.start_stream(callback=lambda result, error: results.put((result, error)))
        grpc.async_stream_infer("simple", simple_inputs(grpcclient), request_id="stream-1")
        result, error = results.get(timeout=30)
        assert error is None
        grpc.stop_stream()
        http.infer("sst2_text_classifier", [text_input(httpclient, ["a fine day"])], request_id="ensemble-1")
        http.infer("simple", simple_inputs(httpclient, rows=8), request_id="batch-8")
        # Eight requests at once, batched together by the scheduler: a trace each.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: httpclient.InferenceServerClient(server.http_url).infer(
                "distilbert_sst2", [text_input(httpclient, [f"note {i}"])], request_id=f"together-{i}"), range(8)))
    finally:
        assert server.stop() == 0
    traces = traces_in(trace_file)
    top = {i: t for i, t in traces.items() if "parent_id" not in t["model"]}
    by_request = {t["model"].get("request_id"): t for t in top.values()}
    for request_id, model in [("http-1", "simple"), ("grpc-1", "simple"), ("stream-1", "simple"),
                              ("ensemble-1", "sst2_text_classifier"), ("batch-8", "simple")] + \
                             [(f"together-{i}", "distilbert_sst2") for i in range(8)]:
        trace = by_request[request_id]
        assert trace["model"]["model_name"] == model and trace["model"]["model_version"] == 1
        check_ordered(trace)
    assert len(top) == 13
    # Text is tokenized before it is queued: ours, TOKENIZE_START/END between
    # REQUEST_START and QUEUE_START; no such stamps where nothing is tokenized.
    names = [n for n, _ in by_request["together-0"]["stamps"]]
    assert names.index("REQUEST_START") < names.index("TOKENIZE_START") < names.index("TOKENIZE_END") < names.index("QUEUE_START")
    assert "TOKENIZE_START" not in [n for n, _ in by_request["http-1"]["stamps"]]
    # The ensemble's steps are traces of their own whose parent is the
    # ensemble's, each inside the ensemble's span, in step order.
    ensemble = by_request["ensemble-1"]
    children = sorted((t for t in traces.values() if t["model"].get("parent_id") == ensemble["model"]["id"]),
                      key=lambda t: t["stamps"][0][1])
    assert [c["model"]["model_name"] for c in children] == ["distilbert_sst2", "sst2_softmax"]
    began, ended = ensemble["stamps"][0][1], ensemble["stamps"][-1][1]
    for child in children:
        check_ordered(child)
        assert child["model"]["model_version"] == 1
        assert began <= child["stamps"][0][1] and child["stamps"][-1][1] <= ended
    assert children[0]["stamps"][-1][1] <= children[1]["stamps"][0][1]
    assert len(traces) == 15


def test_rate_and_count_choose_the_traced_requests(tmp_path):
    server, trace_file = start(tmp_path, "level=TIMESTAMPS", "rate=2", "count=3")
    try:
        client = httpclient.InferenceServerClient(server.http_url)
        for i in range(10):
            client.infer("simple", simple_inputs(httpclient), request_id=f"r{i}")
        settings = requests.get(f"{server.base}/v2/trace/setting", timeout=5).json()
        assert settings["trace_count"] == "0" and settings["trace_rate"] == "2"
    finally:
        assert server.stop() == 0
    traced = sorted(t["model"]["request_id"] for t in traces_in(trace_file).values())
    assert traced == ["r1", "r3", "r5"]    # every 2nd request, 3 of them


def test_log_frequency_rotates_into_indexed_files(tmp_path):
    server, trace_file = start(tmp_path, "level=TIMESTAMPS", "rate=1", "triton,log-frequency=2")
    try:
        client = httpclient.InferenceServerClient(server.http_url)
        for i in range(5):
            client.infer("simple", simple_inputs(httpclient), request_id=f"r{i}")
        written = sorted(p.name for p in tmp_path.glob("trace.json.*") if not p.name.endswith(".log"))
        assert written == ["trace.json.0", "trace.json.1"]
    finally:
        assert server.stop() == 0
    files = [tmp_path / f"trace.json.{i}" for i in range(3)]    # the last, partial group at shutdown
    assert [len(traces_in(f)) for f in files] == [2, 2, 1]
    assert not trace_file.exists()


def test_trace_apis_turn_tracing_on_for_one_model(tmp_path):
    server, trace_file = start(tmp_path, "rate=1")   # level OFF at start
    try:
        client = httpclient.InferenceServerClient(server.http_url)
        client.infer("simple", simple_inputs(httpclient), request_id="before")
        assert not trace_file.exists()
        reply = requests.post(f"{server.base}/v2/models/simple/trace/setting", json={"trace_level": ["TIMESTAMPS"]}, timeout=5)
        assert reply.status_code == 200 and reply.json()["trace_level"] == ["TIMESTAMPS"]
        client.infer("simple", simple_inputs(httpclient), request_id="traced")
        client.infer("simple_identity", [_identity_input()], request_id="other-model")
        refused = requests.post(f"{server.base}/v2/trace/setting", json={"trace_level": ["TENSORS"]}, timeout=5)
        assert refused.status_code == 400 and "patient data" in refused.json()["error"]
    finally:
        assert server.stop() == 0
    assert [t["model"]["request_id"] for t in traces_in(trace_file).values()] == ["traced"]


def _identity_input():
    tensor = httpclient.InferInput("INPUT0", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"x"]], dtype=np.object_))
    return tensor


@pytest.mark.parametrize("flag, message", [
    ("level=TENSORS", "--trace-allow-tensors"),
    ("rate=often", "is not a valid rate"),
    ("triton,colour=blue", "unknown setting 'colour'"),
    (("mode=opentelemetry", "opentelemetry,colour=blue"), "opentelemetry,colour: unknown setting"),
    (("mode=opentelemetry", "opentelemetry,bsp_schedule_delay=soon"), "expected a positive integer"),
])
def test_bad_trace_flags_stop_the_server_saying_why(tmp_path, flag, message):
    flags = [flag] if isinstance(flag, str) else list(flag)
    args = [arg for f in flags for arg in ("--trace-config", f)]
    server = RunningServer(MODEL_REPOSITORY, args, log_path=tmp_path / "bad.log")
    assert server.process.wait(timeout=30) != 0
    server.stop()
    assert message in server.read_log()


def test_tensor_traces_are_written_only_where_the_server_allows_them(tmp_path):
    trace_file = tmp_path / "tensors.json"
    args = ["--trace-allow-tensors"]
    for setting in (f"triton,file={trace_file}", "level=TIMESTAMPS", "level=TENSORS", "rate=1"):
        args += ["--trace-config", setting]
    server = RunningServer(MODEL_REPOSITORY, args, log_path=tmp_path / "tensors.log").wait_live()
    try:
        assert requests.get(f"{server.base}/v2/trace/setting", timeout=5).json()["trace_level"] == ["TIMESTAMPS", "TENSORS"]
        httpclient.InferenceServerClient(server.http_url).infer("simple", simple_inputs(httpclient), request_id="numbers")
        text = httpclient.InferInput("INPUT0", [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([['say "hi", then go'.encode()]], dtype=np.object_))
        httpclient.InferenceServerClient(server.http_url).infer("simple_identity", [text], request_id="words")
        # The trace API accepts the level too, on this server.
        reply = requests.post(f"{server.base}/v2/models/simple/trace/setting", json={"trace_level": ["TENSORS"]}, timeout=5)
        assert reply.status_code == 200 and reply.json()["trace_level"] == ["TENSORS"]
    finally:
        assert server.stop() == 0
    assert "trace level TENSORS allowed" in server.read_log()
    traces = {t["model"]["request_id"]: t for t in traces_in(trace_file).values()}
    numbers, words = traces["numbers"], traces["words"]
    check_ordered(numbers)
    tensors = {(e["activity"], e["tensor"]["name"]): e["tensor"] for e in numbers["tensors"]}
    assert tensors[("TENSOR_QUEUE_INPUT", "INPUT0")] == {"name": "INPUT0", "data": ",".join(map(str, range(16))), "shape": "1,16", "dtype": "INT32"}
    assert tensors[("TENSOR_QUEUE_INPUT", "INPUT1")]["data"] == ",".join(["1"] * 16)
    assert tensors[("TENSOR_BACKEND_OUTPUT", "OUTPUT0")]["data"] == ",".join(str(i + 1) for i in range(16))
    assert tensors[("TENSOR_BACKEND_OUTPUT", "OUTPUT1")]["data"] == ",".join(str(i - 1) for i in range(16))
    (queued,) = [e["tensor"] for e in words["tensors"] if e["activity"] == "TENSOR_QUEUE_INPUT"]
    assert queued == {"name": "INPUT0", "data": '"say "hi", then go"', "shape": "1,1", "dtype": "BYTES"}
