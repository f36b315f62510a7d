"""KServe v2 gRPC against the real server, through tritonclient.grpc."""

import asyncio
import queue
import threading
from functools import partial

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcclient_aio
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def client(server):
    c = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    yield c
    c.close()


def simple_inputs(a, b, dtype="INT32"):
    tensors = []
    for name, value in (("INPUT0", a), ("INPUT1", b)):
        t = grpcclient.InferInput(name, list(value.shape), dtype)
        t.set_data_from_numpy(value)
        tensors.append(t)
    return tensors


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("simple")
    assert not client.is_model_ready("no_such_model")
    metadata = client.get_server_metadata()
    assert metadata.name == "triton"
    assert "statistics" in metadata.extensions
    model = client.get_model_metadata("simple")
    assert model.name == "simple" and list(model.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("INPUT0", "INT32", [-1, 16]), ("INPUT1", "INT32", [-1, 16])]


def test_model_config(client):
    config = client.get_model_config("simple").config
    assert config.name == "simple"
    assert config.max_batch_size == 8
    assert [i.name for i in config.input] == ["INPUT0", "INPUT1"]
    assert list(config.input[0].dims) == [16]
    as_json = client.get_model_config("simple_string", as_json=True)
    assert as_json["config"]["input"][0]["data_type"] == "TYPE_STRING"


@pytest.mark.parametrize("batch", [1, 8])
def test_sync_infer(client, batch):
    a = np.arange(batch * 16, dtype=np.int32).reshape(batch, 16)
    b = np.ones((batch, 16), dtype=np.int32)
    result = client.infer("simple", simple_inputs(a, b), request_id="sync")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.get_response().id == "sync"


def test_string_and_identity_models(client):
    a = np.array([[str(i).encode() for i in range(16)]], dtype=np.object_)
    b = np.array([[b"2"] * 16], dtype=np.object_)
    result = client.infer("simple_string", simple_inputs(a, b, "BYTES"))
    assert [int(x) for x in result.as_numpy("OUTPUT0").flatten()] == [i + 2 for i in range(16)]
    words = np.array([[b"hello", b"", b"\xff\x00bytes"]], dtype=np.object_)
    t = grpcclient.InferInput("INPUT0", [1, 3], "BYTES")
    t.set_data_from_numpy(words)
    out = client.infer("simple_identity", [t]).as_numpy("OUTPUT0")
    assert list(out.flatten()) == list(words.flatten())


def test_int8_model(client):
    a = np.full((2, 16), 100, dtype=np.int8)
    b = np.full((2, 16), 100, dtype=np.int8)
    result = client.infer("simple_int8", simple_inputs(a, b, "INT8"))
    assert (result.as_numpy("OUTPUT0") == np.int8(-56)).all()  # wraps like the framework model


def test_async_infer(client):
    done = queue.Queue()
    a = np.full((1, 16), 3, dtype=np.int32)
    b = np.ones((1, 16), dtype=np.int32)
    for i in range(20):
        client.async_infer("simple", simple_inputs(a * i, b), partial(lambda i, result, error: done.put((i, result, error)), i),
                           request_id=str(i))
    seen = {}
    for _ in range(20):
        i, result, error = done.get(timeout=30)
        assert error is None
        seen[i] = result.as_numpy("OUTPUT0")[0, 0]
    assert seen == {i: 3 * i + 1 for i in range(20)}


def test_asyncio_client(server):
    async def run():
        async with grpcclient_aio.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as c:
            a = np.full((1, 16), 5, dtype=np.int32)
            b = np.ones((1, 16), dtype=np.int32)
            tensors = []
            for name, value in (("INPUT0", a), ("INPUT1", b)):
                t = grpcclient_aio.InferInput(name, [1, 16], "INT32")
                t.set_data_from_numpy(value)
                tensors.append(t)
            results = await asyncio.gather(*[c.infer("simple", tensors) for _ in range(10)])
            return [r.as_numpy("OUTPUT0")[0, 0] for r in results]
    assert asyncio.run(run()) == [6] * 10


def test_stream_with_hundreds_of_requests_matched_by_id(client):
    responses = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    try:
        sent = {}
        for i in range(300):
            a = np.full((1, 16), i, dtype=np.int32)
            b = np.full((1, 16), 1, dtype=np.int32)
            if i % 50 == 7:
                # A bad request inside the stream: an error for it, the stream goes on.
                bad = grpcclient.InferInput("INPUT0", [1, 15], "INT32")
                bad.set_data_from_numpy(np.zeros((1, 15), dtype=np.int32))
                client.async_stream_infer("simple", [bad], request_id=f"bad-{i}")
                sent[f"bad-{i}"] = None
            client.async_stream_infer("simple", simple_inputs(a, b), request_id=str(i))
            sent[str(i)] = i + 1
        received = {}
        errors = 0
        for _ in range(len(sent)):
            result, error = responses.get(timeout=60)
            if error is not None:
                errors += 1
                assert "unexpected shape" in str(error)
                continue
            received[result.get_response().id] = result.as_numpy("OUTPUT0")[0, 0]
        assert errors == 6
        assert received == {k: v for k, v in sent.items() if v is not None}
    finally:
        client.stop_stream()


