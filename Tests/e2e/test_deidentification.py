"""PHI de-identification through the real server: the phi_deidentifier model
over tritonclient HTTP and gRPC, the deid_then_classify ensemble, redaction in
front of text models (KServe, OpenAI and TEI routes), keyed pseudonyms and
date shifts, re-identification only for its access group, bad input, the bulk
client, and a canary run: identifiers sent through every route appear in no
byte the server wrote."""

import json
import os
import pathlib
import shutil
import subprocess
import uuid

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import BINARY, MODEL_REPOSITORY, RunningServer

CLIENT = str(pathlib.Path(BINARY).with_name("batch-server-client"))
DEID = MODEL_REPOSITORY / "phi_deidentifier"
NOTE = ("Pt Maria Lopez (MRN: 4471234), DOB 03/14/1950, seen by Dr. Amelia Chen on 2024-03-14. "
        "Call 617-555-0123 or email maria.lopez@example.org. Lives at 1200 W Oak Street, Springfield, IL 62704.")
IDENTIFIERS = ["Maria Lopez", "4471234", "03/14/1950", "Amelia Chen", "2024-03-14", "617-555-0123",
               "maria.lopez@example.org", "1200 W Oak Street", "Springfield", "62704"]
TOKENS = {"tokens": [
    {"name": "clinician", "token": "tok-clinician-0123456789", "groups": ["inference", "metadata", "health"]},
    {"name": "privacy-office", "token": "tok-privacy-office-0123456789", "groups": ["inference", "metadata", "reidentify"]},
]}


def linked_variant(repo, name, source, extra="", config_edit=lambda c: c):
    """`source`'s files under a new name (symbolic links), its config edited."""
    target = repo / name
    (target / "1").mkdir(parents=True)
    for entry in (MODEL_REPOSITORY / source).iterdir():
        if entry.name not in ("config.pbtxt", "1"):
            (target / entry.name).symlink_to(entry)
    for entry in (MODEL_REPOSITORY / source / "1").iterdir():
        (target / "1" / entry.name).symlink_to(entry)
    config = (MODEL_REPOSITORY / source / "config.pbtxt").read_text().replace(f'name: "{source}"', f'name: "{name}"')
    (target / "config.pbtxt").write_text(config_edit(config) + extra)
    return target


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("deid") / "repo"
    repo.mkdir()
    for name in ("phi_deidentifier", "distilbert_sst2", "minilm_embeddings", "deid_then_classify"):
        (repo / name).symlink_to(MODEL_REPOSITORY / name)
    redaction = 'parameters { key: "phi_redaction" value: { string_value: "phi_deidentifier" } }\n'
    linked_variant(repo, "sst2_redacted", "distilbert_sst2", redaction)
    linked_variant(repo, "minilm_redacted", "minilm_embeddings", redaction)
    # An ensemble whose step asks for redaction: refused, never run unredacted.
    (repo / "redacted_step" / "1").mkdir(parents=True)
    (repo / "redacted_step" / "config.pbtxt").write_text(
        (MODEL_REPOSITORY / "sst2_text_classifier" / "config.pbtxt").read_text()
        .replace('name: "sst2_text_classifier"', 'name: "redacted_step"').replace('model_name: "distilbert_sst2"', 'model_name: "sst2_redacted"')
        .replace('label_filename: "labels.txt"', ""))
    (repo / "sst2_softmax").symlink_to(MODEL_REPOSITORY / "sst2_softmax")
    # A second de-identifier with a key of its own.
    other = linked_variant(repo, "phi_deidentifier_b", "phi_deidentifier",
                           config_edit=lambda c: c.replace('string_value: "deid.key"', 'string_value: "other.key"'))
    key = other / "1" / "other.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    return repo


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    log = tmp_path_factory.mktemp("deid-server") / "server.log"
    running = RunningServer(repo, ["--log-verbose", "1", "--log-format", "json", "--audit-log", "true"], log_path=log).wait_live()
    yield running
    assert running.stop() == 0, running.read_log()[-3000:]


