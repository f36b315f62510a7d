"""Cross-encoders, sentence pairs, SPLADE and token states through the real
server: TEI's /rerank, /predict (pairs), /embed_sparse, /embed_all,
/similarity, /decode, /info and its reading options (prompt_name,
truncation_direction, normalize), Cohere's and vLLM's /v1 and /v2 rerank,
vLLM's /score and /pooling. Numbers are held to a float64 NumPy reference on
the same safetensors (and, where PyTorch is installed, to transformers and
sentence-transformers themselves); tokens to Hugging Face `tokenizers`;
clients are the real `cohere` and `huggingface_hub` ones."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import requests
from tokenizers import BertWordPieceTokenizer

from conftest import MODEL_REPOSITORY, SHIPPED_REPOSITORY, pin_fp32
from encoder_reference import Encoder

RERANKER = "minilm_reranker"
SPLADE = "splade_tiny"
MINILM = "minilm_embeddings"
QUERY = "How many people live in Berlin?"
PASSAGES = ["Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.",
            "Berlin is well known for its museums.",
            "The patient reports chest pain after exercise."]
LONG = "Paris is the capital and most populous city of France. " * 60   # ~660 tokens


@pytest.fixture(scope="module")
def references():
    return {name: Encoder(MODEL_REPOSITORY / name / "1") for name in (RERANKER, SPLADE, MINILM)}


def tokenizer(max_length=None, direction="right"):
    t = BertWordPieceTokenizer(str(MODEL_REPOSITORY / MINILM / "1" / "vocab.txt"), lowercase=True)
    if max_length:
        # The wrapper's own enable_truncation takes no direction; its Tokenizer's does.
        t._tokenizer.enable_truncation(max_length, strategy="longest_first", direction=direction)
    return t


def post(server, path, body):
    return requests.post(f"{server.base}{path}", json=body, timeout=60)


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def relative(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 0.1))


def pair_logit(reference, query, passage, max_length=512, direction="right"):
    encoding = tokenizer(max_length, direction).encode(query, passage)
    ids = np.array(encoding.ids)
    return reference.logits(ids, np.ones(len(ids)), np.array(encoding.type_ids))[0]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# MARK: cross-encoder scores


def test_tei_rerank_scores_equal_the_reference_sorted_with_texts(server, references):
    texts = PASSAGES + [LONG]
    ranks = ok(post(server, "/rerank", {"query": QUERY, "texts": texts, "return_text": True}))
    assert [r["score"] for r in ranks] == sorted((r["score"] for r in ranks), reverse=True)
    assert sorted(r["index"] for r in ranks) == list(range(len(texts)))
    for rank in ranks:
        assert rank["text"] == texts[rank["index"]]
        want = sigmoid(pair_logit(references[RERANKER], QUERY, texts[rank["index"]]))
        assert abs(rank["score"] - want) <= 1e-4, (rank, want)
    raw = ok(post(server, "/rerank", {"query": QUERY, "texts": texts, "raw_scores": True}))
    assert all("text" not in r for r in raw)
    for rank in raw:
        assert relative(rank["score"], pair_logit(references[RERANKER], QUERY, texts[rank["index"]])) <= 1e-4


def test_pairs_are_cut_longest_first_from_the_asked_end(server, references):
    """A pair past 512 tokens: the long passage loses tokens, the query keeps
    its own; `truncation_direction: left` cuts the passage's start."""
    for direction in ("right", "left"):
        ranks = ok(post(server, "/rerank", {"query": QUERY, "texts": [LONG], "raw_scores": True,
                                            "truncation_direction": direction.capitalize()}))
        want = pair_logit(references[RERANKER], QUERY, LONG, direction=direction)
        assert relative(ranks[0]["score"], want) <= 1e-4, direction
    refused = post(server, "/rerank", {"query": QUERY, "texts": [LONG], "truncate": False})
    assert refused.status_code == 422 and refused.json()["error_type"] == "Validation", refused.text
    assert "at most 512 tokens" in refused.json()["error"] and "Paris" not in refused.json()["error"]


