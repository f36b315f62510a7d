"""The OpenAI (/v1/embeddings, /v1/models) and text-embeddings-inference
(/embed, /predict, /tokenize) routes: answers equal to the KServe route's,
the official openai client end to end, each API's error shapes, batching with
KServe traffic, and access control."""

import base64
import concurrent.futures
import json
import threading

import numpy as np
import openai
import pytest
import requests
import tritonclient.http as httpclient
from tokenizers import BertWordPieceTokenizer

from conftest import MODEL_REPOSITORY

MINILM = "minilm_embeddings"
SST2 = "distilbert_sst2"
VOCAB = MODEL_REPOSITORY / MINILM / "1" / "vocab.txt"
TEXTS = ["The patient reports chest pain after exercise.",
         "After physical exertion the patient has pain in the chest.",
         "The invoice was paid on Tuesday."]
LONG = "word " * 600  # 602 tokens with [CLS]/[SEP]: past the 512 positions


@pytest.fixture(scope="module")
def hf():
    return BertWordPieceTokenizer(str(VOCAB), lowercase=True)


@pytest.fixture(scope="module")
def triton(server):
    with httpclient.InferenceServerClient(server.http_url) as c:
        yield c


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0, timeout=30) as c:
        yield c


def text_input(texts):
    tensor = httpclient.InferInput("TEXT", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    return tensor


def kserve(triton, model, output, texts):
    return triton.infer(model, [text_input(texts)]).as_numpy(output)


def post(server, path, body=None, data=None, headers=None):
    return requests.post(f"{server.base}{path}", json=body, data=data, headers=headers, timeout=30)


def close(got, want, tolerance=1e-5):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.max(np.abs(got - want)) <= tolerance, np.max(np.abs(got - want))


def assert_openai_error(response, status, param=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"
    if param is not None:
        assert body["error"]["param"] == param, body
    return body["error"]


def assert_tei_error(response, status, error_type):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["error_type"] == error_type, body
    return body["error"]


# MARK: OpenAI /v1/embeddings


def test_openai_client_embeddings_equal_kserve(client, triton, hf):
    result = client.embeddings.create(model=MINILM, input=TEXTS)
    want = kserve(triton, MINILM, "EMBEDDING", TEXTS)
    assert result.model == MINILM
    assert [d.index for d in result.data] == [0, 1, 2]
    for row, item in zip(want, result.data):
        assert len(item.embedding) == 384
        close(item.embedding, row)
    tokens = sum(len(hf.encode(t).ids) for t in TEXTS)
    assert result.usage.prompt_tokens == tokens
    assert result.usage.total_tokens == tokens


def test_openai_float_and_base64_formats_and_response_shape(server, triton):
    want = kserve(triton, MINILM, "EMBEDDING", [TEXTS[0]])[0]
    floats = post(server, "/v1/embeddings", {"model": MINILM, "input": TEXTS[0], "encoding_format": "float"})
    assert floats.status_code == 200, floats.text
    body = floats.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list" and body["model"] == MINILM
    assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}
    assert len(body["data"]) == 1
    assert body["data"][0].keys() == {"object", "index", "embedding"}
    assert body["data"][0]["object"] == "embedding" and body["data"][0]["index"] == 0
    assert all(isinstance(v, float) for v in body["data"][0]["embedding"])
    close(body["data"][0]["embedding"], want)

    # No encoding_format is float.
    default = post(server, "/v1/embeddings", {"model": MINILM, "input": TEXTS[0]}).json()
    assert isinstance(default["data"][0]["embedding"], list)
    close(default["data"][0]["embedding"], want)

    encoded = post(server, "/v1/embeddings", {"model": MINILM, "input": TEXTS[0], "encoding_format": "base64"})
    assert encoded.status_code == 200, encoded.text
    packed = encoded.json()["data"][0]["embedding"]
    assert isinstance(packed, str)
    decoded = np.frombuffer(base64.b64decode(packed), dtype="<f4")
    assert decoded.shape == (384,)
    close(decoded, body["data"][0]["embedding"], 1e-7)

    bad = post(server, "/v1/embeddings", {"model": MINILM, "input": "x", "encoding_format": "int8"})
    assert_openai_error(bad, 400, "encoding_format")


def test_openai_single_string_and_token_ids(client, hf):
    text_vector = np.array(client.embeddings.create(model=MINILM, input=TEXTS[1]).data[0].embedding)
    assert text_vector.shape == (384,)
    ids = hf.encode(TEXTS[1]).ids
    one = client.embeddings.create(model=MINILM, input=ids)
    assert len(one.data) == 1
    close(one.data[0].embedding, text_vector)
    assert one.usage.prompt_tokens == len(ids)
    rows = [hf.encode(t).ids for t in TEXTS]
    several = client.embeddings.create(model=MINILM, input=rows, encoding_format="float")
    assert [d.index for d in several.data] == [0, 1, 2]
    close(several.data[1].embedding, text_vector)
    assert several.usage.prompt_tokens == sum(map(len, rows))


def test_openai_more_inputs_than_max_batch_size_keep_their_order(client, triton):
    texts = [f"row {i} of forty" for i in range(40)]  # max_batch_size is 32
    result = client.embeddings.create(model=MINILM, input=texts)
    assert [d.index for d in result.data] == list(range(40))
    want = np.concatenate([kserve(triton, MINILM, "EMBEDDING", texts[:32]), kserve(triton, MINILM, "EMBEDDING", texts[32:])])
    close([d.embedding for d in result.data], want)


def test_openai_models_list(client, server):
    ids = [m.id for m in client.models.list()]
    assert MINILM in ids and SST2 in ids
    assert ids == sorted(set(ids))
    ready = {m["name"] for m in requests.post(f"{server.base}/v2/repository/index", json={"ready": True}, timeout=5).json()
             if m.get("state", "READY") == "READY"}
    assert set(ids) == ready
    raw = requests.get(f"{server.base}/v1/models", timeout=5).json()
    assert raw["object"] == "list"
    assert all(m["object"] == "model" and isinstance(m["created"], int) and m["owned_by"] for m in raw["data"])


def test_openai_errors(client, server):
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="no_such_model", input="hello")
    assert info.value.status_code == 404
    assert info.value.body["code"] == "model_not_found"
    assert info.value.code == "model_not_found"
    error = assert_openai_error(post(server, "/v1/embeddings", {"model": "no_such_model", "input": "hello"}), 404, "model")
    assert error["code"] == "model_not_found"

    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MINILM, input=[])
    assert_openai_error(post(server, "/v1/embeddings", {"model": MINILM, "input": []}), 400, "input")

    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MINILM, input="hello", dimensions=100)
    assert "dimensions" in info.value.message
    assert_openai_error(post(server, "/v1/embeddings", {"model": MINILM, "input": "hi", "dimensions": 100}), 400, "dimensions")
    # The model's own width is allowed.
    assert len(client.embeddings.create(model=MINILM, input="hello", dimensions=384).data[0].embedding) == 384

    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=SST2, input="hello")
    assert "classification" in info.value.message
    assert_openai_error(post(server, "/v1/embeddings", {"model": SST2, "input": "hello"}), 400)

    assert_openai_error(post(server, "/v1/embeddings", {"input": "hello"}), 400, "model")
    assert_openai_error(post(server, "/v1/embeddings", {"model": MINILM, "input": ["ok", ""]}), 400, "input")


