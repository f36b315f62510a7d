"""Serving distilbert_sst2 with PHI redaction in front (phi_redaction) against
the same model without it, at concurrency 16 over gRPC, in one run on one
server: interleaved rounds, a pause before each timed round (contenders share
the cores), requests/s and p50/p99 latency per variant, and the ratio.

    .venv/bin/python bench/deid/redaction_overhead.py --binary .build/release/batch-server
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
import tritonclient.grpc as grpcclient

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
from conftest import MODEL_REPOSITORY, RunningServer  # noqa: E402
sys.path.insert(0, str(ROOT / "bench" / "deid"))


def cpu_name():
    info = pathlib.Path("/proc/cpuinfo").read_text()
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), platform.processor())
    flags = set(next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), []))
    return f"{model}, {os.cpu_count()} CPUs, flags: " + " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags)


def notes(count):
    corpus = sorted((ROOT / "bench" / "deid" / "data").glob("corpus-*.jsonl"))
    if corpus:
        texts = [json.loads(line)["text"] for line in open(corpus[-1])]
        return [t[:600] for t in texts[:count]]
    return [f"Pt Maria Lopez #{i}, DOB 03/14/1950, seen by Dr. Chen; call 617-555-01{i % 100:02d}." for i in range(count)]


def round_of(port, model, texts, concurrency, seconds):
    latencies, lock, stop = [], threading.Lock(), time.monotonic() + seconds

    def worker(offset):
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        i = offset
        while time.monotonic() < stop:
            tensor = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[texts[i % len(texts)].encode()]], dtype=np.object_))
            began = time.perf_counter()
            client.infer(model, [tensor])
            with lock:
                latencies.append(time.perf_counter() - began)
            i += concurrency

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return len(latencies) / elapsed, latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / ".build" / "release" / "batch-server"))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["BATCH_SERVER_BIN"] = args.binary
    import conftest
    conftest.BINARY = args.binary
    with tempfile.TemporaryDirectory() as scratch:
        repo = pathlib.Path(scratch) / "repo"
        repo.mkdir()
        for name in ("phi_deidentifier", "distilbert_sst2"):
            (repo / name).symlink_to(MODEL_REPOSITORY / name)
        redacted = repo / "sst2_redacted"
        (redacted / "1").mkdir(parents=True)
        for entry in (MODEL_REPOSITORY / "distilbert_sst2").iterdir():
            if entry.name not in ("config.pbtxt", "1"):
                (redacted / entry.name).symlink_to(entry)
        for entry in (MODEL_REPOSITORY / "distilbert_sst2" / "1").iterdir():
            (redacted / "1" / entry.name).symlink_to(entry)
        config = (MODEL_REPOSITORY / "distilbert_sst2" / "config.pbtxt").read_text().replace('"distilbert_sst2"', '"sst2_redacted"')
        (redacted / "config.pbtxt").write_text(config + 'parameters { key: "phi_redaction" value: { string_value: "phi_deidentifier" } }\n')
        server = conftest.RunningServer(repo, log_path=pathlib.Path(scratch) / "server.log").wait_live(timeout=120)
        try:
            texts = notes(400)
            round_of(server.grpc_port, "sst2_redacted", texts, args.concurrency, 2)   # warm both paths
            results = {"distilbert_sst2": [], "sst2_redacted": []}
            for _ in range(args.rounds):
                for model in results:
                    time.sleep(0.2)
                    results[model].append(round_of(server.grpc_port, model, texts, args.concurrency, args.seconds))
        finally:
            server.stop()
    print(f"CPU: {cpu_name()}")
    print(f"distilbert_sst2 over gRPC, concurrency {args.concurrency}, {args.rounds} interleaved rounds of {args.seconds:.0f} s, notes cut to 600 characters")
    print("| variant | requests/s (median) | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    medians = {}
    for model, rounds in results.items():
        rps = statistics.median(r[0] for r in rounds)
        medians[model] = rps
        print(f"| {'with phi_redaction' if model == 'sst2_redacted' else 'without'} | {rps:.1f} | "
              f"{statistics.median(r[1] for r in rounds):.1f} | {statistics.median(r[2] for r in rounds):.1f} |")
    print(f"ratio with/without: {medians['sst2_redacted'] / medians['distilbert_sst2']:.3f}")


if __name__ == "__main__":
    main()
