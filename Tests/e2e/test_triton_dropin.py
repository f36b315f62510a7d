"""Triton drop-in, part 1: system shared memory, compression, Triton's exact
answers, log and trace settings, over tritonclient HTTP, gRPC and gRPC asyncio
against the real server."""

import asyncio
import base64
import gzip
import json
import threading
import time
import uuid
import zlib

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException, deserialize_bytes_tensor, serialize_byte_tensor, serialized_byte_size

A = np.arange(16, dtype=np.int32).reshape(1, 16)
B = np.full((1, 16), 3, dtype=np.int32)


def key():
    return f"/bs-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def region():
    """A client-made shm segment of 4 KiB; destroyed after the test."""
    handles = []

    def make(size=4096):
        handle = shm.create_shared_memory_region(f"r{len(handles)}", key(), size)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        shm.destroy_shared_memory_region(handle)


def clients(server):
    return {
        "http": httpclient.InferenceServerClient(server.http_url),
        "grpc": grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}"),
    }


def module_for(kind):
    return httpclient if kind == "http" else grpcclient


def handle_key(handle):
    # tritonclient keeps the key it created the segment with.
    return handle._shm_key.decode() if isinstance(handle._shm_key, bytes) else handle._shm_key


@pytest.fixture(autouse=True)
def clean_regions(server):
    yield
    for client in clients(server).values():
        client.unregister_system_shared_memory()


# --- Server metadata ----------------------------------------------------------------------------

def test_server_metadata_names_triton_and_lists_what_is_implemented(server):
    http = clients(server)["http"].get_server_metadata()
    grpc_metadata = clients(server)["grpc"].get_server_metadata()
    assert http["name"] == grpc_metadata.name == "triton"
    assert http["version"] == grpc_metadata.version
    assert http["extensions"] == list(grpc_metadata.extensions)
    assert {"system_shared_memory", "logging", "trace", "classification", "binary_tensor_data"} <= set(http["extensions"])
    assert "cuda_shared_memory" not in http["extensions"] and "sequence" in http["extensions"]


def test_server_name_flag(start_server):
    running = start_server(extra_args=["--server-name", "batchserver-east"])
    assert requests.get(f"{running.base}/v2", timeout=5).json()["name"] == "batchserver-east"


