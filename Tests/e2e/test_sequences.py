"""Sequence batching end to end: Triton's example sequence models through
tritonclient over HTTP, gRPC unary (sync and asyncio) and gRPC streaming;
idle release, the backlog, implicit state on an ONNX model, and the errors
a bad sequence request gets."""

import asyncio
import itertools
import queue
import shutil
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import MODEL_REPOSITORY

VALUES = [11, 7, 5, 3, 2, 0, 1]


def expected(model, first, values, correlation):
    """What Triton's example models answer (see their configs): simple_sequence
    and simple_dyna_sequence are stateless (START adds 1; dyna's END adds the
    id); simple_string_dyna_sequence accumulates from START and its END adds the id."""
    inputs = [first] + values
    if model == "simple_string_dyna_sequence":
        out = list(itertools.accumulate(inputs))
    else:
        out = [inputs[0] + 1] + inputs[1:]
    if model != "simple_sequence":
        out[-1] += int(correlation)
    return out


def tensor(module, value):
    t = module.InferInput("INPUT", [1, 1], "INT32")
    t.set_data_from_numpy(np.array([[value]], dtype=np.int32))
    return [t]


def run_interleaved(client, module, model, sequences):
    """Sends every sequence's requests round-robin, one request at a time."""
    results = {cid: [] for cid, _ in sequences}
    longest = max(len(inputs) for _, inputs in sequences)
    for step in range(longest):
        for cid, inputs in sequences:
            if step < len(inputs):
                r = client.infer(model, tensor(module, inputs[step]), sequence_id=cid,
                                 sequence_start=step == 0, sequence_end=step == len(inputs) - 1)
                results[cid].append(int(r.as_numpy("OUTPUT")[0][0]))
    for cid, inputs in sequences:
        assert results[cid] == expected(model, inputs[0], inputs[1:], cid), (model, cid)


def three_sequences(ids):
    """8 requests each: [0]+values, [100]+negated, [20]+negated."""
    return [(ids[0], [0] + VALUES), (ids[1], [100] + [-v for v in VALUES]), (ids[2], [20] + [-v for v in VALUES])]


MODELS = [("simple_sequence", [1000, 1001, 1002]),
          ("simple_dyna_sequence", [1000, 1001, 1002]),
          ("simple_string_dyna_sequence", ["1000", "1001", "1002"])]


@pytest.mark.parametrize("model, ids", MODELS)
def test_interleaved_sequences_over_http(server, model, ids):
    with httpclient.InferenceServerClient(server.http_url) as client:
        run_interleaved(client, httpclient, model, three_sequences(ids))


@pytest.mark.parametrize("model, ids", MODELS)
def test_interleaved_sequences_over_grpc_unary(server, model, ids):
    with grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as client:
        run_interleaved(client, grpcclient, model, three_sequences([str(int(i) + 10) if isinstance(i, str) else i + 10 for i in ids]))


@pytest.mark.parametrize("model, ids", MODELS)
def test_concurrent_sequences_over_grpc_threads(server, model, ids):
    """Three clients at once, one sequence each: the batcher keeps them apart."""
    errors = []

    def one(cid, inputs):
        try:
            with grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as client:
                got = [int(client.infer(model, tensor(grpcclient, v), sequence_id=cid, sequence_start=i == 0,
                                        sequence_end=i == len(inputs) - 1).as_numpy("OUTPUT")[0][0])
                       for i, v in enumerate(inputs)]
            assert got == expected(model, inputs[0], inputs[1:], cid)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append((cid, error))

    sequences = three_sequences([str(int(i) + 20) if isinstance(i, str) else i + 20 for i in ids])
    threads = [threading.Thread(target=one, args=s) for s in sequences]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


@pytest.mark.parametrize("model, ids", MODELS)
def test_interleaved_sequences_over_grpc_stream(server, model, ids):
    responses = queue.Queue()
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    sequences = three_sequences([str(int(i) + 30) if isinstance(i, str) else i + 30 for i in ids])
    sent = 0
    for step in range(8):
        for cid, inputs in sequences:
            client.async_stream_infer(model, tensor(grpcclient, inputs[step]), request_id=f"{cid}:{step}", sequence_id=cid,
                                      sequence_start=step == 0, sequence_end=step == 7)
            sent += 1
    got = {str(cid): [] for cid, _ in sequences}
    for _ in range(sent):
        result, error = responses.get(timeout=30)
        assert error is None, error
        cid, step = result.get_response().id.rsplit(":", 1)
        got[cid].append((int(step), int(result.as_numpy("OUTPUT")[0][0])))
        assert result.get_response().parameters["triton_final_response"].bool_param is True
    client.stop_stream()
    client.close()
    for cid, inputs in sequences:
        # A sequence's responses come in its order.
        assert [s for s, _ in got[str(cid)]] == list(range(8))
        assert [v for _, v in got[str(cid)]] == expected(model, inputs[0], inputs[1:], cid)