# MARK: text-embeddings-inference


def test_tei_embed(server, triton, hf):
    want = kserve(triton, MINILM, "EMBEDDING", TEXTS)
    single = post(server, "/embed", {"inputs": TEXTS[0]})
    assert single.status_code == 200, single.text
    vectors = np.array(single.json())
    assert vectors.shape == (1, 384)
    assert abs(np.linalg.norm(vectors[0]) - 1) < 1e-5
    close(vectors[0], want[0])

    several = np.array(post(server, "/embed", {"inputs": TEXTS}).json())
    close(several, want)

    raw = post(server, "/embed", {"inputs": TEXTS, "normalize": False})
    assert raw.status_code == 200, raw.text
    assert np.array(raw.json()).shape == (3, 384)

    ids = post(server, "/embed", {"inputs": [hf.encode(t).ids for t in TEXTS]})
    assert ids.status_code == 200, ids.text
    close(ids.json(), want)
    one_row = post(server, "/embed", {"inputs": hf.encode(TEXTS[2]).ids}).json()
    close(one_row, want[2:3])

    named = post(server, "/embed", {"inputs": "x", "model": MINILM})
    assert named.status_code == 200
    assert_tei_error(post(server, "/embed", {"inputs": "x", "normalize": "yes"}), 422, "Validation")