def deidentify_http(server, texts, model="phi_deidentifier", parameters=None):
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("TEXT", [len(texts), 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
        result = client.infer(model, [tensor], parameters=parameters)
    return ([t.decode() for t in result.as_numpy("DEIDENTIFIED_TEXT").reshape(-1)],
            [json.loads(e) for e in result.as_numpy("ENTITIES").reshape(-1)])


def deidentify_grpc(server, texts, model="phi_deidentifier", parameters=None):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    tensor = grpcclient.InferInput("TEXT", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    result = client.infer(model, [tensor], parameters=parameters)
    return ([t.decode() for t in result.as_numpy("DEIDENTIFIED_TEXT").reshape(-1)],
            [json.loads(e) for e in result.as_numpy("ENTITIES").reshape(-1)])


@pytest.mark.parametrize("call", [deidentify_http, deidentify_grpc], ids=["http", "grpc"])
def test_every_identifier_of_the_note_is_removed(server, call):
    texts, entities = call(server, [NOTE, "No identifiers in this sentence."])
    for identifier in IDENTIFIERS:
        assert identifier not in texts[0], (identifier, texts[0])
    assert "[NAME]" in texts[0] and "[MRN]" in texts[0] and "[DATE]" in texts[0] and "[PHONE]" in texts[0]
    assert texts[1] == "No identifiers in this sentence." and entities[1] == []
    found = {NOTE[e["start"]:e["end"]]: e["entity_type"] for e in entities[0]}
    assert found["Maria Lopez"] == "PERSON" and found["4471234"] == "MEDICAL_RECORD_NUMBER"
    assert found["617-555-0123"] == "PHONE_NUMBER" and found["62704"] == "ZIP_CODE"
    for e in entities[0]:
        # Where each replacement lies in the new text.
        assert texts[0][e["new_start"]:e["new_end"]].startswith("[")


def test_http_and_grpc_agree_and_a_batch_equals_single_requests(server):
    notes = [NOTE, "Dr. Okafor saw Mr. Reyes on March 3rd, 2023.", "Fax 555-987-6543 to Lakeside"]
    batched = deidentify_http(server, notes)
    assert deidentify_grpc(server, notes) == batched
    for i, note in enumerate(notes):
        single = deidentify_http(server, [note])
        assert single[0][0] == batched[0][i] and single[1][0] == batched[1][i]


def test_the_ensemble_classifies_the_deidentified_text(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[NOTE.encode()]], dtype=np.object_))
        result = client.infer("deid_then_classify", [tensor])
        cleaned = result.as_numpy("DEIDENTIFIED_TEXT")[0][0].decode()
        direct = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        direct.set_data_from_numpy(np.array([[cleaned.encode()]], dtype=np.object_))
        expected = client.infer("distilbert_sst2", [direct]).as_numpy("LOGITS")
    assert "Maria Lopez" not in cleaned
    assert np.allclose(result.as_numpy("LOGITS"), expected, atol=1e-5)
    # A caller cannot weaken the ensemble's de-identifier with request parameters.
    with httpclient.InferenceServerClient(server.http_url) as client:
        weakened = client.infer("deid_then_classify", [tensor], parameters={
            "operators": json.dumps({"DEFAULT": {"type": "keep"}}), "score_threshold": "1", "analyzer_results": "[]"})
    assert weakened.as_numpy("DEIDENTIFIED_TEXT")[0][0].decode() == cleaned


def test_an_ensemble_step_that_asks_for_redaction_is_refused(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[NOTE.encode()]], dtype=np.object_))
        with pytest.raises(InferenceServerException, match="applies to requests sent to it, not to ensemble steps"):
            client.infer("redacted_step", [tensor])


def sst2_logits(server, model, text):
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[text.encode()]], dtype=np.object_))
        return client.infer(model, [tensor]).as_numpy("LOGITS")[0]


