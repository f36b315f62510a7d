"""Encoder precisions and the token budget through the real server.

bf16 and int8 against fp32 and the float64 reference, each on its real path
where this CPU has it (skipped, saying why, where it does not: never fp32
under a bf16 name); the precision in effect shown in the model's config; and
`max_batch_tokens` held for a 32 x 512 request and a CJK text batch, which the
scheduler splits so no batch an instance receives exceeds its preparation."""

import inspect
import pathlib
import re

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tokenizers import BertWordPieceTokenizer

from conftest import MODEL_REPOSITORY, SHIPPED_REPOSITORY
from encoder_reference import Encoder
from test_encoder import MINILM, SST2, ids_inputs, random_rows, relative_error

CPU_FLAGS = set(next((l.split(":", 1)[1].split() for l in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                      if l.startswith("flags")), []))


def variant(repo, name, source, precision=None, extra="", omit=()):
    """A model directory `name` serving `source`'s files (linked, not copied, but for `omit`) at `precision`."""
    version = repo / name / "1"
    version.mkdir(parents=True)
    for f in (SHIPPED_REPOSITORY / source / "1").iterdir():
        if f.name not in omit:
            (version / f.name).symlink_to(f)
    config = (SHIPPED_REPOSITORY / source / "config.pbtxt").read_text().replace(f'name: "{source}"', f'name: "{name}"')
    config = config.replace('label_filename: "labels.txt"', "")
    if precision:
        config += f'parameters {{ key: "precision" value: {{ string_value: "{precision}" }} }}\n'
    (repo / name / "config.pbtxt").write_text(config + extra)


@pytest.fixture(scope="module")
def precision_server(tmp_path_factory):
    """One server with each encoder at fp32, int8, bf16 and auto, and one more fp32 copy for the budget tests."""
    from conftest import RunningServer
    root = tmp_path_factory.mktemp("precision")
    repo = root / "repo"
    for source, short in (("distilbert_sst2", "sst2"), ("minilm_embeddings", "minilm")):
        for precision in ("fp32", "int8", "bf16", "auto"):
            variant(repo, f"{short}_{precision}", source, precision)
        # Only the budget tests use it: its statistics are theirs. Without
        # sentence_bert_config.json's 256-token cut, texts run to all 512
        # positions, so 32 rows can exceed the 8192-token budget.
        variant(repo, f"{short}_budget", source, "fp32", omit=("sentence_bert_config.json",))
    running = RunningServer(repo, log_path=root / "server.log").wait_live()
    yield running
    assert running.stop() == 0, running.read_log()


def in_effect(server, model):
    config = requests.get(f"{server.base}/v2/models/{model}/config", timeout=5).json()
    return {k: v["string_value"] for k, v in config["parameters"].items()}


def test_precision_in_effect_is_in_the_config(precision_server):
    for model in ("sst2_fp32", "sst2_int8"):
        params = in_effect(precision_server, model)
        assert params["precision_in_effect"] == model.split("_")[1]
        assert params["cpu_isa"].startswith(("avx", "sse"))
    # `auto` is a pure function of the CPU's features: bf16 wherever the CPU has bf16 dot products.
    auto = in_effect(precision_server, "sst2_auto")
    expected = "bf16" if {"amx_bf16", "avx512_bf16"} & CPU_FLAGS else "fp32"
    assert auto["precision_in_effect"] == expected, auto
    assert auto["precision_reason"].startswith("auto")
    assert "encoder prepared" in precision_server.read_log()


def text_input(sentences):
    text = httpclient.InferInput("TEXT", [len(sentences), 1], "BYTES")
    text.set_data_from_numpy(np.array([[s.encode()] for s in sentences], dtype=np.object_))
    return text


def test_bf16_matches_the_reference(precision_server):
    if in_effect(precision_server, "sst2_bf16")["precision_in_effect"] != "bf16":
        pytest.skip("this CPU has no bf16 dot products (avx512_bf16 or AMX): the backend serves fp32 and says so")
    reference = Encoder(SST2)
    rows = random_rows(np.random.default_rng(5), [17, 40, 128])
    tensors, ids, mask = ids_inputs(rows)
    with httpclient.InferenceServerClient(precision_server.http_url) as c:
        got = c.infer("sst2_bf16", tensors).as_numpy("LOGITS")
    want = np.array([reference.logits(ids[i], mask[i]) for i in range(len(rows))])
    assert relative_error(got, want) <= 2e-2


