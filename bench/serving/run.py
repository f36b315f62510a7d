#!/usr/bin/env python3
"""Serving benchmark: the seeds' FastAPI + PyTorch baseline against BatchServer,
same machine, same DistilBERT weights, same load generator (perf_analyzer).

One command (installs what it needs, then runs everything):

    flock /tmp/swift-build.lock bench/serving/run.sh [options]

What runs, each server alone on the machine, one after the other:

- fastapi:     bench/serving/fastapi_baseline.py (FastAPI + uvicorn, Hugging
               Face DistilBertForSequenceClassification in PyTorch's CPU build,
               2 threads, one request per forward pass, fp32), over HTTP;
- fastapi-bf16: the same under torch.autocast bf16 (fastapi_baseline.py
               --bf16), the peer of BatchServer's bf16 encoder, over HTTP;
- batchserver: batch-server with the shipped model_repository/distilbert_sst2
               config (dynamic batching, length-aware packing), over gRPC and
               HTTP, once per --precisions entry (the encoder's
               parameters.precision, written to a temporary model repository):
               named batchserver for auto (the shipped default), and
               batchserver-<precision> for the others (batchserver-int8);
- triton-way:  batch-server with a Triton-style config written to a temporary
               model repository (dynamic batching of fixed shapes, no token
               budget) and the mixed requests padded to 128 on the client, over
               gRPC; see inputs.py for how padding is charged;
- priority:    batch-server with two priority levels: a saturating bulk client
               (mixed lengths, concurrency 16) plus a low-rate priority-1 client
               (length 128, Poisson arrivals), against that client alone on the
               idle server, and against a default-priority client under the same
               bulk load.

Loads: concurrency 1, 4, 16, 64 (perf_analyzer --concurrency-range), on a fixed
length-128 set and a mixed set (lengths uniform in 8..128) given through
--input-data JSON. Measured per point: throughput, p50/p95/p99 latency
(perf_analyzer, merged over its stable windows), server CPU (utime+stime from
/proc/PID/stat over the point, in cores) and peak RSS (VmHWM), and for
BatchServer the mean batch size and engine busy time (its statistics).

Offline engine comparison: the ratio of BatchServer's end-to-end throughput to
its engine's offline throughput at the same (mean) batch size. The offline
figure is read from --offline (the JSON lines EncoderBench prints for
bench/serving/offline-jobs.jsonl, or a CSV set,batch_size,sequences_per_s), or
measured here if the EncoderBench release binary already exists (this script
never builds it).

Writes bench/results/serving.csv, serving_priority.csv, serving_offline.csv,
docs/bench-results/serving-throughput.png and serving-latency.png, and prints
markdown tables with the targets of the benchmark issue (reported, not
asserted). `--replot` redraws the plots and tables from the CSVs alone.
"""

import argparse
import csv
import io
import json
import os
import pathlib
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import inputs  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PLOTS = ROOT / "docs" / "bench-results"
MODEL = "distilbert_sst2"
MODEL_DIR = ROOT / "model_repository" / MODEL
CLK_TCK = os.sysconf("SC_CLK_TCK")
OFFLINE_BATCHES = (1, 4, 8, 16, 32)
OFFLINE_JOBS = pathlib.Path(__file__).resolve().parent / "offline-jobs.jsonl"
ENCODER_BENCH = ROOT / "bench" / "encoder" / ".build" / "release" / "EncoderBench"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


# ---------------------------------------------------------------- processes

