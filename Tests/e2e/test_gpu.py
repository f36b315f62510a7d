"""The encoder on a real GPU against the CPU engine, through the server.
Runs only where a CUDA driver and device exist; elsewhere every test is
skipped with that reason (no GPU has run these yet: see docs/gpu.md)."""

import ctypes
import ctypes.util

import numpy as np
import pytest
import tritonclient.http as httpclient

from conftest import MODEL_REPOSITORY


def cuda_device_count():
    name = ctypes.util.find_library("cuda")
    if name is None:
        return 0
    try:
        driver = ctypes.CDLL(name)
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


pytestmark = pytest.mark.skipif(cuda_device_count() == 0, reason="no CUDA driver or device on this host")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """distilbert_sst2 and minilm_embeddings twice each: on KIND_CPU and on KIND_GPU (TF32 and exact FP32)."""
    repo = tmp_path_factory.mktemp("repo")
    for model in ("distilbert_sst2", "minilm_embeddings"):
        config = (MODEL_REPOSITORY / model / "config.pbtxt").read_text()
        for suffix, extra in (("cpu", "instance_group [ { kind: KIND_CPU } ]"),
                              ("gpu", "instance_group [ { kind: KIND_GPU count: 2 } ]"),
                              ("gpu_fp32", 'instance_group [ { kind: KIND_GPU } ]\n'
                                           'parameters { key: "gpu_math" value: { string_value: "fp32" } }')):
            name = f"{model}_{suffix}"
            (repo / name).mkdir()
            (repo / name / "1").symlink_to(MODEL_REPOSITORY / model / "1")
            for extra_file in (MODEL_REPOSITORY / model).glob("*.txt"):
                (repo / name / extra_file.name).symlink_to(extra_file)
            (repo / name / "config.pbtxt").write_text(config.replace(f'name: "{model}"', f'name: "{name}"') + "\n" + extra)
    return repo


def infer(server, model, ids, mask, output):
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensors = []
        for name, value in (("INPUT_IDS", ids), ("ATTENTION_MASK", mask)):
            t = httpclient.InferInput(name, list(value.shape), "INT64")
            t.set_data_from_numpy(value)
            tensors.append(t)
        return client.infer(model, tensors).as_numpy(output)


@pytest.mark.parametrize("model,output", [("distilbert_sst2", "LOGITS"), ("minilm_embeddings", "EMBEDDING")])
@pytest.mark.parametrize("math,tolerance", [("gpu", 5e-3), ("gpu_fp32", 1e-4)])
def test_gpu_matches_cpu(start_server, repo, model, output, math, tolerance):
    server = start_server(repo, ["--require-gpu", "true"])
    rng = np.random.default_rng(7)
    lengths = [1, 7, 128, 300, 512]
    ids = np.zeros((len(lengths), max(lengths)), np.int64)
    mask = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1000, 29000, length)
        mask[row, :length] = 1
    want = infer(server, f"{model}_cpu", ids, mask, output)
    got = infer(server, f"{model}_{math}", ids, mask, output)
    error = np.abs(got - want).max() / max(np.abs(want).max(), 1e-6)
    assert error <= tolerance, error
