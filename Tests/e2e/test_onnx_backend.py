"""The onnxruntime backend through the real server: a Triton-layout repository
of ONNX models (full configs, name + platform only, no config at all, int8,
STRING) beside the transformer_encoder and add_sub models; Triton's config
auto-complete over HTTP and gRPC; answers against onnxruntime in Python and
against the transformer_encoder backend; perf_analyzer; dynamic batching;
models that fail alone (bad file, no ONNX Runtime library, configs that
disagree with the model, --disable-auto-complete-config)."""

import concurrent.futures
import csv
import os
import pathlib
import shutil
import subprocess
import threading

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import onnx_models
from conftest import MODEL_REPOSITORY, ONNXRUNTIME_LIBRARY, ROOT, RunningServer, server_environment

pytestmark = pytest.mark.skipif(ONNXRUNTIME_LIBRARY is None, reason="no onnxruntime wheel in .venv (scripts/install-onnxruntime.sh)")

SST2 = MODEL_REPOSITORY / "distilbert_sst2"
READY_MODELS = {"distilbert_onnx", "distilbert_onnx_auto", "distilbert_onnx_int8", "simple_onnx", "simple_onnx_auto",
                "simple_onnx_noconfig", "simple_onnx_threads", "string_onnx", "distilbert_sst2", "simple"}
SIMPLE_TENSORS = [("INPUT0", "TYPE_INT32", [16]), ("INPUT1", "TYPE_INT32", [16])], \
                 [("OUTPUT0", "TYPE_INT32", [16]), ("OUTPUT1", "TYPE_INT32", [16])]
DISTILBERT_TENSORS = [("INPUT_IDS", "TYPE_INT64", [-1]), ("ATTENTION_MASK", "TYPE_INT64", [-1])], \
                     [("LOGITS", "TYPE_FP32", [2])]


def link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def copy_sst2(repo):
    """model_repository/distilbert_sst2 with its config and 1/, the weights symlinked."""
    target = repo / "distilbert_sst2"
    (target / "1").mkdir(parents=True)
    for name in ("config.pbtxt", "labels.txt"):
        shutil.copyfile(SST2 / name, target / name)
    for name in ("config.json", "vocab.txt"):
        shutil.copyfile(SST2 / "1" / name, target / "1" / name)
    (target / "1" / "model.safetensors").symlink_to(SST2 / "1" / "model.safetensors")


def write_simple_variant(repo, name, edit=None, extra=""):
    """simple_onnx's model and full config under another name, the config text edited."""
    model_dir = onnx_models.write_simple(repo, name)
    text = (model_dir / "config.pbtxt").read_text()
    if edit:
        text = edit(text)
    (model_dir / "config.pbtxt").write_text(text + extra)
    return model_dir


def write_garbage(repo, name, config):
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.onnx").write_bytes(b"this is not an ONNX model \x00\xff" * 40)
    (repo / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if not (SST2 / "1" / "model.safetensors").exists():
        subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "make_models.py")], check=True)
    repo = tmp_path_factory.mktemp("onnx") / "repo"
    repo.mkdir()
    fp32 = onnx_models.write_distilbert(repo, "distilbert_onnx")
    full_text = (fp32 / "config.pbtxt").read_text()
    auto = repo / "distilbert_onnx_auto"
    (auto / "1").mkdir(parents=True)
    link_or_copy(fp32 / "1" / "model.onnx", auto / "1" / "model.onnx")
    (auto / "config.pbtxt").write_text('name: "distilbert_onnx_auto"\nplatform: "onnxruntime_onnx"\n')
    # int8: the same graph through quantize_dynamic (QInt8 weights), as write_distilbert(int8=True) makes it.
    from onnxruntime.quantization import QuantType, quantize_dynamic
    int8 = repo / "distilbert_onnx_int8"
    (int8 / "1").mkdir(parents=True)
    quantize_dynamic(str(fp32 / "1" / "model.onnx"), str(int8 / "1" / "model.onnx"), weight_type=QuantType.QInt8)
    (int8 / "config.pbtxt").write_text(full_text.replace('"distilbert_onnx"', '"distilbert_onnx_int8"'))

    onnx_models.write_simple(repo, "simple_onnx")
    onnx_models.write_simple(repo, "simple_onnx_auto", full_config=False)
    onnx_models.write_simple(repo, "simple_onnx_noconfig", full_config=False)
    (repo / "simple_onnx_noconfig" / "config.pbtxt").unlink()
    onnx_models.write_string_identity(repo, "string_onnx")
    copy_sst2(repo)
    shutil.copytree(MODEL_REPOSITORY / "simple", repo / "simple")

    write_simple_variant(repo, "simple_onnx_threads",
                         extra='parameters { key: "intra_op_thread_count" value { string_value: "1" } }\n')
    write_simple_variant(repo, "simple_onnx_shared",
                         extra='instance_group [ { count: 3 kind: KIND_CPU } ]\n'
                               'parameters { key: "share_session_between_instances" value { string_value: "true" } }\n')
    write_simple_variant(repo, "simple_onnx_exec_mode",
                         extra='parameters { key: "execution_mode" value { string_value: "2" } }\n')
    write_simple_variant(repo, "wrong_dtype", edit=lambda t: t.replace(
        '{ name: "INPUT0" data_type: TYPE_INT32', '{ name: "INPUT0" data_type: TYPE_FP32'))
    write_simple_variant(repo, "wrong_name", edit=lambda t: t.replace('name: "INPUT1"', 'name: "INPUT_X"'))
    write_garbage(repo, "bad_onnx", 'name: "bad_onnx"\nplatform: "onnxruntime_onnx"\n')
    simple_text = (repo / "simple_onnx" / "config.pbtxt").read_text()
    write_garbage(repo, "bad_onnx_full", simple_text.replace('"simple_onnx"', '"bad_onnx_full"'))
    return repo


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    log = tmp_path_factory.mktemp("onnx-server") / "server.log"
    running = RunningServer(repo, log_path=log).wait_live(timeout=240)
    yield running
    code = running.stop()
    assert code == 0, f"batch-server exited with {code}:\n{running.read_log()[-4000:]}"


