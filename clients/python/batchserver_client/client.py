"""Batches of rows to BatchServer over KServe v2 gRPC, with the guarantees a
bulk job needs: every row gets an output or an error of its own.

- Rows go in requests of at most the model's ``max_batch_size``, several in
  flight, to the healthy endpoints in turn (see ``endpoints.Endpoints``).
- UNAVAILABLE, RESOURCE_EXHAUSTED (the server's rate limits), DEADLINE_EXCEEDED,
  ABORTED, CANCELLED and lost connections are retried with backoff,
  preferably on another endpoint, up to ``max_attempts``.
- A request refused as the input's fault (INVALID_ARGUMENT and the like) is
  split in halves and resent, so the rows at fault get the error and the
  others their outputs.
- NOT_FOUND, UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED stop the work
  with ``BatchServerError``: no row can succeed until someone acts.

Nothing here logs or raises with input text or outputs.
"""

import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .endpoints import Endpoints

RETRYABLE = {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED", "CANCELLED", "UNKNOWN"}
STOPS_THE_JOB = {"NOT_FOUND", "UNAUTHENTICATED", "PERMISSION_DENIED", "UNIMPLEMENTED"}
# The endpoint itself may be down: try elsewhere and look the names up again.
ENDPOINT_SUSPECT = {"UNAVAILABLE", "CANCELLED", "UNKNOWN", "ABORTED"}


def as_arrays(values, errors, widths=None):
    """``infer``'s result as NumPy columns, as Spark and Ray take them: a
    numeric output as a (rows, width) float32 matrix with NaN rows where a
    row failed, ``label`` as objects, ``score`` as float32, ``error`` as
    objects (None where the row succeeded)."""
    out = {}
    for name, column in values.items():
        if name == "label":
            out[name] = np.array(column, dtype=object)
        elif name == "score":
            out[name] = np.array([np.nan if v is None else v for v in column], dtype=np.float32)
        else:
            width = (widths or {}).get(name) or next((np.size(v) for v in column if v is not None), 0)
            matrix = np.full((len(column), width), np.nan, dtype=np.float32)
            for row, v in enumerate(column):
                if v is not None:
                    matrix[row] = np.asarray(v, dtype=np.float32).reshape(-1)
            out[name] = matrix
    out["error"] = np.array(errors, dtype=object)
    return out


def _close(clients):
    for client in clients:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a channel to a server that is gone
            pass


class BatchServerError(RuntimeError):
    """A failure no retry will mend (the model is missing, the token refused)."""


def _status(error):
    """'StatusCode.UNAVAILABLE' (tritonclient's form) -> 'UNAVAILABLE'; None when unknown."""
    status = getattr(error, "status", None)
    status = status() if callable(status) else status
    if not status:
        return None
    return str(status).rsplit(".", 1)[-1]


def _retry_after(message):
    """The wait a rate-limited server asks for ('...; retry after 0.5 s'), in seconds, or None."""
    found = re.search(r"retry after ([0-9.]+) s", message)
    return min(30.0, float(found.group(1))) if found else None


def _message(error):
    message = getattr(error, "message", None)
    message = message() if callable(message) else message
    return str(message or error)


class ModelInfo:
    """What the client needs to know of a model, read from the server."""

    def __init__(self, metadata, config):
        self.name = metadata["name"]
        self.max_batch_size = int(config.get("max_batch_size", 0) or 0)
        inputs = {i["name"]: i for i in metadata.get("inputs", [])}
        self.text_input = next((n for n, i in inputs.items() if i["datatype"] == "BYTES"), None)
        self.ids_input = "INPUT_IDS" if "INPUT_IDS" in inputs else next(
            (n for n, i in inputs.items() if i["datatype"] in ("INT64", "INT32") and n != "ATTENTION_MASK"), None)
        self.ids_datatype = inputs[self.ids_input]["datatype"] if self.ids_input else None
        self.mask_input = "ATTENTION_MASK" if "ATTENTION_MASK" in inputs else None
        self.outputs = [(o["name"], o["datatype"], [int(d) for d in o.get("shape", [])])
                        for o in metadata.get("outputs", [])]

    def output_width(self, name):
        """Values per row of a numeric output (its shape without the batch dimension)."""
        for output, _, shape in self.outputs:
            if output == name:
                dims = shape[1:] if self.max_batch_size > 0 else shape
                width = 1
                for d in dims:
                    if d < 0:
                        return None
                    width *= d
                return width
        raise KeyError(name)


class BatchServerClient:
    """Sends rows of text (or token ids) to ``model`` and returns, per row,
    its outputs or the reason it failed.

    ``servers``: ``host:port`` strings (or one comma-separated string);
    ``outputs``: output names (default: all the model's); ``classes``: the
    classification extension's top-1 label and score on the first output
    instead of its values; ``priority``: the KServe request priority (1 is
    the highest level; bulk work should use a lower level than interactive
    traffic, see the chart's docs); ``token``: a bearer token.
    Create it where it runs (a Spark executor, a Ray actor): it holds gRPC
    channels, which do not travel.
    """

    def __init__(self, servers, model, *, version="", outputs=None, classes=None, priority=0, token=None,
                 timeout_s=60.0, max_attempts=12, requests_in_flight=2, lookup_interval_s=30.0,
                 max_batch_size=None):
        import tritonclient.grpc as grpcclient

        if classes not in (None, 1):
            raise ValueError("classes must be 1 (the top label and its score) or None (the output's values)")
        self._grpc = grpcclient
        self.endpoints = Endpoints(servers, lookup_interval=lookup_interval_s)
        self.model = model
        self.version = version
        self.classes = classes
        self.priority = priority
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.requests_in_flight = max(1, requests_in_flight)
        self._headers = {"authorization": f"Bearer {token}"} if token else None
        self._clients = {}
        self._clients_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.requests_in_flight) if self.requests_in_flight > 1 else None
        self.info = self._read_model()
        self.batch_size = max_batch_size or (self.info.max_batch_size if self.info.max_batch_size > 0 else 1)
        names = [name for name, _, _ in self.info.outputs]
        self.outputs = list(outputs) if outputs else names
        for name in self.outputs:
            if name not in names:
                raise BatchServerError(f"model '{model}' has no output '{name}' (it has {', '.join(names)})")
        self.retries = 0

    # -- model ---------------------------------------------------------------

    def _client(self, endpoint):
        gone = []
        with self._clients_lock:
            client = self._clients.get(endpoint)
            if client is None:
                # A new address: the names changed, so drop the clients of
                # addresses that left them (pods gone for good).
                current = set(self.endpoints.current)
                gone = [self._clients.pop(e) for e in list(self._clients) if e not in current]
                client = self._grpc.InferenceServerClient(endpoint)
                self._clients[endpoint] = client
        _close(gone)
        return client

    def _read_model(self):
        last = None
        for attempt in range(self.max_attempts):
            endpoint = self.endpoints.pick()
            try:
                client = self._client(endpoint)
                metadata = client.get_model_metadata(self.model, self.version, headers=self._headers, as_json=True)
                config = client.get_model_config(self.model, self.version, headers=self._headers, as_json=True)
                self.endpoints.succeeded(endpoint)
                return ModelInfo(metadata, config.get("config", config))
            except Exception as error:  # noqa: BLE001 - sorted by status below
                status = _status(error)
                if status in STOPS_THE_JOB or status == "INVALID_ARGUMENT":
                    raise BatchServerError(f"model '{self.model}' from {endpoint}: {status}: {_message(error)}") from None
                last = f"{endpoint}: {status or type(error).__name__}: {_message(error)}"
                self.endpoints.failed(endpoint)
                time.sleep(min(2.0, 0.1 * 2 ** attempt) * (0.5 + random.random() / 2))
        raise BatchServerError(f"no server answered for model '{self.model}': {last}")

    # -- rows ----------------------------------------------------------------

    def infer(self, texts=None, input_ids=None, attention_mask=None):
        """One result per row: ``(outputs, errors)``, where ``outputs`` maps
        each output (or ``label``/``score`` with ``classes``) to a list with
        one value per row (None for a failed row) and ``errors`` holds None
        or the row's reason. Give ``texts`` (strings) or ``input_ids`` (one
        sequence of ints per row, any lengths; ``attention_mask`` optional).
        """
        if (texts is None) == (input_ids is None):
            raise ValueError("give texts or input_ids")
        rows = len(texts) if texts is not None else len(input_ids)
        results = [None] * rows
        errors = [None] * rows
        sendable = []
        for i in range(rows):
            problem = self._row_problem(i, texts, input_ids, attention_mask)
            if problem:
                errors[i] = problem
            else:
                sendable.append(i)
        chunks = [sendable[i:i + self.batch_size] for i in range(0, len(sendable), self.batch_size)]

        def run(chunk):
            self._send_isolating(chunk, texts, input_ids, attention_mask, results, errors)

        if self._pool and len(chunks) > 1:
            for future in [self._pool.submit(run, chunk) for chunk in chunks]:
                future.result()
        else:
            for chunk in chunks:
                run(chunk)
        columns = {}
        for name in self.result_names():
            columns[name] = [None if r is None else r[name] for r in results]
        return columns, errors

    def result_names(self):
        """The columns ``infer`` returns besides ``error``."""
        if self.classes:
            return ["label", "score"] + self.outputs[1:]
        return list(self.outputs)

    def _row_problem(self, i, texts, input_ids, attention_mask):
        if texts is not None:
            if self.info.text_input is None:
                return f"model '{self.model}' takes token ids, not text"
            text = texts[i]
            if text is None or (isinstance(text, float) and np.isnan(text)):
                return "row has no text"
            if not isinstance(text, (str, bytes)):
                return f"text must be a string, not {type(text).__name__}"
            return None
        if self.info.ids_input is None:
            return f"model '{self.model}' takes text, not token ids"
        ids = input_ids[i]
        if ids is None or len(ids) == 0:
            return "row has no token ids"
        if attention_mask is not None and (attention_mask[i] is None or len(attention_mask[i]) != len(ids)):
            return "attention mask and token ids differ in length"
        return None

    def _send_isolating(self, chunk, texts, input_ids, attention_mask, results, errors):
        """Sends ``chunk``; on an error that is the input's fault, halves it
        until the rows at fault are alone."""
        outcome = self._send(chunk, texts, input_ids, attention_mask)
        if isinstance(outcome, str):
            if len(chunk) == 1:
                errors[chunk[0]] = outcome
                return
            half = len(chunk) // 2
            self._send_isolating(chunk[:half], texts, input_ids, attention_mask, results, errors)
            self._send_isolating(chunk[half:], texts, input_ids, attention_mask, results, errors)
            return
        for row, value in zip(chunk, outcome):
            results[row] = value

    def _request(self, chunk, texts, input_ids, attention_mask):
        grpc = self._grpc
        inputs = []
        if texts is not None:
            values = np.array([[t.encode("utf-8") if isinstance(t, str) else bytes(t)] for t in (texts[i] for i in chunk)],
                              dtype=np.object_)
            tensor = grpc.InferInput(self.info.text_input, list(values.shape), "BYTES")
            tensor.set_data_from_numpy(values)
            inputs.append(tensor)
        else:
            dtype = np.int32 if self.info.ids_datatype == "INT32" else np.int64
            length = max(len(input_ids[i]) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=dtype)
            mask = np.zeros((len(chunk), length), dtype=dtype)
            for row, i in enumerate(chunk):
                ids[row, :len(input_ids[i])] = np.asarray(input_ids[i], dtype=dtype)
                mask[row, :len(input_ids[i])] = 1 if attention_mask is None else np.asarray(attention_mask[i], dtype=dtype)
            if self.info.mask_input is None and len(chunk) > 1 and not mask.all():
                return None  # rows of different lengths and no mask to say so: one request per row
            tensor = grpc.InferInput(self.info.ids_input, list(ids.shape), self.info.ids_datatype)
            tensor.set_data_from_numpy(ids)
            inputs.append(tensor)
            if self.info.mask_input:
                tensor = grpc.InferInput(self.info.mask_input, list(mask.shape), self.info.ids_datatype)
                tensor.set_data_from_numpy(mask)
                inputs.append(tensor)
        outputs = [grpc.InferRequestedOutput(name, class_count=(self.classes if self.classes and n == 0 else 0))
                   for n, name in enumerate(self.outputs)]
        return inputs, outputs

    def _send(self, chunk, texts, input_ids, attention_mask):
        """The rows' results (a list, one per row), or a string: the reason
        the server refused them as the input's fault."""
        built = self._request(chunk, texts, input_ids, attention_mask)
        if built is None:
            values = []
            for i in chunk:
                outcome = self._send([i], texts, input_ids, attention_mask)
                if isinstance(outcome, str):
                    return outcome
                values.extend(outcome)
            return values
        inputs, outputs = built
        last = None
        attempts = waits = 0
        # Waits a rate limit asks for are not failures: they do not use up attempts.
        while attempts < self.max_attempts and waits < 1000:
            endpoint = self.endpoints.pick()
            wait = self.endpoints.wait_for(endpoint)
            if wait:
                time.sleep(wait)
            try:
                result = self._client(endpoint).infer(
                    self.model, inputs, model_version=self.version, outputs=outputs, priority=self.priority,
                    headers=self._headers, client_timeout=self.timeout_s)
            except Exception as error:  # noqa: BLE001 - sorted by status below
                status = _status(error)
                if status in STOPS_THE_JOB:
                    raise BatchServerError(f"model '{self.model}' at {endpoint}: {status}: {_message(error)}") from None
                if status is not None and status not in RETRYABLE:
                    self.endpoints.succeeded(endpoint)
                    return f"{status}: {_message(error)}"
                # A lost connection (no status) or a retryable status.
                self.retries += 1
                last = f"{status or type(error).__name__}: {_message(error)}"
                asked = _retry_after(last) if status == "RESOURCE_EXHAUSTED" else None
                if asked is not None:
                    # Held for the wait, so this worker's other requests go elsewhere or wait too.
                    waits += 1
                    self.endpoints.hold(endpoint, asked)
                    continue
                attempts += 1
                if status is None or status in ENDPOINT_SUSPECT:
                    self.endpoints.failed(endpoint)
                time.sleep(min(5.0, 0.05 * 2 ** attempts) * (0.5 + random.random() / 2))
                continue
            self.endpoints.succeeded(endpoint)
            return self._rows(result, len(chunk))
        return f"gave up after {attempts} attempts: {last}"

    def _rows(self, result, count):
        rows = [dict() for _ in range(count)]
        for n, name in enumerate(self.outputs):
            values = result.as_numpy(name)
            if values is None:
                raise BatchServerError(f"the server's answer has no output '{name}'")
            if self.classes and n == 0:
                for row, entries in zip(rows, values.reshape(count, -1)):
                    top = entries[0].decode() if isinstance(entries[0], bytes) else str(entries[0])
                    score, _, rest = top.partition(":")
                    index, _, label = rest.partition(":")
                    row["score"] = float(score)
                    row["label"] = label or index
                continue
            for row, value in zip(rows, values.reshape(count, -1)):
                row[name] = value
        return rows

    def close(self):
        if self._pool:
            self._pool.shutdown(wait=False)
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        _close(clients)