def test_sequence_over_grpc_asyncio(server):
    async def run():
        async with grpcaio.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as client:
            inputs = [0] + VALUES
            got = []
            for i, v in enumerate(inputs):
                r = await client.infer("simple_dyna_sequence", tensor(grpcclient, v), sequence_id=4242,
                                       sequence_start=i == 0, sequence_end=i == len(inputs) - 1)
                got.append(int(r.as_numpy("OUTPUT")[0][0]))
            return got
    assert asyncio.run(run()) == expected("simple_dyna_sequence", 0, VALUES, 4242)


def test_an_idle_sequence_is_released(server):
    """simple_sequence keeps Triton's default max_sequence_idle_microseconds (1 s)."""
    with httpclient.InferenceServerClient(server.http_url) as client:
        client.infer("simple_sequence", tensor(httpclient, 5), sequence_id=777, sequence_start=True)
        assert int(client.infer("simple_sequence", tensor(httpclient, 1), sequence_id=777).as_numpy("OUTPUT")[0][0]) == 1
        time.sleep(1.6)
        with pytest.raises(InferenceServerException) as raised:
            client.infer("simple_sequence", tensor(httpclient, 1), sequence_id=777)
        assert "must specify the START flag on the first request of the sequence" in str(raised.value)
        # A new START takes a slot again.
        assert int(client.infer("simple_sequence", tensor(httpclient, 2), sequence_id=777,
                                sequence_start=True, sequence_end=True).as_numpy("OUTPUT")[0][0]) == 3


def test_a_sequence_waits_in_the_backlog_until_a_slot_frees(server):
    """simple_sequence has 8 slots (max_batch_size 8, one instance)."""
    with httpclient.InferenceServerClient(server.http_url) as client:
        for cid in range(5001, 5009):
            client.infer("simple_sequence", tensor(httpclient, 1), sequence_id=cid, sequence_start=True)
        done = threading.Event()
        answer = {}

        def ninth():
            with httpclient.InferenceServerClient(server.http_url) as other:
                answer["value"] = int(other.infer("simple_sequence", tensor(httpclient, 9), sequence_id=5009,
                                                  sequence_start=True, sequence_end=True).as_numpy("OUTPUT")[0][0])
            done.set()

        worker = threading.Thread(target=ninth)
        worker.start()
        assert not done.wait(0.3), "the ninth sequence ran while all 8 slots were held"
        client.infer("simple_sequence", tensor(httpclient, 1), sequence_id=5001, sequence_end=True)
        assert done.wait(5), "the ninth sequence did not get the freed slot"
        worker.join()
        assert answer["value"] == 10
        for cid in range(5002, 5009):
            try:  # cleanup: on a slow machine these may already have gone idle
                client.infer("simple_sequence", tensor(httpclient, 1), sequence_id=cid, sequence_end=True)
            except InferenceServerException:
                pass


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_bad_sequence_requests_get_clear_errors_and_the_server_serves_on(server, kind):
    module = httpclient if kind == "http" else grpcclient
    url = server.http_url if kind == "http" else f"127.0.0.1:{server.grpc_port}"
    with module.InferenceServerClient(url) as client:
        cases = [
            (dict(model_name="simple_sequence", sequence_id=91234), "must specify the START flag"),
            (dict(model_name="simple_sequence"), "must specify a non-zero or non-empty correlation ID"),
            (dict(model_name="simple_dyna_sequence", sequence_id="abc", sequence_start=True),
             "sequence batching control 'CORRID' data-type is 'BYTES', but model 'simple_dyna_sequence' expects 'UINT64'"),
            (dict(model_name="simple_string_dyna_sequence", sequence_id=5, sequence_start=True),
             "data-type is 'UINT64', but model 'simple_string_dyna_sequence' expects 'BYTES'"),
            (dict(model_name="simple_string_dyna_sequence", sequence_id="seq-two", sequence_start=True),
             "dyna sequence backend expects correlation ID to be decodable into an integer"),
        ]
        for arguments, text in cases:
            with pytest.raises(InferenceServerException) as raised:
                client.infer(inputs=tensor(module, 1), **arguments)
            assert text in str(raised.value), (arguments, str(raised.value))
            if kind == "grpc":
                assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
            else:
                assert raised.value.status() == "400"
        # END twice: the second finds no sequence.
        client.infer("simple_sequence", tensor(module, 1), sequence_id=6060, sequence_start=True, sequence_end=True)
        with pytest.raises(InferenceServerException) as raised:
            client.infer("simple_sequence", tensor(module, 1), sequence_id=6060, sequence_end=True)
        assert "must specify the START flag" in str(raised.value)
        # Batch of two rows to a sequence model.
        rows = module.InferInput("INPUT", [2, 1], "INT32")
        rows.set_data_from_numpy(np.array([[1], [2]], dtype=np.int32))
        with pytest.raises(InferenceServerException) as raised:
            client.infer("simple_sequence", [rows], sequence_id=6061, sequence_start=True)
        assert "must specify batch-size 1 due to requirements of sequence batcher" in str(raised.value)
        # Still serving.
        assert int(client.infer("simple_sequence", tensor(module, 4), sequence_id=6062, sequence_start=True,
                                sequence_end=True).as_numpy("OUTPUT")[0][0]) == 5


