"""Ray Data: a callable class for ``Dataset.map_batches`` with an actor pool.

    import ray
    from batchserver_client.ray_data import BatchServerPredictor
    notes = ray.data.read_json("notes.jsonl")
    predictor = BatchServerPredictor.options_for("batch-server-headless:8001", "distilbert_sst2", classes=1, priority=2)
    notes.map_batches(BatchServerPredictor, **predictor).write_parquet("out/")

Each actor holds one client (gRPC channels, the model's description). A
batch comes back with every input column, one column per model output (or
``label``/``score`` with ``classes=1``) and ``error`` (None when the row
succeeded; a failed row's outputs are NaN).

Exactly once: Ray retries the task of an actor that died (on a restarted
actor) and its file datasink writes each block's file under a name fixed by
the write task, so a retried write replaces, and the written dataset holds
each row once, provided the outputs are deterministic per input.
"""

import numpy as np
from .client import BatchServerClient, as_arrays


class BatchServerPredictor:
    """``map_batches`` callable: ``batch`` is a dict of NumPy arrays (Ray's
    ``numpy`` batch format) holding ``text_column`` or ``ids_column``."""

    def __init__(self, servers, model, *, text_column="text", ids_column=None, classes=None, outputs=None,
                 priority=0, token=None, requests_in_flight=2, timeout_s=60.0, max_attempts=12, version=""):
        self.client = BatchServerClient(servers, model, version=version, outputs=outputs, classes=classes,
                                        priority=priority, token=token, timeout_s=timeout_s,
                                        max_attempts=max_attempts, requests_in_flight=requests_in_flight)
        self.text_column = text_column
        self.ids_column = ids_column

    @staticmethod
    def options_for(servers, model, *, actors=2, actor_cpus=0.25, requests_in_flight=2, **options):
        """``map_batches`` keyword arguments: the constructor's, an actor pool
        of ``actors``, batches of the model's ``max_batch_size`` times
        ``requests_in_flight``, actors restarted (and their tasks retried) if
        they die. An actor mostly waits on the servers, so it reserves
        ``actor_cpus`` of a CPU: reserving whole CPUs would leave none for
        reading and writing the dataset on a small node."""
        probe = BatchServerClient(servers, model, requests_in_flight=1,
                                  **{k: v for k, v in options.items() if k in ("version", "token", "timeout_s", "max_attempts")})
        batch_size = probe.batch_size * max(1, requests_in_flight)
        probe.close()
        return {
            "fn_constructor_args": (servers, model),
            "fn_constructor_kwargs": dict(options, requests_in_flight=requests_in_flight),
            "batch_size": batch_size,
            "batch_format": "numpy",
            "concurrency": actors,
            "num_cpus": actor_cpus,
            "max_restarts": -1,
            "max_task_retries": -1,
        }

    def __call__(self, batch):
        if self.ids_column:
            ids = [[int(v) for v in row if v is not None] for row in batch[self.ids_column]]
            values, errors = self.client.infer(input_ids=ids)
        else:
            texts = [None if t is None else str(t) for t in batch[self.text_column]]
            values, errors = self.client.infer(texts=texts)
        return _table(batch, as_arrays(values, errors))


def _table(batch, outputs):
    """The batch and its outputs as an Arrow table with fixed types: `error`
    is a string column even in a batch where every row succeeded (numpy's
    all-None object column would become Arrow's null type, and the job's
    Parquet files would disagree on the column's type), outputs are
    fixed-size lists of float32."""
    import pyarrow as pa

    columns = {}
    for name, column in {**batch, **outputs}.items():
        column = np.asarray(column)
        if name == "error" or name == "label":
            columns[name] = pa.array(list(column), type=pa.string())
        elif column.ndim == 2 and name in outputs:
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(column.reshape(-1), type=pa.float32()), column.shape[1])
        else:
            columns[name] = pa.array(list(column) if column.dtype == object else column)
    return pa.table(columns)
