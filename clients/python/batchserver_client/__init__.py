"""Bulk inference against BatchServer (or any KServe v2 gRPC server) from
Spark and Ray: batches sized to the model, several endpoints followed as
they change, retries with backoff, row errors as a column.

- ``batchserver_client.BatchServerClient``: the engine-independent core.
- ``batchserver_client.spark.batchserver_udf``: a Spark ``predict_batch_udf``.
- ``batchserver_client.ray_data.BatchServerPredictor``: a Ray Data ``map_batches`` class.
"""

from .client import BatchServerClient, BatchServerError, ModelInfo
from .endpoints import Endpoints

__all__ = ["BatchServerClient", "BatchServerError", "Endpoints", "ModelInfo"]
