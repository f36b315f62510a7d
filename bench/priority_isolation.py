#!/usr/bin/env python3
"""Does a clinical client stay fast while a bulk job runs at full speed?

One DistilBERT classifier (the shipped distilbert_sst2 weights) with two
priority levels; a bulk job (4 threads sending 8 notes per request, back to
back, at the default level 2) and a latency client (one note per request,
100 ms apart). Latency p50/p99 is measured alone (idle), beside the bulk job
at the bulk job's level, and beside it at level 1 (higher), for two
max_batch_size settings (the bulk batch a clinical request may wait behind).
Writes bench/results/priority_isolation.csv and a markdown table with the CPU.

    .venv/bin/python bench/priority_isolation.py [--samples 100]
"""

import argparse
import csv
import pathlib
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
import tritonclient.http as httpclient

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from perf_simple import ROOT, start_server  # noqa: E402
from response_cache import cpu  # noqa: E402

NOTE = "pt seen in clinic today for follow up of hypertension, bp improved on current dose, continue and recheck in 3 months"


def repository(max_batch_size, preemption=True):
    target = pathlib.Path(tempfile.mkdtemp(prefix="priority-bench-"))
    source = ROOT / "model_repository" / "distilbert_sst2"
    (target / "triage").mkdir()
    for entry in source.iterdir():
        if entry.name != "config.pbtxt":
            (target / "triage" / entry.name).symlink_to(entry.resolve())
    config = (source / "config.pbtxt").read_text().replace('name: "distilbert_sst2"', 'name: "triage"')
    config = config.replace("max_batch_size: 32", f"max_batch_size: {max_batch_size}")
    config = config.replace("  max_queue_delay_microseconds: 2000\n",
                            "  max_queue_delay_microseconds: 2000\n  priority_levels: 2\n  default_priority_level: 2\n")
    if not preemption:
        config += 'parameters { key: "priority_preemption" value: { string_value: "false" } }\n'
    (target / "triage" / "config.pbtxt").write_text(config)
    return target


def text_input(rows):
    tensor = httpclient.InferInput("TEXT", [rows, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[NOTE.encode()]] * rows, dtype=np.object_))
    return [tensor]


def latency_client(url, samples, priority):
    client = httpclient.InferenceServerClient(url)
    client.infer("triage", text_input(1), priority=priority)
    out = []
    for _ in range(samples):
        time.sleep(0.1)
        started = time.perf_counter()
        client.infer("triage", text_input(1), priority=priority)
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


def bulk_job(url, stop, rows, counter):
    client = httpclient.InferenceServerClient(url)
    while not stop.is_set():
        client.infer("triage", text_input(rows))
        with counter[0]:
            counter[1] += rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--binary", default=str(ROOT / ".build" / "release" / "batch-server"))
    args = parser.parse_args()
    rows = []
    for max_batch_size, bulk_rows in ((32, 8), (8, 8), (4, 4)):
        # The same model with the urgent lane (default) and without it (priority_preemption false).
        for preemption in (True, False):
            process, http, _ = start_server(args.binary, repository(max_batch_size, preemption))
            url = f"127.0.0.1:{http}"
            suffix = "" if preemption else ", no preemption"
            try:
                cases = (("beside bulk, same level", 2), ("beside bulk, level 1", 1)) if preemption else (("beside bulk, level 1", 1),)
                if preemption:
                    idle = latency_client(url, args.samples, 1)
                    rows.append({"max_batch_size": max_batch_size, "bulk_rows": bulk_rows, "case": "alone", "p50_ms": statistics.median(idle),
                                 "p99_ms": idle[int(0.99 * (len(idle) - 1))], "bulk_rows_per_s": 0})
                for case, priority in cases:
                    stop, counter = threading.Event(), [threading.Lock(), 0]
                    workers = [threading.Thread(target=bulk_job, args=(url, stop, bulk_rows, counter)) for _ in range(4)]
                    for worker in workers:
                        worker.start()
                    time.sleep(1.0)
                    started, before = time.monotonic(), counter[1]
                    values = latency_client(url, args.samples, priority)
                    throughput = (counter[1] - before) / (time.monotonic() - started)
                    stop.set()
                    for worker in workers:
                        worker.join()
                    rows.append({"max_batch_size": max_batch_size, "bulk_rows": bulk_rows, "case": case + suffix,
                                 "p50_ms": statistics.median(values), "p99_ms": values[int(0.99 * (len(values) - 1))],
                                 "bulk_rows_per_s": round(throughput)})
            finally:
                process.terminate()
                process.wait(30)
    name, flags = cpu()
    out = ROOT / "bench" / "results" / "priority_isolation.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["cpu", "flags", "max_batch_size", "bulk_rows", "case", "p50_ms", "p99_ms", "bulk_rows_per_s"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"cpu": name, "flags": flags, **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}})
    print(f"CPU: {name} ({flags}); bulk: 4 threads, back to back; latency client: 1 note, 100 ms apart\n")
    print("| max_batch_size | bulk notes/request | latency client | p50 ms | p99 ms | p99 / alone p99 | bulk rows/s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        alone = next(r for r in rows if r["max_batch_size"] == row["max_batch_size"] and r["case"] == "alone")
        print(f"| {row['max_batch_size']} | {row['bulk_rows']} | {row['case']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['p99_ms'] / alone['p99_ms']:.2f}x | {row['bulk_rows_per_s']} |")


if __name__ == "__main__":
    main()
