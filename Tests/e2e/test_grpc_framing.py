"""gRPC framing edge cases through a second, independent client stack: raw
HTTP/2 frames written with the `h2` package, no gRPC library involved."""

import socket
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.errors
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from grpc_health_pb2 import HealthCheckRequest, HealthCheckResponse


class RawGRPC:
    """A tiny HTTP/2 client that speaks gRPC by hand."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.data = {}
        self.headers = {}
        self.trailers = {}
        self.reset = set()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def open(self, method, end_stream=False):
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, [
            (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ], end_stream=end_stream)
        self.flush()
        return stream

    def send(self, stream, payload, end_stream=False):
        self.conn.send_data(stream, payload, end_stream=end_stream)
        self.flush()

    def pump(self, until, timeout=10):
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from the server")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            for event in self.conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    self.headers[event.stream_id] = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    self.data.setdefault(event.stream_id, b"")
                    self.data[event.stream_id] += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    self.trailers[event.stream_id] = dict(event.headers)
                elif isinstance(event, h2.events.StreamReset):
                    self.reset.add(event.stream_id)
            self.flush()

    def status(self, stream):
        self.pump(lambda: stream in self.trailers or ("grpc-status" in self.headers.get(stream, {})))
        return self.trailers.get(stream) or self.headers[stream]

    def messages(self, stream):
        body, out = self.data.get(stream, b""), []
        while body:
            flag, length = struct.unpack(">BI", body[:5])
            out.append(body[5:5 + length])
            body = body[5 + length:]
        return out

    def close(self):
        self.sock.close()


def frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def infer_request(value, request_id="r"):
    request = service_pb2.ModelInferRequest(model_name="simple", id=request_id)
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(np.full(16, value, dtype=np.int32).tobytes())
    return request.SerializeToString()


def output0(response_bytes):
    response = service_pb2.ModelInferResponse.FromString(response_bytes)
    return int(np.frombuffer(response.raw_output_contents[0], dtype=np.int32)[0])


@pytest.fixture
def raw(server):
    client = RawGRPC(server.grpc_port)
    yield client
    client.close()


INFER = "/inference.GRPCInferenceService/ModelInfer"
STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"


def test_one_message_over_many_small_data_frames(raw):
    stream = raw.open(INFER)
    payload = frame(infer_request(20))
    for i in range(0, len(payload), 7):
        raw.send(stream, payload[i:i + 7])
    raw.send(stream, b"", end_stream=True)
    assert raw.status(stream)["grpc-status"] == "0"
    [response] = raw.messages(stream)
    assert output0(response) == 40


def test_many_messages_in_one_data_frame(raw):
    stream = raw.open(STREAM)
    raw.send(stream, b"".join(frame(infer_request(i, request_id=str(i))) for i in range(10)), end_stream=True)
    assert raw.status(stream)["grpc-status"] == "0"
    replies = [service_pb2.ModelStreamInferResponse.FromString(m) for m in raw.messages(stream)]
    assert sorted((r.infer_response.id, output0(r.infer_response.SerializeToString())) for r in replies) == \
        sorted((str(i), 2 * i) for i in range(10))


def test_stream_reset_mid_message_leaves_the_connection_usable(raw):
    stream = raw.open(INFER)
    payload = frame(infer_request(1))
    raw.send(stream, payload[:10])
    raw.conn.reset_stream(stream, error_code=h2.errors.ErrorCodes.CANCEL)
    raw.flush()
    second = raw.open(INFER)
    raw.send(second, frame(infer_request(3)), end_stream=True)
    assert raw.status(second)["grpc-status"] == "0"
    assert output0(raw.messages(second)[0]) == 6


def test_many_streams_at_once(raw):
    streams = [raw.open(INFER) for _ in range(100)]
    for index, stream in enumerate(streams):
        raw.send(stream, frame(infer_request(index)), end_stream=True)
    for index, stream in enumerate(streams):
        assert raw.status(stream)["grpc-status"] == "0"
        assert output0(raw.messages(stream)[0]) == 2 * index


def test_end_of_stream_inside_a_message_is_an_error(raw):
    stream = raw.open(INFER)
    raw.send(stream, frame(infer_request(1))[:12], end_stream=True)
    assert raw.status(stream)["grpc-status"] == "13"


def test_status_message_is_percent_encoded(raw):
    stream = raw.open(INFER)
    request = service_pb2.ModelInferRequest(model_name="caf\u00e9 100%")
    raw.send(stream, frame(request.SerializeToString()), end_stream=True)
    status = raw.status(stream)
    assert status["grpc-status"] == "5"
    assert "caf%C3%A9 100%25" in status["grpc-message"]


def test_health_check(raw):
    stream = raw.open("/grpc.health.v1.Health/Check")
    raw.send(stream, frame(HealthCheckRequest(service="").SerializeToString()), end_stream=True)
    assert raw.status(stream)["grpc-status"] == "0"
    assert HealthCheckResponse.FromString(raw.messages(stream)[0]).status == HealthCheckResponse.SERVING
    unknown = raw.open("/grpc.health.v1.Health/Check")
    raw.send(unknown, frame(HealthCheckRequest(service="nope").SerializeToString()), end_stream=True)
    raw.status(unknown)
    assert HealthCheckResponse.FromString(raw.messages(unknown)[0]).status == HealthCheckResponse.SERVICE_UNKNOWN
