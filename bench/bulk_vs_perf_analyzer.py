#!/usr/bin/env python3
"""The bulk client's throughput against perf_analyzer's, same server, model,
inputs and concurrency, one after the other in one run.

    .venv/bin/python bench/bulk_vs_perf_analyzer.py [--concurrency 16] [--rows 4000] [--build-dir .build/debug] [--client-dir .build/release]

Inputs: bench/serving/inputs.py's "mixed" set (token ids, 8..128 tokens), as
perf_analyzer --input-data and as the bulk client's JSONL (the same 256
sequences, repeated). The bulk client runs with a fixed --in-flight equal to
perf_analyzer's concurrency, and once with its window sized from the queue
time. Prints a markdown table; appends to bench/results/bulk_vs_perf_analyzer.csv.
"""

import argparse
import csv
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "serving"))
sys.path.insert(0, str(ROOT / "bench" / "reliability"))
from inputs import make_sets  # noqa: E402
from suite import MODEL, Server, cpu_name  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--build-dir", default=str(ROOT / ".build" / "debug"), help="where batch-server is")
    parser.add_argument("--client-dir", help="where batch-server-client is (default: --build-dir)")
    parser.add_argument("--perf-analyzer", default=str(ROOT / "bench" / "tools" / "perf_analyzer" / "run"))
    args = parser.parse_args()
    build = pathlib.Path(args.build_dir)
    client_build = pathlib.Path(args.client_dir or args.build_dir)
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        data, _ = make_sets(work)["mixed"]
        entries = json.loads(data.read_text())["data"]
        with open(work / "rows.jsonl", "w") as f:
            for i in range(args.rows):
                f.write(json.dumps({"id": f"r{i}", "input_ids": entries[i % len(entries)]["INPUT_IDS"]["content"]}) + "\n")
        server = Server(build, work, "bench").start()
        rows = []
        try:
            # Warm-up: the first batches of each size pay for nothing later.
            subprocess.run([args.perf_analyzer, "-m", MODEL, "-i", "grpc", "-u", server.address, "--input-data", str(data),
                            "--concurrency-range", str(args.concurrency), "--measurement-interval", "3000", "--max-trials", "2",
                            "-s", "1000"], capture_output=True, timeout=600)
            pa_csv = work / "pa.csv"
            command = [args.perf_analyzer, "-m", MODEL, "-i", "grpc", "-u", server.address, "--input-data", str(data),
                       "--concurrency-range", str(args.concurrency), "--measurement-mode", "count_windows",
                       "--measurement-request-count", str(max(500, args.rows // 4)), "--max-trials", "5", "-s", "15",
                       "-f", str(pa_csv)]
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0 or not pa_csv.exists():
                raise SystemExit(f"perf_analyzer failed:\n{done.stdout[-2000:]}")
            pa = float(next(csv.DictReader(open(pa_csv)))["Inferences/Second"])
            rows.append(("perf_analyzer", f"--concurrency-range {args.concurrency}", pa))
            for label, extra in ((f"batch-server-client --in-flight {args.concurrency}", ["--in-flight", str(args.concurrency)]),
                                 ("batch-server-client (window sized from queue time)", [])):
                summary = work / "summary.json"
                subprocess.run([str(client_build / "batch-server-client"), "run", MODEL, "--input", str(work / "rows.jsonl"),
                                "--output", str(work / "out.jsonl"), "--restart", "--server", server.address,
                                "--progress", "off", "--summary-json", str(summary), *extra], check=True, timeout=1800)
                result = json.loads(summary.read_text())
                rows.append((label, f"final window {result['finalWindow']}", result["rowsPerSecond"]))
        finally:
            server.kill()
    cpu = cpu_name()
    print(f"\nCPU: {cpu}; model {MODEL}; mixed 8..128 tokens; server build {build.name}, client build {client_build.name}\n")
    print("| load | setting | inferences/s | vs perf_analyzer |\n|---|---|---|---|")
    for label, setting, rate in rows:
        print(f"| {label} | {setting} | {rate:.1f} | {rate / rows[0][2]:.2f}x |")
    out = ROOT / "bench" / "results" / "bulk_vs_perf_analyzer.csv"
    new = not out.exists()
    with open(out, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["date", "cpu", "build", "load", "setting", "inferences_per_s"])
        for label, setting, rate in rows:
            writer.writerow([time.strftime("%Y-%m-%d"), cpu, f"server {build.name}, client {client_build.name}", label, setting, round(rate, 2)])


if __name__ == "__main__":
    main()
