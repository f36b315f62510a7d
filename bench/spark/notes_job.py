#!/usr/bin/env python3
"""Bulk classification of notes with PySpark: each partition calls BatchServer
(or Triton) over KServe v2 gRPC through tritonclient, in mapInPandas.

    python bench/spark/notes_job.py --servers host1:8001,host2:8001 \
        --input notes.jsonl --output results/ [--model distilbert_sst2] [--partitions 8]

Each executor task opens one client per server and spreads its rows over them
round-robin, several requests in flight (the server's dynamic batcher groups
them). Spark retries a failed task; writing results is Spark's (a task's
output is committed once), so a retried task yields each id once.
"""

import argparse
import itertools
import time

import numpy as np
import pandas as pd


def classify_partition(batches, servers, model, in_flight):
    """mapInPandas body: iterator of DataFrames (id, text) -> (id, label, score)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    clients = [grpcclient.InferenceServerClient(url) for url in servers]
    turn = itertools.cycle(clients)
    for frame in batches:
        ids, labels, scores = [], [], []
        pending = []
        for row_id, text in zip(frame["id"], frame["text"]):
            tensor = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[str(text).encode()]], dtype=np.object_))
            output = grpcclient.InferRequestedOutput("LOGITS", class_count=1)
            results = []
            client = next(turn)
            for attempt in range(20):
                try:
                    pending.append((row_id, client.async_infer(model, [tensor], outputs=[output],
                                                               callback=lambda result, error, box=results: box.append((result, error)))
                                    , results))
                    break
                except InferenceServerException:
                    time.sleep(0.2 * (attempt + 1))
                    client = next(turn)
            while len(pending) >= in_flight:
                pending = drain(pending, ids, labels, scores, block=True)
        while pending:
            pending = drain(pending, ids, labels, scores, block=True)
        yield pd.DataFrame({"id": ids, "label": labels, "score": scores})
    for client in clients:
        client.close()


def drain(pending, ids, labels, scores, block):
    still = []
    for row_id, _, box in pending:
        if not box:
            still.append((row_id, _, box))
            continue
        result, error = box[0]
        if error is not None:
            raise RuntimeError(f"request for id {row_id} failed: {error}")
        score, _, label = result.as_numpy("LOGITS")[0][0].decode().split(":", 2)
        ids.append(row_id)
        labels.append(label)
        scores.append(float(score))
    if block and len(still) == len(pending):
        time.sleep(0.002)
    return still


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", required=True, help="comma-separated host:port of the gRPC endpoints")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--model", default="distilbert_sst2")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    import os
    import sys
    # Executors run this same interpreter (its packages: pandas, tritonclient) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.master(args.master).appName("batchserver-notes").getOrCreate()
    servers, model, in_flight = args.servers.split(","), args.model, args.in_flight
    notes = spark.read.json(args.input).select("id", "text").repartition(args.partitions)
    started = time.monotonic()
    results = notes.mapInPandas(lambda batches: classify_partition(batches, servers, model, in_flight),
                                schema="id string, label string, score double")
    results.write.mode("overwrite").json(args.output)
    seconds = time.monotonic() - started
    count = spark.read.json(args.output).count()
    print(f"notes_job: {count} rows in {seconds:.1f} s = {count / seconds:.1f} rows/s "
          f"({args.partitions} partitions, {args.master}, {len(servers)} servers)")
    spark.stop()


if __name__ == "__main__":
    main()
