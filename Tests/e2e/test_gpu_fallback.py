"""A model whose instance_group asks for KIND_GPU on a host without a usable
GPU: it runs on the CPU with one log line saying why, or, with
--require-gpu true, fails to load with that reason while other models serve."""

import ctypes.util

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from conftest import MODEL_REPOSITORY
from test_encoder import tiny_checkpoint

pytestmark = pytest.mark.skipif(ctypes.util.find_library("cuda") is not None,
                                reason="this host has a CUDA driver, so the no-GPU fallback cannot be shown here")


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    config = (MODEL_REPOSITORY / "distilbert_sst2" / "config.pbtxt").read_text().replace('label_filename: "labels.txt"', "")
    for name, group in (("on_cpu", "KIND_CPU"), ("on_gpu", "KIND_GPU")):
        tiny_checkpoint(repo / name / "1")
        (repo / name / "config.pbtxt").write_text(
            config.replace('name: "distilbert_sst2"', f'name: "{name}"') + f"\ninstance_group [ {{ kind: {group} count: 2 }} ]\n")
    return repo


def logits(server, model, ids):
    with httpclient.InferenceServerClient(server.http_url) as client:
        tensor = httpclient.InferInput("INPUT_IDS", list(ids.shape), "INT64")
        tensor.set_data_from_numpy(ids)
        return client.infer(model, [tensor]).as_numpy("LOGITS")


def test_gpu_instances_fall_back_to_the_cpu_with_one_log_line(start_server, repo):
    server = start_server(repo)
    ids = np.array([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]], dtype=np.int64)
    assert np.array_equal(logits(server, "on_gpu", ids), logits(server, "on_cpu", ids))
    lines = [line for line in server.read_log().splitlines() if "KIND_GPU instances run on the CPU" in line]
    assert len(lines) == 1, lines  # one line for the model, not one per instance
    assert "no NVIDIA driver" in lines[0] and "on_gpu" in lines[0]


def test_require_gpu_fails_only_the_gpu_model(start_server, repo):
    server = start_server(repo, ["--require-gpu", "true"])
    rows = {m["name"]: m for m in requests.post(f"{server.base}/v2/repository/index", timeout=5).json()}
    assert rows["on_cpu"]["state"] == "READY"
    assert rows["on_gpu"]["state"] == "UNAVAILABLE"
    assert "asks for KIND_GPU and --require-gpu is set, but no NVIDIA driver" in rows["on_gpu"]["reason"]
