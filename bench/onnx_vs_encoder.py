#!/usr/bin/env python3
"""The same DistilBERT served through BatchServer's two backends in one run:
its own `transformer_encoder` and `onnxruntime` (ONNX Runtime through its C
API), fp32 and int8, one batch-server, the same load generator (perf_analyzer
over gRPC), the same batching settings.

One temporary model repository holds four models over the weights of
model_repository/distilbert_sst2/1:

- encoder_fp32, encoder_int8: the shipped distilbert_sst2 config (its 1/
  files symlinked) with `parameters.precision` fp32 or int8 and
  `parameters.threads` set;
- onnx_fp32, onnx_int8: Tests/e2e/onnx_models.py's write_distilbert (full
  config; int8 by onnxruntime.quantization.quantize_dynamic, QInt8 weights)
  with `parameters.intra_op_thread_count` set.

All four get the same max_batch_size (16 by default: concurrency 16 can fill
one batch), dynamic_batching with max_queue_delay_microseconds 2000, and
instance_group [{ count: --instances (1) kind: KIND_CPU }]; every instance
runs on --threads threads (default: os.cpu_count(), for both backends).

The models are measured one after the other (encoder then ONNX at each
precision), each at every --concurrency (1 and 16; --quick: 1 and 4), batch 1
per request, --input-data JSON of fixed-length requests (--length 128). Per
point: throughput, p50/p95/p99 latency (perf_analyzer), server CPU (cores,
/proc/PID/stat) and the mean batch size (the model's statistics). The ratio
is transformer_encoder's throughput over onnxruntime's at the same precision
and concurrency, both measured in this run.

Prints a markdown table; writes bench/results/onnx_vs_encoder.csv and
onnx_vs_encoder.json (CPU model and flags from /proc/cpuinfo, the command line,
the configs, what each model reports it runs). --quick writes
onnx_vs_encoder-quick.* unless --suffix says otherwise. The harness never
builds; build the server first, and keep builds off the cores meanwhile:

    swift build -c release --product batch-server
    flock /tmp/swift-build.lock bench/.venv/bin/python bench/onnx_vs_encoder.py
    bench/.venv/bin/python bench/onnx_vs_encoder.py --quick      # smoke test

Needs numpy, onnx, onnxruntime and safetensors (bench/.venv or .venv), and
perf_analyzer (bench/tools/install-perf-analyzer.sh). The server loads ONNX
Runtime from the wheel in .venv (BATCHSERVER_ONNXRUNTIME_LIBRARY), as the e2e
tests do; --onnxruntime-library names another.
"""

import argparse
import csv
import io
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))  # onnx_models
sys.path.insert(0, str(ROOT / "bench" / "serving"))  # inputs
import inputs  # noqa: E402
import onnx_models  # noqa: E402

MODEL_DIR = ROOT / "model_repository" / "distilbert_sst2"
SHIPPED_CONFIG = MODEL_DIR / "config.pbtxt"
DELAY_US = 2000
# (name, backend, precision), in measuring order: each ONNX model right after
# the encoder model it is compared with.
MODELS = [("encoder_fp32", "transformer_encoder", "fp32"), ("onnx_fp32", "onnxruntime", "fp32"),
          ("encoder_int8", "transformer_encoder", "int8"), ("onnx_int8", "onnxruntime", "int8")]
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


# The serving harness's process helpers (bench/serving/run.py).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "serving"))
import run  # noqa: E402
from run import cpu_seconds, free_port, get_json, log, memory_kib  # noqa: E402