def stdlib_sentences(count):
    """Real English: sentences from the docstrings of Python's standard library."""
    import argparse, collections, csv, datetime, email.message, functools, http.client, itertools, json, logging, os
    import pathlib as pl, shutil, socket, subprocess, tarfile, textwrap, threading, typing, unittest, urllib.request, zipfile
    seen, sentences = set(), []
    for module in (argparse, collections, csv, datetime, email.message, functools, http.client, itertools, json, logging, os,
                   pl, shutil, socket, subprocess, tarfile, textwrap, threading, typing, unittest, urllib.request, zipfile):
        docs = [module.__doc__ or ""] + [inspect.getdoc(v) or "" for _, v in sorted(vars(module).items())
                                          if inspect.isfunction(v) or inspect.isclass(v)]
        for doc in docs:
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                words = sentence.split()
                if 6 <= len(words) <= 40 and sentence[0].isupper() and sum(c.isalpha() for c in sentence) > 0.7 * len(sentence) \
                        and sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
    assert len(sentences) >= count, len(sentences)
    return sentences[:count]


def embed(client, model, sentences):
    out = []
    for start in range(0, len(sentences), 32):
        out.append(client.infer(model, [text_input(sentences[start:start + 32])]).as_numpy("EMBEDDING"))
    return np.concatenate(out).astype(np.float64)


def test_int8_minilm_keeps_embeddings_and_rankings(precision_server):
    sentences = stdlib_sentences(320)
    with httpclient.InferenceServerClient(precision_server.http_url) as c:
        fp32 = embed(c, "minilm_fp32", sentences)
        int8 = embed(c, "minilm_int8", sentences)
        pairs = ["The patient reports chest pain after exercise.", "After physical exertion the patient has pain in the chest.",
                 "The invoice was paid on Tuesday.", "Chest pain began during a run.", "Payment of the bill happened midweek."]
        pair_fp32, pair_int8 = embed(c, "minilm_fp32", pairs), embed(c, "minilm_int8", pairs)
    cosine = np.sum(fp32 * int8, axis=1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(int8, axis=1))
    assert cosine.mean() >= 0.99, (cosine.mean(), cosine.min())
    assert cosine.min() >= 0.97, (cosine.mean(), cosine.min())
    # Paraphrase ranking: every sentence's paraphrases rank above the unrelated
    # sentences, and its nearest neighbour is the same, in int8 as in fp32.
    groups = [0, 0, 1, 0, 1]
    for embeddings in (pair_fp32, pair_int8):
        for i in range(len(pairs)):
            similar = [embeddings[i] @ embeddings[j] for j in range(len(pairs)) if j != i and groups[j] == groups[i]]
            other = [embeddings[i] @ embeddings[j] for j in range(len(pairs)) if groups[j] != groups[i]]
            assert min(similar) > max(other), (i, similar, other)
    for i in range(len(pairs)):
        assert np.argsort(-(pair_fp32 @ pair_fp32[i]))[1] == np.argsort(-(pair_int8 @ pair_int8[i]))[1]
    print(f"int8 vs fp32 cosine over {len(sentences)} sentences: mean {cosine.mean():.5f}, min {cosine.min():.5f}")
    # And over the real sentences: each one's nearest neighbour mostly stays the same.
    near_fp32 = np.argsort(-(fp32 @ fp32.T), axis=1)[:, 1]
    near_int8 = np.argsort(-(int8 @ int8.T), axis=1)[:, 1]
    assert np.mean(near_fp32 == near_int8) >= 0.9