def test_a_stream_closed_mid_sequence_leaves_the_server_serving(server):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    got = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    client.async_stream_infer("simple_dyna_sequence", tensor(grpcclient, 1), sequence_id=7070, sequence_start=True)
    assert got.get(timeout=10)[1] is None
    client.stop_stream(cancel_requests=True)
    client.close()
    with grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as fresh:
        # The open sequence continues from a new connection, then a new one runs.
        assert int(fresh.infer("simple_dyna_sequence", tensor(grpcclient, 2), sequence_id=7070,
                               sequence_end=True).as_numpy("OUTPUT")[0][0]) == 2 + 7070
        assert int(fresh.infer("simple_dyna_sequence", tensor(grpcclient, 3), sequence_id=7071, sequence_start=True,
                               sequence_end=True).as_numpy("OUTPUT")[0][0]) == 4 + 7071


def test_custom_identity_int32(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        t = httpclient.InferInput("INPUT0", [1, 5], "INT32")
        data = np.arange(5, dtype=np.int32).reshape(1, 5)
        t.set_data_from_numpy(data)
        assert np.array_equal(client.infer("custom_identity_int32", [t]).as_numpy("OUTPUT0"), data)


def test_server_metadata_lists_the_sequence_extension(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        assert "sequence" in client.get_server_metadata()["extensions"]


# --- implicit state on an ONNX model ----------------------------------------------------------

def write_state_model(repo):
    """OUTPUT = INPUT + STATE_IN; STATE_OUT = the same, fed back by the server."""
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("Add", ["INPUT", "STATE_IN"], ["OUTPUT"]), helper.make_node("Identity", ["OUTPUT"], ["STATE_OUT"])],
        "running_sum",
        [helper.make_tensor_value_info("INPUT", TensorProto.INT32, ["batch", 1]),
         helper.make_tensor_value_info("STATE_IN", TensorProto.INT32, ["batch", 1]),
         helper.make_tensor_value_info("START", TensorProto.INT32, ["batch", 1])],
        [helper.make_tensor_value_info("OUTPUT", TensorProto.INT32, ["batch", 1]),
         helper.make_tensor_value_info("STATE_OUT", TensorProto.INT32, ["batch", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (repo / "running_sum" / "1").mkdir(parents=True)
    onnx.save(model, str(repo / "running_sum" / "1" / "model.onnx"))
    (repo / "running_sum" / "config.pbtxt").write_text("""
name: "running_sum"
platform: "onnxruntime_onnx"
max_batch_size: 4
sequence_batching {
  oldest { max_candidate_sequences: 8 max_queue_delay_microseconds: 2000 }
  control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] } ]
  state [ {
    input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_INT32 dims: [ 1 ]
    initial_state { data_type: TYPE_INT32 dims: [ 1 ] zero_data: true name: "zero" }
  } ]
}
input [ { name: "INPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT" data_type: TYPE_INT32 dims: [ 1 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
""")


def test_implicit_state_carries_a_running_sum_on_an_onnx_model(start_server, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    write_state_model(repo)
    running = start_server(repo)
    errors = []

    def one(cid, values):
        try:
            with grpcclient.InferenceServerClient(f"127.0.0.1:{running.grpc_port}") as client:
                got = [int(client.infer("running_sum", tensor(grpcclient, v), sequence_id=cid, sequence_start=i == 0,
                                        sequence_end=i == len(values) - 1).as_numpy("OUTPUT")[0][0])
                       for i, v in enumerate(values)]
            assert got == list(np.cumsum(values)), (cid, got)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append((cid, error))

    threads = [threading.Thread(target=one, args=(cid, [cid * k for k in range(1, 9)])) for cid in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    stats = httpclient.InferenceServerClient(running.http_url).get_inference_statistics("running_sum")["model_stats"][0]
    assert stats["inference_count"] == 24


def test_interleaved_sequences_over_grpc_asyncio_stream(server):
    sequences = [(8801, [0] + VALUES), (8802, [100] + [-v for v in VALUES])]

    async def run():
        async with grpcaio.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as client:
            async def requests_iterator():
                for step in range(8):
                    for cid, inputs in sequences:
                        yield {"model_name": "simple_dyna_sequence", "inputs": tensor(grpcclient, inputs[step]),
                               "request_id": f"{cid}:{step}", "sequence_id": cid,
                               "sequence_start": step == 0, "sequence_end": step == 7}
            got = {cid: [] for cid, _ in sequences}
            async for result, error in client.stream_infer(requests_iterator()):
                assert error is None, error
                cid, step = result.get_response().id.split(":")
                got[int(cid)].append((int(step), int(result.as_numpy("OUTPUT")[0][0])))
                if sum(len(v) for v in got.values()) == 16:
                    break
            return got

    got = asyncio.run(run())
    for cid, inputs in sequences:
        assert [s for s, _ in got[cid]] == list(range(8))
        assert [v for _, v in got[cid]] == expected("simple_dyna_sequence", inputs[0], inputs[1:], cid)