def cpu_description():
    """{model, flags (those that decide the kernels), cores, memory_gib, platform}."""
    info = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    model = next((l.split(":", 1)[1].strip() for l in info if l.startswith("model name")), platform.processor() or "unknown CPU")
    flags = set(next((l.split(":", 1)[1].split() for l in info if l.startswith("flags")), []))
    memory = next(int(l.split()[1]) for l in pathlib.Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    return {"model": model, "flags": [f for f in FLAGS if f in flags], "cores": os.cpu_count(),
            "memory_gib": round(memory / 2**20), "platform": platform.platform()}


def default_onnxruntime_library():
    found = sorted(ROOT.glob(".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.*"))
    return str(found[0]) if found else None


# ---------------------------------------------------------------- repository

def common_blocks(instances):
    return f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]\n"


def encoder_config(name, precision, max_batch, instances, threads):
    """The shipped distilbert_sst2 config, renamed, with the run's batch size,
    instances, precision and threads."""
    text = SHIPPED_CONFIG.read_text()
    for needle in ('name: "distilbert_sst2"', "max_batch_size: 32", "max_queue_delay_microseconds: 2000"):
        assert needle in text, f"{SHIPPED_CONFIG.relative_to(ROOT)} no longer has {needle!r}"
    for key in ('key: "precision"', 'key: "threads"', "instance_group"):
        assert key not in text, f"{SHIPPED_CONFIG.relative_to(ROOT)} already sets {key}"
    text = text.replace('name: "distilbert_sst2"', f'name: "{name}"', 1)
    text = text.replace("max_batch_size: 32", f"max_batch_size: {max_batch}", 1)
    text = text.replace("max_queue_delay_microseconds: 2000", f"max_queue_delay_microseconds: {DELAY_US}", 1)
    return (text.rstrip("\n") + "\n# Written by bench/onnx_vs_encoder.py\n" + common_blocks(instances)
            + f'parameters {{ key: "precision" value: {{ string_value: "{precision}" }} }}\n'
            + f'parameters {{ key: "threads" value: {{ string_value: "{threads}" }} }}\n')


def onnx_config(text, max_batch, instances, threads, share_session=False):
    """write_distilbert's full config with the run's batch size, delay,
    instances and threads."""
    for needle in ("max_batch_size: 8", "dynamic_batching { }"):
        assert needle in text, f"write_distilbert's config no longer has {needle!r}:\n{text}"
    text = text.replace("max_batch_size: 8", f"max_batch_size: {max_batch}", 1)
    text = text.replace("dynamic_batching { }", f"dynamic_batching {{\n  max_queue_delay_microseconds: {DELAY_US}\n}}", 1)
    return (text.rstrip("\n") + "\n# Written by bench/onnx_vs_encoder.py\n" + common_blocks(instances)
            + f'parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{threads}" }} }}\n'
            + ('parameters { key: "share_session_between_instances" value: { string_value: "true" } }\n' if share_session else ""))


def build_repository(repo, names, max_batch, instances, threads, share_session=False):
    repo.mkdir(parents=True)
    for name, backend, precision in MODELS:
        if name not in names:
            continue
        started = time.monotonic()
        if backend == "transformer_encoder":
            model = repo / name
            (model / "1").mkdir(parents=True)
            for f in (MODEL_DIR / "1").iterdir():
                (model / "1" / f.name).symlink_to(f)
            labels = MODEL_DIR / "labels.txt"
            if labels.exists():
                (model / "labels.txt").symlink_to(labels)
            (model / "config.pbtxt").write_text(encoder_config(name, precision, max_batch, instances, threads))
        else:
            model = onnx_models.write_distilbert(repo, name, MODEL_DIR / "1", full_config=True, int8=precision == "int8")
            config = model / "config.pbtxt"
            config.write_text(onnx_config(config.read_text(), max_batch, instances, threads, share_session))
        log(f"  wrote {name} in {time.monotonic() - started:.1f} s")


# ---------------------------------------------------------------- server

