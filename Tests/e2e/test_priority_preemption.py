"""Priority preemption through the real server: a DistilBERT classifier with
two priority levels (fp32 pinned) serves a bulk job at full speed from four
threads while clinical requests arrive at level 1. The clinical requests run
on the urgent lane while bulk batches pause mid-forward; every answer, urgent
and paused alike, equals the same note run alone afterwards (1e-4, fp32), the
lane's executions are counted in /metrics, and with priority_preemption off
nothing runs on a lane."""

import concurrent.futures
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient

from conftest import MODEL_REPOSITORY

MODEL = "triage"


def repository(tmp_path, preemption):
    source = MODEL_REPOSITORY / "distilbert_sst2"
    target = tmp_path / f"repo-{preemption}"
    (target / MODEL).mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != "config.pbtxt":
            (target / MODEL / entry.name).symlink_to(entry.resolve())
    config = (source / "config.pbtxt").read_text().replace('name: "distilbert_sst2"', f'name: "{MODEL}"')
    assert "max_queue_delay_microseconds: 2000\n" in config and 'string_value: "fp32"' in config
    config = config.replace("  max_queue_delay_microseconds: 2000\n",
                            "  max_queue_delay_microseconds: 2000\n  priority_levels: 2\n  default_priority_level: 2\n")
    if not preemption:
        config += 'parameters { key: "priority_preemption" value: { string_value: "false" } }\n'
    (target / MODEL / "config.pbtxt").write_text(config)
    return target


def note(i):
    return f"note {i}: pt reports chest pain radiating to the left arm since {i % 12 + 1} hours, troponin pending"


def classify(client, texts, priority=0):
    tensor = grpcclient.InferInput("TEXT", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=np.object_))
    return client.infer(MODEL, [tensor], priority=priority).as_numpy("LOGITS")


def urgent_executions(server):
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    lines = [line for line in text.splitlines() if line.startswith("batchserver_urgent_executions_total{") and f'model="{MODEL}"' in line]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def run_beside_bulk(server):
    """Four bulk threads (8 notes a request, level 2) and 12 clinical notes at
    level 1, 100 ms apart; returns {text: logits} of everything answered."""
    address = f"127.0.0.1:{server.grpc_port}"
    answers, lock, stop = {}, threading.Lock(), threading.Event()

    def bulk(worker):
        client = grpcclient.InferenceServerClient(address)
        i = 0
        while not stop.is_set():
            texts = [note(10_000 * (worker + 1) + i + k) for k in range(8)]
            logits = classify(client, texts)
            with lock:
                answers.update(zip(texts, logits))
            i += 8

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(bulk, w) for w in range(4)]
        try:
            time.sleep(1.0)
            client = grpcclient.InferenceServerClient(address)
            for i in range(12):
                time.sleep(0.1)
                text = note(i)
                logits = classify(client, [text], priority=1)
                with lock:
                    answers[text] = logits[0]
        finally:
            stop.set()
            for future in futures:
                future.result()
    return answers


@pytest.mark.parametrize("preemption", [True, False])
def test_urgent_requests_overtake_bulk_batches_with_the_same_answers(start_server, tmp_path, preemption):
    server = start_server(repository(tmp_path, preemption))
    answers = run_beside_bulk(server)
    lane = urgent_executions(server)
    if preemption:
        assert lane > 0, "no clinical request ran on the urgent lane"
    else:
        assert lane == 0
    # Alone, afterwards: urgent answers, and bulk answers of batches that were
    # paused mid-forward and resumed, equal the note run by itself.
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    urgent = [note(i) for i in range(12)]
    bulk = [text for text in answers if text not in urgent][::25]
    assert len(bulk) >= 4
    for text in urgent + bulk:
        np.testing.assert_allclose(answers[text], classify(client, [text])[0], rtol=1e-4, atol=1e-4)
    stats = requests.get(f"{server.base}/v2/models/{MODEL}/stats", timeout=5).json()["model_stats"][0]["inference_stats"]
    assert stats["fail"]["count"] == 0
