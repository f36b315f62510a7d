"""batch-server-client against real servers: every id exactly once through a
server killed and restarted mid-job, a client killed and rerun, bad rows, CSV
and JSONL, text and token ids, and the progress line on a terminal."""

import csv
import json
import os
import pathlib
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient

from conftest import BINARY, MODEL_REPOSITORY, RunningServer, free_port

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bench" / "reliability"))
from suite import note  # noqa: E402  (the notes the reliability suite sends too)

CLIENT = str(pathlib.Path(BINARY).with_name("batch-server-client"))


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_client(*args, timeout=300, **kwargs):
    return subprocess.run([CLIENT, "run", *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def start(tmp_path, name):
    return RunningServer(MODEL_REPOSITORY, log_path=tmp_path / f"{name}.log").wait_live()


def single_logits(port, text):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    tensor = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[text.encode()]], dtype=np.object_))
    return client.infer("distilbert_sst2", [tensor]).as_numpy("LOGITS")[0].tolist()


def test_a_job_over_two_servers_survives_one_killed_and_restarted(tmp_path):
    first, second = start(tmp_path, "a"), start(tmp_path, "b")
    rows = [{"id": f"note-{i}", "text": note(i)} for i in range(2000)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "out.jsonl"
    job = subprocess.Popen(
        [CLIENT, "run", "distilbert_sst2", "--input", str(tmp_path / "in.jsonl"), "--output", str(output),
         "--server", f"127.0.0.1:{first.grpc_port}", "--server", f"127.0.0.1:{second.grpc_port}",
         "--progress", "off", "--summary-json", str(tmp_path / "summary.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not output.exists() or len(output.read_text().splitlines()) < 400):
            time.sleep(0.1)
        assert job.poll() is None, job.communicate()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        time.sleep(1.0)
        restarted = RunningServer(MODEL_REPOSITORY, log_path=tmp_path / "a-again.log", grpc_port=first.grpc_port).wait_live()
        _, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr
        results = read_jsonl(output)
        ids = [r["id"] for r in results]
        assert len(ids) == len(set(ids)) == 2000
        assert set(ids) == {r["id"] for r in rows}
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["succeeded"] == 2000 and summary["errors"] == 0
        assert all(count > 0 for count in summary["completedByEndpoint"].values())
        # Outputs equal single requests (one per kind of length).
        by_id = {r["id"]: r["LOGITS"] for r in results}
        for i in range(0, 2000, 97):
            assert np.allclose(by_id[f"note-{i}"], single_logits(second.grpc_port, note(i)), atol=1e-4)
        restarted.stop()
    finally:
        if job.poll() is None:
            job.kill()
        first.stop()
        second.stop()


def test_a_rolling_restart_behind_one_name_finishes_without_a_rerun(tmp_path):
    """Two pods behind one name, as behind a headless Service, each replaced
    by a pod at a new address one after the other (a rolling update): the
    client follows the name and finishes the job without a rerun."""
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs a mount namespace (unshare --mount) for the client's own hosts file")
    hosts = tmp_path / "hosts"
    hosts.write_text("")
    port = free_port()

    def publish(*pods):
        # Rewritten in place: the client's /etc/hosts is this file, bind-mounted.
        with open(hosts, "r+") as f:
            f.truncate(0)
            f.write("127.0.0.1 localhost\n" + "".join(f"{pod.host} pods.test\n" for pod in pods))

    def pod(n):
        return RunningServer(MODEL_REPOSITORY, host=f"127.0.0.{n}", grpc_port=port,
                             log_path=tmp_path / f"pod-{n}.log").wait_live()

    # The replacements start before the job: a pod's start-up (seconds) must not
    # decide whether the job is still running when it is published.
    a, b, c, d = pod(2), pod(3), pod(4), pod(5)
    publish(a, b)
    rows = [{"id": f"note-{i}", "text": note(i)} for i in range(2400)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "out.jsonl"
    # The client alone sees the hosts file: its own mount namespace.
    job = subprocess.Popen(
        ["unshare", "--mount", "sh", "-c", f'mount --bind {hosts} /etc/hosts && exec "$0" "$@"',
         CLIENT, "run", "distilbert_sst2", "--input", str(tmp_path / "in.jsonl"), "--output", str(output),
         "--server", f"pods.test:{port}", "--lookup-secs", "2", "--give-up-secs", "60", "--progress", "off",
         "--summary-json", str(tmp_path / "summary.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pods = [a, b, c, d]
    try:
        def done():
            return len(output.read_text().splitlines()) if output.exists() else 0

        for old, published, after in ((a, (b, c), 300), (b, (c, d), 900)):
            deadline = time.monotonic() + 120
            while done() < after:
                assert time.monotonic() < deadline and job.poll() is None, job.communicate()
                time.sleep(0.1)
            publish(*published)
            old.process.kill()
            old.process.wait()
        _, stderr = job.communicate(timeout=300)
        assert job.returncode == 0, stderr
        ids = [r["id"] for r in read_jsonl(output)]
        assert len(ids) == len(set(ids)) == 2400
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["succeeded"] == 2400 and "stoppedEarly" not in summary
        # The replacement pods took work: the client found them by the name alone.
        assert summary["completedByEndpoint"].get(f"127.0.0.4:{port}", 0) > 0
        assert summary["completedByEndpoint"].get(f"127.0.0.5:{port}", 0) > 0
    finally:
        if job.poll() is None:
            job.kill()
        for p in pods:
            p.stop()


def test_a_tokens_rate_limit_is_waited_out_and_no_row_fails(tmp_path):
    """A bulk token limited to 20 requests/s: the server refuses the excess
    with 'retry after', the client waits as asked, every row succeeds."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [
        {"name": "bulk", "token": "bulk-secret-0123456789", "groups": ["inference", "metadata"],
         "limits": {"requests_per_second": 20, "burst": 5}},
        {"name": "ops", "token": "ops-secret-0123456789", "groups": ["metrics"]}]}))
    server = RunningServer(MODEL_REPOSITORY, ["--auth-tokens-file", str(tokens)], log_path=tmp_path / "server.log").wait_live()
    try:
        rows = [{"id": f"r{i}", "text": note(i)} for i in range(60)]
        write_jsonl(tmp_path / "in.jsonl", rows)
        done = run_client("distilbert_sst2", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                          "--server", f"127.0.0.1:{server.grpc_port}", "--in-flight", "16", "--priority", "2",
                          "--max-attempts", "2", "--progress", "off", "--summary-json", str(tmp_path / "summary.json"),
                          env={**os.environ, "BATCHSERVER_TOKEN": "bulk-secret-0123456789"})
        assert done.returncode == 0, done.stderr
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["succeeded"] == 60 and summary["errors"] == 0 and summary["retries"] > 0
        metrics = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5,
                               headers={"Authorization": "Bearer ops-secret-0123456789"}).text
        assert any(line.startswith("batchserver_rate_limited_total{") and 'principal="bulk"' in line
                   and float(line.rsplit(" ", 1)[1]) > 0 for line in metrics.splitlines())
        # Without the token the server says so, and the job stops resumably instead of failing rows.
        refused = run_client("distilbert_sst2", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out2.jsonl"),
                             "--server", f"127.0.0.1:{server.grpc_port}", "--progress", "off",
                             env={k: v for k, v in os.environ.items() if k != "BATCHSERVER_TOKEN"})
        assert refused.returncode == 3 and "unauthenticated" in refused.stderr.lower(), refused.stderr
    finally:
        server.stop()


def test_a_killed_client_resumes_with_every_id_once(server, tmp_path):
    rows = [{"id": f"r{i}", "text": note(i)} for i in range(1500)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    output = tmp_path / "out.jsonl"
    args = ["distilbert_sst2", "--input", str(tmp_path / "in.jsonl"), "--output", str(output), "--ordered",
            "--server", f"127.0.0.1:{server.grpc_port}", "--progress", "off"]
    job = subprocess.Popen([CLIENT, "run", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not output.exists() or len(output.read_text().splitlines()) < 300):
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    partial = len(output.read_text().splitlines())
    assert 0 < partial < 1500

    again = run_client(*args)
    assert again.returncode == 0, again.stderr
    assert "done before" in again.stderr
    ids = [r["id"] for r in read_jsonl(output)]
    # --ordered: the output is the input's order, each id once.
    assert ids == [r["id"] for r in rows]

    # A third run has nothing left to do.
    third = run_client(*args, "--summary-json", str(tmp_path / "s.json"))
    assert third.returncode == 0
    assert json.loads((tmp_path / "s.json").read_text())["resumed"] == 1500


def test_bad_rows_go_to_the_errors_file_and_the_job_goes_on(server, tmp_path):
    lines = [json.dumps({"id": "good-1", "text": "fine"}), "this is not json",
             json.dumps({"id": "no-text"}), json.dumps({"id": "too-long", "input_ids": [101] + [7] * 600 + [102]}),
             json.dumps({"id": "good-2", "text": "also fine"}), json.dumps({"id": "good-1", "text": "duplicate id"})]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = run_client("distilbert_sst2", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                        "--server", f"127.0.0.1:{server.grpc_port}", "--progress", "off")
    assert result.returncode == 1, result.stderr
    assert sorted(r["id"] for r in read_jsonl(tmp_path / "out.jsonl")) == ["good-1", "good-2"]
    errors = {e["id"]: e["reason"] for e in read_jsonl(tmp_path / "out.jsonl.errors.jsonl")}
    assert "not a JSON object" in errors["row 2"]
    assert "neither" in errors["no-text"]
    assert "invalidArgument" in errors["too-long"] or "invalid" in errors["too-long"].lower()
    assert any("duplicate id 'good-1'" in reason for reason in errors.values())
    # Patient data: the client's output names ids and counts, never the text.
    assert "duplicate id" not in result.stderr and "fine" not in result.stderr


def test_csv_input_with_token_ids_and_text(server, tmp_path):
    path = tmp_path / "notes.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["note_id", "body", "ids"])
        writer.writerow(["c1", 'text with "quotes", a comma\nand a newline', ""])
        writer.writerow(["c2", "", "101 2023 2003 1037 3231 102"])
    result = run_client("distilbert_sst2", "--input", str(path), "--output", str(tmp_path / "out.jsonl"),
                        "--id-field", "note_id", "--text-field", "body", "--ids-field", "ids",
                        "--server", f"127.0.0.1:{server.grpc_port}", "--progress", "off")
    assert result.returncode == 0, result.stderr
    results = {r["id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert set(results) == {"c1", "c2"}
    assert len(results["c1"]["LOGITS"]) == 2
    assert np.allclose(results["c1"]["LOGITS"], single_logits(server.grpc_port, 'text with "quotes", a comma\nand a newline'), atol=1e-4)


def test_embeddings_from_token_ids(server, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "e1", "input_ids": [101, 7592, 2088, 102]}, {"id": "e2", "text": "hello world"}])
    result = run_client("minilm_embeddings", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                        "--server", f"127.0.0.1:{server.grpc_port}", "--progress", "off")
    assert result.returncode == 0, result.stderr
    vectors = {r["id"]: np.array(r["EMBEDDING"]) for r in read_jsonl(tmp_path / "out.jsonl")}
    assert vectors["e1"].shape == (384,)
    # "hello world" tokenizes to [CLS] hello world [SEP] = the ids above.
    assert np.allclose(vectors["e1"], vectors["e2"], atol=1e-5)


def test_progress_line_on_a_terminal(server, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"id": f"p{i}", "text": note(i)} for i in range(200)])
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(CLIENT, [CLIENT, "run", "distilbert_sst2", "--input", str(tmp_path / "in.jsonl"),
                          "--output", str(tmp_path / "out.jsonl"), "--server", f"127.0.0.1:{server.grpc_port}"])
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    text = seen.decode(errors="replace")
    # Rewritten in place: carriage returns and an erase-line before each update.
    assert "\r\x1b[2K" in text and "200/200 rows (100.0%)" in text and "rows/s" in text


def test_an_unreachable_server_stops_the_job_resumably(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "x", "text": "t"}])
    result = run_client("distilbert_sst2", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                        "--server", "127.0.0.1:1", "--give-up-secs", "2", "--progress", "off", timeout=60)
    assert result.returncode == 3
    assert "no server answered model metadata" in result.stderr


def test_sigterm_finishes_what_is_in_flight_and_a_rerun_completes(server, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"id": f"t{i}", "text": note(i)} for i in range(1500)])
    output = tmp_path / "out.jsonl"
    args = ["distilbert_sst2", "--input", str(tmp_path / "in.jsonl"), "--output", str(output),
            "--server", f"127.0.0.1:{server.grpc_port}", "--progress", "off"]
    job = subprocess.Popen([CLIENT, "run", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not output.exists() or len(output.read_text().splitlines()) < 200):
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 2, stderr
    assert "stopped early" in stderr
    # Nothing past the last commit: the output ends on a whole line.
    assert output.read_text().endswith("\n")
    again = run_client(*args)
    assert again.returncode == 0, again.stderr
    ids = [r["id"] for r in read_jsonl(output)]
    assert len(ids) == len(set(ids)) == 1500
