"""Triton's Python sequence example clients, replayed as they run against the
shipped repository, with and without -d: simple_grpc_sequence_sync_infer_client,
simple_http_sequence_sync_infer_client, simple_grpc_sequence_stream_infer_client
and simple_grpc_aio_sequence_stream_infer_client (triton-inference-server/client,
src/python/examples). Same models, ids, values, request ids and requested
outputs, and each result judged by the clients' own check loop."""

import asyncio
import queue
import uuid

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient

VALUES = [11, 7, 5, 3, 2, 0, 1]


class Run:
    """One client run's ids, models and the three sequences it sends."""

    def __init__(self, dyna):
        self.dyna = dyna
        self.int_model = "simple_dyna_sequence" if dyna else "simple_sequence"
        self.string_model = "simple_string_dyna_sequence" if dyna else "simple_sequence"
        self.int_id0, self.int_id1 = 1000, 1001
        self.string_id = str(1002) if dyna else str(uuid.uuid4())
        self.sequences = [(self.int_model, self.int_id0, [0] + VALUES),
                          (self.int_model, self.int_id1, [100] + [-v for v in VALUES]),
                          (self.string_model, self.string_id, [20] + [-v for v in VALUES])]

    def check(self, int0, int1, string0):
        """The clients' loop, as they write it."""
        assert len(int0) == len(int1) == len(string0) == len(VALUES) + 1
        for i in range(len(int0)):
            int_seq0_expected = 1 if (i == 0) else VALUES[i - 1]
            int_seq1_expected = 101 if (i == 0) else VALUES[i - 1] * -1
            if i == 0 and self.dyna:
                string_seq0_expected = 20
            elif i == 0 and not self.dyna:
                string_seq0_expected = 21
            elif i != 0 and self.dyna:
                string_seq0_expected = VALUES[i - 1] * -1 + int(string0[i - 1])
            else:
                string_seq0_expected = VALUES[i - 1] * -1
            # The dyna_sequence custom backend adds the correlation ID to the last request.
            if self.dyna and (i != 0) and (VALUES[i - 1] == 1):
                int_seq0_expected += self.int_id0
                int_seq1_expected += self.int_id1
                string_seq0_expected += int(self.string_id)
            assert (int0[i], int1[i], string0[i]) == (int_seq0_expected, int_seq1_expected, string_seq0_expected), i


def inputs_for(module, value):
    data = np.full(shape=[1, 1], fill_value=value, dtype=np.int32)
    tensor = module.InferInput("INPUT", data.shape, "INT32")
    tensor.set_data_from_numpy(data)
    return [tensor], [module.InferRequestedOutput("OUTPUT")]


def sync_client(module, url, run):
    results = []
    with module.InferenceServerClient(url) as client:
        for model, sequence_id, values in run.sequences:
            got = []
            for count, value in enumerate(values, start=1):
                inputs, outputs = inputs_for(module, value)
                result = client.infer(model, inputs, outputs=outputs, sequence_id=sequence_id,
                                      sequence_start=(count == 1), sequence_end=(count == len(values)))
                got.append(int(result.as_numpy("OUTPUT")[0][0]))
            results.append(got)
    run.check(*results)


def demultiplex(run, responses):
    """The stream clients sort responses by the sequence id in request_id."""
    int0, int1, string0 = [], [], []
    for response_id, value in responses:
        this_id = response_id.split("_")[0]
        try:
            number = int(this_id)
        except ValueError:
            number = None
        if number == run.int_id0 and this_id != run.string_id:
            int0.append(value)
        elif number == run.int_id1 and this_id != run.string_id:
            int1.append(value)
        elif this_id == run.string_id:
            string0.append(value)
        else:
            raise AssertionError(f"unexpected sequence id {this_id}")
    run.check(int0, int1, string0)


def stream_client(url, run):
    answers = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    sent = 0
    for model, sequence_id, values in run.sequences:
        for count, value in enumerate(values, start=1):
            inputs, outputs = inputs_for(grpcclient, value)
            client.async_stream_infer(model, inputs, outputs=outputs, request_id=f"{sequence_id}_{count}",
                                      sequence_id=sequence_id, sequence_start=(count == 1),
                                      sequence_end=(count == len(values)))
            sent += 1
    responses = []
    for _ in range(sent):
        result, error = answers.get(timeout=30)
        assert error is None, error
        responses.append((result.get_response().id, int(result.as_numpy("OUTPUT")[0][0])))
    client.stop_stream()
    client.close()
    demultiplex(run, responses)


def aio_stream_client(url, run):
    async def go():
        async with grpcaio.InferenceServerClient(url) as client:
            async def requests():
                for model, sequence_id, values in run.sequences:
                    for count, value in enumerate(values, start=1):
                        inputs, outputs = inputs_for(grpcclient, value)
                        yield {"model_name": model, "inputs": inputs, "outputs": outputs,
                               "request_id": f"{sequence_id}_{count}", "sequence_id": sequence_id,
                               "sequence_start": count == 1, "sequence_end": count == len(values)}
            responses = []
            async for result, error in client.stream_infer(inputs_iterator=requests()):
                assert error is None, error
                responses.append((result.get_response().id, int(result.as_numpy("OUTPUT")[0][0])))
                if len(responses) == 3 * (len(VALUES) + 1):
                    break
            return responses
    demultiplex(run, asyncio.run(go()))


@pytest.mark.parametrize("dyna", [False, True], ids=["plain", "-d"])
@pytest.mark.parametrize("client", ["grpc_sync", "http_sync", "grpc_stream", "grpc_aio_stream"])
def test_triton_example_sequence_client(server, client, dyna):
    run = Run(dyna)
    grpc_url = f"127.0.0.1:{server.grpc_port}"
    if client == "grpc_sync":
        sync_client(grpcclient, grpc_url, run)
    elif client == "http_sync":
        sync_client(httpclient, server.http_url, run)
    elif client == "grpc_stream":
        stream_client(grpc_url, run)
    else:
        aio_stream_client(grpc_url, run)
