"""KServe v2 HTTP/REST against the real server, through tritonclient.http."""

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype


@pytest.fixture(scope="module")
def client(server):
    with httpclient.InferenceServerClient(server.http_url) as c:
        yield c


def test_server_metadata_health_and_readiness(client):
    metadata = client.get_server_metadata()
    assert metadata["name"] == "triton"
    assert metadata["version"]
    assert {"binary_tensor_data", "model_configuration", "statistics"} <= set(metadata["extensions"])
    assert client.is_server_live()
    assert client.is_server_ready()
    for model in ("simple", "simple_int8", "simple_string", "simple_identity"):
        assert client.is_model_ready(model)
        assert client.is_model_ready(model, "1")
    assert not client.is_model_ready("no_such_model")
    assert not client.is_model_ready("simple", "7")


def test_model_metadata(client):
    metadata = client.get_model_metadata("simple")
    assert metadata["name"] == "simple"
    assert metadata["versions"] == ["1"]
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        ("INPUT0", "INT32", [-1, 16]),
        ("INPUT1", "INT32", [-1, 16]),
    ]
    assert [t["name"] for t in metadata["outputs"]] == ["OUTPUT0", "OUTPUT1"]
    assert client.get_model_metadata("simple", "1")["versions"] == ["1"]
    identity = client.get_model_metadata("simple_identity")
    assert identity["inputs"] == [{"name": "INPUT0", "datatype": "BYTES", "shape": [-1, -1]}]
    assert client.get_model_metadata("simple_string")["inputs"][0]["datatype"] == "BYTES"


def test_model_config(client):
    config = client.get_model_config("simple")
    assert config["name"] == "simple"
    assert config["max_batch_size"] == 8
    assert config["input"][0] == {
        "name": "INPUT0", "data_type": "TYPE_INT32", "dims": [16], "format": "FORMAT_NONE",
        "optional": False, "allow_ragged_batch": False, "is_shape_tensor": False,
    }
    assert [o["name"] for o in config["output"]] == ["OUTPUT0", "OUTPUT1"]
    assert config["instance_group"][0]["count"] == 1
    assert client.get_model_config("simple_string", "1")["input"][0]["data_type"] == "TYPE_STRING"


def make_inputs(model, batch, binary):
    rng = np.random.default_rng(batch * 7 + len(model))
    if model == "simple_int8":
        a = rng.integers(-128, 128, size=(batch, 16), dtype=np.int8)
        b = rng.integers(-128, 128, size=(batch, 16), dtype=np.int8)
    else:
        a = rng.integers(-1000, 1000, size=(batch, 16), dtype=np.int32)
        b = rng.integers(-1000, 1000, size=(batch, 16), dtype=np.int32)
    if model == "simple_string":
        a = np.array([str(x).encode() for x in a.flatten()], dtype=np.object_).reshape(batch, 16)
        b = np.array([str(x).encode() for x in b.flatten()], dtype=np.object_).reshape(batch, 16)
    tensors = []
    for name, value in (("INPUT0", a), ("INPUT1", b)):
        tensor = httpclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value, binary_data=binary)
        tensors.append(tensor)
    return a, b, tensors


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("model", ["simple", "simple_int8", "simple_string"])
def test_add_sub_models(client, model, batch, binary):
    a, b, inputs = make_inputs(model, batch, binary)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("OUTPUT0", "OUTPUT1")]
    result = client.infer(model, inputs, outputs=outputs, request_id=f"{model}-{batch}")
    assert result.get_response()["id"] == f"{model}-{batch}"
    assert result.get_response()["model_version"] == "1"
    sum_, diff = result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1")
    assert sum_.shape == (batch, 16) and diff.shape == (batch, 16)
    if model == "simple_string":
        x = a.astype(np.int64) if a.dtype != np.object_ else np.array([int(v) for v in a.flatten()]).reshape(a.shape)
        y = np.array([int(v) for v in b.flatten()]).reshape(b.shape)
        as_int = lambda t: np.array([int(v.decode() if isinstance(v, bytes) else v) for v in t.flatten()]).reshape(t.shape)
        np.testing.assert_array_equal(as_int(sum_), x + y)
        np.testing.assert_array_equal(as_int(diff), x - y)
    else:
        assert sum_.dtype == a.dtype
        # Integer models wrap on overflow, as the framework models do.
        np.testing.assert_array_equal(sum_, (a.astype(np.int64) + b).astype(a.dtype))
        np.testing.assert_array_equal(diff, (a.astype(np.int64) - b).astype(a.dtype))


