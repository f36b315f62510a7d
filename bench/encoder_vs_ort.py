#!/usr/bin/env python3
"""BatchServer's encoder engine against its peers, same weights, same thread
count (2), in one run, naming the CPU and the instruction set.

Peers: ONNX Runtime fp32 and int8 (an ONNX graph of DistilBERT built with the
`onnx` package from model_repository/distilbert_sst2/1/model.safetensors;
int8 by `onnxruntime.quantization.quantize_dynamic`, QInt8 weights), and
PyTorch (Hugging Face's DistilBertForSequenceClassification) fp32 and bf16
autocast. BatchServer's engine (bench/encoder, release build) runs fp32, bf16
(where the CPU has bf16 dot products) and int8 on the same shapes with no
padding. Also measured in the same run: oneDNN's own matmul peak per
precision (bench/encoder --peak), against which the engine's effective
GFLOP/s is put, and the engine's per-operation profile.

Prints markdown tables and writes bench/results/encoder_vs_ort.csv and
bench/results/encoder_profile.csv. Run it in the benchmark environment:

    bench/tools/install-baseline.sh      # bench/.venv: torch CPU, onnxruntime, onnx
    bench/.venv/bin/python bench/encoder_vs_ort.py [--repeats 10] [--no-torch]
"""

import argparse
import platform
import csv
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "model_repository" / "distilbert_sst2" / "1"
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))  # onnx_models


def flops(length, hidden=768, ffn=3072, layers=6):
    """Matrix-product FLOPs of one DistilBERT sequence (the rest is < 1%)."""
    return layers * (length * 2 * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * length * length * hidden) + 2 * (hidden * hidden + 2 * hidden)


def build_onnx(path):
    """The ONNX graph of DistilBERT over MODEL's weights (Tests/e2e/onnx_models.py
    builds it), with lowercase tensor names and the weights in <path>.data."""
    from onnx_models import build_distilbert_onnx
    build_distilbert_onnx(MODEL, pathlib.Path(path), input_names=("input_ids", "attention_mask"), output_name="logits",
                          external_data=True)


def cpu_description():
    """The CPU's model name and the flags that decide the kernels."""
    info = pathlib.Path("/proc/cpuinfo").read_text()
    name = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), platform.processor())
    flags = set(next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), []))
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"]
    return name, [f for f in wanted if f in flags]


def padded_feed(lengths, rng):
    longest = max(lengths)
    ids = np.zeros((len(lengths), longest), np.int64)
    mask = np.zeros((len(lengths), longest), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1000, 30000, n)
        mask[i, :n] = 1
    return ids, mask


def median_ms(run, repeats):
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def time_ort(session, lengths, repeats, rng):
    ids, mask = padded_feed(lengths, rng)
    feed = {"input_ids": ids, "attention_mask": mask}
    return median_ms(lambda: session.run(None, feed), repeats)


def torch_timers(threads):
    """PyTorch fp32 and bf16-autocast timers over the same checkpoint, or None without torch."""
    try:
        import torch
        from transformers import DistilBertForSequenceClassification
    except ImportError:
        return None
    torch.set_num_threads(threads)
    model = DistilBertForSequenceClassification.from_pretrained(str(MODEL), local_files_only=True).eval()

    def timer(bf16):
        def run(lengths, repeats, rng):
            ids, mask = padded_feed(lengths, rng)
            ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)

            def once():
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    model(input_ids=ids, attention_mask=mask)
            return median_ms(once, repeats)
        return run
    return {"torch_fp32": timer(False), "torch_bf16": timer(True), "version": torch.__version__}