def test_tei_predict(server, triton):
    single = post(server, "/predict", {"inputs": "a fine film"})
    assert single.status_code == 200, single.text
    predictions = single.json()
    assert isinstance(predictions, list) and len(predictions) == 2
    assert {p["label"] for p in predictions} == {"NEGATIVE", "POSITIVE"}
    assert all(set(p) == {"score", "label"} for p in predictions)
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1) < 1e-5
    # A one-element list is one input too.
    assert post(server, "/predict", {"inputs": ["a fine film"]}).json() == predictions

    logits = kserve(triton, SST2, "LOGITS", ["a fine film", "dull"])
    softmax = np.exp(logits[0] - logits[0].max())
    softmax /= softmax.sum()
    close([{p["label"]: p["score"] for p in predictions}[label] for label in ("NEGATIVE", "POSITIVE")], softmax)

    batch = post(server, "/predict", {"inputs": [["a fine film"], ["dull"]]})
    assert batch.status_code == 200, batch.text
    rows = batch.json()
    assert len(rows) == 2 and all(isinstance(r, list) and len(r) == 2 for r in rows)
    # A row in a batch may differ from the row alone in the last float bits.
    assert [p["label"] for p in rows[0]] == [p["label"] for p in predictions]
    close([p["score"] for p in rows[0]], scores)

    raw = post(server, "/predict", {"inputs": [["a fine film"], ["dull"]], "raw_scores": True})
    assert raw.status_code == 200, raw.text
    for row, want in zip(raw.json(), logits):
        scores = [p["score"] for p in row]
        assert scores == sorted(scores, reverse=True)
        close([{p["label"]: p["score"] for p in row}[label] for label in ("NEGATIVE", "POSITIVE")], want)

    # A sentence pair needs a model with a pair input (TEXT_PAIR): sst2 has none.
    message = assert_tei_error(post(server, "/predict", {"inputs": ["a", "b"]}), 422, "Validation")
    assert "pair" in message
    assert_tei_error(post(server, "/predict", {"inputs": [["a", "b", "c"]]}), 422, "Validation")
    assert_tei_error(post(server, "/predict", {"inputs": []}), 400, "Empty")
    # /predict refuses an embedding model, /embed a classification one: TEI's 424 Backend.
    assert_tei_error(post(server, "/predict", {"inputs": "x", "model": MINILM}), 424, "Backend")
    assert_tei_error(post(server, "/embed", {"inputs": "x", "model": SST2}), 424, "Backend")


TOKENIZE_TEXTS = ["Hello, world!", "Café naïve résumé Ünïcödé", "東京 北京大学 and 日本語", "MiXeD CaSe WORDS",
                  "multiple    spaces\tand\nnewlines", "don't (stop) [now]... e-mail U.S.A. $100 3.14",
                  "supercalifragilisticexpialidocious", "İstanbul Москва ΑΘΗΝΑ ß", "emoji 😀 here"]


def test_tei_tokenize_matches_hugging_face(server, hf):
    response = post(server, "/tokenize", {"inputs": TOKENIZE_TEXTS, "model": MINILM})
    assert response.status_code == 200, response.text
    rows = response.json()
    assert len(rows) == len(TOKENIZE_TEXTS)
    for text, tokens in zip(TOKENIZE_TEXTS, rows):
        reference = hf.encode(text)
        assert [t["id"] for t in tokens] == reference.ids, text
        specials = [bool(m) for m in reference.special_tokens_mask]
        assert [t["special"] for t in tokens] == specials, text
        for token, (start, stop), special in zip(tokens, reference.offsets, specials):
            assert set(token) == {"id", "text", "special", "start", "stop"}
            if special:
                assert (token["start"], token["stop"]) == (None, None), (text, token)
                assert token["text"] in ("[CLS]", "[SEP]")
            else:
                assert (token["start"], token["stop"]) == (start, stop), (text, token, (start, stop))
                assert token["text"] == text[start:stop], (text, token)

    plain = post(server, "/tokenize", {"inputs": TOKENIZE_TEXTS[0], "model": MINILM, "add_special_tokens": False})
    assert plain.status_code == 200, plain.text
    (tokens,) = plain.json()
    assert [t["id"] for t in tokens] == hf.encode(TOKENIZE_TEXTS[0], add_special_tokens=False).ids
    assert not any(t["special"] for t in tokens)

    # Several ready models have a task: /tokenize must be told which.
    message = assert_tei_error(post(server, "/tokenize", {"inputs": "hello"}), 422, "Validation")
    assert MINILM in message and SST2 in message
    assert_tei_error(post(server, "/tokenize", {"inputs": [[101, 102]], "model": MINILM}), 422, "Validation")