@pytest.fixture(scope="module")
def small_repo(repo, tmp_path_factory):
    """Small copies for the servers started per test: add_sub's simple, the
    simple ONNX models (full config, name + platform, no config), DistilBERT
    with a full config and with name + platform only (model file linked)."""
    small = tmp_path_factory.mktemp("onnx-small") / "repo"
    small.mkdir()
    for name in ("simple", "simple_onnx", "simple_onnx_auto", "simple_onnx_noconfig", "string_onnx"):
        shutil.copytree(repo / name, small / name)
    for name in ("distilbert_onnx", "distilbert_onnx_auto"):
        (small / name / "1").mkdir(parents=True)
        shutil.copyfile(repo / name / "config.pbtxt", small / name / "config.pbtxt")
        (small / name / "1" / "model.onnx").symlink_to(repo / name / "1" / "model.onnx")
    return small


def index(server):
    rows = requests.post(f"{server.base}/v2/repository/index", timeout=10).json()
    return {m["name"]: m for m in rows}


def clients(server):
    return {"http": httpclient.InferenceServerClient(server.http_url),
            "grpc": grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")}


def module_for(kind):
    return httpclient if kind == "http" else grpcclient


def make_inputs(kind, arrays):
    module = module_for(kind)
    tensors = []
    for name, value in arrays.items():
        datatype = "BYTES" if value.dtype == object else {np.int32: "INT32", np.int64: "INT64"}[value.dtype.type]
        tensor = module.InferInput(name, list(value.shape), datatype)
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    return tensors


def infer_simple(server, model, a, b, kind="http"):
    result = clients(server)[kind].infer(model, make_inputs(kind, {"INPUT0": a, "INPUT1": b}))
    return result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1")


def padded_batch(lengths, seed=0):
    """Token ids ([CLS] first) and masks, rows padded with mask 0 to the longest."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), max(lengths)), np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1000, 30000, n)
        ids[i, 0] = 101
        ids[i, n - 1] = 102
        mask[i, :n] = 1
    return ids, mask


def logits(server, model, ids, mask, kind="http"):
    result = clients(server)[kind].infer(model, make_inputs(kind, {"INPUT_IDS": ids, "ATTENTION_MASK": mask}))
    out = result.as_numpy("LOGITS")
    assert out.dtype == np.float32 and out.shape == (ids.shape[0], 2)
    return out


# --- 1. One repository, every kind of model, all READY -----------------------------------------

def test_all_models_load_together_and_are_ready(server):
    rows = index(server)
    for name in READY_MODELS:
        assert rows[name]["state"] == "READY", (name, rows[name])
    http = clients(server)["http"]
    for name in READY_MODELS:
        assert http.is_model_ready(name), name
    metadata = http.get_model_metadata("simple_onnx_noconfig")
    assert metadata["platform"] == "onnxruntime_onnx"
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == \
        [("INPUT0", "INT32", [-1, 16]), ("INPUT1", "INT32", [-1, 16])]


# --- 2. Auto-complete -------------------------------------------------------------------------

AUTO = {"simple_onnx_auto": SIMPLE_TENSORS, "simple_onnx_noconfig": SIMPLE_TENSORS, "distilbert_onnx_auto": DISTILBERT_TENSORS}


@pytest.mark.parametrize("model", sorted(AUTO))
def test_auto_complete_over_http(server, model):
    config = requests.get(f"{server.base}/v2/models/{model}/config", timeout=10).json()
    inputs, outputs = AUTO[model]
    assert config["name"] == model
    assert config["platform"] == "onnxruntime_onnx" and config["backend"] == "onnxruntime"
    assert [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in config["input"]] == inputs
    assert [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in config["output"]] == outputs
    assert config["max_batch_size"] == 4
    assert "dynamic_batching" in config
    groups = config["instance_group"]
    assert len(groups) == 1 and groups[0]["count"] == 2 and groups[0]["kind"] == "KIND_CPU"


@pytest.mark.parametrize("model", sorted(AUTO))
def test_auto_complete_over_grpc(server, model):
    config = clients(server)["grpc"].get_model_config(model).config
    inputs, outputs = AUTO[model]
    type_name = lambda t: grpcclient.model_config_pb2.DataType.Name(t.data_type)
    assert config.name == model and config.platform == "onnxruntime_onnx" and config.backend == "onnxruntime"
    assert [(t.name, type_name(t), list(t.dims)) for t in config.input] == inputs
    assert [(t.name, type_name(t), list(t.dims)) for t in config.output] == outputs
    assert config.max_batch_size == 4
    assert config.HasField("dynamic_batching")
    assert len(config.instance_group) == 1
    assert config.instance_group[0].count == 2
    assert config.instance_group[0].kind == grpcclient.model_config_pb2.ModelInstanceGroup.KIND_CPU


def test_full_config_is_kept_and_backend_filled(server):
    config = requests.get(f"{server.base}/v2/models/simple_onnx/config", timeout=10).json()
    assert config["backend"] == "onnxruntime" and config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 8
    assert [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in config["input"]] == SIMPLE_TENSORS[0]


# --- 3. Inference -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["http", "grpc"])
@pytest.mark.parametrize("model", ["simple_onnx", "simple_onnx_auto", "simple_onnx_noconfig", "simple_onnx_threads"])
def test_simple_onnx_sum_and_difference(server, model, kind):
    rng = np.random.default_rng(3)
    a = rng.integers(-1 << 20, 1 << 20, (3, 16), dtype=np.int32)
    b = rng.integers(-1 << 20, 1 << 20, (3, 16), dtype=np.int32)
    out0, out1 = infer_simple(server, model, a, b, kind)
    assert out0.dtype == np.int32 and out0.shape == (3, 16)
    assert np.array_equal(out0, a + b) and np.array_equal(out1, a - b)


@pytest.fixture(scope="module")
def distilbert_batch():
    return padded_batch([12, 7], seed=1)


@pytest.fixture(scope="module")
def ort_logits(repo, distilbert_batch):
    ids, mask = distilbert_batch
    feeds = {"INPUT_IDS": ids, "ATTENTION_MASK": mask}
    return {name: onnx_models.ort_run(repo / name / "1" / "model.onnx", feeds)["LOGITS"]
            for name in ("distilbert_onnx", "distilbert_onnx_int8")}


@pytest.mark.parametrize("kind", ["http", "grpc"])
@pytest.mark.parametrize("model", ["distilbert_onnx", "distilbert_onnx_auto", "distilbert_onnx_int8"])
def test_distilbert_onnx_equals_onnxruntime_in_python(server, distilbert_batch, ort_logits, model, kind):
    ids, mask = distilbert_batch
    got = logits(server, model, ids, mask, kind)
    want = ort_logits["distilbert_onnx_int8" if model.endswith("int8") else "distilbert_onnx"]
    assert np.max(np.abs(got - want)) < 1e-4, (got, want)


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_distilbert_onnx_equals_transformer_encoder(server, distilbert_batch, kind):
    ids, mask = distilbert_batch
    onnx_logits = logits(server, "distilbert_onnx", ids, mask, kind)
    encoder = logits(server, "distilbert_sst2", ids, mask, kind)
    assert np.max(np.abs(onnx_logits - encoder)) < 1e-4, (onnx_logits, encoder)
    # And row by row: each row alone, unpadded, through the transformer_encoder model.
    for row in range(ids.shape[0]):
        n = int(mask[row].sum())
        alone = logits(server, "distilbert_sst2", ids[row:row + 1, :n], mask[row:row + 1, :n], kind)
        assert np.max(np.abs(onnx_logits[row] - alone[0])) < 1e-4, (row, onnx_logits[row], alone[0])


# --- 4. perf_analyzer ------------------------------------------------------------------------

def perf_analyzer_command():
    script = ROOT / "bench" / "tools" / "install-perf-analyzer.sh"
    try:
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"perf_analyzer could not be installed: {error}")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not pathlib.Path(lines[-1]).exists():
        pytest.skip(f"perf_analyzer could not be installed (rc {done.returncode}): {done.stderr[-500:]}")
    return lines[-1]


def test_perf_analyzer_against_simple_onnx_over_grpc(server, tmp_path):
    command = perf_analyzer_command()
    report = tmp_path / "pa.csv"
    done = subprocess.run([command, "-m", "simple_onnx", "-i", "grpc", "-u", f"127.0.0.1:{server.grpc_port}",
                           "--concurrency-range", "2", "--measurement-interval", "2000", "--max-trials", "5", "-s", "50",
                           "-f", str(report)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    row = next(csv.DictReader(open(report)))
    assert float(row["Inferences/Second"]) > 0, row


# --- 5. Dynamic batching -------------------------------------------------------------------------

def test_concurrent_single_rows_are_batched(server, repo):
    http = clients(server)["http"]
    before = http.get_inference_statistics("distilbert_onnx")["model_stats"][0]
    ids, mask = padded_batch([16] * 16, seed=5)
    barrier = threading.Barrier(16)

    def one(row):
        with httpclient.InferenceServerClient(server.http_url) as client:
            barrier.wait()
            tensors = make_inputs("http", {"INPUT_IDS": ids[row:row + 1], "ATTENTION_MASK": mask[row:row + 1]})
            return client.infer("distilbert_onnx", tensors).as_numpy("LOGITS")[0]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        got = np.stack(list(pool.map(one, range(16))))
    after = http.get_inference_statistics("distilbert_onnx")["model_stats"][0]
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 16
    assert executions < inferences, (executions, inferences)
    want = onnx_models.ort_run(repo / "distilbert_onnx" / "1" / "model.onnx", {"INPUT_IDS": ids, "ATTENTION_MASK": mask})["LOGITS"]
    assert np.max(np.abs(got - want)) < 1e-4


def test_instances_sharing_one_session_answer_concurrently(server):
    config = clients(server)["http"].get_model_config("simple_onnx_shared")
    assert config["instance_group"][0]["count"] == 3
    def one(seed):
        rng = np.random.default_rng(seed)
        a = rng.integers(-1000, 1000, size=(2, 16), dtype=np.int32)
        b = rng.integers(-1000, 1000, size=(2, 16), dtype=np.int32)
        with httpclient.InferenceServerClient(server.http_url) as client:
            result = client.infer("simple_onnx_shared", make_inputs("http", {"INPUT0": a, "INPUT1": b}))
        return np.array_equal(result.as_numpy("OUTPUT0"), a + b) and np.array_equal(result.as_numpy("OUTPUT1"), a - b)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        assert all(pool.map(one, range(24)))


# --- 6. Models that fail alone ----------------------------------------------------------------

@pytest.mark.parametrize("model", ["bad_onnx", "bad_onnx_full"])
def test_bad_onnx_file_fails_alone(server, repo, model):
    row = index(server)[model]
    assert row["state"] == "UNAVAILABLE"
    assert str(repo / model / "1" / "model.onnx") in row["reason"], row
    assert not clients(server)["http"].is_model_ready(model)
    a = np.ones((1, 16), np.int32)
    out0, _ = infer_simple(server, "simple_onnx", a, a)
    assert np.array_equal(out0, a + a)


def test_without_onnxruntime_library_onnx_models_fail_and_simple_serves(start_server, small_repo):
    running = start_server(small_repo, env=server_environment(onnxruntime=False))
    rows = index(running)
    for name in ("simple_onnx", "simple_onnx_auto", "simple_onnx_noconfig", "distilbert_onnx", "distilbert_onnx_auto", "string_onnx"):
        assert rows[name]["state"] == "UNAVAILABLE", (name, rows[name])
        assert "ONNX Runtime library not found" in rows[name]["reason"], (name, rows[name])
        assert "/nonexistent/libonnxruntime.so.1" in rows[name]["reason"], (name, rows[name])
    assert rows["simple"]["state"] == "READY"
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    for kind in ("http", "grpc"):
        out0, out1 = infer_simple(running, "simple", a, a * 2, kind)
        assert np.array_equal(out0, a * 3) and np.array_equal(out1, -a)


# --- 7. --disable-auto-complete-config / --strict-model-config=true ---------------------------

@pytest.mark.parametrize("flag", ["--disable-auto-complete-config", "--strict-model-config=true"])
def test_without_auto_complete_only_full_configs_load(start_server, small_repo, flag):
    running = start_server(small_repo, [flag])
    rows = index(running)
    for name in ("simple_onnx_auto", "distilbert_onnx_auto"):
        assert rows[name]["state"] == "UNAVAILABLE", (name, rows[name])
        assert "at least one input is required" in rows[name]["reason"], (name, rows[name])
    noconfig = rows["simple_onnx_noconfig"]
    assert noconfig["state"] == "UNAVAILABLE"
    assert "failed to open text file for read" in noconfig["reason"], noconfig
    assert str(small_repo / "simple_onnx_noconfig" / "config.pbtxt") in noconfig["reason"], noconfig
    for name in ("simple", "simple_onnx", "distilbert_onnx", "string_onnx"):
        assert rows[name]["state"] == "READY", (name, rows[name])
    a = np.full((2, 16), 7, np.int32)
    out0, out1 = infer_simple(running, "simple_onnx", a, a, "grpc")
    assert np.array_equal(out0, a * 2) and np.array_equal(out1, a * 0)
    ids, mask = padded_batch([5], seed=9)
    assert np.all(np.isfinite(logits(running, "distilbert_onnx", ids, mask)))
    if flag.startswith("--strict"):
        assert "'--strict-model-config' has been deprecated" in running.read_log()


# --- 8. Configs that disagree with the model --------------------------------------------------

@pytest.mark.parametrize("model, text", [
    ("wrong_dtype", "configuration expects datatype TYPE_FP32 for input 'INPUT0', model provides TYPE_INT32"),
    ("wrong_name", "unexpected inference input 'INPUT_X', allowed inputs are: INPUT0, INPUT1"),
    ("simple_onnx_exec_mode", "Expected values for execution_mode are 0 or 1 but got 2"),
])
def test_config_that_disagrees_fails_alone(server, model, text):
    row = index(server)[model]
    assert row["state"] == "UNAVAILABLE"
    assert text in row["reason"], row
    with pytest.raises(InferenceServerException):
        infer_simple(server, model, np.ones((1, 16), np.int32), np.ones((1, 16), np.int32))
    out0, _ = infer_simple(server, "simple_onnx_threads", np.ones((1, 16), np.int32), np.ones((1, 16), np.int32))
    assert np.array_equal(out0, np.full((1, 16), 2, np.int32))


# --- 9. Bad requests --------------------------------------------------------------------------

def test_wrong_shape_over_http_is_400_naming_the_input(server):
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 8], "datatype": "INT32", "data": list(range(8))},
                       {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))}]}
    response = requests.post(f"{server.base}/v2/models/simple_onnx/infer", json=body, timeout=10)
    assert response.status_code == 400, response.text
    assert "INPUT0" in response.json()["error"], response.text

    body = {"inputs": [{"name": "INPUT_IDS", "shape": [1, 3], "datatype": "INT32", "data": [101, 2000, 102]},
                       {"name": "ATTENTION_MASK", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}]}
    response = requests.post(f"{server.base}/v2/models/distilbert_onnx/infer", json=body, timeout=10)
    assert response.status_code == 400, response.text
    assert "INPUT_IDS" in response.json()["error"], response.text

    a = np.full((1, 16), 5, np.int32)
    out0, out1 = infer_simple(server, "simple_onnx", a, a)
    assert np.array_equal(out0, a * 2) and np.array_equal(out1, a * 0)
    # Live, not ready: with models UNAVAILABLE in the repository, Triton's strict readiness says 400.
    assert requests.get(f"{server.base}/v2/health/live", timeout=5).status_code == 200


# --- 10. STRING tensors ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_string_identity_round_trips_bytes(server, kind):
    values = np.array([[b"hello"], ["gr\u00fc\u00df dich, \u65e5\u672c".encode()], [b""]], dtype=object)
    result = clients(server)[kind].infer("string_onnx", make_inputs(kind, {"INPUT0": values}))
    got = result.as_numpy("OUTPUT0")
    assert got.shape == (3, 1)
    assert [v for v in got.ravel()] == [v for v in values.ravel()]