def test_redaction_in_front_of_a_classifier(server):
    cleaned = deidentify_http(server, [NOTE])[0][0]
    redacted = sst2_logits(server, "sst2_redacted", NOTE)
    # The model saw the de-identified text, not the note.
    assert np.allclose(redacted, sst2_logits(server, "distilbert_sst2", cleaned), atol=1e-5)
    assert not np.allclose(redacted, sst2_logits(server, "distilbert_sst2", NOTE), atol=1e-5)
    # TEI's /predict over the same model is redacted too.
    predicted = requests.post(f"{server.base}/predict", json={"inputs": NOTE, "model": "sst2_redacted", "raw_scores": True}, timeout=30).json()
    assert sorted(p["score"] for p in predicted) == pytest.approx(sorted(redacted.tolist()), abs=1e-4)


def test_redaction_in_front_of_embeddings_over_openai_and_tei(server):
    cleaned = deidentify_http(server, [NOTE])[0][0]
    tei = requests.post(f"{server.base}/embed", json={"inputs": [NOTE], "model": "minilm_redacted"}, timeout=30).json()[0]
    plain = requests.post(f"{server.base}/embed", json={"inputs": [cleaned], "model": "minilm_embeddings"}, timeout=30).json()[0]
    assert np.allclose(tei, plain, atol=1e-5)
    openai_body = requests.post(f"{server.base}/v1/embeddings", json={"input": NOTE, "model": "minilm_redacted"}, timeout=30).json()
    assert np.allclose(openai_body["data"][0]["embedding"], plain, atol=1e-5)


def test_keyed_pseudonyms_are_stable_per_key(server):
    hashed = {"operators": json.dumps({"PERSON": {"type": "hash"}})}
    note = "Patient: Maria Lopez arrived."
    first = deidentify_http(server, [note], parameters=hashed)[0][0]
    again = deidentify_grpc(server, ["Seen today: Maria Lopez."], parameters=hashed)[0][0]
    other = deidentify_http(server, [note], model="phi_deidentifier_b", parameters=hashed)[0][0]
    pseudonym = first[len("Patient: "):len("Patient: ") + 64]
    assert len(pseudonym) == 64 and all(c in "0123456789abcdef" for c in pseudonym)
    assert pseudonym in again
    assert pseudonym not in other


def test_date_shift_keeps_intervals_within_a_patient(server):
    note = "Admitted 03/14/2024, discharged 03/20/2024."
    params = {"operators": json.dumps({"DATE_TIME": {"type": "date_shift"}}), "patient_key": "patient-42"}
    shifted, _ = deidentify_http(server, [note], parameters=params)
    again, _ = deidentify_grpc(server, [note], parameters=params)
    other, _ = deidentify_http(server, [note], parameters={**params, "patient_key": "patient-43"})
    assert shifted == again and shifted != other
    from datetime import datetime
    dates = [datetime.strptime(d, "%m/%d/%Y") for d in shifted[0].replace(".", "").replace(",", "").split() if d.count("/") == 2]
    assert len(dates) == 2 and (dates[1] - dates[0]).days == 6
    assert "03/14/2024" not in shifted[0]


def test_bad_input_is_named_and_the_server_keeps_serving(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b"Maria \xff\xfe Lopez"]], dtype=np.object_))
        with pytest.raises(InferenceServerException, match="element 0 is not valid UTF-8"):
            client.infer("phi_deidentifier", [tensor])
        big = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        big.set_data_from_numpy(np.array([[b"x" * (2 << 20)]], dtype=np.object_))
        with pytest.raises(InferenceServerException, match="max_text_bytes"):
            client.infer("phi_deidentifier", [big])
        with pytest.raises(InferenceServerException, match="unknown entity type 'NOT_A_TYPE'"):
            tensor.set_data_from_numpy(np.array([[NOTE.encode()]], dtype=np.object_))
            client.infer("phi_deidentifier", [tensor], parameters={"entities": "PERSON,NOT_A_TYPE"})
        with pytest.raises(InferenceServerException, match="Invalid operator class 'shred'"):
            client.infer("phi_deidentifier", [tensor], parameters={"operators": json.dumps({"PERSON": {"type": "shred"}})})
    many = [{"entity_type": "PERSON", "start": 0, "end": 1, "score": 1.0}] * 100_000
    response = requests.post(f"{server.base}/anonymize", json={"text": "Maria", "analyzer_results": many}, timeout=60)
    assert response.status_code == 422 and "at most 10000" in response.json()["error"]
    assert deidentify_http(server, ["Call 617-555-0123"])[0] == ["Call [PHONE]"]