# --- System shared memory -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_simple_inputs_and_outputs_in_shared_memory(server, region, kind):
    client, module = clients(server)[kind], module_for(kind)
    segment = region()
    # Inputs at offsets 128 and 256 of one region; outputs into another region at offset 64.
    shm.set_shared_memory_region(segment, [A], offset=128)
    shm.set_shared_memory_region(segment, [B], offset=256)
    out = region()
    client.register_system_shared_memory("in", handle_key(segment), 4096)
    client.register_system_shared_memory("out", handle_key(out), 2048, offset=1024)
    status = client.get_system_shared_memory_status()
    names = [r["name"] for r in status] if kind == "http" else list(status.regions)
    assert sorted(names) == ["in", "out"]

    inputs = [module.InferInput("INPUT0", [1, 16], "INT32"), module.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_shared_memory("in", 64, offset=128)
    inputs[1].set_shared_memory("in", 64, offset=256)
    outputs = [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]
    outputs[0].set_shared_memory("out", 64, offset=64)
    outputs[1].set_shared_memory("out", 64, offset=128)
    result = client.infer("simple", inputs, outputs=outputs)
    # The outputs are in the region (offset 1024 of the segment + the output's offset), not in the response.
    assert np.array_equal(shm.get_contents_as_numpy(out, np.int32, [1, 16], offset=1024 + 64), A + B)
    assert np.array_equal(shm.get_contents_as_numpy(out, np.int32, [1, 16], offset=1024 + 128), A - B)
    output = result.get_output("OUTPUT0")
    parameters = output["parameters"] if kind == "http" else {k: v for k, v in output.parameters.items()}
    assert "shared_memory_region" in parameters

    # An input in shared memory beside one sent inline.
    inline = [module.InferInput("INPUT0", [1, 16], "INT32"), module.InferInput("INPUT1", [1, 16], "INT32")]
    inline[0].set_shared_memory("in", 64, offset=128)
    inline[1].set_data_from_numpy(B * 2)
    assert np.array_equal(client.infer("simple", inline).as_numpy("OUTPUT0"), A + 2 * B)


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_simple_string_in_shared_memory(server, region, kind):
    client, module = clients(server)[kind], module_for(kind)
    left = np.array([str(i).encode() for i in range(16)], dtype=np.object_).reshape(1, 16)
    right = np.array([b"1"] * 16, dtype=np.object_).reshape(1, 16)
    left_bytes, right_bytes = serialize_byte_tensor(left), serialize_byte_tensor(right)
    segment = region()
    shm.set_shared_memory_region(segment, [left_bytes])
    shm.set_shared_memory_region(segment, [right_bytes], offset=512)
    out = region()
    client.register_system_shared_memory("strings", handle_key(segment), 4096)
    client.register_system_shared_memory("string_out", handle_key(out), 4096)
    inputs = [module.InferInput("INPUT0", [1, 16], "BYTES"), module.InferInput("INPUT1", [1, 16], "BYTES")]
    inputs[0].set_shared_memory("strings", serialized_byte_size(left_bytes))
    inputs[1].set_shared_memory("strings", serialized_byte_size(right_bytes), offset=512)
    outputs = [module.InferRequestedOutput("OUTPUT0")]
    outputs[0].set_shared_memory("string_out", 1024)
    result = client.infer("simple_string", inputs, outputs=outputs)
    written = result.get_output("OUTPUT0")
    parameters = written["parameters"] if kind == "http" else written.parameters
    size = parameters["shared_memory_byte_size"] if kind == "http" else parameters["shared_memory_byte_size"].int64_param
    raw = shm.get_contents_as_numpy(out, np.uint8, [size]).tobytes()
    assert [int(x) for x in deserialize_bytes_tensor(raw)] == [i + 1 for i in range(16)]


def test_asyncio_grpc_shared_memory_and_many_requests_sharing_a_region(server, region):
    segment = region(64 * 40)
    for i in range(20):
        shm.set_shared_memory_region(segment, [A + i], offset=64 * i)
    out = region(64 * 20)
    sync = clients(server)["grpc"]
    sync.register_system_shared_memory("shared_in", handle_key(segment), 64 * 40)
    sync.register_system_shared_memory("shared_out", handle_key(out), 64 * 20)

    async def run():
        client = aioclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        try:
            async def one(i):
                inputs = [aioclient.InferInput("INPUT0", [1, 16], "INT32"), aioclient.InferInput("INPUT1", [1, 16], "INT32")]
                inputs[0].set_shared_memory("shared_in", 64, offset=64 * i)
                inputs[1].set_shared_memory("shared_in", 64, offset=0)
                outputs = [aioclient.InferRequestedOutput("OUTPUT0")]
                outputs[0].set_shared_memory("shared_out", 64, offset=64 * i)
                await client.infer("simple", inputs, outputs=outputs)
            await asyncio.gather(*(one(i) for i in range(20)))
            status = await client.get_system_shared_memory_status("shared_in")
            assert status.regions["shared_in"].byte_size == 64 * 40
        finally:
            await client.close()

    asyncio.run(run())
    for i in range(20):
        assert np.array_equal(shm.get_contents_as_numpy(out, np.int32, [1, 16], offset=64 * i), (A + i) + A)


SHM_ERRORS = [
    # (what, register, offset, byte size of INPUT0, expected text)
    ("offset + size past the region", (0, 128), 96, 64, "Invalid offset + byte size for shared memory region: 'bounds'"),
    ("offset at the end of the region", (0, 128), 128, 64, "Invalid offset for shared memory region: 'bounds'"),
    ("size that does not fit the tensor", (0, 128), 0, 60, "input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60"),
]


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_shared_memory_errors_are_clear_and_the_server_keeps_serving(server, region, kind):
    client, module = clients(server)[kind], module_for(kind)
    segment = region(256)

    def call(region_name, offset, size, output=None):
        inputs = [module.InferInput("INPUT0", [1, 16], "INT32"), module.InferInput("INPUT1", [1, 16], "INT32")]
        inputs[0].set_shared_memory(region_name, size, offset=offset)
        inputs[1].set_data_from_numpy(B)
        outputs = None
        if output:
            outputs = [module.InferRequestedOutput("OUTPUT0")]
            outputs[0].set_shared_memory(*output)
        with pytest.raises(InferenceServerException) as info:
            client.infer("simple", inputs, outputs=outputs)
        return info.value

    # Register errors: a missing key, a region past the segment, a name registered twice.
    with pytest.raises(InferenceServerException) as info:
        client.register_system_shared_memory("missing", "/bs-no-such-key", 64)
    assert "Unable to open shared memory region: '/bs-no-such-key'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.register_system_shared_memory("too_big", handle_key(segment), 512)
    assert "failed to register shared memory region 'too_big': invalid args" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.register_system_shared_memory("too_far", handle_key(segment), 64, offset=300)
    assert "invalid args" in info.value.message()
    client.register_system_shared_memory("bounds", handle_key(segment), 128)
    with pytest.raises(InferenceServerException) as info:
        client.register_system_shared_memory("bounds", handle_key(segment), 128)
    assert "shared memory region 'bounds' already in manager" in info.value.message()

    for _, _, offset, size, text in SHM_ERRORS:
        assert text in call("bounds", offset, size).message()
    assert "Unable to find shared memory region: 'nowhere'" in call("nowhere", 0, 64).message()
    too_small = call("bounds", 0, 64, output=("bounds", 32, 64))
    assert "should be at least 64 bytes to hold the results" in too_small.message()
    with pytest.raises(InferenceServerException) as info:
        client.get_system_shared_memory_status("nowhere")
    assert "Unable to find system shared memory region: 'nowhere'" in info.value.message()
    client.unregister_system_shared_memory("never-registered")

    # Served still, inline and from shared memory.
    assert np.array_equal(client.infer("simple", simple_inputs(module)).as_numpy("OUTPUT0"), A + B)


def test_shared_memory_parameter_errors_over_raw_http_and_grpc(server, region):
    segment = region(256)
    clients(server)["http"].register_system_shared_memory("params", handle_key(segment), 256)
    body = {"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": A.flatten().tolist(),
         "parameters": {"shared_memory_region": "params", "shared_memory_byte_size": 64}},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": B.flatten().tolist()}]}
    response = requests.post(f"{server.base}/v2/models/simple/infer", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"].startswith("Input must set only one of the following fields")
    body["inputs"][0].pop("data")
    body["outputs"] = [{"name": "OUTPUT0", "parameters": {"shared_memory_region": "params", "shared_memory_byte_size": 64,
                                                          "classification": 1}}]
    response = requests.post(f"{server.base}/v2/models/simple/infer", json=body, timeout=10)
    assert response.json()["error"] == "Output can't set both 'shared_memory_region' and 'classification'"

    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    request = simple_request()
    request.inputs[0].parameters["shared_memory_region"].string_param = "params"
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor 'INPUT0'" in info.value.details()


def test_unregister_during_inference_keeps_the_region_for_requests_in_flight(server, region):
    segment = region()
    shm.set_shared_memory_region(segment, [A], offset=0)
    client = clients(server)["http"]
    client.register_system_shared_memory("busy", handle_key(segment), 4096)
    errors, done = [], []

    def worker():
        local = httpclient.InferenceServerClient(server.http_url)
        for _ in range(200):
            inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
            inputs[0].set_shared_memory("busy", 64)
            inputs[1].set_data_from_numpy(B)
            try:
                result = local.infer("simple", inputs)
                assert np.array_equal(result.as_numpy("OUTPUT0"), A + B)
                done.append(1)
            except InferenceServerException as error:
                errors.append(error.message())
                break

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    client.unregister_system_shared_memory("busy")
    for thread in threads:
        thread.join()
    # Every request either used the region whole or was told it is gone; none saw torn memory.
    assert done
    assert all("Unable to find shared memory region: 'busy'" in message for message in errors)
    assert client.get_system_shared_memory_status() == []


def test_cuda_shared_memory_answers_as_triton_does_without_a_gpu(server):
    for kind, client in clients(server).items():
        status = client.get_cuda_shared_memory_status()
        assert (status == []) if kind == "http" else (len(status.regions) == 0)
        client.unregister_cuda_shared_memory()
        with pytest.raises(InferenceServerException) as info:
            client.register_cuda_shared_memory("gpu", base64.b64encode(b"\0" * 64), 0, 64)
        assert "failed to register CUDA shared memory region: 'gpu', GPUs not supported" in info.value.message()


# --- Compression --------------------------------------------------------------------------------

def simple_inputs(module):
    inputs = [module.InferInput("INPUT0", [1, 16], "INT32"), module.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    return inputs


def simple_request():
    request = service_pb2.ModelInferRequest(model_name="simple")
    for name, value in (("INPUT0", A), ("INPUT1", B)):
        tensor = request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        tensor.contents.int_contents.extend(value.flatten().tolist())
    return request


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_grpc_compression(server, algorithm):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    result = client.infer("simple", simple_inputs(grpcclient), compression_algorithm=algorithm)
    assert np.array_equal(result.as_numpy("OUTPUT0"), A + B)

    async def run():
        aio = aioclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        try:
            answer = await aio.infer("simple", simple_inputs(aioclient), compression_algorithm=algorithm)
            assert np.array_equal(answer.as_numpy("OUTPUT1"), A - B)
        finally:
            await aio.close()

    asyncio.run(run())


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
def test_grpc_compressed_both_ways_on_a_stream(server, compression):
    """A channel that compresses gets compressed responses (grpcio hides the
    grpc-encoding header; GRPCLiteTests check the negotiation itself)."""
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", compression=compression)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    response = stub.ModelInfer(simple_request())
    assert np.frombuffer(response.raw_output_contents[0], np.int32).tolist() == (A + B).flatten().tolist()
    replies = list(stub.ModelStreamInfer(iter([simple_request() for _ in range(5)])))
    assert len(replies) == 5 and all(not r.error_message for r in replies)


def test_grpc_compression_bomb_is_refused_and_the_server_keeps_serving(start_server):
    running = start_server(extra_args=["--grpc-max-message-size", "100000"])
    channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}", compression=grpc.Compression.Gzip,
                                    options=[("grpc.max_send_message_length", 1 << 24)])
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    bomb = simple_request()
    bomb.id = "x" * (4 << 20)  # 4 MiB of one letter: a few KiB once gzipped
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(bomb)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "inflates past the limit" in info.value.details()
    assert stub.ModelInfer(simple_request()).model_name == "simple"


@pytest.mark.parametrize("request_algorithm", [None, "gzip", "deflate"])
@pytest.mark.parametrize("response_algorithm", [None, "gzip", "deflate"])
def test_http_compression(server, request_algorithm, response_algorithm):
    client = httpclient.InferenceServerClient(server.http_url)
    result = client.infer("simple", simple_inputs(httpclient), request_compression_algorithm=request_algorithm,
                          response_compression_algorithm=response_algorithm)
    assert np.array_equal(result.as_numpy("OUTPUT0"), A + B)


def test_http_response_is_compressed_when_accepted(server):
    body = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": A.flatten().tolist()},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": B.flatten().tolist()}]}).encode()
    raw = requests.post(f"{server.base}/v2/models/simple/infer", data=zlib.compress(body), stream=True, timeout=10,
                        headers={"Content-Encoding": "deflate", "Accept-Encoding": "gzip"})
    assert raw.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw.raw.read()))["outputs"][0]["data"] == (A + B).flatten().tolist()