def cpu_seconds(pid):
    """utime + stime of a process (and of its waited-for children), seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def memory_kib(pid, key):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Server:
    """A server process on free loopback ports, ready when /v2/health/ready answers."""

    def __init__(self, kind, command, http, grpc=None, env=None, log_path=None):
        self.kind, self.http, self.grpc = kind, http, grpc
        self.log = open(log_path, "w") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {self.process.returncode} before it was ready (see {log_path})")
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{kind} did not become ready")

    @property
    def pid(self):
        return self.process.pid

    def url(self, protocol):
        return f"127.0.0.1:{self.grpc if protocol == 'grpc' else self.http}"

    def stats(self):
        try:
            s = get_json(f"http://127.0.0.1:{self.http}/v2/models/{MODEL}/stats")["model_stats"][0]
            # inference_stats.compute_infer counts a batch's time once per
            # request in it (Triton's semantics); batch_stats once per batch.
            return {"inferences": int(s["inference_count"]), "executions": int(s["execution_count"]),
                    "compute_ns": sum(int(b["compute_infer"]["ns"]) for b in s.get("batch_stats", []))}
        except (OSError, KeyError, IndexError, ValueError):
            return None

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def start_fastapi(kind, python, handler, logs):
    http = free_port()
    command = [python, str(ROOT / "bench" / "serving" / "fastapi_baseline.py"), "--port", str(http),
               "--model-dir", str(MODEL_DIR / "1"), "--threads", "2", "--handler", handler,
               *(["--bf16"] if kind == "fastapi-bf16" else [])]
    return Server(kind, command, http, log_path=logs / f"{kind}.log")


def start_batchserver(kind, binary, repository, logs):
    http, grpc = free_port(), free_port()
    command = [binary, "--model-repository", str(repository), "--host", "127.0.0.1",
               "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(free_port()),
               "--model-control-mode", "explicit", "--load-model", MODEL]
    return Server(kind, command, http, grpc, log_path=logs / f"{kind}.log")


SHIPPED_CONFIG = (MODEL_DIR / "config.pbtxt")

TRITON_WAY_CONFIG = f"""# Written by bench/serving/run.py: DistilBERT served the way a Triton
# deployment of a fixed-shape model is configured: the client pads every
# request to 128 tokens, the dynamic batcher groups equal shapes, no token
# budget (Triton has none).
name: "{MODEL}"
backend: "transformer_encoder"
max_batch_size: 32
input [
  {{ name: "INPUT_IDS" data_type: TYPE_INT64 dims: [ -1 ] }},
  {{ name: "ATTENTION_MASK" data_type: TYPE_INT64 dims: [ -1 ] }}
]
output [
  {{ name: "LOGITS" data_type: TYPE_FP32 dims: [ 2 ] }}
]
dynamic_batching {{
  max_queue_delay_microseconds: 2000
}}
"""


def priority_config():
    """The shipped config with two priority levels (default: the lower, 2) and
    batches bounded to 256 tokens. A priority request can wait for the batch in
    flight, so the bound on batch time is the bound on its wait; on a CPU the
    engine's throughput is flat in batch size, so small batches cost bulk work
    nothing (the offline figures show it)."""
    text = SHIPPED_CONFIG.read_text()
    marker = "dynamic_batching {"
    assert marker in text, "model_repository/distilbert_sst2/config.pbtxt has no dynamic_batching block"
    text = text.replace(marker, marker + "\n  priority_levels: 2\n  default_priority_level: 2", 1)
    tokens = 'parameters { key: "max_batch_tokens" value: { string_value: "8192" } }'
    assert tokens in text, "model_repository/distilbert_sst2/config.pbtxt no longer sets max_batch_tokens to 8192"
    return text.replace(tokens, tokens.replace("8192", "256"))


PRECISIONS = ("auto", "fp32", "bf16", "int8")


def batchserver_name(precision):
    """The server column of a precision's results: auto keeps the name the
    earlier runs' figures carry."""
    return "batchserver" if precision == "auto" else f"batchserver-{precision}"


def precision_config(precision):
    """The shipped config with the encoder's precision set; auto, the
    shipped default, is written out too, so that a later change of the default
    does not change what `batchserver` measures."""
    text = SHIPPED_CONFIG.read_text()
    assert 'key: "precision"' not in text, "model_repository/distilbert_sst2/config.pbtxt already sets a precision"
    return text.rstrip("\n") + f'\nparameters {{ key: "precision" value: {{ string_value: "{precision}" }} }}\n'


def precision_in_effect(server):
    """What the encoder runs at and why: auto resolves by the CPU, and int8
    or bf16 can fall back (the model config reports the outcome)."""
    try:
        p = get_json(f"http://127.0.0.1:{server.http}/v2/models/{MODEL}/config")["parameters"]
        return f"{p['precision_in_effect']['string_value']} ({p['precision_reason']['string_value']})"
    except (OSError, KeyError, ValueError):
        return "not reported"


def temp_repository(base, name, config_text):
    repo = base / name
    (repo / MODEL).mkdir(parents=True)
    (repo / MODEL / "config.pbtxt").write_text(config_text)
    (repo / MODEL / "1").symlink_to(MODEL_DIR / "1")
    labels = MODEL_DIR / "labels.txt"
    if labels.exists():
        (repo / MODEL / "labels.txt").symlink_to(labels)
    return repo


# ---------------------------------------------------------------- perf_analyzer

class PerfAnalyzer:
    """perf_analyzer with the run's measurement settings. Windows are either
    fixed in time (--measurement-interval) or in completed requests
    (count_windows): with batches of 32 x 128 tokens taking seconds, requests
    complete in bursts, and windows counted in requests stay comparable."""

    def __init__(self, run, max_trials, stability, work, interval_ms=None, window_requests=None):
        self.run, self.max_trials, self.stability, self.work = run, max_trials, stability, work
        self.interval_ms, self.window_requests = interval_ms, window_requests

    def window(self, concurrency):
        if self.window_requests:
            # At least two completions per client and window.
            count = max(self.window_requests, 2 * concurrency)
            return ["--measurement-mode", "count_windows", "--measurement-request-count", str(count)]
        return ["--measurement-interval", str(self.interval_ms)]

    def command(self, protocol, url, data, load, concurrency, extra=(), stability=None, trials=None, out=None):
        return [self.run, "-m", MODEL, "-i", protocol, "-u", url, *load, "--input-data", str(data),
                *self.window(concurrency), "--max-trials", str(trials or self.max_trials),
                "-s", str(stability or self.stability), "--percentile", "95", "-f", str(out), *extra]

    def measure(self, protocol, url, data, load, concurrency=1, extra=()):
        """Runs one point; returns (row from perf_analyzer's CSV, command,
        settled): "yes" when perf_analyzer's stability test passed within
        max_trials windows; otherwise it runs again accepting any 3 windows
        ("loose"); "failed" (and no row) when even that gave no figure."""
        out = self.work / "pa.csv"
        for stability, trials, stable in ((self.stability, self.max_trials, "yes"), (1000, 3, "loose")):
            out.unlink(missing_ok=True)
            command = self.command(protocol, url, data, load, concurrency, extra, stability, trials, out)
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
            if done.returncode == 0 and out.exists():
                rows = list(csv.DictReader(io.StringIO(out.read_text())))
                return rows[0], command, stable
            log(f"  perf_analyzer did not settle (rc {done.returncode}): {done.stdout.strip().splitlines()[-1:]}")
        log("  perf_analyzer gave no figure for this point; it is left empty:\n" + done.stdout[-1500:])
        return None, command, "failed"