def test_a_model_whose_key_file_others_can_read_fails_to_load_with_the_reason(tmp_path, start_server):
    repo = tmp_path / "repo"
    repo.mkdir()
    loose = linked_variant(repo, "loose", "phi_deidentifier", config_edit=lambda c: c.replace('"deid.key"', '"loose.key"'))
    (loose / "1" / "loose.key").write_bytes(os.urandom(32))
    (loose / "1" / "loose.key").chmod(0o644)
    running = start_server(repo)
    index = requests.post(f"{running.base}/v2/repository/index", json={}, timeout=10).json()
    entry = next(m for m in index if m["name"] == "loose")
    assert entry["state"] == "UNAVAILABLE" and "may be read by its group or others" in entry["reason"]


@pytest.fixture(scope="module")
def secured(repo, tmp_path_factory):
    directory = tmp_path_factory.mktemp("deid-secured")
    tokens = directory / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    running = RunningServer(repo, ["--auth-tokens-file", str(tokens), "--audit-log", "true"], log_path=directory / "server.log").wait_live()
    yield running
    running.stop()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_reidentification_needs_its_own_group(secured):
    text = "Patient Maria Lopez was seen."
    start = text.index("Maria Lopez")
    anonymized = requests.post(f"{secured.base}/anonymize", headers=bearer("tok-clinician-0123456789"), timeout=10, json={
        "text": text, "anonymizers": {"PERSON": {"type": "encrypt"}},
        "analyzer_results": [{"entity_type": "PERSON", "start": start, "end": start + 11, "score": 0.9}]}).json()
    assert "Maria" not in anonymized["text"]
    body = {"text": anonymized["text"], "anonymizer_results": anonymized["items"], "deanonymizers": {"DEFAULT": {"type": "decrypt"}}}
    refused = requests.post(f"{secured.base}/deanonymize", headers=bearer("tok-clinician-0123456789"), json=body, timeout=10)
    assert refused.status_code == 403 and "reidentify" in refused.json()["error"]
    restored = requests.post(f"{secured.base}/deanonymize", headers=bearer("tok-privacy-office-0123456789"), json=body, timeout=10)
    assert restored.status_code == 200 and restored.json()["text"] == text
    # KServe cannot ask for it, whatever the token grants.
    with httpclient.InferenceServerClient(secured.http_url) as client:
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[anonymized["text"].encode()]], dtype=np.object_))
        with pytest.raises(InferenceServerException, match="re-identification is served only by POST /deanonymize"):
            client.infer("phi_deidentifier", [tensor], headers=bearer("tok-privacy-office-0123456789"),
                         parameters={"deanonymize": json.dumps(anonymized["items"])})
    log = secured.read_log()
    assert "phi.action" in log and "deanonymize" in log and "PERSON=1" in log and "Maria" not in log


def test_without_access_control_the_server_key_never_decrypts(server):
    text = "Patient Maria Lopez was seen."
    start = text.index("Maria Lopez")
    anonymized = requests.post(f"{server.base}/anonymize", timeout=10, json={
        "text": text, "anonymizers": {"PERSON": {"type": "encrypt"}},
        "analyzer_results": [{"entity_type": "PERSON", "start": start, "end": start + 11, "score": 0.9}]}).json()
    refused = requests.post(f"{server.base}/deanonymize", timeout=10, json={
        "text": anonymized["text"], "anonymizer_results": anonymized["items"], "deanonymizers": {"DEFAULT": {"type": "decrypt"}}})
    assert refused.status_code == 403


