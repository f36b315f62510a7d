"""The encoder backend through the real server, against a float64 NumPy
reference reading the same safetensors, and the tokenizer against Hugging
Face `tokenizers` on varied strings."""

import json
import pathlib
import random
import subprocess

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tokenizers import BertWordPieceTokenizer
from tritonclient.utils import InferenceServerException

from conftest import BINARY, MODEL_REPOSITORY
from encoder_reference import Encoder

SST2 = MODEL_REPOSITORY / "distilbert_sst2" / "1"
MINILM = MODEL_REPOSITORY / "minilm_embeddings" / "1"
TOKENIZE = str(pathlib.Path(BINARY).with_name("batch-server-tokenize"))


@pytest.fixture(scope="module")
def client(server):
    with httpclient.InferenceServerClient(server.http_url) as c:
        yield c


@pytest.fixture(scope="module")
def sst2():
    return Encoder(SST2)


@pytest.fixture(scope="module")
def minilm():
    return Encoder(MINILM)


def ids_inputs(rows):
    """rows: list of id lists (ragged): padded with mask 0, as a Triton client sends them."""
    length = max(len(r) for r in rows)
    ids = np.zeros((len(rows), length), dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    tensors = []
    for name, value in (("INPUT_IDS", ids), ("ATTENTION_MASK", mask)):
        t = httpclient.InferInput(name, list(value.shape), "INT64")
        t.set_data_from_numpy(value)
        tensors.append(t)
    return tensors, ids, mask


def relative_error(got, want, floor=0.1):
    """The largest error relative to the output's scale, never to a scale below
    `floor`: a random-weight checkpoint's logits can be ~0.01 while its hidden
    states are of order 1, so fp32 rounding there is ~1e-6 absolute, 1e-4 relative."""
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / max(np.max(np.abs(want)), floor))


def random_rows(rng, lengths):
    return [[101] + list(rng.integers(1000, 30000, size=n - 2)) + [102] for n in lengths]


@pytest.mark.parametrize("lengths", [[1 + 2], [8, 37, 128, 5], [512], [300, 12]], ids=["3", "mixed", "512", "300+12"])
def test_distilbert_logits_match_reference(client, sst2, lengths):
    rng = np.random.default_rng(sum(lengths))
    rows = random_rows(rng, lengths)
    tensors, ids, mask = ids_inputs(rows)
    got = client.infer("distilbert_sst2", tensors).as_numpy("LOGITS")
    want = np.array([sst2.logits(ids[i], mask[i]) for i in range(len(rows))])
    assert got.shape == want.shape
    assert relative_error(got, want) <= 1e-4


def test_row_alone_equals_row_in_a_batch(client):
    rng = np.random.default_rng(7)
    rows = random_rows(rng, [20, 64, 9])
    batched = client.infer("distilbert_sst2", ids_inputs(rows)[0]).as_numpy("LOGITS")
    for i, row in enumerate(rows):
        alone = client.infer("distilbert_sst2", ids_inputs([row])[0]).as_numpy("LOGITS")
        assert relative_error(alone[0], batched[i].astype(np.float64)) <= 1e-5


def test_minilm_embeddings_match_reference_and_rank_paraphrases(client, minilm):
    tokenizer = BertWordPieceTokenizer(str(MINILM / "vocab.txt"), lowercase=True)
    sentences = ["The patient reports chest pain after exercise.",
                 "After physical exertion the patient has pain in the chest.",
                 "The invoice was paid on Tuesday."]
    text = httpclient.InferInput("TEXT", [3, 1], "BYTES")
    text.set_data_from_numpy(np.array([[s.encode()] for s in sentences], dtype=np.object_))
    got = client.infer("minilm_embeddings", [text]).as_numpy("EMBEDDING")
    for i, sentence in enumerate(sentences):
        ids = tokenizer.encode(sentence).ids
        want = minilm.embedding(np.array(ids), np.ones(len(ids)))
        assert relative_error(got[i], want) <= 1e-4
    assert abs(np.linalg.norm(got[0]) - 1) < 1e-5
    assert got[0] @ got[1] > got[0] @ got[2] + 0.2


def test_classification_extension(client):
    text = httpclient.InferInput("TEXT", [2, 1], "BYTES")
    text.set_data_from_numpy(np.array([[b"a fine film"], [b"dull"]], dtype=np.object_))
    logits = client.infer("distilbert_sst2", [text], outputs=[httpclient.InferRequestedOutput("LOGITS", binary_data=False)]).as_numpy("LOGITS")
    result = client.infer("distilbert_sst2", [text],
                          outputs=[httpclient.InferRequestedOutput("LOGITS", binary_data=False, class_count=2)])
    classes = result.as_numpy("LOGITS")
    assert classes.shape == (2, 2)
    for row in range(2):
        top = int(np.argmax(logits[row]))
        value, index, label = (classes[row][0].decode() if isinstance(classes[row][0], bytes) else classes[row][0]).split(":")
        assert int(index) == top
        assert abs(float(value) - logits[row][top]) < 1e-5
        assert label == ["NEGATIVE", "POSITIVE"][top]


def test_grpc_text_inference(server):
    c = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    text = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[b"hello world"]], dtype=np.object_))
    assert c.infer("minilm_embeddings", [text]).as_numpy("EMBEDDING").shape == (1, 384)
    c.close()