# What a point that perf_analyzer could not measure at all records (NaN figures).
EMPTY_ROW = {"Inferences/Second": "nan", "p50 latency": "nan", "p95 latency": "nan", "p99 latency": "nan"}


def shown(command, data_dir):
    """The command as the docs show it: relative paths, <server> for the URL."""
    text = " ".join(str(c) for c in command)
    text = text.replace(str(data_dir), "<inputs>").replace(str(data_dir.parent / "pa.csv"), "<csv>").replace(str(ROOT) + "/", "")
    for token in command:
        if isinstance(token, str) and token.startswith("127.0.0.1:"):
            text = text.replace(token, "<server>")
    return "perf_analyzer" + text.split("perf_analyzer/run", 1)[-1]


def measure_point(pa, server, protocol, data, data_dir, concurrency, set_name, variant, build):
    before_cpu, before_wall, before_stats = cpu_seconds(server.pid), time.monotonic(), server.stats()
    row, command, stable = pa.measure(protocol, server.url(protocol), data, ["--concurrency-range", str(concurrency)], concurrency)
    cpu = (cpu_seconds(server.pid) - before_cpu) / (time.monotonic() - before_wall)
    after_stats = server.stats()
    row = row or EMPTY_ROW
    throughput = float(row["Inferences/Second"])
    result = {
        "server": variant, "protocol": protocol, "inputs": set_name, "concurrency": concurrency,
        "inferences_per_s": round(throughput, 2),
        "p50_ms": round(float(row["p50 latency"]) / 1e3, 1), "p95_ms": round(float(row["p95 latency"]) / 1e3, 1),
        "p99_ms": round(float(row["p99 latency"]) / 1e3, 1),
        "server_cpu_cores": round(cpu, 2), "server_cpu_ms_per_inference": round(cpu / throughput * 1e3, 1) if throughput > 0 else "",
        "server_peak_rss_mib": round(memory_kib(server.pid, "VmHWM") / 1024), "mean_batch": "", "engine_busy": "",
        "settled": stable, "build": build, "command": shown(command, data_dir),
    }
    if not variant.startswith("fastapi") and before_stats and after_stats and after_stats["executions"] > before_stats["executions"]:
        executions = after_stats["executions"] - before_stats["executions"]
        result["mean_batch"] = round((after_stats["inferences"] - before_stats["inferences"]) / executions, 2)
        busy = (after_stats["compute_ns"] - before_stats["compute_ns"]) / 1e9 / (time.monotonic() - before_wall)
        result["engine_busy"] = round(busy, 2)
    log(f"  {variant}/{protocol} {set_name} c={concurrency}: {throughput:.1f} inf/s, p50 {result['p50_ms']} ms, "
        f"p95 {result['p95_ms']} ms, cpu {cpu:.2f} cores, rss {result['server_peak_rss_mib']} MiB, batch {result['mean_batch']}")
    return result


