"""A PySpark job (local[2]) classifying 2,000 notes through two BatchServer
pods with clients/python's predict_batch_udf: a Python worker killed
mid-job, Spark retries its task, and the Parquet output holds every id
exactly once, equal to single requests; rows without text land in the error
column and the job completes."""

import os
import pathlib
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from engine_jobs import MODEL, check_output, inferences, kill_one, notes, start_servers, wait_for_progress

pyspark = pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    # The workers run this virtual environment's Python, where clients/python is installed.
    os.environ["PYSPARK_PYTHON"] = str(pathlib.Path(sys.prefix) / "bin" / "python")
    session = (SparkSession.builder.master("local[2,4]")  # 2 cores, 4 attempts per task
               .appName("batchserver-notes")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.memory", "1g")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "256")
               # A worker per task: any live worker is running a task, so killing one fails a task.
               .config("spark.python.worker.reuse", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_a_spark_job_survives_a_killed_worker_with_every_id_once(spark, tmp_path):
    from batchserver_client.spark import batchserver_udf

    servers = start_servers(tmp_path)
    rows = notes(2000)
    frame = spark.createDataFrame(pd.DataFrame(rows), "id string, text string").repartition(8)
    classify = batchserver_udf(",".join(f"{s.host}:{s.grpc_port}" for s in servers), MODEL, priority=2)
    output = tmp_path / "results"
    killed = []

    def kill_a_worker():
        # A Python worker forked by PySpark's daemon, once 300 rows are done.
        wait_for_progress(servers, 300)
        killed.append(kill_one(lambda pid, parent, cmd, table: "pyspark.daemon" in cmd and any(
            p == parent and "pyspark.daemon" in c for p, _, c in table)))

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        frame.withColumn("pred", classify("text")).select("id", "pred.*").write.parquet(str(output))
    finally:
        killer.join()
    assert killed, "no worker was killed"

    bad = check_output(output, rows, servers[1])
    # The killed task's rows ran again: the servers computed more rows than there are.
    assert sum(inferences(s) for s in servers) > 2000 - len(bad)
    for s in servers:
        s.stop()


def test_labels_and_token_ids_and_a_row_the_server_refuses(spark, tmp_path):
    from batchserver_client.spark import batchserver_udf

    servers = start_servers(tmp_path, 1)
    address = f"{servers[0].host}:{servers[0].grpc_port}"
    # Token ids padded to 16; row 3 holds an id past the vocabulary: the server refuses it alone.
    ids = [[101] + [2000 + 37 * i + j for j in range(1 + i % 9)] + [102] for i in range(40)]
    ids[3][2] = 10_000_000
    padded = [row + [0] * (16 - len(row)) for row in ids]
    frame = spark.createDataFrame(pd.DataFrame({"id": [f"r{i}" for i in range(40)], "ids": padded}),
                                  "id string, ids array<int>")
    by_ids = batchserver_udf(address, MODEL, input="ids", sequence_length=16)
    result = frame.withColumn("pred", by_ids("ids")).select("id", "pred.*").toPandas().set_index("id")
    assert result.loc["r3", "error"].startswith("INVALID_ARGUMENT")
    assert result["error"].isna().sum() == 39

    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(address)
    for i in (0, 8, 17):
        tensor = grpcclient.InferInput("INPUT_IDS", [1, len(ids[i])], "INT64")
        tensor.set_data_from_numpy(np.array([ids[i]], dtype=np.int64))
        expected = client.infer(MODEL, [tensor]).as_numpy("LOGITS")[0]
        assert np.allclose(result.loc[f"r{i}", "LOGITS"], expected, atol=1e-4, rtol=1e-4)

    labelled = batchserver_udf(address, MODEL, classes=1)
    texts = spark.createDataFrame(pd.DataFrame({"text": ["a calm note", "chest pain since morning"]}), "text string")
    labels = texts.withColumn("pred", labelled("text")).select("pred.*").toPandas()
    assert set(labels.columns) == {"label", "score", "error"}
    assert labels["label"].isin(["NEGATIVE", "POSITIVE"]).all() and labels["error"].isna().all()
    servers[0].stop()
