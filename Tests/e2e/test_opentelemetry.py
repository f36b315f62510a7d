"""Trace mode opentelemetry: spans over OTLP/HTTP to a receiver in the test
(opentelemetry-proto's messages on Python's HTTP server), the request span a
child of the traceparent the client sent (HTTP header, gRPC metadata), queue
and compute spans under it, a batch span linked to the requests it ran, and no
input text in anything exported."""

import http.server
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from conftest import MODEL_REPOSITORY, RunningServer

CANARY = "Philomena Featherstonehaugh DOB 1931-02-17"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP trace receiver: keeps every export's raw bytes and spans."""

    def __init__(self):
        self.bodies, self.spans = [], []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.bodies.append(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        receiver.spans.extend((resource.resource, span) for span in scope.spans)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def attributes(span):
    return {a.key: (a.value.string_value or a.value.int_value) for a in span.attributes}


def test_spans_reach_an_otlp_receiver_under_the_clients_trace(tmp_path, receiver):
    server = RunningServer(MODEL_REPOSITORY, [
        "--trace-config", "mode=opentelemetry", "--trace-config", "level=TIMESTAMPS", "--trace-config", "rate=1",
        "--trace-config", f"opentelemetry,url=127.0.0.1:{receiver.port}/v1/traces",
        "--trace-config", "opentelemetry,resource=deployment.environment=test",
        "--trace-config", "opentelemetry,bsp_schedule_delay=100"], log_path=tmp_path / "server.log").wait_live()
    try:
        traceparent = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
        body = {"id": "note-1", "inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [CANARY]}]}
        response = requests.post(f"{server.base}/v2/models/distilbert_sst2/infer", json=body, timeout=30,
                                 headers={"traceparent": traceparent})
        assert response.status_code == 200
        grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        a = grpcclient.InferInput("INPUT0", [1, 16], "INT32")
        b = grpcclient.InferInput("INPUT1", [1, 16], "INT32")
        a.set_data_from_numpy(np.arange(16, dtype=np.int32).reshape(1, 16))
        b.set_data_from_numpy(np.ones((1, 16), dtype=np.int32))
        grpc.infer("simple", [a, b], request_id="grpc-1",
                   headers={"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(receiver.spans) < 8:
            time.sleep(0.1)
    finally:
        assert server.stop() == 0
    spans = [span for _, span in receiver.spans]
    by_name = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    requests_ = {attributes(s)["triton.model_name"]: s for s in by_name["InferRequest"]}
    http_span, grpc_span = requests_["distilbert_sst2"], requests_["simple"]
    # Children of the traceparent each client sent.
    assert http_span.trace_id.hex() == TRACE_ID and http_span.parent_span_id.hex() == PARENT_SPAN
    assert grpc_span.trace_id.hex() == "1" * 32 and grpc_span.parent_span_id.hex() == "2" * 16
    assert attributes(http_span)["triton.request_id"] == "note-1" and attributes(http_span)["triton.model_version"] == 1
    # queue and compute under each request span, in order, inside it.
    for request in (http_span, grpc_span):
        children = {s.name: s for s in spans if s.parent_span_id == request.span_id}
        queue, compute = children["queue"], children["compute"]
        assert request.start_time_unix_nano <= queue.start_time_unix_nano <= queue.end_time_unix_nano
        assert queue.end_time_unix_nano <= compute.start_time_unix_nano <= compute.end_time_unix_nano <= request.end_time_unix_nano
        assert [e.name for e in compute.events] == ["COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START"]
    # A batch span per execution, linked to the request spans it ran.
    linked = {(link.trace_id.hex(), link.span_id) for s in by_name["batch"] for link in s.links}
    assert (TRACE_ID, http_span.span_id) in linked and ("1" * 32, grpc_span.span_id) in linked
    resource = {a.key: a.value.string_value for a in receiver.spans[0][0].attributes}
    assert resource["service.name"] == "triton-inference-server" and resource["deployment.environment"] == "test"
    # The canary in TEXT appears in nothing exported.
    for body in receiver.bodies:
        for needle in (CANARY, "Featherstonehaugh", "1931-02-17"):
            assert needle.encode() not in body


def test_an_ensemble_and_redaction_show_as_children_and_events(tmp_path, receiver):
    server = RunningServer(MODEL_REPOSITORY, [
        "--trace-config", "mode=opentelemetry", "--trace-config", "level=TIMESTAMPS", "--trace-config", "rate=1",
        "--trace-config", f"opentelemetry,url=http://127.0.0.1:{receiver.port}/v1/traces"], log_path=tmp_path / "server.log").wait_live()
    try:
        body = {"inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [CANARY]}]}
        assert requests.post(f"{server.base}/v2/models/sst2_text_classifier/infer", json=body, timeout=30).status_code == 200
    finally:
        assert server.stop() == 0    # the exporter flushes at shutdown
    spans = [span for _, span in receiver.spans]
    top = next(s for s in spans if s.name == "InferRequest" and attributes(s)["triton.model_name"] == "sst2_text_classifier")
    steps = sorted((s for s in spans if s.name == "InferRequest" and s.parent_span_id == top.span_id), key=lambda s: s.start_time_unix_nano)
    assert [attributes(s)["triton.model_name"] for s in steps] == ["distilbert_sst2", "sst2_softmax"]
    assert all(s.trace_id == top.trace_id for s in steps)
    for body in receiver.bodies:
        assert CANARY.encode() not in body


def test_the_text_apis_carry_the_clients_trace(tmp_path, receiver):
    """OpenAI's /v1/embeddings, Presidio's /analyze and TEI's gRPC Embed: the
    request span is a child of the traceparent the client sent; no text is
    exported."""
    import grpc
    server = RunningServer(MODEL_REPOSITORY, [
        "--trace-config", "mode=opentelemetry", "--trace-config", "level=TIMESTAMPS", "--trace-config", "rate=1",
        "--trace-config", f"opentelemetry,url=http://127.0.0.1:{receiver.port}/v1/traces"], log_path=tmp_path / "server.log").wait_live()
    try:
        response = requests.post(f"{server.base}/v1/embeddings", json={"model": "minilm_embeddings", "input": CANARY}, timeout=30,
                                 headers={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01"})
        assert response.status_code == 200, response.text
        analyzed = requests.post(f"{server.base}/analyze", json={"text": CANARY, "language": "en"}, timeout=30,
                                 headers={"traceparent": f"00-{'5' * 32}-{'6' * 16}-01"})
        assert analyzed.status_code == 200, analyzed.text
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            embed = channel.unary_unary("/tei.v1.Embed/Embed", request_serializer=bytes, response_deserializer=bytes)
            text = CANARY.encode()
            embed(b"\x0a" + bytes([len(text)]) + text, metadata=(("model", "minilm_embeddings"),
                                                                ("traceparent", f"00-{'3' * 32}-{'4' * 16}-01")))
    finally:
        assert server.stop() == 0    # the exporter flushes at shutdown
    spans = [span for _, span in receiver.spans if span.name == "InferRequest"]
    parents = {(s.trace_id.hex(), s.parent_span_id.hex()) for s in spans if attributes(s)["triton.model_name"] == "minilm_embeddings"}
    assert (TRACE_ID, PARENT_SPAN) in parents and ("3" * 32, "4" * 16) in parents, parents
    presidio = {(s.trace_id.hex(), s.parent_span_id.hex()) for s in spans if attributes(s)["triton.model_name"] == "phi_deidentifier"}
    assert ("5" * 32, "6" * 16) in presidio, presidio
    for body in receiver.bodies:
        for needle in (CANARY, "Featherstonehaugh"):
            assert needle.encode() not in body


def test_sequence_and_decoupled_executions_are_batch_spans(tmp_path, receiver):
    server = RunningServer(MODEL_REPOSITORY, [
        "--trace-config", "mode=opentelemetry", "--trace-config", "level=TIMESTAMPS", "--trace-config", "rate=1",
        "--trace-config", f"opentelemetry,url=127.0.0.1:{receiver.port}/v1/traces",
        "--trace-config", "opentelemetry,bsp_schedule_delay=100"], log_path=tmp_path / "server.log").wait_live()
    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        value = grpcclient.InferInput("INPUT", [1, 1], "INT32")
        value.set_data_from_numpy(np.array([[5]], dtype=np.int32))
        reply = client.infer("simple_sequence", [value], sequence_id=31, sequence_start=True, sequence_end=True,
                             headers={"traceparent": f"00-{'3' * 32}-{'4' * 16}-01"})
        assert reply.as_numpy("OUTPUT").tolist() == [[6]]
        got = []
        client.start_stream(callback=lambda result, error: got.append((result, error)),
                            headers={"traceparent": f"00-{'5' * 32}-{'6' * 16}-01"})
        tensors = [grpcclient.InferInput("IN", [2], "INT32"), grpcclient.InferInput("DELAY", [2], "UINT32"),
                   grpcclient.InferInput("WAIT", [1], "UINT32")]
        tensors[0].set_data_from_numpy(np.array([1, 2], dtype=np.int32))
        tensors[1].set_data_from_numpy(np.array([0, 0], dtype=np.uint32))
        tensors[2].set_data_from_numpy(np.array([0], dtype=np.uint32))
        client.async_stream_infer("repeat_int32", tensors, request_id="stream-1")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(got) < 2:
            time.sleep(0.05)
        client.stop_stream()
        assert len(got) == 2 and all(error is None for _, error in got)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(s.name == "batch" for _, s in receiver.spans) < 2:
            time.sleep(0.1)
    finally:
        assert server.stop() == 0
    spans = [span for _, span in receiver.spans]
    requests_ = {attributes(s)["triton.model_name"]: s for s in spans if s.name == "InferRequest"}
    batches = {attributes(s)["triton.model_name"]: s for s in spans if s.name == "batch"}
    for model, trace_id in (("simple_sequence", "3" * 32), ("repeat_int32", "5" * 32)):
        request = requests_[model]
        assert request.trace_id.hex() == trace_id
        assert [(link.trace_id.hex(), link.span_id) for link in batches[model].links] == [(trace_id, request.span_id)]
