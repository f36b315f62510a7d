"""clients/python's core, engine-free: endpoints followed by name (a fake
resolver and clock), and BatchServerClient against a real server — a row
the server refuses isolated from its batch, a token's rate limit waited out
as the server asks, a missing model or a refused token stopping the work."""

import json

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient

from conftest import RunningServer
from engine_jobs import MODEL, fp32_repository

from batchserver_client import BatchServerClient, BatchServerError, Endpoints


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_endpoints_follow_a_name_and_back_off_from_failures():
    clock = Clock()
    answers = {"pods.test": ["10.0.0.1", "10.0.0.2"]}
    lookups = []

    def resolver(host):
        lookups.append(host)
        if host not in answers:
            raise OSError("unknown host")
        return answers[host]

    endpoints = Endpoints("pods.test:8001, 10.9.9.9:9000", lookup_interval=30, resolver=resolver, clock=clock)
    assert endpoints.current == ["10.0.0.1:8001", "10.0.0.2:8001", "10.9.9.9:9000"]
    picked = {endpoints.pick() for _ in range(3)}
    assert picked == set(endpoints.current)
    # A failure backs the endpoint off and asks for a lookup, at most once a second.
    endpoints.failed("10.0.0.1:8001")
    assert all(endpoints.pick() != "10.0.0.1:8001" for _ in range(6))
    assert len(lookups) == 1
    answers["pods.test"] = ["10.0.0.3", "10.0.0.2"]  # the first pod came back at a new address
    clock.now = 1.0
    endpoints.pick()
    assert len(lookups) == 2 and endpoints.current == ["10.0.0.3:8001", "10.0.0.2:8001", "10.9.9.9:9000"]
    # No failure: the next lookup waits for the interval.
    clock.now = 20.0
    endpoints.pick()
    assert len(lookups) == 2
    # A failed lookup (every pod down, DNS away) keeps the endpoints there are.
    del answers["pods.test"]
    clock.now = 31.5
    endpoints.pick()
    assert len(lookups) == 3 and "10.0.0.3:8001" in endpoints.current
    # A rate limit's wait holds an endpoint without counting a failure.
    endpoints.hold("10.0.0.2:8001", 2.0)
    assert all(endpoints.pick() != "10.0.0.2:8001" for _ in range(6))
    clock.now = 33.6
    assert "10.0.0.2:8001" in {endpoints.pick() for _ in range(3)}
    # Every endpoint backing off: the one whose back-off ends first.
    for endpoint in endpoints.current:
        endpoints.failed(endpoint)
    endpoints.failed("10.9.9.9:9000")
    assert endpoints.pick() in ("10.0.0.3:8001", "10.0.0.2:8001")
    with pytest.raises(ValueError):
        Endpoints("no-port-here", resolver=resolver, clock=clock)


def ids_row(i):
    return [101] + [2000 + 31 * i + j for j in range(2 + i % 11)] + [102]


def single(address, ids):
    client = grpcclient.InferenceServerClient(address)
    tensor = grpcclient.InferInput("INPUT_IDS", [1, len(ids)], "INT64")
    tensor.set_data_from_numpy(np.array([ids], dtype=np.int64))
    return client.infer(MODEL, [tensor]).as_numpy("LOGITS")[0]


def test_a_row_the_server_refuses_is_isolated_from_its_batch(start_server):
    server = start_server(fp32_repository())
    address = f"127.0.0.1:{server.grpc_port}"
    client = BatchServerClient(address, MODEL, max_batch_size=8)
    rows = [ids_row(i) for i in range(20)]
    rows[13] = [101, 99_999_999, 102]  # past the vocabulary
    rows[5] = []  # nothing to send
    values, errors = client.infer(input_ids=rows)
    assert errors[5] == "row has no token ids"
    assert errors[13].startswith("INVALID_ARGUMENT")
    assert [i for i, e in enumerate(errors) if e] == [5, 13]
    for i in (0, 7, 12, 14, 19):  # rows of mixed lengths, padded and masked in one request
        assert np.allclose(values["LOGITS"][i], single(address, rows[i]), atol=1e-4, rtol=1e-4)
    assert values["LOGITS"][13] is None
    client.close()


def test_a_tokens_rate_limit_is_waited_out_as_the_server_asks(start_server, tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [
        {"name": "bulk", "token": "bulk-secret-0123456789", "groups": ["inference", "metadata"],
         "limits": {"requests_per_second": 4, "burst": 2}},
        {"name": "ops", "token": "ops-secret-0123456789", "groups": ["metrics"]}]}))
    server = start_server(fp32_repository(), ["--auth-tokens-file", str(tokens)])
    address = f"127.0.0.1:{server.grpc_port}"
    client = BatchServerClient(address, MODEL, token="bulk-secret-0123456789", priority=2, max_batch_size=4,
                               requests_in_flight=3, max_attempts=2)
    values, errors = client.infer(texts=[f"note {i}: stable overnight" for i in range(40)])
    # 10 requests at 4/s: refused on the way, every row served in the end.
    assert errors == [None] * 40 and client.retries > 0
    metrics = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5,
                           headers={"Authorization": "Bearer ops-secret-0123456789"}).text
    assert any(line.startswith("batchserver_rate_limited_total{") and 'principal="bulk"' in line
               and float(line.rsplit(" ", 1)[1]) > 0 for line in metrics.splitlines())
    with pytest.raises(BatchServerError, match="UNAUTHENTICATED"):
        BatchServerClient(address, MODEL, token="wrong-token-0123456789")
    with pytest.raises(BatchServerError, match="no_such_model|NOT_FOUND|not found"):
        BatchServerClient(address, "no_such_model", token="bulk-secret-0123456789")
    client.close()


def test_clients_of_addresses_that_left_the_names_are_closed(tmp_path):
    # One server on every loopback address: 127.0.0.1 and 127.0.0.2 are two endpoints of it.
    server = RunningServer(fp32_repository(), host="0.0.0.0", log_path=tmp_path / "server.log").wait_live()
    try:
        client = BatchServerClient(f"127.0.0.1:{server.grpc_port}", MODEL)
        assert client.infer(texts=["first"])[1] == [None]
        # The pod moved: the name now gives another address.
        client.endpoints = Endpoints(f"127.0.0.2:{server.grpc_port}")
        assert client.infer(texts=["second"])[1] == [None]
        assert list(client._clients) == [f"127.0.0.2:{server.grpc_port}"]
        client.close()
    finally:
        server.stop()
