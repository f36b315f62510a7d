"""Bad HTTP requests get 400/404 with a message naming the problem, and the
server keeps serving everyone else."""

import json
import struct

import numpy as np
import pytest
import requests

ROW = list(range(16))


def json_input(name="INPUT0", shape=(1, 16), datatype="INT32", data=None):
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": data if data is not None else ROW * shape[0]}


def post(server, path, body, headers=None):
    data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
    return requests.post(f"{server.base}{path}", data=data, headers=headers or {}, timeout=10)


@pytest.fixture(autouse=True)
def still_serving(server):
    """After each bad request, a good one from another client still succeeds."""
    yield
    body = {"inputs": [json_input("INPUT0"), json_input("INPUT1")]}
    response = post(server, "/v2/models/simple/infer", body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [2 * x for x in ROW]


def binary_request(declared_sizes, payload, header_length_delta=0):
    header = {
        "inputs": [
            {"name": n, "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": size}}
            for n, size in zip(("INPUT0", "INPUT1"), declared_sizes)
        ]
    }
    encoded = json.dumps(header).encode()
    return encoded + payload, {"Inference-Header-Content-Length": str(len(encoded) + header_length_delta)}


CASES = {
    "wrong datatype": (
        "/v2/models/simple/infer",
        {"inputs": [json_input("INPUT0", datatype="FP32", data=[0.5] * 16), json_input("INPUT1")]},
        None, 400, "data-type is 'FP32', but model 'simple' expects 'INT32'",
    ),
    "wrong shape": (
        "/v2/models/simple/infer",
        {"inputs": [json_input("INPUT0", shape=(1, 15), data=ROW[:15]), json_input("INPUT1")]},
        None, 400, "unexpected shape for input 'INPUT0'",
    ),
    "data count differs from shape": (
        "/v2/models/simple/infer",
        {"inputs": [json_input("INPUT0", data=ROW[:3]), json_input("INPUT1")]},
        None, 400, "input 'INPUT0' has 3 elements",
    ),
    "missing input": (
        "/v2/models/simple/infer", {"inputs": [json_input("INPUT0")]}, None, 400, "missing input 'INPUT1'",
    ),
    "unknown input": (
        "/v2/models/simple/infer",
        {"inputs": [json_input("INPUT0"), json_input("INPUT1"), json_input("INPUT2")]},
        None, 400, "unexpected inference input 'INPUT2'",
    ),
    "unknown output": (
        "/v2/models/simple/infer",
        {"inputs": [json_input("INPUT0"), json_input("INPUT1")], "outputs": [{"name": "OUTPUT9"}]},
        None, 400, "unexpected inference output 'OUTPUT9'",
    ),
    "unknown model": (
        "/v2/models/no_such_model/infer", {"inputs": [json_input()]}, None, 404, "Request for unknown model: 'no_such_model' is not found",
    ),
    "unknown version": (
        "/v2/models/simple/versions/9/infer", {"inputs": [json_input()]}, None, 404, "Request for unknown model: 'simple' version 9 is not found",
    ),
    "malformed JSON": (
        "/v2/models/simple/infer", b'{"inputs": [', None, 400, "malformed JSON",
    ),
    "JSON that is not an object": (
        "/v2/models/simple/infer", b"[1, 2]", None, 400, "must be a JSON object",
    ),
    "value out of range": (
        "/v2/models/simple_int8/infer",
        {"inputs": [json_input("INPUT0", datatype="INT8", data=[300] + ROW[1:]), json_input("INPUT1", datatype="INT8")]},
        None, 400, "element 0 is out of range",
    ),
    "negative dimension": (
        "/v2/models/simple/infer",
        {"inputs": [json_input("INPUT0", shape=(-1, 16), data=ROW), json_input("INPUT1")]},
        None, 400, "shape must hold non-negative integers",
    ),
    "overflowing shape": (
        "/v2/models/simple/infer",
        {"inputs": [json_input("INPUT0", shape=(2**40, 2**40), data=ROW), json_input("INPUT1")]},
        None, 400, "too many elements",
    ),
    # Found by the fuzzer: the shape's element count was reserved before the data was counted.
    "huge shape with JSON data": (
        "/v2/models/simple/infer",
        {"inputs": [json_input("INPUT0", shape=(2**40, 16), data=ROW), json_input("INPUT1")]},
        None, 400, "elements in 'data' but shape",
    ),
    "simple_string element that is not a number": (
        "/v2/models/simple_string/infer",
        {"inputs": [json_input("INPUT0", datatype="BYTES", data=["12"] * 15 + ["patient"]),
                    json_input("INPUT1", datatype="BYTES", data=["1"] * 16)]},
        None, 400, "element 15 of model 'simple_string' is not a decimal",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_request(server, case):
    path, body, headers, status, message = CASES[case]
    response = post(server, path, body, headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_binary_body_shorter_than_declared(server):
    body, headers = binary_request([64, 64], struct.pack("<16i", *ROW) + b"\0" * 10)
    response = post(server, "/v2/models/simple/infer", body, headers)
    assert response.status_code == 400
    assert "input 'INPUT1' declares binary_data_size 64 but only 10 bytes" in response.json()["error"]


def test_binary_body_longer_than_declared(server):
    body, headers = binary_request([64, 64], struct.pack("<16i", *ROW) * 2 + b"extra")
    response = post(server, "/v2/models/simple/infer", body, headers)
    assert response.status_code == 400
    assert "5 bytes of binary data beyond" in response.json()["error"]


def test_binary_size_that_does_not_match_shape(server):
    body, headers = binary_request([60, 68], struct.pack("<16i", *ROW) * 2)
    response = post(server, "/v2/models/simple/infer", body, headers)
    assert response.status_code == 400
    assert "input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60" in response.json()["error"]


def test_header_length_larger_than_body(server):
    body, headers = binary_request([64, 64], struct.pack("<16i", *ROW) * 2, header_length_delta=10_000)
    response = post(server, "/v2/models/simple/infer", body, headers)
    assert response.status_code == 400
    assert "Inference-Header-Content-Length" in response.json()["error"]


def test_huge_header_length(server):
    body, _ = binary_request([64, 64], struct.pack("<16i", *ROW) * 2)
    response = post(server, "/v2/models/simple/infer", body, {"Inference-Header-Content-Length": "99999999999"})
    assert response.status_code == 400
    assert "larger than the request body" in response.json()["error"]


def test_raw_binary_body_needs_single_input_model(server):
    response = post(server, "/v2/models/simple/infer", struct.pack("<16i", *ROW), {"Inference-Header-Content-Length": "0"})
    assert response.status_code == 400
    assert "exactly one input" in response.json()["error"]


def test_raw_binary_body_for_single_input_model(server):
    payload = b"".join(struct.pack("<I", len(w)) + w for w in (b"one", b"two"))
    response = post(server, "/v2/models/simple_identity/infer", payload, {"Inference-Header-Content-Length": "0"})
    # simple_identity is BYTES with a variable dim: its shape cannot come from raw bytes alone.
    assert response.status_code == 400
    assert "variable dims" in response.json()["error"]


def test_unknown_route(server):
    response = requests.get(f"{server.base}/v2/nothing/here", timeout=5)
    assert response.status_code == 404
    assert "no such route" in response.json()["error"]


def test_error_messages_never_echo_values(server):
    secret = "PATIENT-7731-SECRET"
    body = {"inputs": [json_input("INPUT0", datatype="BYTES", data=[secret] * 16),
                       json_input("INPUT1", datatype="BYTES", data=["1"] * 16)]}
    response = post(server, "/v2/models/simple_string/infer", body)
    assert response.status_code == 400
    assert secret not in response.text
    assert secret not in server.read_log()


def test_deeply_nested_json_is_refused(server):
    nested = "[" * 100_000 + "]" * 100_000
    body = '{"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": ' + nested + "}]}"
    response = post(server, "/v2/models/simple/infer", body.encode())
    assert response.status_code == 400
    assert "JSON" in response.json()["error"] or "nested" in response.json()["error"]
