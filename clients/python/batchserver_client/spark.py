"""Spark: a ``predict_batch_udf`` (Spark >= 3.4) that calls BatchServer.

    from batchserver_client.spark import batchserver_udf
    classify = batchserver_udf("batch-server-headless:8001", "distilbert_sst2", classes=1, priority=2)
    notes.withColumn("pred", classify("text")).select("id", "pred.*").write.parquet("out/")

The UDF's result is a struct: one field per model output (``array<float>``),
or ``label``/``score`` with ``classes=1``, and ``error`` (null when the row
succeeded; a failed row's outputs are NaN). Each Python worker keeps one
client (gRPC channels, the model's description) for every task it runs.

Exactly once: Spark commits a task's output once (the Parquet writer's
output committer), and a retried task recomputes its rows, so the written
dataset holds each input row once, provided the model's outputs are
deterministic per input (they are: the same input gives the same result,
within the precision served, whatever the batch).
"""

from .client import BatchServerClient, as_arrays


def _describe(servers, model, **options):
    """The model's description, read once on the driver: it sizes the batches and types the result."""
    client = BatchServerClient(servers, model, requests_in_flight=1, **options)
    try:
        return client.info, client.outputs, client.result_names(), client.batch_size
    finally:
        client.close()


def result_type(info, outputs, names, classes):
    from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

    fields = []
    for name in names:
        if classes and name == "label":
            fields.append(StructField("label", StringType(), True))
        elif classes and name == "score":
            fields.append(StructField("score", FloatType(), True))
        else:
            datatype = next(d for n, d, _ in info.outputs if n == name)
            if datatype == "BYTES":
                raise ValueError(f"output '{name}' is BYTES; the Spark helper returns numeric outputs (or classes=1)")
            fields.append(StructField(name, ArrayType(FloatType()), True))
    fields.append(StructField("error", StringType(), True))
    return StructType(fields)


def batchserver_udf(servers, model, *, input="text", sequence_length=None, classes=None, outputs=None,
                    priority=0, token=None, requests_in_flight=2, timeout_s=60.0, max_attempts=12, version=""):
    """A ``predict_batch_udf`` calling ``model`` on ``servers`` (``host:port``
    strings, or one name resolving to every pod, looked up again on failure).

    ``input="text"``: one string column. ``input="ids"``: one ``array<int>``
    column of token ids padded to ``sequence_length`` with 0 (the [PAD] id);
    ``input="ids+mask"``: that and a second column, the attention mask.
    Rows are sent without their padding.
    Batches are the model's ``max_batch_size`` rows, ``requests_in_flight``
    of them at a time per task.
    """
    from pyspark.ml.functions import predict_batch_udf

    options = dict(version=version, outputs=outputs, classes=classes, priority=priority, token=token,
                   timeout_s=timeout_s, max_attempts=max_attempts)
    info, chosen, names, batch_size = _describe(servers, model, **options)
    if input not in ("text", "ids", "ids+mask"):
        raise ValueError("input must be 'text', 'ids' or 'ids+mask'")
    if input != "text" and not sequence_length:
        raise ValueError(f"input='{input}' needs sequence_length: Spark hands tensor columns over at a fixed shape")
    return_type = result_type(info, chosen, names, classes)
    # A failed row's NaN outputs need the width even when every row of a batch failed.
    widths = {name: info.output_width(name) for name in names if not (classes and name in ("label", "score"))}

    def make_predict_fn():
        client = BatchServerClient(servers, model, requests_in_flight=requests_in_flight, **options)

        def predict_text(texts):
            return as_arrays(*client.infer(texts=list(texts)), widths)

        def unpad(ids, mask):
            rows = []
            for row, ids_row in enumerate(ids):
                keep = (mask[row] != 0) if mask is not None else (ids_row != 0)
                rows.append([int(v) for v in ids_row[keep]])
            return rows

        def predict_ids(ids):
            return as_arrays(*client.infer(input_ids=unpad(ids, None)), widths)

        def predict_ids_mask(ids, mask):
            return as_arrays(*client.infer(input_ids=unpad(ids, mask)), widths)

        return {"text": predict_text, "ids": predict_ids, "ids+mask": predict_ids_mask}[input]

    shapes = {"text": None, "ids": [[sequence_length]], "ids+mask": [[sequence_length], [sequence_length]]}[input]
    return predict_batch_udf(make_predict_fn, return_type=return_type, batch_size=batch_size * max(1, requests_in_flight),
                             input_tensor_shapes=shapes)