def test_tei_errors(server):
    assert_tei_error(post(server, "/embed", {"inputs": []}), 400, "Empty")
    assert_tei_error(post(server, "/embed", {"inputs": ["a", ""]}), 400, "Empty")
    # TEI 1.9 truncates unless told not to (--auto-truncate's default).
    assert_tei_error(post(server, "/embed", {"inputs": LONG, "truncate": False}), 422, "Validation")
    for truncate in (True, None):
        truncated = post(server, "/embed", {"inputs": LONG, "truncate": truncate})
        assert truncated.status_code == 200, truncated.text
        assert np.array(truncated.json()).shape == (1, 384)
    # Token ids past the model's 256 (sentence-transformers' max_seq_length), likewise.
    ids = [101] + [2773] * 600 + [102]
    message = assert_tei_error(post(server, "/embed", {"inputs": ids, "truncate": False}), 422, "Validation")
    assert message == "`inputs` must have less than 256 tokens. Given: 602"
    assert post(server, "/embed", {"inputs": ids}).status_code == 200
    assert_tei_error(post(server, "/embed", {"inputs": "x", "model": "no_such_model"}), 404, "Validation")
    # OpenAI refuses a long text too (it never truncates).
    assert_openai_error(post(server, "/v1/embeddings", {"model": MINILM, "input": LONG}), 400)


def test_bad_json_bodies_keep_the_server_serving(server):
    for path in ("/embed", "/predict", "/tokenize"):
        for data in (b"{not json", b"[1, 2]", b"", b"\xff\xfe"):
            response = post(server, path, data=data, headers={"Content-Type": "application/json"})
            assert response.status_code in (400, 422), (path, data, response.status_code, response.text)
            body = response.json()
            assert set(body) == {"error", "error_type"}, (path, data, body)
    bad = post(server, "/v1/embeddings", data=b"{not json", headers={"Content-Type": "application/json"})
    assert_openai_error(bad, 400)
    assert post(server, "/embed", {"inputs": "still serving"}).status_code == 200
    assert requests.get(f"{server.base}/v2/health/ready", timeout=5).status_code == 200


# MARK: batching with KServe traffic


def stats(server, model):
    response = requests.get(f"{server.base}/v2/models/{model}/stats", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["model_stats"][0]


def test_routes_batch_with_kserve_traffic(server, triton):
    sentences = [f"sentence number {i} about {'cats' if i % 2 else 'invoices'}" for i in range(24)]
    reference = kserve(triton, MINILM, "EMBEDDING", sentences)
    before = stats(server, MINILM)
    start = threading.Barrier(len(sentences))

    def one(i):
        text = sentences[i]
        start.wait(timeout=30)
        if i % 3 == 0:
            with openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0, timeout=30) as c:
                return c.embeddings.create(model=MINILM, input=[text]).data[0].embedding
        if i % 3 == 1:
            response = post(server, "/embed", {"inputs": text})
            assert response.status_code == 200, response.text
            return response.json()[0]
        with httpclient.InferenceServerClient(server.http_url) as c:
            return c.infer(MINILM, [text_input([text])]).as_numpy("EMBEDDING")[0]

    with concurrent.futures.ThreadPoolExecutor(len(sentences)) as pool:
        results = list(pool.map(one, range(len(sentences))))
    for got, want in zip(results, reference):
        close(got, want)
    after = stats(server, MINILM)
    rows = int(after["inference_count"]) - int(before["inference_count"])
    executions = int(after["execution_count"]) - int(before["execution_count"])
    assert rows == len(sentences)
    # One row a request: fewer executions than requests means requests of
    # different routes shared batches.
    assert executions < len(sentences), (executions, after["batch_stats"])


# MARK: access control

INFERENCE = "inference-token-0123456789abcdef"
METADATA = "metadata-token-0123456789abcdef"