def test_kserve_pairs_and_token_type_ids_give_the_same_logits(server, references):
    import tritonclient.http as httpclient
    with httpclient.InferenceServerClient(server.http_url) as client:
        text = httpclient.InferInput("TEXT", [2, 1], "BYTES")
        text.set_data_from_numpy(np.array([[QUERY.encode()]] * 2, dtype=np.object_))
        pair = httpclient.InferInput("TEXT_PAIR", [2, 1], "BYTES")
        pair.set_data_from_numpy(np.array([[p.encode()] for p in PASSAGES[:2]], dtype=np.object_))
        by_text = client.infer(RERANKER, [text, pair]).as_numpy("LOGITS")
        encodings = [tokenizer(512).encode(QUERY, p) for p in PASSAGES[:2]]
        length = max(len(e.ids) for e in encodings)
        arrays = {name: np.zeros((2, length), np.int64) for name in ("INPUT_IDS", "ATTENTION_MASK", "TOKEN_TYPE_IDS")}
        for i, e in enumerate(encodings):
            arrays["INPUT_IDS"][i, : len(e.ids)] = e.ids
            arrays["ATTENTION_MASK"][i, : len(e.ids)] = 1
            arrays["TOKEN_TYPE_IDS"][i, : len(e.ids)] = e.type_ids
        tensors = []
        for name, value in arrays.items():
            t = httpclient.InferInput(name, list(value.shape), "INT64")
            t.set_data_from_numpy(value)
            tensors.append(t)
        by_ids = client.infer(RERANKER, tensors).as_numpy("LOGITS")
    for i, passage in enumerate(PASSAGES[:2]):
        want = pair_logit(references[RERANKER], QUERY, passage)
        assert relative(by_text[i, 0], want) <= 1e-4
        assert relative(by_ids[i, 0], want) <= 1e-4
    # A token type the checkpoint does not have is refused, naming the input.
    arrays["TOKEN_TYPE_IDS"][0, 0] = 2
    bad = httpclient.InferInput("TOKEN_TYPE_IDS", list(arrays["TOKEN_TYPE_IDS"].shape), "INT64")
    bad.set_data_from_numpy(arrays["TOKEN_TYPE_IDS"])
    response = requests.post(f"{server.base}/v2/models/{RERANKER}/infer", timeout=30, json={"inputs": [
        {"name": n, "shape": list(v.shape), "datatype": "INT64", "data": v.ravel().tolist()} for n, v in arrays.items()]})
    assert response.status_code == 400 and "TOKEN_TYPE_IDS" in response.json()["error"], response.text


def test_tei_predict_takes_pairs_and_batches_of_texts_and_pairs(server, references):
    one = ok(post(server, "/predict", {"inputs": [QUERY, PASSAGES[0]], "model": RERANKER}))
    assert [p["label"] for p in one] == ["LABEL_0"]
    assert abs(one[0]["score"] - sigmoid(pair_logit(references[RERANKER], QUERY, PASSAGES[0]))) <= 1e-4
    batch = ok(post(server, "/predict", {"inputs": [[QUERY, PASSAGES[1]], [PASSAGES[2]], [QUERY, PASSAGES[0]]],
                                         "model": RERANKER, "raw_scores": True}))
    assert len(batch) == 3 and all(len(b) == 1 for b in batch)
    single = tokenizer().encode(PASSAGES[2])
    want = [pair_logit(references[RERANKER], QUERY, PASSAGES[1]),
            references[RERANKER].logits(np.array(single.ids), np.ones(len(single.ids)))[0],
            pair_logit(references[RERANKER], QUERY, PASSAGES[0])]
    for got, expected in zip(batch, want):
        assert relative(got[0]["score"], expected) <= 1e-4
    # Without a model, /predict picks the one classifier (distilbert_sst2), not the re-ranker.
    assert {p["label"] for p in ok(post(server, "/predict", {"inputs": "fine"}))} == {"NEGATIVE", "POSITIVE"}


