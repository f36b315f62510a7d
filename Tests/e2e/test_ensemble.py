"""Ensembles end to end: the shipped text-in classifier (distilbert_sst2 then
sst2_softmax) over HTTP and gRPC, statistics per step and for the ensemble,
batching inside a step, a failing step named in the error, and ensemble
configs refused with Triton's texts."""

import concurrent.futures
import shutil

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import MODEL_REPOSITORY

TEXTS = ["the notes read well", "a terrible, slow film", "neutral words here"]


def text_input(module, texts):
    t = module.InferInput("TEXT", [len(texts), 1], "BYTES")
    t.set_data_from_numpy(np.array([[s.encode()] for s in texts], dtype=object))
    return t


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_text_classifier_ensemble_equals_its_steps(server, kind):
    module = httpclient if kind == "http" else grpcclient
    url = server.http_url if kind == "http" else f"127.0.0.1:{server.grpc_port}"
    with module.InferenceServerClient(url) as client:
        got = client.infer("sst2_text_classifier", [text_input(module, TEXTS)]).as_numpy("PROBABILITIES")
        logits = client.infer("distilbert_sst2", [text_input(module, TEXTS)]).as_numpy("LOGITS")
        assert got.shape == (3, 2)
        assert np.max(np.abs(got - softmax(logits))) < 1e-6
        top = client.infer("sst2_text_classifier", [text_input(module, TEXTS[:1])],
                           outputs=[module.InferRequestedOutput("PROBABILITIES", class_count=1)]).as_numpy("PROBABILITIES")
        value, index, label = top[0][0].decode().split(":")
        assert label in ("NEGATIVE", "POSITIVE") and abs(float(value) - got[0].max()) < 1e-5


def test_statistics_per_step_and_for_the_ensemble_and_steps_batch(server):
    with httpclient.InferenceServerClient(server.http_url) as client:
        def counts():
            return {m: client.get_inference_statistics(m)["model_stats"][0]
                    for m in ("sst2_text_classifier", "distilbert_sst2", "sst2_softmax")}
        before = counts()

        def one(i):
            with httpclient.InferenceServerClient(server.http_url) as c:
                return c.infer("sst2_text_classifier", [text_input(httpclient, [f"note number {i}"])]).as_numpy("PROBABILITIES")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(16)))
        assert all(r.shape == (1, 2) and abs(r.sum() - 1) < 1e-5 for r in results)
        after = counts()
        for model in before:
            assert after[model]["inference_count"] - before[model]["inference_count"] == 16, model
            succeeded = after[model]["inference_stats"]["success"]["count"] - before[model]["inference_stats"]["success"]["count"]
            assert succeeded == 16, (model, succeeded)
        # The steps batch: fewer executions than requests for the encoder step.
        executions = after["distilbert_sst2"]["execution_count"] - before["distilbert_sst2"]["execution_count"]
        assert executions < 16, executions


def write_bad_ensembles(repo):
    shutil.copytree(MODEL_REPOSITORY / "simple", repo / "simple")

    def ensemble(name, body, io='input [ { name: "IN" data_type: TYPE_STRING dims: [ 16 ] } ]\n'
                                 'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 16 ] } ]\n'):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: 8\n{io}{body}\n')

    step = ('ensemble_scheduling { step [ { model_name: "%s" model_version: -1 '
            'input_map { key: "INPUT0" value: "IN" } input_map { key: "INPUT1" value: "IN" } '
            'output_map { key: "OUTPUT0" value: "OUT" } } ] }')
    ensemble("wrong_type_step", step % "simple")          # BYTES into simple's INT32: fails at run time
    ensemble("missing_step", step % "no_such_model")
    ensemble("no_steps", "ensemble_scheduling { }")
    ensemble("unused_input", step % "simple",
             io='input [ { name: "IN" data_type: TYPE_STRING dims: [ 16 ] }, { name: "EXTRA" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
                'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 16 ] } ]\n')
    ensemble("unwritten_output", step % "simple",
             io='input [ { name: "IN" data_type: TYPE_STRING dims: [ 16 ] } ]\n'
                'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "NEVER" data_type: TYPE_INT32 dims: [ 1 ] } ]\n')
    ensemble("with_instances", step % "simple" + '\ninstance_group [ { count: 1 } ]')
    ensemble("itself", step % "itself")
    ensemble("cycle", 'ensemble_scheduling { step [ '
             '{ model_name: "simple" input_map { key: "INPUT0" value: "IN" } input_map { key: "INPUT1" value: "b" } '
             'output_map { key: "OUTPUT0" value: "a" } }, '
             '{ model_name: "simple" input_map { key: "INPUT0" value: "a" } input_map { key: "INPUT1" value: "a" } '
             'output_map { key: "OUTPUT0" value: "b" } output_map { key: "OUTPUT1" value: "OUT" } } ] }')


def test_bad_ensembles_fail_alone_with_tritons_texts(start_server, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    write_bad_ensembles(repo)
    running = start_server(repo)
    index = {m["name"]: m for m in requests.post(f"{running.base}/v2/repository/index", json={}, timeout=10).json()}
    reasons = {name: index[name].get("reason", "") for name in index}
    assert "must specify 'step' for ensemble 'no_steps'" in reasons["no_steps"]
    assert "ensemble input 'EXTRA' for ensemble unused_input' is not used" in reasons["unused_input"]
    assert "output 'NEVER' for ensemble 'unwritten_output' is not written" in reasons["unwritten_output"]
    assert "instance group should not be specified for ensemble 'with_instances'" in reasons["with_instances"]
    assert "step 0 of ensemble 'itself' names the ensemble itself" in reasons["itself"]
    assert "ensemble 'cycle' has a cycle: steps 0, 1" in reasons["cycle"]
    assert index["simple"]["state"] == "READY"
    with httpclient.InferenceServerClient(running.http_url) as client:
        t = httpclient.InferInput("IN", [1, 16], "BYTES")
        t.set_data_from_numpy(np.array([[b"1"] * 16], dtype=object))
        with pytest.raises(InferenceServerException) as raised:
            client.infer("wrong_type_step", [t])
        assert "in ensemble 'wrong_type_step', step 0 ('simple') failed:" in str(raised.value)
        assert raised.value.status() == "400"
        with pytest.raises(InferenceServerException) as raised:
            client.infer("missing_step", [t])
        assert "in ensemble 'missing_step', step 0 ('no_such_model') failed:" in str(raised.value)
        # The rest still serves.
        a = httpclient.InferInput("INPUT0", [1, 16], "INT32")
        a.set_data_from_numpy(np.ones((1, 16), dtype=np.int32))
        b = httpclient.InferInput("INPUT1", [1, 16], "INT32")
        b.set_data_from_numpy(np.ones((1, 16), dtype=np.int32))
        assert client.infer("simple", [a, b]).as_numpy("OUTPUT0").sum() == 32
