#!/usr/bin/env python3
"""One server build against another on the same machine, in one run: the
request path's cost before and after a change (docs/benchmarks.md).

perf_analyzer against `simple` (gRPC and HTTP, concurrency 1 and 16) and
against `distilbert_sst2` (gRPC, concurrency 16, token ids of 8..128 tokens
from bench/serving/inputs.py), each point measured for each binary in turn,
over --rounds interleaved rounds (the median is kept), a 150 ms pause before
each point. Build the old commit once into a folder of its own, e.g.

    git worktree add /tmp/before <commit> && (cd /tmp/before && swift build -c release --product batch-server)
    .venv/bin/python bench/before_after.py --before /tmp/before/.build/release/batch-server

Prints a markdown table (after / before per point) with the CPU.
"""

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "serving"))
from perf_simple import ROOT, start_server  # noqa: E402
from response_cache import cpu  # noqa: E402
from inputs import make_sets  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import subprocess  # noqa: E402

POINTS = [("simple", "grpc", 1), ("simple", "grpc", 16), ("simple", "http", 1), ("simple", "http", 16),
          ("distilbert_sst2", "grpc", 16)]


def measure(run, model, protocol, url, concurrency, interval_ms, extra):
    """perf_analyzer's row for one point; a point whose windows did not
    settle within its trials (it exits non-zero) still reports its last one."""
    out = ROOT / "bench" / "results" / f".ba-{protocol}-{concurrency}.csv"
    out.unlink(missing_ok=True)
    done = subprocess.run([run, "-m", model, "-i", protocol, "-u", url, "--concurrency-range", str(concurrency),
                           "--measurement-interval", str(interval_ms if model == "simple" else 2 * interval_ms), "--max-trials", "8", "--stability-percentage", "25",
                           "-f", str(out), *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if not out.exists():
        raise RuntimeError(f"perf_analyzer wrote nothing (rc {done.returncode}): {done.stdout[-2000:]}")
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    out.unlink()
    return rows[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default=str(ROOT / ".build" / "release" / "batch-server"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval-ms", type=int, default=2000)
    parser.add_argument("--simple-only", action="store_true", help="leave out the DistilBERT point")
    args = parser.parse_args()
    run = subprocess.run([str(ROOT / "bench" / "tools" / "install-perf-analyzer.sh")], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    data = pathlib.Path(tempfile.mkdtemp(prefix="before-after-"))
    make_sets(data)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    points = [p for p in POINTS if p[0] == "simple"] if args.simple_only else POINTS
    results = {(build, point): [] for build in ("before", "after") for point in points}
    for round_ in range(args.rounds):
        for build, binary in (("before", args.before), ("after", args.after)):
            process, http, grpc = start_server(binary, ROOT / "model_repository")
            try:
                for point in points:
                    model, protocol, concurrency = point
                    url = f"127.0.0.1:{grpc if protocol == 'grpc' else http}"
                    extra = ["--input-data", str(data / "mixed.json")] if model != "simple" else []
                    time.sleep(0.15)
                    row = measure(run, model, protocol, url, concurrency, args.interval_ms, extra)
                    results[(build, point)].append((float(row["Inferences/Second"]), int(row["p50 latency"])))
                    print(f"round {round_} {build} {point}: {results[(build, point)][-1]}", file=sys.stderr)
            finally:
                process.terminate()
                process.wait(timeout=60)
    name, flags = cpu()
    print(f"CPU: {name} ({flags}); {args.rounds} interleaved rounds, median\n")
    print("| model | protocol | concurrency | before inf/s | after inf/s | after / before | before p50 µs | after p50 µs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for point in points:
        before = statistics.median(r[0] for r in results[("before", point)])
        after = statistics.median(r[0] for r in results[("after", point)])
        p50b = statistics.median(r[1] for r in results[("before", point)])
        p50a = statistics.median(r[1] for r in results[("after", point)])
        print(f"| {point[0]} | {point[1]} | {point[2]} | {before:.0f} | {after:.0f} | {after / before:.2f}x | {p50b:.0f} | {p50a:.0f} |")


if __name__ == "__main__":
    main()