def test_cohere_and_vllm_rerank_shapes(server, references):
    want = [sigmoid(pair_logit(references[RERANKER], QUERY, p)) for p in PASSAGES]
    order = list(np.argsort(want)[::-1])
    for path in ("/v1/rerank", "/v2/rerank", "/rerank"):
        body = ok(post(server, path, {"model": RERANKER, "query": QUERY, "documents": PASSAGES, "top_n": 2}))
        assert set(body) == {"id", "model", "usage", "results"}, body
        assert body["model"] == RERANKER and body["usage"]["total_tokens"] > 0
        assert [r["index"] for r in body["results"]] == order[:2]
        for r in body["results"]:
            assert r["document"] == {"text": PASSAGES[r["index"]]}
            assert abs(r["relevance_score"] - want[r["index"]]) <= 1e-4
    # Cohere v1's document objects and return_documents: false.
    body = ok(post(server, "/v1/rerank", {"query": QUERY, "documents": [{"text": p} for p in PASSAGES], "return_documents": False}))
    assert len(body["results"]) == 3 and all("document" not in r for r in body["results"])


def test_cohere_client_reranks_against_the_server(server):
    cohere = pytest.importorskip("cohere")
    v2 = cohere.ClientV2(base_url=server.base, api_key="unused", timeout=30)
    response = v2.rerank(model=RERANKER, query=QUERY, documents=PASSAGES, top_n=3)
    assert [r.index for r in response.results] == [r.index for r in sorted(response.results, key=lambda r: -r.relevance_score)]
    assert {r.index for r in response.results} == {0, 1, 2}
    v1 = cohere.Client(base_url=server.base, api_key="unused", timeout=30)
    again = v1.rerank(model=RERANKER, query=QUERY, documents=PASSAGES, top_n=1)
    assert again.results[0].index == response.results[0].index
    assert abs(again.results[0].relevance_score - response.results[0].relevance_score) < 1e-6


def test_vllm_score_pairs_one_to_many_and_many_to_many(server, references):
    want = [sigmoid(pair_logit(references[RERANKER], QUERY, p)) for p in PASSAGES]
    for fields in ({"queries": QUERY, "documents": PASSAGES}, {"text_1": [QUERY] * 3, "text_2": PASSAGES},
                   {"data_1": QUERY, "data_2": PASSAGES}):
        body = ok(post(server, "/score", {"model": RERANKER, **fields}))
        assert body["object"] == "list" and body["id"].startswith("score-") and body["model"] == RERANKER
        assert [d["index"] for d in body["data"]] == [0, 1, 2] and all(d["object"] == "score" for d in body["data"])
        assert max(abs(d["score"] - w) for d, w in zip(body["data"], want)) <= 1e-4
    raw = ok(post(server, "/v1/score", {"text_1": QUERY, "text_2": PASSAGES[0], "use_activation": False}))
    assert relative(raw["data"][0]["score"], pair_logit(references[RERANKER], QUERY, PASSAGES[0])) <= 1e-4
    bad = post(server, "/score", {"text_1": ["a", "b"], "text_2": ["c", "d", "e"]})
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "Input lengths must be either 1:1, 1:N or N:N"


# MARK: SPLADE and token states


