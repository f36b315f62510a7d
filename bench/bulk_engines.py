#!/usr/bin/env python3
"""Rows/s of one bulk job done four ways over the same notes and server, in
one run: perf_analyzer (the ceiling: a load generator that keeps requests in
flight and reads nothing), batch-server-client, a Spark job and a Ray job
through clients/python.

    .venv/bin/python bench/bulk_engines.py [--rows 6000] [--build-dir .build/release]

Two concurrency shapes, each compared with perf_analyzer at the same shape:
- one row per request, ROWS_IN_FLIGHT (128) in flight: the bulk client
  (--in-flight 128), against perf_analyzer -b 1 --concurrency-range 128;
- requests of 32 rows (the model's max_batch_size), 4 in flight: Spark
  local[2] and Ray with 2 actors, each task or actor with 2 requests in
  flight, against perf_analyzer -b 32 --concurrency-range 4.
Every contender sends the same 6,000 notes (3 to 11 words each; perf_analyzer
cycles through them as its input data). Spark and Ray run in their own processes and are timed from
the job's start to its output written (session start-up excluded, each
engine's own planning included). A 150 ms pause precedes each timed run.
"""

import argparse
import csv
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "reliability"))
sys.path.insert(0, str(ROOT / "clients" / "python"))
from suite import MODEL, Server, cpu_name, note  # noqa: E402

ROWS_IN_FLIGHT = 128
BATCH = 32
BATCHES_IN_FLIGHT = 4


def spark_job(address, notes_path, output):
    from pyspark.sql import SparkSession

    from batchserver_client.spark import batchserver_udf

    os.environ["PYSPARK_PYTHON"] = str(pathlib.Path(sys.prefix) / "bin" / "python")
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "1g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    notes = spark.read.json(str(notes_path)).repartition(2).cache()
    notes.count()
    classify = batchserver_udf(address, MODEL, requests_in_flight=BATCHES_IN_FLIGHT // 2)
    time.sleep(0.15)
    started = time.perf_counter()
    notes.withColumn("pred", classify("text")).select("id", "pred.*").write.parquet(str(output))
    seconds = time.perf_counter() - started
    spark.stop()
    return seconds


def ray_job(address, notes_path, output):
    import ray

    from batchserver_client.ray_data import BatchServerPredictor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=256 << 20)
    notes = ray.data.read_json(str(notes_path), override_num_blocks=4).materialize()
    options = BatchServerPredictor.options_for(address, MODEL, actors=2, requests_in_flight=BATCHES_IN_FLIGHT // 2)
    time.sleep(0.15)
    started = time.perf_counter()
    notes.map_batches(BatchServerPredictor, **options).write_parquet(str(output))
    seconds = time.perf_counter() - started
    ray.shutdown()
    return seconds


def perf_analyzer(tool, address, data, batch, concurrency, work):
    report = work / f"pa-{batch}-{concurrency}.csv"
    command = [tool, "-m", MODEL, "-i", "grpc", "-u", address, "--input-data", str(data), "-b", str(batch),
               "--concurrency-range", str(concurrency), "--measurement-interval", "5000", "--max-trials", "4",
               "-s", "20", "-f", str(report)]
    time.sleep(0.15)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not report.exists():
        raise RuntimeError(f"perf_analyzer failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    with open(report) as f:
        return float(next(csv.DictReader(f))["Inferences/Second"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--build-dir", default=str(ROOT / ".build" / "release"), help="where batch-server and batch-server-client are")
    parser.add_argument("--perf-analyzer", default=str(ROOT / "bench" / "tools" / "perf_analyzer" / "run"))
    parser.add_argument("--engine", choices=["spark", "ray"], help=argparse.SUPPRESS)  # one engine's job, in its own process
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--notes", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        job = spark_job if args.engine == "spark" else ray_job
        print(json.dumps({"seconds": job(args.address, pathlib.Path(args.notes), pathlib.Path(args.output))}))
        return

    build = pathlib.Path(args.build_dir)
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        notes_path = work / "notes.jsonl"
        with open(notes_path, "w") as f:
            for i in range(args.rows):
                f.write(json.dumps({"id": f"note-{i}", "text": note(i)}) + "\n")
        data = work / "pa.json"
        # perf_analyzer cycles through the same notes.
        data.write_text(json.dumps({"data": [{"TEXT": {"content": [note(i)], "shape": [1]}} for i in range(args.rows)]}))
        server = Server(build, work, "bench").start()
        address = f"127.0.0.1:{server.grpc_port}"
        results = []
        try:
            # Warm-up: each batch size once.
            perf_analyzer(args.perf_analyzer, address, data, BATCH, 2, work)
            one = perf_analyzer(args.perf_analyzer, address, data, 1, ROWS_IN_FLIGHT, work)
            time.sleep(0.15)
            started = time.perf_counter()
            done = subprocess.run([str(build / "batch-server-client"), "run", MODEL, "--input", str(notes_path),
                                   "--output", str(work / "bulk.jsonl"), "--server", address, "--in-flight", str(ROWS_IN_FLIGHT),
                                   "--progress", "off", "--summary-json", str(work / "bulk.json")],
                                  capture_output=True, text=True, timeout=1800)
            bulk_seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"batch-server-client failed: {done.stderr[-2000:]}")
            bulk = args.rows / bulk_seconds
            results.append(("batch-server-client, 1 row/request, 128 in flight", bulk, one))
            batched = perf_analyzer(args.perf_analyzer, address, data, BATCH, BATCHES_IN_FLIGHT, work)
            for engine in ("spark", "ray"):
                done = subprocess.run([sys.executable, __file__, "--engine", engine, "--address", address,
                                       "--notes", str(notes_path), "--output", str(work / f"{engine}-out")],
                                      capture_output=True, text=True, timeout=1800)
                if done.returncode != 0:
                    raise RuntimeError(f"{engine} job failed: {done.stderr[-3000:]}")
                seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
                results.append((f"{engine} job, {BATCH} rows/request, {BATCHES_IN_FLIGHT} in flight", args.rows / seconds, batched))
        finally:
            server.terminate()
    print(f"CPU: {cpu_name()}; {args.rows} notes; model {MODEL}; server {build / 'batch-server'}")
    print("| job | rows/s | perf_analyzer rows/s, same shape | job / perf_analyzer |")
    print("|---|---:|---:|---:|")
    for name, rate, ceiling in results:
        print(f"| {name} | {rate:.1f} | {ceiling:.1f} | {rate / ceiling:.2f} |")


if __name__ == "__main__":
    main()