def run_engine(binary, precision, jobs, env, profile):
    args = [str(binary), str(MODEL), precision] + (["--profile"] if profile else [])
    run = subprocess.run(args, input=jobs, capture_output=True, text=True, env=env)
    if run.returncode == 3:  # the CPU has no bf16 dot products
        return None, run.stderr.strip()
    if run.returncode != 0:
        raise SystemExit(f"engine {precision} failed: {run.stderr[-2000:]}")
    return {row["name"]: row for row in map(json.loads, run.stdout.splitlines())}, run.stderr.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    shapes = {"1x128": [128], "8x128": [128] * 8, "8x32": [32] * 8, "32x128": [128] * 32,
              "8 mixed 8..128": [int(x) for x in rng.integers(8, 129, 8)]}
    work = ROOT / "bench" / "results" / "onnx"
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = work / "distilbert.onnx"
    if not onnx_path.exists():
        build_onnx(onnx_path)
    int8_path = work / "distilbert.int8.onnx"
    if not int8_path.exists():
        quantize_dynamic(str(onnx_path), str(int8_path), weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = {"ort_fp32": ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"]),
                "ort_int8": ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])}

    subprocess.run(["swift", "build", "-c", "release", "--package-path", str(ROOT / "bench" / "encoder")], check=True,
                   stdout=subprocess.DEVNULL)
    binary = ROOT / "bench" / "encoder" / ".build" / "release" / "EncoderBench"
    env = dict(os.environ, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    peak_run = subprocess.run([str(binary), "--peak"], capture_output=True, text=True, env=env, check=True)
    peaks = {}
    for row in map(json.loads, peak_run.stdout.splitlines()):
        if row["m"] == 1024:
            peaks.setdefault(row["precision"], []).append(row)
    peak = {p: max(r["gflops"] for r in rows) for p, rows in peaks.items()}
    peak_kernel = {p: rows[0]["implementation"] for p, rows in peaks.items()}

    jobs = "".join(json.dumps({"name": n, "lengths": l, "repeats": args.repeats}) + "\n" for n, l in shapes.items())
    engine, engine_info = {}, ""
    for precision in ("fp32", "bf16", "int8"):
        engine[precision], info = run_engine(binary, precision, jobs, env, profile=True)
        engine_info = engine_info or info

    peers = {name: {shape: time_ort(session, lengths, args.repeats, rng) for shape, lengths in shapes.items()}
             for name, session in sessions.items()}
    torch_info = None if args.no_torch else torch_timers(2)
    if torch_info:
        for name in ("torch_fp32", "torch_bf16"):
            peers[name] = {shape: torch_info[name](lengths, args.repeats, rng) for shape, lengths in shapes.items()}

    cpu, flags = cpu_description()
    print(f"CPU: {cpu}; flags: {' '.join(flags)}; 2 threads")
    print(f"BatchServer engine: {engine_info}")
    print(f"oneDNN matmul peak (M=1024, DistilBERT K/N): " + ", ".join(f"{p} {peak[p]:.0f} GFLOP/s ({peak_kernel[p]})" for p in peak))
    print(f"ONNX Runtime {ort.__version__}" + (f"; PyTorch {torch_info['version']}" if torch_info else "; PyTorch not measured"))
    columns = [c for c in ("torch_fp32", "torch_bf16", "ort_fp32", "ort_int8") if c in peers]
    ours = [p for p in ("fp32", "bf16", "int8") if engine[p]]
    rows = []
    for shape, lengths in shapes.items():
        useful = sum(flops(n) for n in lengths)
        row = {"shape": shape, "sequences": len(lengths)}
        for c in columns:
            row[f"{c}_ms"] = round(peers[c][shape], 2)
        for p in ours:
            ms = engine[p][shape]["median_ms"]
            row[f"batchserver_{p}_ms"] = round(ms, 2)
            row[f"batchserver_{p}_gflops"] = round(useful / ms / 1e6, 1)
            if p in peak:
                row[f"batchserver_{p}_of_peak"] = round(useful / ms / 1e6 / peak[p], 3)
            row[f"batchserver_{p}_product_share"] = round(engine[p][shape].get("product_share", 0), 3)
        rows.append(row)
    with open(ROOT / "bench" / "results" / "encoder_vs_ort.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    def seqs(r, key):
        return f"{r['sequences'] / r[key] * 1e3:.1f}"
    print("\nSequences per second (median of repeats):\n")
    names = {"torch_fp32": "PyTorch fp32", "torch_bf16": "PyTorch bf16 autocast", "ort_fp32": "ORT fp32", "ort_int8": "ORT int8"}
    print("| batch | " + " | ".join(names[c] for c in columns) + " | " + " | ".join(f"BatchServer {p}" for p in ours) + " |")
    print("|---|" + "---:|" * (len(columns) + len(ours)))
    for r in rows:
        print(f"| {r['shape']} | " + " | ".join(seqs(r, f"{c}_ms") for c in columns) + " | "
              + " | ".join(seqs(r, f"batchserver_{p}_ms") for p in ours) + " |")
    print("\nBatchServer against its peers (ratio of throughput) and against oneDNN's peak:\n")
    print("| batch | " + " | ".join(f"{p} vs ORT {'int8' if p == 'int8' else 'fp32'}" for p in ours)
          + (" | bf16 vs PyTorch bf16" if "bf16" in ours and "torch_bf16" in columns else "")
          + " | " + " | ".join(f"{p} GFLOP/s (of peak)" for p in ours) + " | " + " | ".join(f"{p} products" for p in ours) + " |")
    print("|---|" + "---:|" * (2 * len(ours) + len(ours) + (1 if "bf16" in ours and "torch_bf16" in columns else 0)))
    for r in rows:
        cells = [f"{r['ort_int8_ms' if p == 'int8' else 'ort_fp32_ms'] / r[f'batchserver_{p}_ms']:.2f}x" for p in ours]
        if "bf16" in ours and "torch_bf16" in columns:
            cells.append(f"{r['torch_bf16_ms'] / r['batchserver_bf16_ms']:.2f}x")
        cells += [f"{r[f'batchserver_{p}_gflops']} ({r.get(f'batchserver_{p}_of_peak', float('nan')):.0%})" for p in ours]
        cells += [f"{r[f'batchserver_{p}_product_share']:.0%}" for p in ours]
        print(f"| {r['shape']} | " + " | ".join(cells) + " |")
    if "bf16" not in ours:
        print("\nbf16: not measured, this CPU has no bf16 dot products (auto serves fp32 here)")

    profile_rows = []
    for p in ours:
        for shape in ("8x128", "1x128"):
            for op, ms in sorted(engine[p][shape]["profile_ms"].items(), key=lambda kv: -kv[1]):
                profile_rows.append({"precision": p, "shape": shape, "operation": op, "ms": round(ms, 3)})
    with open(ROOT / "bench" / "results" / "encoder_profile.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["precision", "shape", "operation", "ms"])
        writer.writeheader()
        writer.writerows(profile_rows)
    print("\nPer-operation profile at 8x128, ms per forward (products: qkv, attention_output, ffn_in, ffn_out, attention_products):\n")
    ops = sorted({r["operation"] for r in profile_rows}, key=lambda o: -max(x["ms"] for x in profile_rows if x["operation"] == o))
    print("| operation | " + " | ".join(ours) + " |")
    print("|---|" + "---:|" * len(ours))
    for op in ops:
        cells = []
        for p in ours:
            ms = engine[p]["8x128"]["profile_ms"].get(op)
            cells.append(f"{ms:.2f}" if ms is not None else "-")
        print(f"| {op} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