class Server(run.Server):
    """One batch-server on free loopback ports serving `models` (explicit
    model control), ready when they all are (strict readiness)."""

    def __init__(self, binary, repository, models, env, log_path):
        http, grpc = free_port(), free_port()
        command = [binary, "--model-repository", str(repository), "--host", "127.0.0.1",
                   "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(free_port()),
                   "--model-control-mode", "explicit"]
        for m in models:
            command += ["--load-model", m]
        super().__init__("batch-server", command, http, grpc, env=env, log_path=log_path)

    def reported(self, model):
        """What the model says it runs: the parameters of its config as the server reports them."""
        try:
            p = get_json(f"http://127.0.0.1:{self.http}/v2/models/{model}/config").get("parameters", {})
            keys = ("precision_in_effect", "precision_reason", "onnxruntime_version", "execution_provider",
                    "intra_op_thread_count", "threads", "precision")
            return {k: p[k]["string_value"] for k in keys if k in p and "string_value" in p[k]}
        except (OSError, ValueError, KeyError):
            return {}

    def counts(self, model):
        try:
            s = get_json(f"http://127.0.0.1:{self.http}/v2/models/{model}/stats")["model_stats"][0]
            return int(s["inference_count"]), int(s["execution_count"])
        except (OSError, KeyError, IndexError, ValueError):
            return None


# ---------------------------------------------------------------- perf_analyzer

