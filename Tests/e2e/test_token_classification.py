"""Token classification (`task: token_classification` on transformer_encoder)
through the real server, and the de-identifier taking a model's spans.

No PHI or NER token-classification checkpoint ships inside any package of
the registry these machines read (docs/deidentification.md says what was
searched), so the path is checked with random-weight checkpoints of the real
layouts (`DistilBertForTokenClassification`, `BertForTokenClassification`):
per-token logits against the float64 NumPy reference (and against PyTorch's
own classes where `transformers` is installed), and the spans against the
same BIO merge computed here from the reference logits and Hugging Face's
tokenizer offsets."""

import importlib.util
import json
import pathlib
import shutil

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tokenizers import BertWordPieceTokenizer
from tritonclient.utils import InferenceServerException

from conftest import MODEL_REPOSITORY, RunningServer
from encoder_reference import Encoder

ROOT = pathlib.Path(__file__).resolve().parents[2]
VOCAB = MODEL_REPOSITORY / "minilm_embeddings" / "1" / "vocab.txt"
LABELS = ["O", "B-PATIENT", "I-PATIENT", "B-DATE", "I-DATE", "B-HOSPITAL", "I-HOSPITAL"]
TEXTS = [
    "Maria Lopez was admitted to Mercy General on 14 March 2024.",
    "Follow-up with Dr. Okafor; café visit noted — naïve résumé 東京 clinic.",
    "short",
]