def ort_int8_session(directory):
    """ONNX Runtime's int8 on the same checkpoint: the bench's graph, quantize_dynamic (QInt8 weights)."""
    import importlib.util
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    spec = importlib.util.spec_from_file_location("encoder_vs_ort", pathlib.Path(__file__).resolve().parents[2] / "bench" / "encoder_vs_ort.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.build_onnx(directory / "distilbert.onnx")
    quantize_dynamic(str(directory / "distilbert.onnx"), str(directory / "int8.onnx"), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(directory / "int8.onnx"), options, providers=["CPUExecutionProvider"])


def test_int8_sst2_agrees_with_fp32_on_the_argmax(precision_server, tmp_path):
    """Argmax agreement of int8 with fp32 over 1,000 random inputs, against ONNX
    Runtime's int8 on the same weights and inputs. The repo's checkpoint has
    random weights: its logit margins are ~0.04, and 8-bit weight rounding
    shifts the [CLS] row's logits by a near-constant ~0.005 (measured: the
    error's mean is 0.0059, its spread 0.0007), which flips inputs near the
    boundary in any int8 scheme. The issue's 98% is therefore reported, not
    assertable here; what is asserted is that we are no worse than ORT int8."""
    rng = np.random.default_rng(11)
    ort_session = ort_int8_session(tmp_path)
    agree = ort_agree = total = 0
    with httpclient.InferenceServerClient(precision_server.http_url) as c:
        for _ in range(1000 // 25):
            rows = random_rows(rng, list(rng.integers(8, 65, 25)))
            tensors, ids, mask = ids_inputs(rows)
            fp32 = c.infer("sst2_fp32", tensors).as_numpy("LOGITS")
            int8 = c.infer("sst2_int8", tensors).as_numpy("LOGITS")
            ort_int8 = ort_session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            agree += int(np.sum(np.argmax(fp32, 1) == np.argmax(int8, 1)))
            ort_agree += int(np.sum(np.argmax(fp32, 1) == np.argmax(ort_int8, 1)))
            total += len(rows)
    assert total == 1000
    print(f"argmax agreement with fp32 over {total} inputs: BatchServer int8 {agree / total:.3f}, ORT int8 {ort_agree / total:.3f}")
    assert agree / total >= ort_agree / total - 0.02, (agree / total, ort_agree / total)
    assert agree / total >= 0.9


def largest_batch(server, model):
    stats = requests.get(f"{server.base}/v2/models/{model}/stats", timeout=5).json()["model_stats"][0]
    return max(int(b["batch_size"]) for b in stats["batch_stats"])


def test_request_over_the_token_budget_is_split_and_answered(precision_server):
    """32 x 512 tokens against max_batch_tokens 8192: two batches of 16 rows, each row right."""
    rng = np.random.default_rng(3)
    half = random_rows(rng, [512] * 16)
    rows = half + half   # rows i and i + 16 are the same sequence
    tensors, ids, mask = ids_inputs(rows)
    with httpclient.InferenceServerClient(precision_server.http_url, network_timeout=600) as c:
        got = c.infer("sst2_budget", tensors).as_numpy("LOGITS")
    assert got.shape == (32, 2)
    np.testing.assert_array_equal(got[:16], got[16:])
    reference = Encoder(SST2)
    for i in (0, 15):
        assert relative_error(got[i], reference.logits(ids[i], mask[i])) <= 1e-4
    assert largest_batch(precision_server, "sst2_budget") <= 16


def test_cjk_text_batch_is_counted_by_real_tokens(precision_server):
    """Each CJK character is a token: 24 strings of 400 characters are 9,648
    tokens, past the 8192 budget though their bytes / 4 is not."""
    rng = np.random.default_rng(8)
    sentences = ["".join(chr(int(c)) for c in rng.integers(0x4E00, 0x9FA5, 400)) for _ in range(24)]
    tokenizer = BertWordPieceTokenizer(str(MINILM / "vocab.txt"), lowercase=True)
    assert sum(len(tokenizer.encode(s).ids) for s in sentences) > 8192
    with httpclient.InferenceServerClient(precision_server.http_url, network_timeout=600) as c:
        got = c.infer("minilm_budget", [text_input(sentences)]).as_numpy("EMBEDDING")
        for i in (0, 23):
            alone = c.infer("minilm_budget", [text_input([sentences[i]])]).as_numpy("EMBEDDING")
            np.testing.assert_allclose(got[i], alone[0], rtol=0, atol=1e-6)
    assert got.shape == (24, 384)
    assert largest_batch(precision_server, "minilm_budget") <= 8192 // 402


def rss_kib(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmRSS:")))


@pytest.mark.parametrize("precision", ["auto", "int8"])
def test_four_instances_share_one_prepared_model(start_server, tmp_path, precision):
    """The weights are prepared once per model version: three more instances
    add less memory than three more copies of the prepared weights alone would
    (an instance adds only its stream, scratchpad and the activations its
    batches touch; copies would add those as well). Measured against the weights' own size, not a fixed ratio
    of RSS: on CPUs without VNNI the int8 scratchpads are larger, and a ratio
    of the whole process's RSS swung around 1.2x there."""
    import concurrent.futures
    import re
    rss = {}
    weight_bytes = 0
    for count in (1, 4):
        repo = tmp_path / f"repo{count}"
        variant(repo, "sst2", "distilbert_sst2", precision, extra=f"instance_group [ {{ count: {count} kind: KIND_CPU }} ]\n")
        server = start_server(repo)
        rows = random_rows(np.random.default_rng(count), [128] * 8)

        def infer(_):
            with httpclient.InferenceServerClient(server.http_url, network_timeout=120) as c:
                return c.infer("sst2", ids_inputs(rows)[0]).as_numpy("LOGITS")

        # Enough concurrent work that every instance runs batches.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            outputs = list(pool.map(infer, range(16)))
        for out in outputs[1:]:
            np.testing.assert_allclose(out, outputs[0], rtol=1e-5, atol=1e-6)
        stats = requests.get(f"{server.base}/v2/models/sst2/stats", timeout=5).json()["model_stats"][0]
        assert int(stats["execution_count"]) >= 2
        rss[count] = rss_kib(server.process.pid)
        weight_bytes = int(re.search(r"encoder\.weight_bytes=(\d+)", server.read_log()).group(1))
        server.stop()
    added = (rss[4] - rss[1]) * 1024
    print(f"{precision}: RSS with 1 instance {rss[1] / 1024:.0f} MiB, with 4 instances {rss[4] / 1024:.0f} MiB, "
          f"prepared weights {weight_bytes / 2**20:.0f} MiB")
    assert added < 3 * weight_bytes, (rss, weight_bytes)


def test_a_bad_request_fails_alone_not_the_batch_it_would_join(start_server, tmp_path):
    """The encoder checks ids before queuing: a request with an id outside the
    vocabulary, sent among good ones to a batching model, fails alone."""
    import concurrent.futures
    from tritonclient.utils import InferenceServerException
    repo = tmp_path / "repo"
    variant(repo, "sst2", "distilbert_sst2", "fp32")
    config = repo / "sst2" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_queue_delay_microseconds: 2000", "max_queue_delay_microseconds: 200000"))
    server = start_server(repo)
    good = random_rows(np.random.default_rng(4), [12])
    bad = [[101, 40000, 102]]

    def send(rows):
        with httpclient.InferenceServerClient(server.http_url, network_timeout=60) as c:
            try:
                return c.infer("sst2", ids_inputs(rows)[0]).as_numpy("LOGITS")
            except InferenceServerException as error:
                return error
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(send, [good, bad, good, good]))
    assert isinstance(results[1], InferenceServerException) and "outside the vocabulary" in str(results[1])
    for r in (results[0], results[2], results[3]):
        assert isinstance(r, np.ndarray), r
        np.testing.assert_array_equal(r, results[0])


def test_reloading_a_changed_checkpoint_serves_the_new_weights(start_server, tmp_path):
    """The prepared model is keyed by the spec and its files: a model reloaded
    from the same directory with new weights is prepared anew."""
    import importlib.util
    import shutil
    spec = importlib.util.spec_from_file_location("make_models", pathlib.Path(__file__).resolve().parents[2] / "scripts" / "make_models.py")
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    repo = tmp_path / "repo"
    version = repo / "tiny" / "1"
    version.mkdir(parents=True)
    config = (MODEL_REPOSITORY / "distilbert_sst2" / "config.pbtxt").read_text()
    (repo / "tiny" / "config.pbtxt").write_text(config.replace('name: "distilbert_sst2"', 'name: "tiny"').replace('label_filename: "labels.txt"', ""))
    shutil.copy(MINILM / "vocab.txt", version / "vocab.txt")

    def write(seed):
        tensors, model_config = make_models.random_distilbert(seed, hidden=32, layers=2, heads=4, ffn=64, vocab=30522, positions=64)
        make_models.write_safetensors(version / "model.safetensors", tensors)
        (version / "config.json").write_text(__import__("json").dumps(model_config))
        return Encoder(version)

    first = write(1)
    server = start_server(repo, ["--model-control-mode", "explicit", "--load-model", "tiny"])
    rows = random_rows(np.random.default_rng(2), [10])
    tensors, ids, mask = ids_inputs(rows)
    with httpclient.InferenceServerClient(server.http_url) as c:
        before = c.infer("tiny", tensors).as_numpy("LOGITS")
        assert relative_error(before[0], first.logits(ids[0], mask[0])) <= 1e-4
        second = write(2)
        c.load_model("tiny")
        after = c.infer("tiny", tensors).as_numpy("LOGITS")
    assert relative_error(after[0], second.logits(ids[0], mask[0])) <= 1e-4
    assert not np.allclose(before, after)


def test_a_text_model_without_its_vocabulary_fails_at_load(start_server, tmp_path):
    """TEXT is tokenized before queuing, but the vocabulary is read at load: a
    model whose vocab.txt is missing fails alone, with the file named."""
    repo = tmp_path / "repo"
    variant(repo, "good", "minilm_embeddings", "fp32")
    variant(repo, "novocab", "minilm_embeddings", "fp32")
    (repo / "novocab" / "1" / "vocab.txt").unlink()
    server = start_server(repo)
    rows = {m["name"]: m for m in requests.post(f"{server.base}/v2/repository/index", timeout=5).json()}
    assert rows["good"]["state"] == "READY"
    assert rows["novocab"]["state"] == "UNAVAILABLE"
    assert "cannot read vocabulary file" in rows["novocab"]["reason"] and "vocab.txt" in rows["novocab"]["reason"]


def test_text_past_a_smaller_checkpoint_vocabulary_is_refused_naming_the_element(start_server, tmp_path):
    """vocab.txt may be larger than the checkpoint's embeddings: such text is
    refused before queuing with the element named, never its text or ids."""
    import importlib.util
    import shutil
    from tritonclient.utils import InferenceServerException
    spec = importlib.util.spec_from_file_location("make_models", pathlib.Path(__file__).resolve().parents[2] / "scripts" / "make_models.py")
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    repo = tmp_path / "repo"
    version = repo / "small" / "1"
    version.mkdir(parents=True)
    tensors, model_config = make_models.random_distilbert(3, hidden=32, layers=2, heads=4, ffn=64, vocab=2000, positions=64)
    make_models.write_safetensors(version / "model.safetensors", tensors)
    (version / "config.json").write_text(__import__("json").dumps(model_config))
    shutil.copy(MINILM / "vocab.txt", version / "vocab.txt")
    config = (MODEL_REPOSITORY / "distilbert_sst2" / "config.pbtxt").read_text()
    (repo / "small" / "config.pbtxt").write_text(config.replace('name: "distilbert_sst2"', 'name: "small"').replace('label_filename: "labels.txt"', ""))
    server = start_server(repo)
    with httpclient.InferenceServerClient(server.http_url) as c:
        with pytest.raises(InferenceServerException) as error:
            c.infer("small", [text_input(["the", "zebra crossing"])])
        message = str(error.value)
        assert "element 1 has a token outside the checkpoint's vocabulary of 2000" in message, message
        assert "zebra" not in message
        assert error.value.status() == "400"
        assert c.infer("small", [text_input(["the"])]).as_numpy("LOGITS").shape == (1, 2)