def test_http_compression_bomb_and_unknown_encoding(start_server):
    running = start_server(extra_args=["--http-max-input-size", "100000"])
    bomb = gzip.compress(b'{"inputs": [], "id": "' + b"x" * (8 << 20) + b'"}')
    assert len(bomb) < 100000
    response = requests.post(f"{running.base}/v2/models/simple/infer", data=bomb, headers={"Content-Encoding": "gzip"}, timeout=10)
    assert response.status_code == 400
    assert "inflates past the server's limit of 100000 bytes" in response.json()["error"]
    response = requests.post(f"{running.base}/v2/models/simple/infer", data=b"{}", headers={"Content-Encoding": "br"}, timeout=10)
    assert response.status_code == 501
    assert response.json()["error"] == "Unsupported compression type"
    client = httpclient.InferenceServerClient(running.http_url)
    assert np.array_equal(client.infer("simple", simple_inputs(httpclient)).as_numpy("OUTPUT0"), A + B)


# --- Triton's texts, both protocols -------------------------------------------------------------

# (case, model, version, HTTP status, gRPC code, text): the table in Sources/InferenceCore/TritonErrors.swift
TEXTS = [
    ("unknown model", "no_such_model", "", 404, grpc.StatusCode.NOT_FOUND,
     "Request for unknown model: 'no_such_model' is not found"),
    ("unknown version", "simple", "9", 404, grpc.StatusCode.NOT_FOUND,
     "Request for unknown model: 'simple' version 9 is not found"),
    ("malformed version", "simple", "abc", 400, grpc.StatusCode.INVALID_ARGUMENT,
     "failed to get model version from specified version string 'abc'"),
    ("negative version", "simple", "-2", 400, grpc.StatusCode.INVALID_ARGUMENT,
     "invalid model version specified '-2' , version should be an integral value > 0"),
]