def test_access_control(start_server, tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"name": "a", "token": INFERENCE, "groups": ["inference"]},
                                             {"name": "b", "token": METADATA, "groups": ["metadata"]}]}))
    secured = start_server(extra_args=["--auth-tokens-file", str(tokens)])

    def openai_client(key):
        return openai.OpenAI(base_url=f"{secured.base}/v1", api_key=key, max_retries=0, timeout=30)

    with openai_client(INFERENCE) as c:
        assert len(c.embeddings.create(model=MINILM, input="hello").data[0].embedding) == 384
    with openai_client(METADATA) as c:
        with pytest.raises(openai.PermissionDeniedError) as info:
            c.embeddings.create(model=MINILM, input="hello")
        assert info.value.status_code == 403
        # /v1/models is metadata.
        assert MINILM in [m.id for m in c.models.list()]
    with openai_client("not-a-valid-token-at-all") as c:
        with pytest.raises(openai.AuthenticationError) as info:
            c.embeddings.create(model=MINILM, input="hello")
        assert info.value.code == "invalid_api_key"
    with openai_client(INFERENCE) as c:
        # A valid key, but no Authorization header sent.
        with pytest.raises(openai.AuthenticationError):
            c.embeddings.create(model=MINILM, input="hello", extra_headers={"Authorization": openai.Omit()})
    assert_openai_error(post(secured, "/v1/embeddings", {"model": MINILM, "input": "hi"}), 401)

    assert_tei_error(post(secured, "/embed", {"inputs": "hello"}), 401, "Validation")
    assert_tei_error(post(secured, "/embed", {"inputs": "hello"}, headers={"Authorization": f"Bearer {METADATA}"}),
                     403, "Validation")
    ok = post(secured, "/embed", {"inputs": "hello"}, headers={"Authorization": f"Bearer {INFERENCE}"})
    assert ok.status_code == 200, ok.text
    assert post(secured, "/tokenize", {"inputs": "hello", "model": MINILM}).status_code == 401
    assert post(secured, "/predict", {"inputs": "hello"}).status_code == 401
    # The rerank, sparse and vLLM routes are inference too; /info is metadata.
    for path, body in (("/rerank", {"query": "q", "texts": ["a"]}), ("/v2/rerank", {"query": "q", "documents": ["a"]}),
                       ("/score", {"text_1": "q", "text_2": "a"}), ("/embed_sparse", {"inputs": "a"}),
                       ("/embed_all", {"inputs": "a", "model": MINILM}), ("/decode", {"ids": [101], "model": MINILM})):
        assert post(secured, path, body).status_code == 401, path
        assert post(secured, path, body, headers={"Authorization": f"Bearer {METADATA}"}).status_code == 403, path
        assert post(secured, path, body, headers={"Authorization": f"Bearer {INFERENCE}"}).status_code == 200, path
    info = requests.get(f"{secured.base}/info", params={"model": MINILM}, headers={"Authorization": f"Bearer {METADATA}"}, timeout=10)
    assert info.status_code == 200 and info.json()["model_id"] == MINILM
    # TEI's gRPC methods check the same tokens.
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{secured.grpc_port}") as channel:
        decode = channel.unary_unary("/tei.v1.Tokenize/Decode", request_serializer=bytes, response_deserializer=bytes)
        request = b"\x0a\x01\x65"   # DecodeRequest{ids: [101]}
        with pytest.raises(grpc.RpcError) as refused:
            decode(request, metadata=(("model", MINILM),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert decode(request, metadata=(("model", MINILM), ("authorization", f"Bearer {INFERENCE}"))) == b"\x0a\x05[CLS]"


def test_unknown_v1_route_answers_in_openai_shape(server):
    response = requests.get(f"{server.base}/v1/embeddings", timeout=10)
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "no such route" in error["message"]



def test_an_onnx_bert_export_serves_embeddings_from_token_ids(start_server, tmp_path):
    """input_ids / attention_mask / token_type_ids in, token states out: the
    route sends zero segment ids and mean-pools the states over real tokens."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    table = np.random.default_rng(3).standard_normal((50, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["states"]),
         helper.make_node("Cast", ["token_type_ids"], ["types"], to=TensorProto.FLOAT),
         helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
         helper.make_node("Unsqueeze", ["types", "axis"], ["types3"]),
         helper.make_node("Unsqueeze", ["maskf", "axis"], ["mask3"]),
         helper.make_node("Mul", ["types3", "mask3"], ["zero"]),
         helper.make_node("Add", ["states", "zero"], ["last_hidden_state"])],
        "bert_like",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", 4])],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([2], dtype=np.int64), "axis")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (tmp_path / "repo" / "bert_like" / "1").mkdir(parents=True)
    onnx.save(model, str(tmp_path / "repo" / "bert_like" / "1" / "model.onnx"))
    (tmp_path / "repo" / "bert_like" / "config.pbtxt").write_text(
        'platform: "onnxruntime_onnx"\nparameters { key: "task" value { string_value: "embedding" } }\n')
    running = start_server(tmp_path / "repo")
    rows = [[1, 2, 3], [4, 5]]
    client = openai.OpenAI(base_url=f"{running.base}/v1", api_key="unused")
    got = [d.embedding for d in client.embeddings.create(model="bert_like", input=rows).data]
    for row, vector in zip(rows, got):
        mean = table[row].mean(axis=0)
        assert np.allclose(vector, mean / np.linalg.norm(mean), atol=1e-6)
    assert np.allclose(requests.post(f"{running.base}/embed", json={"inputs": rows[1], "normalize": False}, timeout=10).json()[0],
                       table[rows[1]].mean(axis=0), atol=1e-6)