def test_tei_embed_sparse_equals_the_reference(server, references):
    texts = [QUERY, "chest pain after exercise"]
    got = ok(post(server, "/embed_sparse", {"inputs": texts}))
    for row, text in zip(got, texts):
        indices = [v["index"] for v in row]
        assert indices == sorted(indices) and all(v["value"] > 0 for v in row)
        ids = tokenizer().encode(text).ids
        want = references[SPLADE].splade(np.array(ids), np.ones(len(ids)))
        dense = np.zeros_like(want)
        dense[indices] = [v["value"] for v in row]
        assert set(indices) == set(np.nonzero(want > 1e-6)[0]) | (set(indices) & set(np.nonzero(want)[0]))
        assert np.max(np.abs(dense - want)) <= 1e-4, np.max(np.abs(dense - want))
    # The expansion of a real SPLADE: the query's own words weigh most.
    vocab = {v: k for k, v in tokenizer().get_vocab().items()}
    top = [vocab[v["index"]] for v in sorted(got[0], key=lambda v: -v["value"])[:4]]
    assert "berlin" in top, top


def test_tei_embed_all_gives_every_tokens_state(server, references):
    texts = ["hello world", "The patient reports chest pain after exercise."]
    got = ok(post(server, "/embed_all", {"inputs": texts, "model": MINILM}))
    for states, text in zip(got, texts):
        ids = tokenizer().encode(text).ids
        want = references[MINILM].hidden(np.array(ids), np.ones(len(ids)))
        assert relative(states, want) <= 1e-4


def test_kserve_token_states_of_more_rows_than_a_batch_are_padded_alike(server, references):
    """40 texts, past max_batch_size 32: the request runs as two batches whose
    token states are padded to different lengths; the answer is one tensor
    padded to the longest row, zero past each row's end."""
    import tritonclient.http as httpclient
    texts = [("word " * (1 + i % 7)).strip() for i in range(39)] + ["a much longer text " * 6]
    with httpclient.InferenceServerClient(server.http_url) as client:
        text = httpclient.InferInput("TEXT", [40, 1], "BYTES")
        text.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
        states = client.infer(MINILM, [text], outputs=[httpclient.InferRequestedOutput("LAST_HIDDEN_STATE")]).as_numpy("LAST_HIDDEN_STATE")
    lengths = [len(tokenizer().encode(t).ids) for t in texts]
    assert states.shape == (40, max(lengths), 384)
    for i in (0, 31, 32, 39):
        ids = tokenizer().encode(texts[i]).ids
        assert relative(states[i, : lengths[i]], references[MINILM].hidden(np.array(ids), np.ones(len(ids)))) <= 1e-4
        assert not states[i, lengths[i]:].any()


def test_vllm_pooling_token_states_and_pooled(server, references):
    body = ok(post(server, "/pooling", {"model": MINILM, "input": ["hello world"]}))
    assert body["object"] == "list" and body["data"][0]["object"] == "pooling"
    ids = tokenizer().encode("hello world").ids
    assert relative(body["data"][0]["data"], references[MINILM].hidden(np.array(ids), np.ones(len(ids)))) <= 1e-4
    pooled = ok(post(server, "/pooling", {"model": MINILM, "input": "hello world", "task": "embed"}))
    assert relative(pooled["data"][0]["data"], references[MINILM].embedding(np.array(ids), np.ones(len(ids)))) <= 1e-4


# MARK: TEI reading options on MiniLM


@pytest.fixture(scope="module")
def prompted(tmp_path_factory):
    """A repository with MiniLM and a sentence-transformers config that names prompts."""
    from conftest import RunningServer
    root = tmp_path_factory.mktemp("prompted")
    model = root / MINILM
    (model / "1").mkdir(parents=True)
    for entry in (SHIPPED_REPOSITORY / MINILM / "1").iterdir():
        (model / "1" / entry.name).symlink_to(entry)
    (model / "1" / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None}))
    (model / "config.pbtxt").write_text(pin_fp32((SHIPPED_REPOSITORY / MINILM / "config.pbtxt").read_text()))
    running = RunningServer(root, log_path=root / "server.log").wait_live()
    yield running
    running.stop()