def warm_up(pa_run, server, protocol, data):
    """A few requests first: buffers sized, pages touched, threads started."""
    subprocess.run([pa_run, "-m", MODEL, "-i", protocol, "-u", server.url(protocol), "--input-data", str(data),
                    "--concurrency-range", "2", "--measurement-mode", "count_windows", "--measurement-request-count", "6",
                    "--max-trials", "1", "-s", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=600)


# ---------------------------------------------------------------- priority scenario

def priority_scenario(pa, server, sets, data_dir, rate, bulk_concurrency, window_requests, build):
    grpc = server.url("grpc")
    fixed, mixed = sets["fixed128"][0], sets["mixed"][0]
    probe_load = ["--request-rate-range", str(rate), "--request-distribution", "poisson", "--max-threads", "16"]
    probe = PerfAnalyzer(pa.run, pa.max_trials, pa.stability, pa.work, window_requests=window_requests)
    rows = []

    def probe_once(label, priority, bulk):
        extra = ["--request-parameter", f"priority:{priority}:int"] if priority else []
        before = cpu_seconds(server.pid), time.monotonic()
        row, command, stable = probe.measure("grpc", grpc, fixed, probe_load, 1, extra)
        row = row or EMPTY_ROW
        cpu = (cpu_seconds(server.pid) - before[0]) / (time.monotonic() - before[1])
        result = {"scenario": label, "probe_priority": priority or "default (2)", "bulk_concurrency": bulk,
                  "probe_rate_per_s": rate, "probe_inferences_per_s": round(float(row["Inferences/Second"]), 2),
                  "p50_ms": round(float(row["p50 latency"]) / 1e3, 1), "p95_ms": round(float(row["p95 latency"]) / 1e3, 1),
                  "p99_ms": round(float(row["p99 latency"]) / 1e3, 1), "bulk_inferences_per_s": "",
                  "server_cpu_cores": round(cpu, 2), "server_peak_rss_mib": round(memory_kib(server.pid, "VmHWM") / 1024),
                  "settled": stable, "build": build, "command": shown(command, data_dir)}
        log(f"  priority {label}: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms")
        return result

    rows.append(probe_once("idle server, priority 1", 1, 0))
    for priority, label in ((1, "bulk saturating, priority 1"), (None, "bulk saturating, default priority")):
        # Runs until killed (a window of a million requests).
        bulk_command = [pa.run, "-m", MODEL, "-i", "grpc", "-u", grpc, "--input-data", str(mixed),
                        "--concurrency-range", str(bulk_concurrency), "--measurement-mode", "count_windows",
                        "--measurement-request-count", "1000000", "--max-trials", "1"]
        before = server.stats(), time.monotonic()
        bulk = subprocess.Popen(bulk_command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            time.sleep(5)  # the bulk client fills the queue first
            result = probe_once(label, priority, bulk_concurrency)
        finally:
            bulk.kill()  # its connections close; the server cancels what it left queued
            bulk.wait()
        after = server.stats(), time.monotonic()
        if before[0] and after[0]:
            result["bulk_inferences_per_s"] = round(
                ((after[0]["inferences"] - before[0]["inferences"]) / (after[1] - before[1])) - float(result["probe_inferences_per_s"]), 2)
        result["command"] += " ; bulk: " + shown(bulk_command, data_dir)
        rows.append(result)
        time.sleep(2)  # let the server drain what the bulk client left queued
    return rows


# ---------------------------------------------------------------- offline engine figure

def offline_jobs():
    """EncoderBench jobs: for each length set and batch size, one batch whose
    lengths are the set's quantiles (so its token count matches the set's
    mean). Fixed: always the default 256-request sets, seed 0."""
    jobs = []
    for set_name in ("fixed128", "mixed"):
        real = np.array(inputs.lengths(set_name, 256, 0))
        for b in OFFLINE_BATCHES:
            lengths = [int(round(np.quantile(real, (i + 0.5) / b))) for i in range(b)]
            jobs.append({"name": f"{set_name}/b={b}", "lengths": lengths, "repeats": 3 if b >= 16 else 5})
    return jobs


def read_offline(path):
    """{(set, batch): sequences/s} from EncoderBench's JSON lines or a CSV."""
    figures = {}
    text = pathlib.Path(path).read_text()
    if path.endswith(".csv"):
        for row in csv.DictReader(io.StringIO(text)):
            figures[(row["set"], int(row["batch_size"]))] = float(row["sequences_per_s"])
        return figures
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            set_name, b = row["name"].split("/b=")
            figures[(set_name, int(b))] = int(b) / row["median_ms"] * 1e3
    return figures


def run_offline(jobs_path, out_path):
    env = dict(os.environ, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    with open(jobs_path) as jobs, open(out_path, "w") as out:
        subprocess.run([str(ENCODER_BENCH), str(MODEL_DIR / "1"), "fp32"], stdin=jobs, stdout=out, env=env, check=True,
                       timeout=1800)


def interpolate(figures, set_name, batch):
    points = sorted((b, v) for (s, b), v in figures.items() if s == set_name)
    if not points:
        return None
    xs, ys = zip(*points)
    return float(np.interp(batch, xs, ys))


def offline_rows(results, figures):
    rows = []
    for r in results:
        if r["server"] != "batchserver" or int(r["concurrency"]) < 16 or not r["mean_batch"]:
            continue
        offline = interpolate(figures, r["inputs"], float(r["mean_batch"]))
        if offline is None:
            continue
        rows.append({"protocol": r["protocol"], "inputs": r["inputs"], "concurrency": r["concurrency"],
                     "mean_batch": r["mean_batch"], "end_to_end_per_s": r["inferences_per_s"],
                     "offline_engine_per_s": round(offline, 2),
                     "ratio": round(float(r["inferences_per_s"]) / offline, 3)})
    return rows


# ---------------------------------------------------------------- output

def write_csv(path, rows):
    if not rows:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path):
    return list(csv.DictReader(open(path))) if path.exists() else []


LINES = {("fastapi", "http"): ("FastAPI + PyTorch fp32 (HTTP)", "tab:red", "o"),
         ("fastapi-bf16", "http"): ("FastAPI + PyTorch bf16 autocast (HTTP)", "tab:orange", "v"),
         ("batchserver", "grpc"): ("BatchServer, precision auto (gRPC)", "tab:blue", "s"),
         ("batchserver", "http"): ("BatchServer, precision auto (HTTP)", "tab:cyan", "^"),
         ("batchserver-int8", "grpc"): ("BatchServer int8 (gRPC)", "tab:purple", "P"),
         ("batchserver-int8", "http"): ("BatchServer int8 (HTTP)", "tab:pink", "X"),
         ("batchserver-fp32", "grpc"): ("BatchServer fp32 (gRPC)", "tab:brown", "<"),
         ("batchserver-fp32", "http"): ("BatchServer fp32 (HTTP)", "tab:gray", ">"),
         ("batchserver-bf16", "grpc"): ("BatchServer bf16 (gRPC)", "tab:olive", "h"),
         ("batchserver-bf16", "http"): ("BatchServer bf16 (HTTP)", "gold", "H"),
         ("triton-way", "grpc"): ("BatchServer, Triton way: padded to 128 (gRPC)", "tab:green", "D")}
SET_TITLES = {"fixed128": "fixed length 128", "mixed": "mixed lengths 8..128"}


def series(results):
    """{(set, (server, protocol)): rows sorted by concurrency}; triton-way's
    padded set is drawn with the mixed set it pads."""
    out = {}
    for r in results:
        set_name = "mixed" if r["inputs"] == "padded128" else r["inputs"]
        out.setdefault((set_name, (r["server"], r["protocol"])), []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: int(r["concurrency"]))
    return out


def plot(results, suffix=""):
    if not results:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    data = series(results)
    build = {r["build"] for r in results}
    tag = "" if build == {"release"} else f" [{'/'.join(sorted(build))} build]"
    paths = []
    for kind in ("throughput", "latency"):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
        for ax, set_name in zip(axes, ("fixed128", "mixed")):
            for key, (label, color, marker) in LINES.items():
                rows = data.get((set_name, key))
                if not rows:
                    continue
                c = [int(r["concurrency"]) for r in rows]
                t = [float(r["inferences_per_s"]) for r in rows]
                p95 = [float(r["p95_ms"]) for r in rows]
                if kind == "throughput":
                    ax.plot(c, t, marker=marker, color=color, label=label)
                else:
                    ax.plot(t, p95, marker=marker, color=color, label=label)
                    for ci, ti, pi in zip(c, t, p95):
                        ax.annotate(f"c={ci}", (ti, pi), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
            ax.set_title(f"DistilBERT, {SET_TITLES[set_name]}{tag}")
            ax.grid(True, alpha=0.3)
            if kind == "throughput":
                ax.set_xscale("log", base=2)
                ax.set_xticks([1, 4, 16, 64], ["1", "4", "16", "64"])
                ax.set_xlabel("concurrency (perf_analyzer)")
                ax.set_ylabel("inferences/s")
                ax.set_ylim(bottom=0)
            else:
                ax.set_yscale("log")
                ax.set_xlabel("inferences/s")
                ax.set_ylabel("p95 latency (ms)")
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = PLOTS / f"serving-{kind}{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


BEGIN = "<!-- serving-bench:begin: generated by bench/serving/run.py --docs from bench/results/serving*.csv -->"
END = "<!-- serving-bench:end -->"


def markdown(results, priority, offline, run):
    lines = []
    add = lines.append
    debug = run.get("build") != "release"
    add(f"Run of {run.get('date', '?')}, `{run.get('command', '?')}`, {run.get('duration_s', '?')} s"
        + (" — **debug-build smoke figures: not to be quoted; rerun with the release build**" if debug else "") + ".")
    add("")
    add(run.get("machine", ""))
    add("")
    if run.get("precisions"):
        add(f"Encoder precision in effect: {run['precisions']}.")
        add("")
    add("#### Throughput and latency (`bench/results/serving.csv`)")
    add("")
    add("| server | protocol | inputs | concurrency | inferences/s | p50 (ms) | p95 (ms) | p99 (ms) | server CPU (cores) | CPU ms/inference | peak RSS (MiB) | mean batch | engine busy |")
    add("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        flag = {"yes": "", "loose": " (loose)"}.get(r["settled"], " (failed)")
        add(f"| {r['server']} | {r['protocol']} | {r['inputs']} | {r['concurrency']} | {float(r['inferences_per_s']):.1f}{flag} | "
            f"{r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['server_cpu_cores']} | {r['server_cpu_ms_per_inference']} | "
            f"{r['server_peak_rss_mib']} | {r['mean_batch'] or '1'} | {r['engine_busy']} |")
    add("")
    add("(loose): perf_analyzer's stability test (-s) did not pass within the trials; the figure merges 3 windows accepted "
        "without it. Peak RSS is the server's VmHWM after the point (it only grows); server CPU is utime+stime over the "
        "point's wall time, in cores (2 = both cores). Mean batch and engine busy (the fraction of the point's wall "
        "time the model instance spent computing, from `compute_infer` in the model statistics) are BatchServer's own "
        "figures; FastAPI's batch is always 1. `batchserver` runs the encoder at `parameters.precision` auto (the "
        "shipped default), `batchserver-<precision>` at the precision named; `fastapi` runs PyTorch in fp32, "
        "`fastapi-bf16` the same forward under `torch.autocast(\"cpu\", dtype=torch.bfloat16)`.")
    add("")
    add("![throughput against concurrency](bench-results/serving-throughput.png)")
    add("")
    add("![p95 latency against throughput](bench-results/serving-latency.png)")
    if priority:
        add("")
        add("#### Priority (`bench/results/serving_priority.csv`)")
        add("")
        add("| scenario | probe priority | bulk concurrency | probe p50 (ms) | probe p95 (ms) | probe p99 (ms) | bulk inferences/s | server CPU (cores) |")
        add("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in priority:
            flag = {"yes": "", "loose": " (loose)"}.get(r["settled"], " (failed)")
            add(f"| {r['scenario']}{flag} | {r['probe_priority']} | {r['bulk_concurrency']} | {r['p50_ms']} | {r['p95_ms']} | "
                f"{r['p99_ms']} | {r['bulk_inferences_per_s']} | {r['server_cpu_cores']} |")
    if offline:
        add("")
        add("#### End to end against the engine offline (`bench/results/serving_offline.csv`)")
        add("")
        add("| protocol | inputs | concurrency | mean batch | end to end (inf/s) | engine offline (seq/s) | ratio |")
        add("|---|---|---:|---:|---:|---:|---:|")
        for r in offline:
            add(f"| {r['protocol']} | {r['inputs']} | {r['concurrency']} | {r['mean_batch']} | {r['end_to_end_per_s']} | "
                f"{r['offline_engine_per_s']} | {float(r['ratio']):.2f} |")
        add("")
        add(f"Offline figures: {run.get('offline', '?')}, interpolated at the point's mean batch size "
            "(`bench/results/serving_offline_engine.csv`); the end-to-end figures are `batchserver`'s (precision auto).")
    add("")
    add("#### Targets (reported, not asserted)")
    add("")
    for line in targets(results, priority, offline):
        add(f"- {line}")
    return "\n".join(lines)


def write_docs(text):
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text()
    if BEGIN not in doc or END not in doc:
        log(f"docs/benchmarks.md has no {BEGIN!r} ... {END!r} block; not written")
        return
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + BEGIN + "\n" + text + "\n" + END + tail)
    log("wrote the generated block of docs/benchmarks.md")


def verdict(ok, value):
    if value != value:  # NaN: perf_analyzer gave no figure
        return "no figure"
    return "met" if ok else "NOT met"


def targets(results, priority, offline):
    def find(server, protocol, set_name, c):
        for r in results:
            if (r["server"], r["protocol"], r["inputs"], int(r["concurrency"])) == (server, protocol, set_name, c):
                return r
        return None

    out = []
    for set_name in ("fixed128", "mixed"):
        for c in (16, 64):
            base = find("fastapi", "http", set_name, c)
            for protocol in ("grpc", "http"):
                ours = find("batchserver", protocol, set_name, c)
                if base and ours:
                    ratio = float(ours["inferences_per_s"]) / float(base["inferences_per_s"])
                    out.append(f"throughput >= 2x FastAPI, {set_name}, c={c}, {protocol}: "
                               f"{float(ours['inferences_per_s']):.1f} vs {float(base['inferences_per_s']):.1f} inf/s = {ratio:.2f}x: "
                               f"{verdict(ratio >= 2, ratio)}")
    # The precision issue's targets, set for a CPU with AMX (bf16 and int8
    # matrix units); on a machine without it they say what is left to reach.
    base = find("fastapi", "http", "fixed128", 16)
    peer = find("fastapi-bf16", "http", "fixed128", 16)
    for server, factor in (("batchserver", 3), ("batchserver-int8", 8)):
        for protocol in ("grpc", "http"):
            ours = find(server, protocol, "fixed128", 16)
            if base and ours:
                a, b = float(ours["inferences_per_s"]), float(base["inferences_per_s"])
                line = (f"throughput >= {factor}x FastAPI fp32 (a target for an AMX machine), fixed128, c=16, {server}, "
                        f"{protocol}: {a:.1f} vs {b:.1f} inf/s = {a / b:.2f}x: {verdict(a / b >= factor, a / b)}")
                if peer:
                    p = float(peer["inferences_per_s"])
                    line += f" (against FastAPI bf16 autocast, {p:.1f} inf/s: {a / p:.2f}x)"
                out.append(line)
    batchservers = sorted({r["server"] for r in results if r["server"].startswith("batchserver")})
    for set_name in ("fixed128", "mixed"):
        base = find("fastapi", "http", set_name, 1)
        for server in batchservers:
            for protocol in ("grpc", "http"):
                ours = find(server, protocol, set_name, 1)
                if base and ours:
                    a, b = float(ours["p50_ms"]), float(base["p50_ms"])
                    out.append(f"p50 at c=1 below FastAPI fp32's, {set_name}, {server}, {protocol}: {a} ms vs {b} ms: "
                               f"{verdict(a < b, a - b)}")
    if priority:
        idle = next((r for r in priority if r["scenario"].startswith("idle")), None)
        busy = next((r for r in priority if r["scenario"] == "bulk saturating, priority 1"), None)
        if idle and busy:
            ratio = float(busy["p95_ms"]) / float(idle["p95_ms"])
            out.append(f"priority-1 p95 under bulk saturation <= 2x its p95 on the idle server: {busy['p95_ms']} ms vs "
                       f"{idle['p95_ms']} ms = {ratio:.2f}x: {verdict(ratio <= 2, ratio)}")
    if offline:
        for r in offline:
            ratio = float(r["ratio"])
            out.append(f"end to end >= 90% of the offline engine at the same batch size, {r['inputs']}, c={r['concurrency']}, "
                       f"{r['protocol']} (mean batch {r['mean_batch']}): {ratio * 100:.0f}%: {verdict(ratio >= 0.9, ratio)}")
    else:
        out.append("end to end vs offline engine: no offline figure (pass --offline, or build bench/encoder in release)")
    return out


def machine_line(binary, build, torch_version):
    model = "unknown CPU"
    flags = set()
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and model == "unknown CPU":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    isa = ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags)
    memory = next(int(l.split()[1]) for l in pathlib.Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    return (f"Machine: {model} ({isa}), {os.cpu_count()} cores, {memory / 2**20:.0f} GiB, {platform.platform()}; "
            f"BatchServer {build} build ({binary}); PyTorch {torch_version} (CPU build), 2 threads; "
            f"perf_analyzer on the same cores.")


# ---------------------------------------------------------------- main

def main():
    default_binary = ROOT / ".build" / "release" / "batch-server"
    if not default_binary.exists():
        default_binary = ROOT / ".build" / "debug" / "batch-server"
    parser = argparse.ArgumentParser(description="FastAPI + PyTorch against BatchServer through perf_analyzer")
    parser.add_argument("--binary", default=str(default_binary), help="batch-server (default: release if built, else debug)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--sets", nargs="+", default=["fixed128", "mixed"], choices=["fixed128", "mixed"])
    servers = ["fastapi", "fastapi-bf16", "batchserver", "triton-way", "priority"]
    parser.add_argument("--servers", nargs="+", default=servers, choices=servers)
    parser.add_argument("--precisions", nargs="+", default=["auto", "int8"], choices=PRECISIONS,
                        help="the batchserver kind's encoder precisions (parameters.precision), one server each: "
                             "results named batchserver (auto) and batchserver-<precision>")
    parser.add_argument("--protocols", nargs="+", default=["grpc", "http"], choices=["grpc", "http"],
                        help="BatchServer's protocols (FastAPI is HTTP only; triton-way and priority run on gRPC)")
    parser.add_argument("--window-requests", type=int, default=50,
                        help="perf_analyzer count_windows: requests per window (at least 2 x concurrency); 0: time windows")
    parser.add_argument("--interval-ms", type=int, default=4000, help="perf_analyzer --measurement-interval (time windows)")
    parser.add_argument("--max-trials", type=int, default=6)
    parser.add_argument("--stability", type=int, default=50, help="perf_analyzer -s (percent)")
    parser.add_argument("--requests", type=int, default=256, help="entries in each --input-data set")
    parser.add_argument("--padding-mask", type=int, choices=[0, 1], default=1,
                        help="mask of the Triton way's padding positions: 1 charges the padded compute (see inputs.py)")
    parser.add_argument("--fastapi-handler", choices=["threadpool", "serial"], default="threadpool")
    parser.add_argument("--priority-rate", type=float, default=2.0, help="priority client's requests/s (Poisson)")
    parser.add_argument("--priority-bulk", type=int, default=16, help="bulk client's concurrency")
    parser.add_argument("--priority-window-requests", type=int, default=20, help="priority client's requests per window")
    parser.add_argument("--offline", help="offline engine figures: EncoderBench JSON lines or CSV (set,batch_size,sequences_per_s)")
    parser.add_argument("--no-offline", action="store_true", help="do not run EncoderBench even if it is built")
    parser.add_argument("--suffix", default="", help="appended to the output file names (e.g. -debug)")
    parser.add_argument("--replot", action="store_true",
                        help="measure nothing: redraw plots and tables from the CSVs (with --offline: recompute the offline ratios)")
    parser.add_argument("--docs", action="store_true", help="also write the tables into docs/benchmarks.md's generated block")
    parser.add_argument("--perf-analyzer", default=str(ROOT / "bench" / "tools" / "perf_analyzer" / "run"))
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = {name: RESULTS / f"serving{name}{args.suffix}.csv"
             for name in ("", "_priority", "_offline", "_offline_engine", "_run")}
    from importlib.metadata import version
    binary = pathlib.Path(args.binary).absolute()
    build = "release" if "/release/" in str(binary) else "debug" if "/debug/" in str(binary) else "unknown"
    shown_binary = str(binary.relative_to(ROOT)) if binary.is_relative_to(ROOT) else str(binary)

    if args.replot:
        results, priority, offline = (read_csv(paths[n]) for n in ("", "_priority", "_offline"))
        run = (read_csv(paths["_run"]) or [{}])[0]
        if args.offline:
            offline = finish_offline(results, read_offline(args.offline), paths)
            run["offline"] = args.offline
            write_csv(paths["_run"], [run])
        report(results, priority, offline, run, args)
        return

    command_line = "bench/serving/run.sh" + "".join(f" {a}" for a in sys.argv[1:])
    work = pathlib.Path(tempfile.mkdtemp(prefix="serving-bench-"))
    logs = work / "logs"
    logs.mkdir()
    data_dir = work / "inputs"
    sets = inputs.make_sets(data_dir, args.requests, padding_mask=args.padding_mask)
    expected = "".join(json.dumps(j) + "\n" for j in offline_jobs())
    if not OFFLINE_JOBS.exists() or OFFLINE_JOBS.read_text() != expected:
        OFFLINE_JOBS.write_text(expected)
    pa = PerfAnalyzer(args.perf_analyzer, args.max_trials, args.stability, work, args.interval_ms, args.window_requests)
    run = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "command": command_line, "build": build, "binary": shown_binary,
           "machine": machine_line(shown_binary, build, version("torch")), "duration_s": "", "offline": "",
           "fastapi_handler": args.fastapi_handler, "precisions": ""}
    log(f"serving bench: {run['machine']}\n  work directory {work}")
    started = time.monotonic()
    results, priority = [], []

    def sweep(server, variant, protocols, set_names):
        for protocol in protocols:
            warm_up(args.perf_analyzer, server, protocol, sets[set_names[0]][0])
            for set_name in set_names:
                for c in args.concurrency:
                    results.append(measure_point(pa, server, protocol, sets[set_name][0], data_dir, c, set_name, variant, build))
                    write_csv(paths[""], results)

    try:
        for kind in ("fastapi", "fastapi-bf16"):
            if kind in args.servers:
                server = start_fastapi(kind, sys.executable, args.fastapi_handler, logs)
                try:
                    sweep(server, kind, ["http"], args.sets)
                finally:
                    server.stop()
        if "batchserver" in args.servers:
            in_effect = []
            for precision in args.precisions:
                name = batchserver_name(precision)
                repo = temp_repository(work, name, precision_config(precision))
                server = start_batchserver(name, str(binary), repo, logs)
                try:
                    in_effect.append(f"{name}: {precision_in_effect(server)}")
                    log(f"  {in_effect[-1]}")
                    sweep(server, name, args.protocols, args.sets)
                finally:
                    server.stop()
            run["precisions"] = "; ".join(in_effect)
        if "triton-way" in args.servers and "mixed" in args.sets:
            repo = temp_repository(work, "triton-way", TRITON_WAY_CONFIG)
            server = start_batchserver("triton-way", str(binary), repo, logs)
            try:
                sweep(server, "triton-way", ["grpc"], ["padded128"])
            finally:
                server.stop()
        if "priority" in args.servers:
            repo = temp_repository(work, "priority", priority_config())
            server = start_batchserver("priority", str(binary), repo, logs)
            try:
                warm_up(args.perf_analyzer, server, "grpc", sets["fixed128"][0])
                priority = priority_scenario(pa, server, sets, data_dir, args.priority_rate, args.priority_bulk,
                                             args.priority_window_requests, build)
                write_csv(paths["_priority"], priority)
            finally:
                server.stop()
    finally:
        log(f"  servers measured in {time.monotonic() - started:.0f} s; server logs in {logs}")

    figures = {}
    if args.offline:
        figures, run["offline"] = read_offline(args.offline), args.offline
    elif not args.no_offline and ENCODER_BENCH.exists():
        out = work / "offline.jsonl"
        log(f"  offline engine: {ENCODER_BENCH.relative_to(ROOT)} on {OFFLINE_JOBS.relative_to(ROOT)}")
        run_offline(OFFLINE_JOBS, out)
        figures = read_offline(str(out))
        run["offline"] = f"{ENCODER_BENCH.relative_to(ROOT)} fp32 on {OFFLINE_JOBS.relative_to(ROOT)}, same run"
    offline = finish_offline(results, figures, paths)
    run["duration_s"] = round(time.monotonic() - started)
    write_csv(paths["_run"], [run])
    report(results, priority, offline, run, args)
    log(f"done in {run['duration_s']} s")


def finish_offline(results, figures, paths):
    offline = offline_rows(results, figures)
    if figures:
        write_csv(paths["_offline_engine"], [{"set": s, "batch_size": b, "sequences_per_s": round(v, 2)}
                                              for (s, b), v in sorted(figures.items())])
    write_csv(paths["_offline"], offline)
    return offline


def report(results, priority, offline, run, args):
    text = markdown(results, priority, offline, run)
    print(text)
    for p in plot(results, args.suffix):
        log(f"wrote {p.relative_to(ROOT)}")
    if args.docs:
        write_docs(text)


if __name__ == "__main__":
    main()
