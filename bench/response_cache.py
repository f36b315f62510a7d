#!/usr/bin/env python3
"""Response cache latency: the same request answered by the model (no cache),
from the local cache (a hit), and distinct requests with the cache on (every
one a miss: lookup + run + seal + insert), for `simple` and `distilbert_sst2`.

Starts the release server twice on free loopback ports (without and with
--cache-config local,size=64 MiB) over a copy of the shipped repository whose
two models enable response_cache, sends N sequential HTTP requests per case
from one client, and writes bench/results/response_cache.csv plus a markdown
table with the CPU on stdout. Usage (from the repository root, after
scripts/setup.sh release):

    .venv/bin/python bench/response_cache.py [--requests 300]
"""

import argparse
import csv
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from perf_simple import ROOT, start_server  # noqa: E402

MODELS = {
    "simple": lambda i: {"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": list(range(i, i + 16))},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": [1] * 16}]},
    "distilbert_sst2": lambda i: {"inputs": [
        {"name": "TEXT", "shape": [1, 1], "datatype": "BYTES",
         "data": [f"follow-up visit {i}: the patient reports the new dose works well and sleeps through the night"]}]},
}


def cpu():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16"]
    return model, " ".join(f for f in wanted if f in flags)


def repository():
    target = pathlib.Path(tempfile.mkdtemp(prefix="cache-bench-"))
    for model in MODELS:
        source = ROOT / "model_repository" / model
        (target / model).mkdir()
        for entry in source.iterdir():
            if entry.name != "config.pbtxt":
                (target / model / entry.name).symlink_to(entry.resolve())
        (target / model / "config.pbtxt").write_text((source / "config.pbtxt").read_text() + "\nresponse_cache { enable: true }\n")
    return target


def latencies(http, model, body_of, n, distinct):
    session = requests.Session()
    url = f"http://127.0.0.1:{http}/v2/models/{model}/infer"
    session.post(url, json=body_of(0), timeout=30).raise_for_status()   # warm; with a cache, the entry
    out = []
    for i in range(n):
        body = body_of(i + 1 if distinct else 0)
        started = time.perf_counter()
        session.post(url, json=body, timeout=30).raise_for_status()
        out.append((time.perf_counter() - started) * 1e6)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--binary", default=str(ROOT / ".build" / "release" / "batch-server"))
    args = parser.parse_args()
    repo = repository()
    rows = []
    for cached in (False, True):
        extra = ["--cache-config", f"local,size={64 << 20}"] if cached else []
        process, http, _ = start_server(args.binary, repo, extra)
        try:
            for model, body_of in MODELS.items():
                cases = [("hit", False), ("miss", True)] if cached else [("no cache", False)]
                for case, distinct in cases:
                    values = sorted(latencies(http, model, body_of, args.requests, distinct))
                    rows.append({"model": model, "case": case, "requests": len(values),
                                 "p50_us": round(statistics.median(values)), "p99_us": round(values[int(0.99 * (len(values) - 1))])})
        finally:
            process.terminate()
            process.wait(30)
    name, flags = cpu()
    out = ROOT / "bench" / "results" / "response_cache.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["cpu", "flags", "model", "case", "requests", "p50_us", "p99_us"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"cpu": name, "flags": flags, **row})
    print(f"CPU: {name} ({flags}); one HTTP client, sequential requests\n")
    print("| model | case | p50 µs | p99 µs | p50 vs no cache |")
    print("|---|---|---|---|---|")
    base = {r["model"]: r["p50_us"] for r in rows if r["case"] == "no cache"}
    for r in rows:
        print(f"| {r['model']} | {r['case']} | {r['p50_us']} | {r['p99_us']} | {r['p50_us'] / base[r['model']]:.2f}x |")


if __name__ == "__main__":
    main()