def make_models_module():
    spec = importlib.util.spec_from_file_location("make_models", ROOT / "scripts" / "make_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def token_head(rng, hidden):
    # Weights of scale 1 give logits whose winners are far apart, so the
    # server's float32 and the float64 reference pick the same labels.
    return {"classifier.weight": rng.standard_normal((len(LABELS), hidden)).astype(np.float32),
            "classifier.bias": (rng.standard_normal(len(LABELS)) * 0.5).astype(np.float32)}


def write_distilbert_ner(version):
    mm = make_models_module()
    tensors, config = mm.random_distilbert(11, hidden=64, layers=2, heads=4, ffn=128, vocab=30522, positions=48)
    for name in ("pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"):
        del tensors[name]
    tensors.update(token_head(np.random.default_rng(12), 64))
    config["id2label"] = {str(i): label for i, label in enumerate(LABELS)}
    config["architectures"] = ["DistilBertForTokenClassification"]
    version.mkdir(parents=True)
    mm.write_safetensors(version / "model.safetensors", tensors)
    (version / "config.json").write_text(json.dumps(config))
    shutil.copyfile(VOCAB, version / "vocab.txt")


def write_bert_ner(version):
    """The real all-MiniLM-L6-v2 encoder (BERT) under BertForTokenClassification's names, with a random head."""
    from safetensors.numpy import load_file
    mm = make_models_module()
    source = MODEL_REPOSITORY / "minilm_embeddings" / "1"
    tensors = {f"bert.{k}": v for k, v in load_file(str(source / "model.safetensors")).items()
               if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    config = json.loads((source / "config.json").read_text())
    tensors.update(token_head(np.random.default_rng(13), config["hidden_size"]))
    config["id2label"] = {str(i): label for i, label in enumerate(LABELS)}
    config["label2id"] = {label: i for i, label in enumerate(LABELS)}
    config["architectures"] = ["BertForTokenClassification"]
    version.mkdir(parents=True)
    mm.write_safetensors(version / "model.safetensors", tensors)
    (version / "config.json").write_text(json.dumps(config))
    shutil.copyfile(VOCAB, version / "vocab.txt")


def ner_config(name, max_batch=8, extra=""):
    return f"""
name: "{name}"
backend: "transformer_encoder"
max_batch_size: {max_batch}
input [ {{ name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }} ]
output [
  {{ name: "ENTITIES" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "TOKEN_LOGITS" data_type: TYPE_FP32 dims: [ -1, {len(LABELS)} ] }}
]
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
parameters {{ key: "task" value: {{ string_value: "token_classification" }} }}
parameters {{ key: "precision" value: {{ string_value: "fp32" }} }}
{extra}"""


ENSEMBLE = """
name: "deid_with_ner"
platform: "ensemble"
max_batch_size: 8
input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]
output [
  { name: "DEIDENTIFIED_TEXT" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "ENTITIES" data_type: TYPE_STRING dims: [ 1 ] }
]
ensemble_scheduling {
  step [
    { model_name: "ner_distilbert" model_version: -1
      input_map { key: "TEXT" value: "TEXT" }
      output_map { key: "ENTITIES" value: "ner_spans" } },
    { model_name: "phi_deidentifier" model_version: -1
      input_map { key: "TEXT" value: "TEXT" }
      input_map { key: "NER_ENTITIES" value: "ner_spans" }
      output_map { key: "DEIDENTIFIED_TEXT" value: "DEIDENTIFIED_TEXT" }
      output_map { key: "ENTITIES" value: "ENTITIES" } }
  ]
}
"""


@pytest.fixture(scope="module")
def ner_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ner")
    repo = root / "repo"
    write_distilbert_ner(repo / "ner_distilbert" / "1")
    (repo / "ner_distilbert" / "config.pbtxt").write_text(ner_config("ner_distilbert"))
    write_bert_ner(repo / "ner_bert" / "1")
    (repo / "ner_bert" / "config.pbtxt").write_text(ner_config("ner_bert", extra=(
        'parameters { key: "max_batch_tokens" value: { string_value: "1024" } }')))
    # The shipped de-identifier with the optional model-spans input and one mapped label.
    deid = repo / "phi_deidentifier"
    (deid / "1").mkdir(parents=True)
    for f in (MODEL_REPOSITORY / "phi_deidentifier" / "1").iterdir():
        (deid / "1" / f.name).symlink_to(f)
    config = (MODEL_REPOSITORY / "phi_deidentifier" / "config.pbtxt").read_text().replace(
        'input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]',
        'input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] },\n'
        '        { name: "NER_ENTITIES" data_type: TYPE_STRING dims: [ 1 ] optional: true } ]')
    assert "NER_ENTITIES" in config
    (deid / "config.pbtxt").write_text(config + 'parameters { key: "ner_labels" value: { string_value: "CODENAME=PERSON" } }\n')
    (repo / "deid_with_ner" / "1").mkdir(parents=True)
    (repo / "deid_with_ner" / "config.pbtxt").write_text(ENSEMBLE)
    running = RunningServer(repo, log_path=root / "server.log").wait_live()
    for model in ("ner_distilbert", "ner_bert", "phi_deidentifier", "deid_with_ner"):
        assert requests.get(f"{running.base}/v2/models/{model}/ready", timeout=5).status_code == 200, running.read_log()
    running.repo = repo
    yield running
    assert running.stop() == 0, running.read_log()


def infer(server, model, texts, outputs=("ENTITIES", "TOKEN_LOGITS")):
    client = httpclient.InferenceServerClient(server.http_url)
    text = httpclient.InferInput("TEXT", [len(texts), 1], "BYTES")
    text.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    result = client.infer(model, [text], outputs=[httpclient.InferRequestedOutput(o) for o in outputs])
    return result


def reference_spans(logits, offsets, special):
    """The BIO merge, written from its definition: argmax label per token; B
    starts an entity, I of the same type extends it, O or another type ends it."""
    spans, current = [], None
    for row, (start, end), is_special in zip(logits, offsets, special):
        if is_special:
            continue
        p = np.exp(row - row.max())
        p /= p.sum()
        best = int(np.argmax(row))
        label = LABELS[best]
        if label == "O":
            if current: spans.append(current)
            current = None
            continue
        kind, typ = label.split("-", 1)
        if kind == "I" and current and current["entity_type"] == typ:
            current["end"] = end
            current["scores"].append(p[best])
        else:
            if current: spans.append(current)
            current = {"entity_type": typ, "start": start, "end": end, "scores": [p[best]]}
    if current: spans.append(current)
    return [{"entity_type": s["entity_type"], "start": s["start"], "end": s["end"], "score": float(np.mean(s["scores"]))} for s in spans]


@pytest.mark.parametrize("model", ["ner_distilbert", "ner_bert"])
def test_token_logits_and_spans_match_the_reference(ner_server, model):
    reference = Encoder(ner_server.repo / model / "1")
    tokenizer = BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    result = infer(ner_server, model, TEXTS)
    logits = result.as_numpy("TOKEN_LOGITS")
    entities = [json.loads(e[0]) for e in result.as_numpy("ENTITIES")]
    assert logits.shape[0] == len(TEXTS) and logits.shape[2] == len(LABELS)
    w = reference.w
    for index, text in enumerate(TEXTS):
        encoding = tokenizer.encode(text)
        ids = np.array(encoding.ids)
        want = reference.hidden(ids, np.ones_like(ids)) @ w["classifier.weight"].T + w["classifier.bias"]
        got = logits[index, :len(ids)]
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-3 * max(1.0, np.abs(want).max()))
        assert not logits[index, len(ids):].any(), "rows shorter than the longest are padded with zeros"
        special = [t in ("[CLS]", "[SEP]") for t in encoding.tokens]
        want_spans = reference_spans(want, encoding.offsets, special)
        assert [(s["entity_type"], s["start"], s["end"]) for s in entities[index]] == \
            [(s["entity_type"], s["start"], s["end"]) for s in want_spans], text
        for got_span, want_span in zip(entities[index], want_spans):
            assert abs(got_span["score"] - want_span["score"]) < 1e-3
            assert text[got_span["start"]:got_span["end"]].strip() == text[got_span["start"]:got_span["end"]]
    assert any(entities), "random heads label some tokens: the spans path ran"


def test_matches_pytorch_token_classification_classes(ner_server):
    """The same checkpoints through transformers' own classes, where installed (not in CI: no torch there)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizer = BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    for model, cls in (("ner_distilbert", transformers.DistilBertForTokenClassification),
                       ("ner_bert", transformers.BertForTokenClassification)):
        torch_model = cls.from_pretrained(str(ner_server.repo / model / "1")).eval()
        logits = infer(ner_server, model, TEXTS[:2], outputs=("TOKEN_LOGITS",)).as_numpy("TOKEN_LOGITS")
        for index, text in enumerate(TEXTS[:2]):
            ids = tokenizer.encode(text).ids
            with torch.inference_mode():
                want = torch_model(input_ids=torch.tensor([ids])).logits[0].numpy()
            np.testing.assert_allclose(logits[index, :len(ids)], want, rtol=0, atol=2e-3 * max(1.0, np.abs(want).max()))


def test_grpc_and_a_batch_of_many_agree_with_one_at_a_time(ner_server):
    texts = [f"Seen on day {i} by nurse Kowalski at St. Jude, note {i}." for i in range(12)]
    alone = [json.loads(infer(ner_server, "ner_distilbert", [t], outputs=("ENTITIES",)).as_numpy("ENTITIES")[0][0]) for t in texts]
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{ner_server.grpc_port}")
    text = grpcclient.InferInput("TEXT", [len(texts[:8]), 1], "BYTES")
    text.set_data_from_numpy(np.array([[t.encode()] for t in texts[:8]], dtype=np.object_))
    batched = client.infer("ner_distilbert", [text], outputs=[grpcclient.InferRequestedOutput("ENTITIES")]).as_numpy("ENTITIES")
    for got, want in zip(batched, alone[:8]):
        got = json.loads(got[0])
        assert [(s["entity_type"], s["start"], s["end"]) for s in got] == [(s["entity_type"], s["start"], s["end"]) for s in want]


def test_a_truncated_text_has_spans_only_in_what_the_model_read(ner_server):
    text = " ".join(["Kowalski"] * 200)   # 48 positions: most of it is cut
    result = infer(ner_server, "ner_distilbert", [text])
    spans = json.loads(result.as_numpy("ENTITIES")[0][0])
    kept = BertWordPieceTokenizer(str(VOCAB), lowercase=True).encode(text).offsets[1:47]
    assert all(s["end"] <= kept[-1][1] for s in spans)
    assert result.as_numpy("TOKEN_LOGITS").shape == (1, 48, len(LABELS))


def send_deid(server, text, ner):
    client = httpclient.InferenceServerClient(server.http_url)
    inputs = []
    for name, value in (("TEXT", text), ("NER_ENTITIES", ner)):
        tensor = httpclient.InferInput(name, [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[value.encode()]], dtype=np.object_))
        inputs.append(tensor)
    result = client.infer("phi_deidentifier", inputs)
    return result.as_numpy("DEIDENTIFIED_TEXT")[0][0].decode(), json.loads(result.as_numpy("ENTITIES")[0][0])


def test_deidentifier_applies_a_models_spans_with_the_rules(ner_server):
    text = "Codename Zorblax today; call 617-555-0123. Codename Quixby."
    start, qs = text.index("Zorblax"), text.index("Quixby")
    ner = json.dumps([{"entity_type": "PATIENT", "start": start, "end": start + 7, "score": 0.93},
                      {"entity_type": "CODENAME", "start": qs, "end": qs + 6, "score": 0.9},
                      {"entity_type": "PROFESSION", "start": 0, "end": 4, "score": 0.99}])
    cleaned, entities = send_deid(ner_server, text, ner)
    assert "Zorblax" not in cleaned and "Quixby" not in cleaned and "617-555-0123" not in cleaned
    assert cleaned == "Codename [NAME] today; call [PHONE]. Codename [NAME].", cleaned
    by_recognizer = {(e["entity_type"], e["recognizer"]) for e in entities}
    assert ("PERSON", "TokenClassificationRecognizer") in by_recognizer     # PATIENT and (configured) CODENAME
    assert ("PHONE_NUMBER", "PatternRecognizer") in by_recognizer
    assert sum(e["recognizer"] == "TokenClassificationRecognizer" for e in entities) == 2   # PROFESSION is not PHI: dropped
    # Without the model's spans the rules alone miss the made-up name.
    cleaned_alone, _ = send_deid(ner_server, text, "[]")
    assert cleaned_alone == "Codename Zorblax today; call [PHONE]. Codename Quixby.", cleaned_alone


@pytest.mark.parametrize("ner, expected", [
    ("not json", "input 'NER_ENTITIES' element 0"),
    ('[{"entity_type": "PER", "start": 0, "end": 999, "score": 0.9}]', "input 'NER_ENTITIES' element 0"),
    ('[{"entity_type": "PER", "start": 0}]', "end"),
])
def test_bad_model_spans_are_refused_naming_the_input(ner_server, ner, expected):
    with pytest.raises(InferenceServerException) as error:
        send_deid(ner_server, "Seen by Zorblax today.", ner)
    assert error.value.status() == "400" and expected in error.value.message()
    assert "Zorblax" not in error.value.message()
    assert send_deid(ner_server, "Seen by Dr. Chen.", "[]")[0] == "Seen by Dr. [NAME]."


def test_ensemble_runs_the_model_then_the_rules(ner_server):
    text = TEXTS[0]
    ner = infer(ner_server, "ner_distilbert", [text], outputs=("ENTITIES",)).as_numpy("ENTITIES")[0][0].decode()
    want_text, want_entities = send_deid(ner_server, text, ner)
    result = infer(ner_server, "deid_with_ner", [text], outputs=("DEIDENTIFIED_TEXT", "ENTITIES"))
    assert result.as_numpy("DEIDENTIFIED_TEXT")[0][0].decode() == want_text
    assert json.loads(result.as_numpy("ENTITIES")[0][0]) == want_entities
    assert "Maria Lopez" not in want_text


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.replace('"TOKEN_LOGITS" data_type: TYPE_FP32 dims: [ -1, 7 ]', '"TOKEN_LOGITS" data_type: TYPE_FP32 dims: [ -1, 5 ]'),
     "dims [ -1, 7 ]"),
    (lambda c: c.replace('name: "ENTITIES"', 'name: "LOGITS"'), "produces 'ENTITIES' and 'TOKEN_LOGITS', not 'LOGITS'"),
    (lambda c: c.replace('{ name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }',
                         '{ name: "INPUT_IDS" data_type: TYPE_INT64 dims: [ -1 ] }'), "output 'ENTITIES' needs input 'TEXT'"),
])
def test_misconfigured_token_classifiers_fail_to_load_saying_why(start_server, ner_server, tmp_path, edit, message):
    repo = tmp_path / "repo"
    (repo / "bad_ner").mkdir(parents=True)
    (repo / "bad_ner" / "1").symlink_to(ner_server.repo / "ner_distilbert" / "1")
    (repo / "bad_ner" / "config.pbtxt").write_text(edit(ner_config("bad_ner")))
    server = start_server(repo)
    index = requests.post(f"{server.base}/v2/repository/index", json={}, timeout=5).json()
    entry = next(e for e in index if e["name"] == "bad_ner")
    assert entry["state"] == "UNAVAILABLE" and message in entry["reason"], entry


def test_a_sequence_checkpoint_is_not_a_token_classifier(start_server, tmp_path):
    repo = tmp_path / "repo"
    (repo / "sst2_as_ner").mkdir(parents=True)
    (repo / "sst2_as_ner" / "1").symlink_to(MODEL_REPOSITORY / "distilbert_sst2" / "1")
    (repo / "sst2_as_ner" / "config.pbtxt").write_text(ner_config("sst2_as_ner"))
    server = start_server(repo)
    index = requests.post(f"{server.base}/v2/repository/index", json={}, timeout=5).json()
    entry = next(e for e in index if e["name"] == "sst2_as_ner")
    assert entry["state"] == "UNAVAILABLE" and "needs a token classification checkpoint" in entry["reason"], entry