def test_prompts_truncation_and_normalize_equal_the_reference(prompted, references):
    minilm = references[MINILM]

    def reference(text, max_length=256, direction="right", normalize=True):
        ids = tokenizer(max_length, direction).encode(text).ids
        vector = minilm.mean_pooled(np.array(ids), np.ones(len(ids)))
        return vector / np.linalg.norm(vector) if normalize else vector

    text = "chest pain after exercise"
    got = ok(post(prompted, "/embed", {"inputs": text, "prompt_name": "query"}))[0]
    assert relative(got, reference("query: " + text)) <= 1e-4
    assert relative(got, reference(text)) > 1e-2   # the prompt changed the vector
    raw = ok(post(prompted, "/embed", {"inputs": text, "normalize": False}))[0]
    assert relative(raw, reference(text, normalize=False)) <= 1e-4 and abs(np.linalg.norm(raw) - 1) > 1e-2
    # sentence_bert_config.json's max_seq_length (256) is where texts are cut.
    for direction in ("right", "left"):
        cut = ok(post(prompted, "/embed", {"inputs": LONG, "truncation_direction": direction}))[0]
        assert relative(cut, reference(LONG, direction=direction)) <= 1e-4, direction
    refused = post(prompted, "/embed", {"inputs": LONG, "truncate": False})
    assert refused.status_code == 422 and "at most 256 tokens" in refused.json()["error"], refused.text
    unknown = post(prompted, "/embed", {"inputs": text, "prompt_name": "nope"})
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"].endswith("Available prompts: [passage, query]")
    tokens = ok(post(prompted, "/tokenize", {"inputs": text, "prompt_name": "passage"}))[0]
    assert [t["text"] for t in tokens[1:4]] == ["passage", ":", "chest"]
    similarity = ok(post(prompted, "/similarity", {"inputs": {"source_sentence": text, "sentences": ["pain in the chest", "invoice paid"]},
                                                   "parameters": {"prompt_name": "query"}}))
    source = reference("query: " + text)
    for value, other in zip(similarity, ["pain in the chest", "invoice paid"]):
        vector = reference("query: " + other)
        assert abs(value - float(source @ vector / np.linalg.norm(source) / np.linalg.norm(vector))) <= 1e-4
    assert similarity[0] > similarity[1]


def test_huggingface_hub_client_against_the_tei_routes(prompted, references):
    from huggingface_hub import InferenceClient
    client = InferenceClient(timeout=30)
    text = "chest pain after exercise"
    got = client.feature_extraction(text, model=f"{prompted.base}/embed", prompt_name="query", normalize=True)
    ids = tokenizer(256).encode("query: " + text).ids
    want = references[MINILM].embedding(np.array(ids), np.ones(len(ids)))
    assert got.shape == (1, 384) and relative(got[0], want) <= 1e-4
    scores = client.sentence_similarity(text, other_sentences=["pain in the chest", "invoice paid"], model=f"{prompted.base}/similarity")
    assert len(scores) == 2 and scores[0] > scores[1]
    # The server's own address: TEI's POST / answers as the one model's task (here /embed).
    plain = client.feature_extraction(text, model=prompted.base)
    assert plain.shape == (1, 384) and relative(plain[0], ok(post(prompted, "/embed", {"inputs": text}))[0]) <= 1e-6


