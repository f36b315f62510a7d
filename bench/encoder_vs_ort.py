#!/usr/bin/env python3
"""BatchServer's encoder engine against ONNX Runtime, same weights, same
thread count (2), in one run.

Builds an ONNX graph of DistilBERT (with the `onnx` package) from
model_repository/distilbert_sst2/1/model.safetensors, times ORT fp32 on
(batch 8 x length 128), (8 x 32) and a mixed batch of lengths uniform in
8..128 that ORT must pad, and times BatchServer's engine (bench/encoder,
release build) on the same shapes with no padding. Prints a markdown table and
writes bench/results/encoder_vs_ort.csv.

    .venv/bin/python bench/encoder_vs_ort.py [--repeats 10]
"""

import argparse
import csv
import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "model_repository" / "distilbert_sst2" / "1"


def flops(length, hidden=768, ffn=3072, layers=6):
    """Matrix-product FLOPs of one DistilBERT sequence (the rest is < 1%)."""
    return layers * (length * 2 * (4 * hidden * hidden + 2 * hidden * ffn) + 4 * length * length * hidden) + 2 * (hidden * hidden + 2 * hidden)


def build_onnx(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    w = load_file(str(MODEL / "model.safetensors"))
    config = json.loads((MODEL / "config.json").read_text())
    hidden, heads, layers = config["dim"], config["n_heads"], config["n_layers"]
    d = hidden // heads
    nodes, inits = [], []
    counter = [0]

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"t{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x, prefix):
        return node("Add", [node("MatMul", [x, init(prefix + ".wT", w[prefix + ".weight"].T)]), init(prefix + ".b", w[prefix + ".bias"])])

    def layer_norm(x, prefix):
        return node("LayerNormalization", [x, init(prefix + ".g", w[prefix + ".weight"]), init(prefix + ".bb", w[prefix + ".bias"])],
                    axis=-1, epsilon=1e-12)

    p = "distilbert."
    words = node("Gather", [init("word", w[p + "embeddings.word_embeddings.weight"]), "input_ids"])
    length = node("Shape", ["input_ids"], start=1, end=2)  # [L], 1-D
    positions = node("Slice", [init("pos", w[p + "embeddings.position_embeddings.weight"]), init("p0", np.array([0], np.int64)),
                               length, init("pax", np.array([0], np.int64))])
    x = node("Add", [words, positions])
    x = layer_norm(x, p + "embeddings.LayerNorm")
    mask = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = node("Mul", [node("Sub", [init("onef", np.array(1, np.float32)), mask]), init("neg", np.array(-1e9, np.float32))])
    bias = node("Unsqueeze", [bias, init("axes12", np.array([1, 2], np.int64))])
    split_shape = init("split", np.array([0, 0, heads, d], np.int64))
    merge_shape = init("merge", np.array([0, 0, hidden], np.int64))
    scale = init("scale", np.array(1 / math.sqrt(d), np.float32))
    for i in range(layers):
        l = f"{p}transformer.layer.{i}."
        q = node("Transpose", [node("Reshape", [linear(x, l + "attention.q_lin"), split_shape])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, l + "attention.k_lin"), split_shape])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, l + "attention.v_lin"), split_shape])], perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias])
        context = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        context = node("Reshape", [node("Transpose", [context], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(node("Add", [x, linear(context, l + "attention.out_lin")]), l + "sa_layer_norm")
        h = linear(x, l + "ffn.lin1")
        gelu = node("Mul", [node("Mul", [h, init(f"half{i}", np.array(0.5, np.float32))]),
                            node("Add", [init(f"onep{i}", np.array(1, np.float32)),
                                         node("Erf", [node("Mul", [h, init(f"rs2{i}", np.array(1 / math.sqrt(2), np.float32))])])])])
        x = layer_norm(node("Add", [x, linear(gelu, l + "ffn.lin2")]), l + "output_layer_norm")
    cls = node("Squeeze", [node("Slice", [x, init("s0", np.array([0], np.int64)), init("s1", np.array([1], np.int64)),
                                          init("sax", np.array([1], np.int64))]), init("sq", np.array([1], np.int64))])
    pre = node("Relu", [linear(cls, "pre_classifier")])
    logits = linear(pre, "classifier")
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        nodes, "distilbert",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "L"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "L"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime reads for opset 17
    onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data")


def time_ort(session, lengths, repeats, rng):
    longest = max(lengths)
    ids = np.zeros((len(lengths), longest), np.int64)
    mask = np.zeros((len(lengths), longest), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1000, 30000, n)
        mask[i, :n] = 1
    feed = {"input_ids": ids, "attention_mask": mask}
    session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    shapes = {"8x128": [128] * 8, "8x32": [32] * 8, "8 mixed 8..128": list(rng.integers(8, 129, 8))}
    work = ROOT / "bench" / "results" / "onnx"
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = work / "distilbert.onnx"
    if not onnx_path.exists():
        build_onnx(onnx_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    ort_ms = {name: time_ort(session, lengths, args.repeats, rng) for name, lengths in shapes.items()}

    subprocess.run(["swift", "build", "-c", "release", "--package-path", str(ROOT / "bench" / "encoder")], check=True,
                   stdout=subprocess.DEVNULL)
    binary = ROOT / "bench" / "encoder" / ".build" / "release" / "EncoderBench"
    jobs = "".join(json.dumps({"name": n, "lengths": [int(x) for x in l], "repeats": args.repeats}) + "\n" for n, l in shapes.items())
    env = dict(os.environ, OMP_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    results = {}
    for precision in ("fp32", "bf16"):
        run = subprocess.run([str(binary), str(MODEL), precision], input=jobs, capture_output=True, text=True, env=env)
        if run.returncode == 3:  # the CPU has no bf16 instructions
            results[precision] = {name: float("nan") for name in shapes}
            continue
        run.check_returncode()
        results[precision] = {row["name"]: row["median_ms"] for row in map(json.loads, run.stdout.splitlines())}
    peak_rss_mb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    ours, ours_bf16 = results["fp32"], results["bf16"]
    weights_mb = (MODEL / "model.safetensors").stat().st_size / 2**20

    rows = []
    for name, lengths in shapes.items():
        useful = sum(flops(int(n)) for n in lengths)
        rows.append({"shape": name, "ort_fp32_ms": round(ort_ms[name], 2), "batchserver_fp32_ms": round(ours[name], 2),
                     "speedup": round(ort_ms[name] / ours[name], 3), "batchserver_bf16_ms": round(ours_bf16[name], 2),
                     "bf16_speedup": round(ort_ms[name] / ours_bf16[name], 3),
                     "batchserver_gflops": round(useful / ours[name] / 1e6, 1), "ort_gflops": round(useful / ort_ms[name] / 1e6, 1)})
    with open(ROOT / "bench" / "results" / "encoder_vs_ort.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"ONNX Runtime {ort.__version__}, 2 threads; BatchServer engine (oneDNN matmul), 2 threads")
    print("| batch | ORT fp32 (ms) | BatchServer fp32 (ms) | fp32 vs ORT | BatchServer bf16 (ms) | bf16 vs ORT fp32 | BatchServer fp32 GFLOP/s | ORT GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['shape']} | {r['ort_fp32_ms']} | {r['batchserver_fp32_ms']} | {r['speedup']}x | {r['batchserver_bf16_ms']} | "
              f"{r['bf16_speedup']}x | {r['batchserver_gflops']} | {r['ort_gflops']} |")
    if math.isnan(ours_bf16[next(iter(shapes))]):
        print("\nbf16: not measured, this CPU has no bf16 matrix instructions (the backend falls back to fp32)")
    print(f"\nengine peak RSS {peak_rss_mb:.0f} MiB for {weights_mb:.0f} MiB of weights (useful FLOPs: real tokens only)")


if __name__ == "__main__":
    main()