class PerfAnalyzer:
    """perf_analyzer over gRPC with windows counted in completed requests
    (bench/serving/run.py's settings): at least 2 per client and window."""

    def __init__(self, run, window_requests, max_trials, stability, work, timeout):
        self.run, self.window_requests, self.max_trials, self.stability = run, window_requests, max_trials, stability
        self.work, self.timeout = work, timeout

    def command(self, model, url, data, concurrency, stability, trials, out):
        count = max(self.window_requests, 2 * concurrency)
        return [self.run, "-m", model, "-i", "grpc", "-u", url, "-b", "1", "--concurrency-range", str(concurrency),
                "--input-data", str(data), "--measurement-mode", "count_windows", "--measurement-request-count", str(count),
                "--max-trials", str(trials), "-s", str(stability), "--percentile", "95", "-f", str(out)]

    def measure(self, model, url, data, concurrency):
        """(row of perf_analyzer's CSV or None, command, settled): "yes" when
        its stability test passed; else one more run accepting any 3 windows
        ("loose"); "failed" when that gave nothing either."""
        out = self.work / "pa.csv"
        tries = [(self.stability, self.max_trials, "yes")]
        if self.stability < 1000:
            tries.append((1000, 3, "loose"))
        for stability, trials, settled in tries:
            out.unlink(missing_ok=True)
            command = self.command(model, url, data, concurrency, stability, trials, out)
            try:
                done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                log(f"  perf_analyzer ran past {self.timeout} s")
                continue
            if done.returncode == 0 and out.exists():
                rows = list(csv.DictReader(io.StringIO(out.read_text())))
                if rows:
                    return rows[0], command, settled if stability < 1000 or settled == "loose" else "any"
            log(f"  perf_analyzer did not settle (rc {done.returncode}): {done.stdout.strip().splitlines()[-1:]}")
        return None, command, "failed"

    def warm_up(self, model, url, data):
        """A few requests first: buffers sized, pages touched, threads started."""
        subprocess.run([self.run, "-m", model, "-i", "grpc", "-u", url, "--input-data", str(data),
                        "--concurrency-range", "2", "--measurement-mode", "count_windows",
                        "--measurement-request-count", "4", "--max-trials", "1", "-s", "1000"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=self.timeout)


def shown(command, work):
    text = " ".join(str(c) for c in command[1:])
    text = text.replace(str(work / "pa.csv"), "<csv>").replace(str(work), "<work>")
    for token in command:
        if isinstance(token, str) and token.startswith("127.0.0.1:"):
            text = text.replace(token, "<server>")
    return "perf_analyzer " + text


def write_inputs(path, length, count, seed=0):
    """count batch-1 requests of `length` tokens ([CLS] ... [SEP], ids in the
    vocabulary's word range; bench/serving/inputs.py's entries), mask all 1."""
    import numpy as np
    rng = np.random.default_rng(seed)
    entries = [inputs.entry(inputs.sequence(rng, length), np.ones(length, np.int64)) for _ in range(count)]
    path.write_text(json.dumps({"data": entries}))
    return path


# ---------------------------------------------------------------- output

def write_csv(path, rows):
    if not rows:
        return
    fields = list(rows[0])
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def add_ratios(rows):
    """transformer_encoder's throughput over onnxruntime's, same precision and concurrency."""
    peers = {(r["precision"], r["concurrency"]): r for r in rows if r["backend"] == "onnxruntime"}
    for r in rows:
        r["encoder_over_ort"] = ""
        peer = peers.get((r["precision"], r["concurrency"]))
        if r["backend"] == "transformer_encoder" and peer:
            a, b = float(r["inferences_per_s"]), float(peer["inferences_per_s"])
            if b > 0 and a == a and b == b:
                r["encoder_over_ort"] = round(a / b, 3)


def markdown(rows, run):
    lines = [f"Run of {run['date']}, `{run['command']}`, {run['duration_s']} s"
             + (" — **debug-build smoke figures: not to be quoted; rerun with the release build**"
                if run["build"] != "release" or run["quick"] else "") + ".", "", run["machine"], "", run["settings"], ""]
    lines += ["| model | backend | precision | concurrency | inf/s | p50 ms | p99 ms | encoder / ORT |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        flag = {"yes": "", "any": "", "loose": " (loose)"}.get(r["settled"], " (failed)")
        ratio = f"{r['encoder_over_ort']:.2f}x" if r["encoder_over_ort"] != "" else ""
        precision = r["precision"] + (f" (in effect {r['precision_in_effect']})"
                                      if r["precision_in_effect"] and r["precision_in_effect"] != r["precision"] else "")
        lines.append(f"| {r['model']} | {r['backend']} | {precision} | {r['concurrency']} | "
                     f"{float(r['inferences_per_s']):.1f}{flag} | {r['p50_ms']} | {r['p99_ms']} | {ratio} |")
    lines += ["", "encoder / ORT: transformer_encoder's inf/s over onnxruntime's at the same precision and concurrency, "
              "same run, same server. (loose): perf_analyzer's stability test did not pass within the trials; the "
              "figure merges 3 windows accepted without it. Mean batch and server CPU: the CSV."]
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def main():
    default_binary = ROOT / ".build" / "release" / "batch-server"
    if not default_binary.exists():
        default_binary = ROOT / ".build" / "debug" / "batch-server"
    parser = argparse.ArgumentParser(description="transformer_encoder against onnxruntime, same DistilBERT, one batch-server")
    parser.add_argument("--binary", default=str(default_binary), help="batch-server (default: release if built, else debug)")
    parser.add_argument("--build", choices=["release", "debug"],
                        help="the binary's build, for a copy outside .build/ (default: from its path)")
    parser.add_argument("--onnxruntime-library", default=os.environ.get("BATCHSERVER_ONNXRUNTIME_LIBRARY") or default_onnxruntime_library(),
                        help="libonnxruntime.so for the server (default: the wheel's in .venv)")
    parser.add_argument("--perf-analyzer", default=str(ROOT / "bench" / "tools" / "perf_analyzer" / "run"))
    parser.add_argument("--models", nargs="+", default=[m[0] for m in MODELS], choices=[m[0] for m in MODELS])
    parser.add_argument("--concurrency", type=int, nargs="+", help="default 1 16 (--quick: 1 4)")
    parser.add_argument("--instances", type=int, default=1, help="instance_group count of every model (KIND_CPU)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads per instance, both backends (intra_op_thread_count; the encoder's threads)")
    parser.add_argument("--share-session", action="store_true",
                        help="ONNX models: share_session_between_instances (one ORT session for all instances)")
    parser.add_argument("--max-batch-size", type=int, default=16, help="max_batch_size of every model")
    parser.add_argument("--length", type=int, default=128, help="tokens per request")
    parser.add_argument("--requests", type=int, default=64, help="entries in the --input-data set")
    parser.add_argument("--window-requests", type=int, help="requests per window (at least 2 x concurrency); default 50, --quick 8")
    parser.add_argument("--max-trials", type=int, help="default 6, --quick 3")
    parser.add_argument("--stability", type=int, help="perf_analyzer -s (percent); default 50, --quick 1000 (any window)")
    parser.add_argument("--quick", action="store_true", help="smoke test: short windows, concurrency 1 and 4")
    parser.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--suffix", help="appended to the output names (default: none, --quick: -quick)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository (the ONNX files) after the run")
    args = parser.parse_args()
    q = args.quick
    concurrency = args.concurrency or ([1, 4] if q else [1, 16])
    window = args.window_requests or (8 if q else 50)
    trials = args.max_trials or (3 if q else 6)
    stability = args.stability or (1000 if q else 50)
    suffix = args.suffix if args.suffix is not None else ("-quick" if q else "")
    results = pathlib.Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = results / f"onnx_vs_encoder{suffix}.csv", results / f"onnx_vs_encoder{suffix}.json"

    binary = pathlib.Path(args.binary).absolute()
    if not binary.exists():
        raise SystemExit(f"no batch-server at {binary}: build it first (swift build -c release --product batch-server)")
    if not pathlib.Path(args.perf_analyzer).exists():
        raise SystemExit(f"no perf_analyzer at {args.perf_analyzer}: run bench/tools/install-perf-analyzer.sh")
    names = [m for m in (m[0] for m in MODELS) if m in args.models]
    if any(n.startswith("onnx") for n in names) and not args.onnxruntime_library:
        raise SystemExit("no libonnxruntime found in .venv; pass --onnxruntime-library (scripts/install-onnxruntime.sh)")
    build = args.build or ("release" if "/release/" in str(binary) else "debug" if "/debug/" in str(binary) else "unknown")
    import onnxruntime
    cpu = cpu_description()
    shown_binary = str(binary.relative_to(ROOT)) if binary.is_relative_to(ROOT) else str(binary)
    run = {"date": time.strftime("%Y-%m-%d", time.gmtime()),
           "command": "bench/onnx_vs_encoder.py" + "".join(f" {a}" for a in sys.argv[1:]),
           "python": sys.executable, "quick": q, "build": build, "binary": shown_binary,
           "cpu": cpu, "onnxruntime_library": args.onnxruntime_library, "onnxruntime_python": onnxruntime.__version__,
           "settings": {"max_batch_size": args.max_batch_size, "max_queue_delay_microseconds": DELAY_US,
                        "instances": args.instances, "threads_per_instance": args.threads, "length": args.length,
                        "requests_in_input_data": args.requests, "concurrency": concurrency, "protocol": "grpc",
                        "window_requests": window, "max_trials": trials, "stability_percent": stability}}
    run["machine"] = (f"CPU: {cpu['model']} (flags: {' '.join(cpu['flags']) or 'none of ' + ' '.join(FLAGS)}), "
                      f"{cpu['cores']} cores, {cpu['memory_gib']} GiB, {cpu['platform']}; BatchServer {build} build "
                      f"({shown_binary}); ONNX Runtime {onnxruntime.__version__} "
                      f"({pathlib.Path(args.onnxruntime_library).name if args.onnxruntime_library else '-'}); "
                      f"perf_analyzer on the same cores.")
    run["settings_line"] = (f"Every model: max_batch_size {args.max_batch_size}, dynamic batching with "
                            f"max_queue_delay_microseconds {DELAY_US}, {args.instances} instance(s) KIND_CPU of "
                            f"{args.threads} thread(s) each; requests of {args.length} tokens, batch 1, gRPC; "
                            f"count windows of max({window}, 2 x concurrency) requests, -s {stability}, "
                            f"--max-trials {trials}.")

    work = pathlib.Path(tempfile.mkdtemp(prefix="onnx-vs-encoder-"))
    repo = work / "repository"
    log(f"onnx_vs_encoder: {run['machine']}\n  work directory {work}")
    started = time.monotonic()
    rows = []
    server = None
    try:
        log("writing the model repository")
        build_repository(repo, names, args.max_batch_size, args.instances, args.threads, args.share_session)
        run["configs"] = {n: (repo / n / "config.pbtxt").read_text() for n in names}
        data = write_inputs(work / f"fixed{args.length}.json", args.length, args.requests)
        env = dict(os.environ)
        if args.onnxruntime_library:
            env["BATCHSERVER_ONNXRUNTIME_LIBRARY"] = args.onnxruntime_library
        log("starting batch-server")
        t = time.monotonic()
        server = Server(str(binary), repo, names, env, work / "batch-server.log")
        log(f"  ready in {time.monotonic() - t:.1f} s")
        run["reported"] = {n: server.reported(n) for n in names}
        for n in names:
            log(f"  {n}: {run['reported'][n]}")
        pa = PerfAnalyzer(args.perf_analyzer, window, trials, stability, work, 300 if q else 1800)
        for name, backend, precision in MODELS:
            if name not in names:
                continue
            pa.warm_up(name, server.url("grpc"), data)
            for c in concurrency:
                before_cpu, before_wall, before = cpu_seconds(server.pid), time.monotonic(), server.counts(name)
                row, command, settled = pa.measure(name, server.url("grpc"), data, c)
                wall = time.monotonic() - before_wall
                cores = (cpu_seconds(server.pid) - before_cpu) / wall
                after = server.counts(name)
                row = row or {}
                mean_batch = ""
                if before and after and after[1] > before[1]:
                    mean_batch = round((after[0] - before[0]) / (after[1] - before[1]), 2)

                def ms(key):
                    return round(float(row[key]) / 1e3, 1) if key in row else float("nan")
                result = {"model": name, "backend": backend, "precision": precision,
                          "precision_in_effect": run["reported"][name].get("precision_in_effect", precision if backend == "onnxruntime" else ""),
                          "concurrency": c, "inferences_per_s": round(float(row.get("Inferences/Second", "nan")), 2),
                          "p50_ms": ms("p50 latency"), "p95_ms": ms("p95 latency"), "p99_ms": ms("p99 latency"),
                          "mean_batch": mean_batch, "server_cpu_cores": round(cores, 2),
                          "server_rss_mib": round(memory_kib(server.pid, "VmRSS") / 1024, 1), "settled": settled,
                          "build": build, "quick": q, "command": shown(command, work)}
                rows.append(result)
                log(f"  {name} c={c}: {result['inferences_per_s']} inf/s, p50 {result['p50_ms']} ms, "
                    f"p99 {result['p99_ms']} ms, batch {mean_batch}, cpu {cores:.2f} cores ({settled}, {wall:.0f} s)")
                add_ratios(rows)
                write_csv(csv_path, rows)
    finally:
        if server:
            server.stop()
        if args.keep:
            log(f"  repository kept in {repo}")
        else:
            shutil.rmtree(repo, ignore_errors=True)
        log(f"  server log: {work / 'batch-server.log'}")
    run["duration_s"] = round(time.monotonic() - started)
    add_ratios(rows)
    write_csv(csv_path, rows)
    run["results_csv"] = str(csv_path.relative_to(ROOT)) if csv_path.is_relative_to(ROOT) else str(csv_path)
    json_path.write_text(json.dumps({**run, "results": rows}, indent=2) + "\n")
    text = markdown(rows, {**run, "settings": run["settings_line"]})
    print(text)
    log(f"wrote {csv_path} and {json_path}")


if __name__ == "__main__":
    main()
