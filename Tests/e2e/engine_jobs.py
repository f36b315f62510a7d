"""What the Spark and Ray job tests share: the notes, two fp32 servers, the
reference answers, and finding a worker process to kill mid-job."""

import os
import pathlib
import signal
import sys
import time

import numpy as np
import requests
import tritonclient.grpc as grpcclient

from conftest import MODEL_REPOSITORY, RunningServer, pinned_repository

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench" / "reliability"))
from suite import note  # noqa: E402  (the notes the reliability suite sends too)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"))

MODEL = "distilbert_sst2"


def notes(count, bad_every=500):
    """Rows (id, text); every ``bad_every``-th row has no text (a bad row)."""
    return [{"id": f"note-{i}", "text": None if i % bad_every == 7 else note(i)} for i in range(count)]


def fp32_repository():
    # Outputs are compared with single requests at 1e-4: the precision is pinned.
    return pinned_repository(MODEL_REPOSITORY)


def start_servers(tmp_path, count=2):
    repository = fp32_repository()
    return [RunningServer(repository, log_path=tmp_path / f"server-{n}.log").wait_live() for n in range(count)]


def inferences(server):
    """Rows the server has run for MODEL (its statistics' inference_count)."""
    stats = requests.get(f"{server.base}/v2/models/{MODEL}/stats", timeout=5).json()
    return sum(m["inference_count"] for m in stats["model_stats"])


def single_logits(server, text):
    client = grpcclient.InferenceServerClient(f"{server.host}:{server.grpc_port}")
    tensor = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[text.encode()]], dtype=np.object_))
    return client.infer(MODEL, [tensor]).as_numpy("LOGITS")[0]


def check_output(output, rows, reference):
    """A job's Parquet output: every id once; rows without text in `error`
    with NaN outputs; outputs equal to single requests to `reference` within
    1e-4. Returns the ids of the bad rows."""
    import pandas as pd

    result = pd.read_parquet(output)
    assert len(result) == len(rows) and result["id"].is_unique
    assert set(result["id"]) == {r["id"] for r in rows}
    bad = {r["id"] for r in rows if r["text"] is None}
    errors = result[result["error"].notna()]
    assert set(errors["id"]) == bad and (errors["error"] == "row has no text").all()
    assert errors["LOGITS"].map(lambda v: bool(np.isnan(np.asarray(v, dtype=np.float32)).all())).all()
    by_id = dict(zip(result["id"], result["LOGITS"]))
    for row in rows[::97]:
        if row["text"] is not None:
            assert np.allclose(np.asarray(by_id[row["id"]], dtype=np.float32), single_logits(reference, row["text"]),
                               atol=1e-4, rtol=1e-4)
    return bad


def processes():
    """(pid, parent pid, command line) of every process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found.append((int(entry), parent, cmdline))
    return found


def kill_one(matches, deadline_s=60):
    """SIGKILLs the first process ``matches(pid, parent, cmdline, all)`` picks
    (waiting for one to appear); returns its pid."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        table = processes()
        for pid, parent, cmdline in table:
            if matches(pid, parent, cmdline, table):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.05)
    raise AssertionError("no process to kill appeared")


def wait_for_progress(servers, rows, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while sum(inferences(s) for s in servers) < rows:
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.05)