BAD = {
    "id outside the vocabulary": (lambda: ids_inputs([[101, 40000, 102]])[0], "INPUT_IDS", "outside the vocabulary"),
    "mask and ids of different shapes": (None, "ATTENTION_MASK", "has shape"),
    "longer than the positions": (lambda: ids_inputs([[101] * 513])[0], "INPUT_IDS", "exceeds the model's 512 positions"),
    "empty text": (None, "TEXT", "is empty"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_encoder_input_names_the_tensor(client, case):
    make, tensor, message = BAD[case]
    if case == "mask and ids of different shapes":
        ids = httpclient.InferInput("INPUT_IDS", [1, 4], "INT64")
        ids.set_data_from_numpy(np.array([[101, 2000, 2001, 102]], dtype=np.int64))
        mask = httpclient.InferInput("ATTENTION_MASK", [1, 3], "INT64")
        mask.set_data_from_numpy(np.ones((1, 3), dtype=np.int64))
        inputs = [ids, mask]
    elif case == "empty text":
        text = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[b""]], dtype=np.object_))
        inputs = [text]
    else:
        inputs = make()
    with pytest.raises(InferenceServerException) as info:
        client.infer("distilbert_sst2", inputs)
    assert info.value.status() == "400"
    assert tensor in info.value.message() and message in info.value.message()


def varied_strings(count):
    rng = random.Random(1234)
    pieces = ["Hello", "world", "naïve", "café", "Ünïcödé", "résumé", "東京", "北京大学", "日本語のテキスト", "한국어", "😀", "👩‍⚕️",
              "don't", "e-mail", "U.S.A.", "3.14159", "$100", "(parenthesis)", "[bracket]", "\"quoted\"", "hyphen-ated",
              "supercalifragilisticexpialidocious", "x" * 120, "\t", "\n", "\u00a0", "\u200b", "\u0007", "\ufeff", "ﬁ", "Ⅸ",
              "ß", "İstanbul", "ΑΘΗΝΑ", "Москва", "مرحبا", "שלום", "नमस्ते", "ไทย", "…", "—", "¿Qué?", "¡Olé!", "a\u0301",
              "MRN:12345", "BP 120/80", "O2 sat 97%", "q.i.d.", "pt.", "dx", "hx", "#hashtag", "@mention", "http://x.org/a?b=c"]
    strings = ["", " ", "   ", "a", "A.B.C", "\u0000", "x" * 101, "word " * 600]
    while len(strings) < count:
        strings.append(" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))))
    return strings


def test_tokenizer_matches_hugging_face():
    vocab = MINILM / "vocab.txt"
    reference = BertWordPieceTokenizer(str(vocab), lowercase=True)
    reference.enable_truncation(512)
    strings = varied_strings(1200)
    process = subprocess.run([TOKENIZE, str(vocab), "512"], input="\n".join(json.dumps(s) for s in strings) + "\n",
                             capture_output=True, text=True, check=True)
    ours = [json.loads(line) for line in process.stdout.splitlines()]
    assert len(ours) == len(strings)
    mismatches = [(s, o, reference.encode(s).ids) for s, o in zip(strings, ours) if o != reference.encode(s).ids]
    assert mismatches == [], mismatches[:5]


def tiny_checkpoint(directory, drop=None, reshape=None):
    """A small random DistilBERT written with the set-up script's own writer."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_models", pathlib.Path(__file__).resolve().parents[2] / "scripts" / "make_models.py")
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    tensors, config = make_models.random_distilbert(3, hidden=32, layers=2, heads=4, ffn=64, vocab=30522, positions=64)
    if drop:
        del tensors[drop]
    if reshape:
        tensors[reshape] = tensors[reshape][:-1]
    directory.mkdir(parents=True)
    make_models.write_safetensors(directory / "model.safetensors", tensors)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "vocab.txt").write_text((MINILM / "vocab.txt").read_text())


def test_checkpoint_with_missing_or_misshaped_tensor_fails_to_load(start_server, tmp_path):
    repo = tmp_path / "repo"
    config = (MODEL_REPOSITORY / "distilbert_sst2" / "config.pbtxt").read_text()
    for name, kwargs in (("good", {}), ("missing", {"drop": "distilbert.transformer.layer.1.ffn.lin2.bias"}),
                         ("misshaped", {"reshape": "distilbert.transformer.layer.0.attention.q_lin.weight"})):
        tiny_checkpoint(repo / name / "1", **kwargs)
        (repo / name / "config.pbtxt").write_text(config.replace('name: "distilbert_sst2"', f'name: "{name}"')
                                                  .replace('label_filename: "labels.txt"', ""))
    server = start_server(repo)
    rows = {m["name"]: m for m in __import__("requests").post(f"{server.base}/v2/repository/index", timeout=5).json()}
    assert rows["good"]["state"] == "READY"
    assert rows["missing"]["state"] == "UNAVAILABLE"
    assert "missing tensor 'distilbert.transformer.layer.1.ffn.lin2.bias'" in rows["missing"]["reason"]
    assert rows["misshaped"]["state"] == "UNAVAILABLE"
    assert "tensor 'distilbert.transformer.layer.0.attention.q_lin.weight' has shape [31,32], expected [32,32]" in rows["misshaped"]["reason"]