def test_outputs_default_to_binary_when_not_listed(client):
    _, _, inputs = make_inputs("simple", 2, True)
    result = client.infer("simple", inputs)
    assert result.get_output("OUTPUT0")["parameters"]["binary_data_size"] == 2 * 16 * 4


def test_only_requested_outputs_are_returned(client):
    a, b, inputs = make_inputs("simple", 1, False)
    result = client.infer("simple", inputs, outputs=[httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["OUTPUT1"]
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_simple_identity(client, batch, binary):
    words = [b"alpha", b"", b"\xce\xb1\xce\xb2", b"x" * 300]
    value = np.array([[words[(i + j) % 4] for j in range(3)] for i in range(batch)], dtype=np.object_)
    tensor = httpclient.InferInput("INPUT0", list(value.shape), "BYTES")
    tensor.set_data_from_numpy(value, binary_data=binary)
    result = client.infer("simple_identity", [tensor],
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)])
    out = result.as_numpy("OUTPUT0")
    assert out.shape == value.shape
    normalize = lambda v: v if isinstance(v, bytes) else v.encode()
    assert [normalize(v) for v in out.flatten()] == list(value.flatten())


def test_batched_rows_equal_rows_run_alone(client):
    a, b, inputs = make_inputs("simple", 8, True)
    batched = client.infer("simple", inputs).as_numpy("OUTPUT0")
    for row in range(8):
        single = []
        for name, value in (("INPUT0", a[row:row + 1]), ("INPUT1", b[row:row + 1])):
            t = httpclient.InferInput(name, [1, 16], "INT32")
            t.set_data_from_numpy(value)
            single.append(t)
        alone = client.infer("simple", single).as_numpy("OUTPUT0")
        assert alone.tobytes() == batched[row:row + 1].tobytes()


def test_statistics_count_inferences(client):
    before = client.get_inference_statistics("simple")["model_stats"][0]
    _, _, inputs = make_inputs("simple", 4, True)
    client.infer("simple", inputs)
    after = client.get_inference_statistics("simple")["model_stats"][0]
    assert after["name"] == "simple" and after["version"] == "1"
    assert after["inference_count"] == before["inference_count"] + 4
    assert after["execution_count"] == before["execution_count"] + 1
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    assert after["last_inference"] > 0
    sizes = {s["batch_size"]: s["compute_infer"]["count"] for s in after["batch_stats"]}
    assert sizes.get(4, 0) >= 1
    everything = client.get_inference_statistics()["model_stats"]
    assert {s["name"] for s in everything} == {"simple", "simple_int8", "simple_string", "simple_identity",
                                               "distilbert_sst2", "minilm_embeddings", "minilm_reranker", "splade_tiny"} | SEQUENCE_AND_DECOUPLED


SEQUENCE_AND_DECOUPLED = {"simple_sequence", "simple_dyna_sequence", "simple_string_dyna_sequence", "repeat_int32",
                          "custom_identity_int32", "sst2_softmax", "sst2_text_classifier",
                          # and de-identification (docs/deidentification.md)
                          "phi_deidentifier", "deid_then_classify"}


def test_repository_index(client):
    index = client.get_model_repository_index()
    assert {(m["name"], m["version"], m["state"]) for m in index} == {
        ("simple", "1", "READY"), ("simple_int8", "1", "READY"),
        ("simple_string", "1", "READY"), ("simple_identity", "1", "READY"),
        ("distilbert_sst2", "1", "READY"), ("minilm_embeddings", "1", "READY"),
        ("minilm_reranker", "1", "READY"), ("splade_tiny", "1", "READY"),
    } | {(name, "1", "READY") for name in SEQUENCE_AND_DECOUPLED}


def test_unknown_model_raises_with_status(client):
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("no_such_model")
    assert info.value.status() == "404"
    assert "no_such_model" in info.value.message()