def test_statistics_and_index(client):
    before = client.get_inference_statistics("simple").model_stats[0].inference_count
    client.infer("simple", simple_inputs(np.zeros((4, 16), np.int32), np.zeros((4, 16), np.int32)))
    stats = client.get_inference_statistics("simple").model_stats[0]
    assert stats.inference_count == before + 4
    assert any(s.batch_size == 4 for s in stats.batch_stats)
    index = client.get_model_repository_index()
    assert {(m.name, m.state) for m in index.models} >= {("simple", "READY"), ("simple_identity", "READY")}


def expect_error(code, call):
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == code, info.value
    return info.value.message()


def test_errors_keep_the_connection_usable(client):
    a = np.zeros((1, 16), np.int32)
    wrong_shape = grpcclient.InferInput("INPUT0", [1, 15], "INT32")
    wrong_shape.set_data_from_numpy(np.zeros((1, 15), np.int32))
    assert "unexpected shape" in expect_error("StatusCode.INVALID_ARGUMENT", lambda: client.infer("simple", [wrong_shape, simple_inputs(a, a)[1]]))
    wrong_type = grpcclient.InferInput("INPUT0", [1, 16], "FP32")
    wrong_type.set_data_from_numpy(np.zeros((1, 16), np.float32))
    assert "data-type" in expect_error("StatusCode.INVALID_ARGUMENT", lambda: client.infer("simple", [wrong_type, simple_inputs(a, a)[1]]))
    assert "Request for unknown model" in expect_error("StatusCode.NOT_FOUND", lambda: client.infer("nope", simple_inputs(a, a)))
    # The same client still works.
    assert client.infer("simple", simple_inputs(a, a)).as_numpy("OUTPUT0").shape == (1, 16)


def raw_stub(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def simple_request(**kwargs):
    request = service_pb2.ModelInferRequest(model_name="simple", **kwargs)
    for name in ("INPUT0", "INPUT1"):
        tensor = request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        tensor.contents.int_contents.extend(range(16))
    return request


def test_typed_contents_and_raw_contents_both_set(server):
    channel, stub = raw_stub(server)
    with channel:
        response = stub.ModelInfer(simple_request())
        out = np.frombuffer(response.raw_output_contents[0], dtype=np.int32)
        assert list(out) == [2 * i for i in range(16)]
        both = simple_request()
        both.raw_input_contents.extend([np.zeros(16, np.int32).tobytes()] * 2)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(both)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raw_input_contents" in info.value.details()


def test_deadline_exceeded(start_server, tmp_path):
    repo = tmp_path / "repo"
    (repo / "slow" / "1").mkdir(parents=True)
    (repo / "slow" / "config.pbtxt").write_text(
        'name: "slow"\nbackend: "add_sub"\nmax_batch_size: 8\n'
        'input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'
        'output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'
        'parameters { key: "execute_delay_ms" value: { string_value: "300" } }\n')
    server = start_server(repo)
    c = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    a = np.zeros((1, 16), np.int32)
    expect_error("StatusCode.DEADLINE_EXCEEDED", lambda: c.infer("slow", simple_inputs(a, a), client_timeout=0.05))
    assert c.infer("slow", simple_inputs(a, a)).as_numpy("OUTPUT0").shape == (1, 16)
    c.close()


def test_oversize_message_is_resource_exhausted(start_server):
    server = start_server(extra_args=["--grpc-max-message-size", "1000"])
    c = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    big = np.zeros((8, 16), np.int32)  # 2 x 512 bytes of raw contents
    message = expect_error("StatusCode.RESOURCE_EXHAUSTED", lambda: c.infer("simple", simple_inputs(big, big)))
    assert "exceeds the limit of 1000 bytes" in message
    small = np.zeros((1, 16), np.int32)
    assert c.infer("simple", simple_inputs(small, small)).as_numpy("OUTPUT0").shape == (1, 16)
    c.close()


def test_unknown_method_is_unimplemented(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    with channel:
        unknown = channel.unary_unary("/inference.GRPCInferenceService/NoSuchMethod")
        with pytest.raises(grpc.RpcError) as info:
            unknown(b"")
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(service_pb2.ServerLiveRequest()).live
