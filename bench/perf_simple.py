#!/usr/bin/env python3
"""perf_analyzer against BatchServer's `simple` model over gRPC and HTTP.

Starts the release server on free loopback ports, runs Triton's perf_analyzer
at each concurrency, and writes bench/results/perf_simple.csv plus a markdown
table on stdout. Usage (from the repository root, after scripts/setup.sh release):

    .venv/bin/python bench/perf_simple.py [--concurrency 1 16 64] [--interval-ms 3000]
"""

import argparse
import csv
import io
import os
import pathlib
import platform
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, repository, extra=()):
    http, grpc = free_port(), free_port()
    process = subprocess.Popen(
        [binary, "--model-repository", str(repository), "--host", "127.0.0.1",
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(free_port()), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1).status == 200:
                return process, http, grpc
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not become ready")


def perf_analyzer(run, model, protocol, url, concurrency, interval_ms, extra=()):
    out = ROOT / "bench" / "results" / f".pa-{protocol}-{concurrency}.csv"
    command = [run, "-m", model, "-i", protocol, "-u", url, "--concurrency-range", str(concurrency),
               "--measurement-interval", str(interval_ms), "--max-trials", "6", "-f", str(out), *extra]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=600)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    out.unlink()
    return rows[0], " ".join(command[1:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--interval-ms", type=int, default=3000)
    parser.add_argument("--model", default="simple")
    parser.add_argument("--binary", default=str(ROOT / ".build" / "release" / "batch-server"))
    args = parser.parse_args()

    run = subprocess.run([str(ROOT / "bench" / "tools" / "install-perf-analyzer.sh")], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    process, http, grpc = start_server(args.binary, ROOT / "model_repository")
    results = []
    try:
        for protocol, url in (("grpc", f"127.0.0.1:{grpc}"), ("http", f"127.0.0.1:{http}")):
            for concurrency in args.concurrency:
                row, command = perf_analyzer(run, args.model, protocol, url, concurrency, args.interval_ms)
                results.append({
                    "protocol": protocol, "concurrency": concurrency,
                    "inferences_per_s": float(row["Inferences/Second"]),
                    "p50_us": int(row["p50 latency"]), "p99_us": int(row["p99 latency"]),
                    "command": "perf_analyzer " + command.replace(url, "<server>").replace(str(ROOT / "bench" / "results"), "bench/results"),
                })
                print(f"{protocol} c={concurrency}: {results[-1]['inferences_per_s']:.0f} inf/s", file=sys.stderr)
    finally:
        process.terminate()
        process.wait(timeout=60)

    with open(ROOT / "bench" / "results" / "perf_simple.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print()
    print("| protocol | concurrency | inferences/s | p50 (µs) | p99 (µs) |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['protocol']} | {r['concurrency']} | {r['inferences_per_s']:.0f} | {r['p50_us']} | {r['p99_us']} |")


if __name__ == "__main__":
    main()