def test_decode_and_info(server):
    encoding = tokenizer().encode("Don't the patient's notes, e.g. BP 120/80, look fine?")
    for skip in (True, False):
        got = ok(post(server, "/decode", {"ids": [encoding.ids, encoding.ids[:5]], "skip_special_tokens": skip, "model": MINILM}))
        assert got == [tokenizer().decode(encoding.ids, skip_special_tokens=skip),
                       tokenizer().decode(encoding.ids[:5], skip_special_tokens=skip)]
    bad = post(server, "/decode", {"ids": [101, 999999], "model": MINILM})
    assert bad.status_code == 422 and bad.json()["error_type"] == "Tokenizer", bad.text
    assert "999999" not in bad.json()["error"] and "position 1" in bad.json()["error"]
    info = requests.get(f"{server.base}/info", params={"model": RERANKER}, timeout=30).json()
    assert info["model_id"] == RERANKER and info["model_type"] == {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    assert info["max_input_length"] == 512 and info["model_dtype"] == "float32"
    sparse = requests.get(f"{server.base}/info", params={"model": SPLADE}, timeout=30).json()
    assert sparse["model_type"] == {"embedding": {"pooling": "splade"}}
    assert requests.get(f"{server.base}/info", params={"model": MINILM}, timeout=30).json()["max_input_length"] == 256


def test_errors_in_each_apis_shape(server):
    wrong = post(server, "/rerank", {"query": "q", "texts": ["a"], "model": MINILM})
    assert wrong.status_code == 424 and wrong.json() == {
        "error": "model 'minilm_embeddings' is a 'embedding' model, not a re-ranker model", "error_type": "Backend"}
    empty = post(server, "/rerank", {"query": "q", "texts": []})
    assert empty.status_code == 400 and empty.json()["error_type"] == "Empty"
    sparse = post(server, "/embed_sparse", {"inputs": "x", "model": MINILM})
    assert sparse.status_code == 424 and "SPLADE" in sparse.json()["error"]
    states = post(server, "/embed_all", {"inputs": "x", "model": "distilbert_sst2"})
    assert states.status_code == 424
    direction = post(server, "/embed", {"inputs": "x", "truncation_direction": "middle"})
    assert direction.status_code == 422 and direction.json()["error_type"] == "Validation"
    cohere = post(server, "/v2/rerank", {"query": "q", "documents": "not a list"})
    assert cohere.status_code == 400 and set(cohere.json()["error"]) == {"message", "type", "param", "code"}
    assert cohere.json()["error"]["param"] == "documents"
    # The server still serves everyone after the bad requests.
    assert ok(post(server, "/rerank", {"query": "q", "texts": ["a"]}))[0]["index"] == 0


def test_reranks_count_in_the_models_statistics(server):
    def count():
        stats = requests.get(f"{server.base}/v2/models/{RERANKER}/stats", timeout=30).json()
        return stats["model_stats"][0]["inference_count"]
    before = count()
    ok(post(server, "/rerank", {"query": QUERY, "texts": PASSAGES}))
    ok(post(server, "/v2/rerank", {"query": QUERY, "documents": PASSAGES[:2]}))
    assert count() == before + 5


# MARK: the reference implementations themselves (where PyTorch is installed)


def test_reference_implementations_agree_with_the_server(server):
    """transformers' BertForSequenceClassification and BertForMaskedLM and
    sentence-transformers' CrossEncoder on the same files. PyTorch is not in
    the test requirements (a 4 GB install); bench/tools/install-baseline.sh
    installs it."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    directory = str(MODEL_REPOSITORY / RERANKER / "1")
    cross = sentence_transformers.CrossEncoder(directory, device="cpu", activation_fn=torch.nn.Identity())
    texts = PASSAGES + [LONG]
    want = cross.predict([(QUERY, t) for t in texts])
    ranks = ok(post(server, "/rerank", {"query": QUERY, "texts": texts, "raw_scores": True}))
    got = [r["score"] for r in sorted(ranks, key=lambda r: r["index"])]
    assert relative(got, want) <= 1e-4
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(MODEL_REPOSITORY / SPLADE / "1")).eval()
    encoded = transformers.BertTokenizerFast(str(MODEL_REPOSITORY / SPLADE / "1" / "vocab.txt"))([QUERY], return_tensors="pt")
    with torch.no_grad():
        vector = torch.log1p(torch.relu(model(**encoded).logits)).amax(1)[0].numpy()
    row = ok(post(server, "/embed_sparse", {"inputs": QUERY}))[0]
    dense = np.zeros_like(vector)
    dense[[v["index"] for v in row]] = [v["value"] for v in row]
    assert np.max(np.abs(dense - vector)) <= 1e-4