@pytest.mark.parametrize("case", TEXTS, ids=[t[0] for t in TEXTS])
def test_triton_texts_on_both_protocols(server, case):
    _, model, version, status, code, text = case
    http = httpclient.InferenceServerClient(server.http_url)
    with pytest.raises(InferenceServerException) as info:
        http.infer(model, simple_inputs(httpclient), model_version=version)
    assert text in info.value.message() and info.value.status() == str(status)
    with pytest.raises(InferenceServerException) as info:
        http.get_model_metadata(model, model_version=version)
    assert text in info.value.message()

    grpc_client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    for call in (lambda: grpc_client.infer(model, simple_inputs(grpcclient), model_version=version),
                 lambda: grpc_client.get_model_config(model, model_version=version)):
        with pytest.raises(InferenceServerException) as info:
            call()
        assert text in info.value.message() and info.value.status() == str(code)


def test_raw_and_typed_contents_text(server):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    request = simple_request()
    request.raw_input_contents.extend([A.tobytes(), B.tobytes()])
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'"


# --- Log and trace settings ---------------------------------------------------------------------

def test_log_settings_change_the_log_at_run_time(server):
    http = httpclient.InferenceServerClient(server.http_url)
    grpc_client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    settings = http.get_log_settings()
    assert settings["log_verbose_level"] == 0 and settings["log_info"] is True
    assert grpc_client.get_log_settings(as_json=True)["settings"]["log_info"]["bool_param"] is True

    before = server.read_log().count("inference")
    http.infer("simple", simple_inputs(httpclient))
    time.sleep(0.2)
    assert server.read_log().count("inference") == before  # debug lines off at level 0

    assert http.update_log_settings({"log_verbose_level": 1})["log_verbose_level"] == 1
    http.infer("simple", simple_inputs(httpclient), request_id="logged-request")
    time.sleep(0.2)
    assert "logged-request" in server.read_log()

    grpc_client.update_log_settings({"log_verbose_level": 0})
    assert http.get_log_settings()["log_verbose_level"] == 0
    http.infer("simple", simple_inputs(httpclient), request_id="quiet-request")
    time.sleep(0.2)
    assert "quiet-request" not in server.read_log()

    with pytest.raises(InferenceServerException) as info:
        http.update_log_settings({"log_format": "xml"})
    assert "invalid argument for log_format, got: xml" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        grpc_client.update_log_settings({"log_file": "/tmp/elsewhere.log"})
    assert "log file location can not be updated through network protocol" in info.value.message()


def test_trace_settings_are_accepted_and_reported(server):
    http = httpclient.InferenceServerClient(server.http_url)
    grpc_client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    assert http.get_trace_settings()["trace_level"] == ["OFF"]
    updated = http.update_trace_settings("simple", {"trace_level": ["TIMESTAMPS"], "trace_rate": "10"})
    assert updated["trace_level"] == ["TIMESTAMPS"] and updated["trace_rate"] == "10"
    from_grpc = grpc_client.get_trace_settings("simple", as_json=True)["settings"]
    assert from_grpc["trace_level"]["value"] == ["TIMESTAMPS"]
    assert http.get_trace_settings()["trace_level"] == ["OFF"]  # global unchanged
    cleared = http.update_trace_settings("simple", {"trace_level": None})
    assert cleared["trace_level"] == ["OFF"]
    with pytest.raises(InferenceServerException) as info:
        http.update_trace_settings(settings={"trace_count": "-5"})
    assert "Unable to parse 'trace_count'. Expecting value >= -1" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        grpc_client.update_trace_settings("no_such_model", {"trace_rate": "5"})
    assert "Request for unknown model : no_such_model" in info.value.message()