def test_bulk_job_equals_single_requests(server, tmp_path):
    rows = [{"id": f"note-{i}", "text": f"Pt John Smith #{i}, DOB 0{1 + i % 9}/1{i % 10}/19{50 + i % 40}, call 617-555-01{i % 100:02d}."}
            for i in range(300)]
    with open(tmp_path / "in.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    result = subprocess.run([CLIENT, "run", "phi_deidentifier", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                             "--server", f"127.0.0.1:{server.grpc_port}", "--progress", "off"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    assert sorted(r["id"] for r in out) == sorted(r["id"] for r in rows)
    by_id = {r["id"]: r for r in out}
    singles = deidentify_http(server, [r["text"] for r in rows[:20]])[0]
    for row, single in zip(rows[:20], singles):
        got = by_id[row["id"]]["DEIDENTIFIED_TEXT"]
        assert (got[0] if isinstance(got, list) else got) == single
        assert "John Smith" not in single and "617-555" not in single


def test_canary_identifiers_reach_no_byte_the_server_wrote(repo, tmp_path):
    """Unique identifiers through every route, with verbose JSON logs, the
    audit log and traces of every request on: none of them is in the log, the
    trace file, /metrics, or an error."""
    canary = uuid.uuid4().hex[:8]
    letters = canary.translate(str.maketrans("0123456789", "ghijklmnop"))
    name = f"Zqx{letters[:4]} Vlk{letters[4:]}"
    phone = f"617-555-{int(canary[:4], 16) % 10000:04d}"
    email = f"c{canary}@example.org"
    mrn = f"{int(canary, 16) % 10_000_000:07d}"
    note = f"Patient: {name}, MRN: {mrn}, phone {phone}, email {email}."
    canaries = [name.split()[0], name.split()[1], phone, email, mrn]
    trace_file = tmp_path / "trace.json"
    running = RunningServer(repo, ["--log-verbose", "1", "--log-format", "json", "--audit-log", "true",
                                   "--trace-config", "level=TIMESTAMPS", "--trace-config", "rate=1",
                                   "--trace-config", f"triton,file={trace_file}"],
                            log_path=tmp_path / "canary.log").wait_live()
    try:
        deidentify_http(running, [note])
        deidentify_grpc(running, [note])
        sst2_logits(running, "sst2_redacted", note)
        requests.post(f"{running.base}/v1/embeddings", json={"input": note, "model": "minilm_redacted"}, timeout=30)
        requests.post(f"{running.base}/embed", json={"inputs": note, "model": "minilm_redacted"}, timeout=30)
        requests.post(f"{running.base}/predict", json={"inputs": note, "model": "sst2_redacted"}, timeout=30)
        analyzed = requests.post(f"{running.base}/analyze", json={"text": note, "language": "en"}, timeout=30).json()
        requests.post(f"{running.base}/anonymize", json={"text": note, "analyzer_results": analyzed}, timeout=30)
        # Errors with the note in the request: none may echo it.
        errors = [
            requests.post(f"{running.base}/v2/models/phi_deidentifier/infer", data=json.dumps({"inputs": [
                {"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [note]}], "parameters": {"entities": "BOGUS"}}), timeout=30),
            requests.post(f"{running.base}/anonymize", json={"text": note, "analyzer_results": [{"entity_type": "X", "start": 0, "end": 999, "score": 1}]}, timeout=30),
            requests.post(f"{running.base}/v2/models/distilbert_sst2/infer", data=json.dumps({"inputs": [
                {"name": "TEXT", "shape": [1, 1], "datatype": "INT64", "data": [note]}]}), timeout=30),
            requests.post(f"{running.base}/analyze", data=note, timeout=30),
        ]
        with open(tmp_path / "in.jsonl", "w") as f:
            f.write(json.dumps({"id": "c1", "text": note}) + "\n")
        subprocess.run([CLIENT, "run", "phi_deidentifier", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                        "--server", f"127.0.0.1:{running.grpc_port}", "--progress", "off"], capture_output=True, timeout=120, check=True)
        metrics = requests.get(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10).text
    finally:
        running.stop()
    traces = trace_file.read_text()
    assert {"phi_deidentifier", "sst2_redacted", "minilm_redacted"} <= {e["model_name"] for e in json.loads(traces) if "model_name" in e}
    assert "PHI_REDACTION_START" in traces
    written = running.read_log() + traces + metrics + "".join(e.text for e in errors)
    assert all(e.status_code >= 400 for e in errors)
    assert "phi_deidentifier" in running.read_log()   # the log is not empty: it names models, not text
    for value in canaries:
        assert value not in written, value
    assert canaries[0] not in (tmp_path / "out.jsonl").read_text()
