"""Decoupled models end to end: Triton's repeat_int32 over ModelStreamInfer
(sync and asyncio), its responses in order after their delays, the empty
final response, cancellation when the client closes its stream, and the
refusals of HTTP and unary gRPC."""

import asyncio
import queue
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException


def repeat_inputs(values, delays, wait=0):
    tensors = [grpcclient.InferInput("IN", [len(values)], "INT32"),
               grpcclient.InferInput("DELAY", [len(delays)], "UINT32"),
               grpcclient.InferInput("WAIT", [1], "UINT32")]
    tensors[0].set_data_from_numpy(np.array(values, dtype=np.int32))
    tensors[1].set_data_from_numpy(np.array(delays, dtype=np.uint32))
    tensors[2].set_data_from_numpy(np.array([wait], dtype=np.uint32))
    return tensors


def stream_client(server):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    got = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((time.monotonic(), result, error)))
    return client, got


def test_repeat_int32_sends_one_response_per_element_in_order_after_its_delay(server):
    client, got = stream_client(server)
    values, delays = [4, 2, 0, 1], [60, 20, 40, 0]
    sent = time.monotonic()
    client.async_stream_infer("repeat_int32", repeat_inputs(values, delays), request_id="r1",
                              enable_empty_final_response=True)
    responses = [got.get(timeout=10) for _ in range(len(values) + 1)]
    client.stop_stream()
    client.close()
    for _, _, error in responses:
        assert error is None, error
    data, final = responses[:-1], responses[-1]
    assert [int(r.as_numpy("OUT")[0]) for _, r, _ in data] == values
    assert [int(r.as_numpy("IDX")[0]) for _, r, _ in data] == [0, 1, 2, 3]
    assert all(r.get_response().parameters["triton_final_response"].bool_param is False for _, r, _ in data)
    # Each response comes no earlier than the sum of the delays before it.
    for (at, _, _), due in zip(data, np.cumsum(delays)):
        assert at - sent >= due / 1000 - 0.005, (at - sent, due)
    final_response = final[1].get_response()
    assert final_response.id == "r1" and final_response.parameters["triton_final_response"].bool_param is True
    assert len(final_response.outputs) == 0


def test_an_empty_request_gets_only_the_final_response(server):
    client, got = stream_client(server)
    client.async_stream_infer("repeat_int32", repeat_inputs([], []), request_id="empty", enable_empty_final_response=True)
    _, result, error = got.get(timeout=10)
    assert error is None
    assert result.get_response().id == "empty" and result.get_response().parameters["triton_final_response"].bool_param
    with pytest.raises(queue.Empty):
        got.get(timeout=0.3)
    client.stop_stream()
    client.close()


def test_repeat_over_grpc_asyncio_stream(server):
    async def run():
        async with grpcaio.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as client:
            async def requests_iterator():
                yield {"model_name": "repeat_int32", "inputs": repeat_inputs([7, 8, 9], [5, 5, 5]), "request_id": "a"}
            outputs = []
            async for result, error in client.stream_infer(requests_iterator()):
                assert error is None, error
                outputs.append(int(result.as_numpy("OUT")[0]))
                if len(outputs) == 3:
                    break
            return outputs
    assert asyncio.run(run()) == [7, 8, 9]


def test_a_closed_stream_stops_the_models_remaining_responses(server):
    """Two instances each start a 3 s request; both streams close after a
    moment; a third request must then start at once, not after 3 s."""
    clients = []
    for _ in range(2):
        client, got = stream_client(server)
        client.async_stream_infer("repeat_int32", repeat_inputs(list(range(100)), [30] * 100))
        clients.append((client, got))
    for _, got in clients:
        assert got.get(timeout=10)[2] is None   # the first response: the request is running
    for client, _ in clients:
        client.stop_stream(cancel_requests=True)
        client.close()
    time.sleep(0.2)
    client, got = stream_client(server)
    started = time.monotonic()
    client.async_stream_infer("repeat_int32", repeat_inputs([5], [0]))
    _, result, error = got.get(timeout=10)
    assert error is None and int(result.as_numpy("OUT")[0]) == 5
    assert time.monotonic() - started < 1.0, "a cancelled request kept its instance"
    client.stop_stream()
    client.close()


def test_decoupled_models_are_refused_over_http_and_unary_grpc(server):
    body = {"inputs": [{"name": "IN", "datatype": "INT32", "shape": [1], "data": [1]},
                       {"name": "DELAY", "datatype": "UINT32", "shape": [1], "data": [0]},
                       {"name": "WAIT", "datatype": "UINT32", "shape": [1], "data": [0]}]}
    response = requests.post(f"{server.base}/v2/models/repeat_int32/infer", json=body, timeout=10)
    assert response.status_code == 501
    assert response.json()["error"] == "HTTP end point doesn't support models with decoupled transaction policy"
    with grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as client:
        with pytest.raises(InferenceServerException) as raised:
            client.infer("repeat_int32", repeat_inputs([1], [0]))
        assert raised.value.status() == "StatusCode.UNIMPLEMENTED"
        assert "ModelInfer RPC doesn't support models with decoupled transaction policy" in str(raised.value)


def test_a_bad_decoupled_request_is_an_error_on_the_stream_which_stays_open(server):
    client, got = stream_client(server)
    client.async_stream_infer("repeat_int32", repeat_inputs([1, 2], [0]), request_id="bad")
    _, _, error = got.get(timeout=10)
    assert error is not None and "expected IN and DELAY shape to match, got [2] and [1]" in str(error)
    client.async_stream_infer("repeat_int32", repeat_inputs([3], [0]), request_id="good")
    _, result, error = got.get(timeout=10)
    assert error is None and int(result.as_numpy("OUT")[0]) == 3
    client.stop_stream()
    client.close()
