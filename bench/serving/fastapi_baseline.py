#!/usr/bin/env python3
"""The seeds' baseline: FastAPI + uvicorn serving Hugging Face's DistilBERT in
PyTorch on CPU, one request per forward pass, behind the KServe v2 HTTP/JSON
routes so that perf_analyzer drives it exactly as it drives BatchServer.

    bench/.venv/bin/python bench/serving/fastapi_baseline.py --port 8000 \
        [--model-dir model_repository/distilbert_sst2/1] [--threads 2] [--bf16]

- The model: `transformers.DistilBertForSequenceClassification` loaded from the
  local config.json + model.safetensors (the same weights BatchServer serves;
  nothing is fetched), eval mode, `torch.inference_mode()`, fp32; with
  `--bf16` the forward runs under `torch.autocast("cpu", dtype=torch.bfloat16)`
  (PyTorch's own mixed precision: the linear layers and matrix products in
  bf16, fp32 weights kept), the peer of BatchServer's bf16 encoder.
- Inputs: INPUT_IDS and ATTENTION_MASK, INT64 [1, L] (the Triton model's
  inputs; no tokenization), as JSON `data` or through the binary tensor data
  extension (`Inference-Header-Content-Length`), which perf_analyzer uses by
  default. Output: LOGITS FP32 [1, 2], JSON or binary as the request asks.
- No batching: every request is its own forward pass. Like a plain FastAPI
  `def` endpoint, the forward runs on Starlette's worker thread pool
  (`--handler threadpool`, the default), so concurrent requests run
  concurrent forwards on torch's shared 2-thread intra-op pool;
  `--handler serial` runs one forward at a time instead.
- Routes: /v2, /v2/health/{live,ready}, /v2/models/{m}[/versions/{v}],
  .../ready, .../config, .../stats, /v2/models/stats, POST .../infer.
"""

import argparse
import json
import pathlib
import threading
import time

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

ROOT = pathlib.Path(__file__).resolve().parents[2]
NUMPY = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32}


def build_app(model_dir, name, threads, handler, bf16=False):
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    from transformers import DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True).eval()
    labels = model.config.num_labels
    app = FastAPI()
    lock = threading.Lock() if handler == "serial" else None
    stats = {"count": 0, "ns": 0, "fail": 0, "last": 0}

    metadata = {
        "name": name, "versions": ["1"], "platform": "pytorch_libtorch",
        "inputs": [{"name": "INPUT_IDS", "datatype": "INT64", "shape": [-1, -1]},
                   {"name": "ATTENTION_MASK", "datatype": "INT64", "shape": [-1, -1]}],
        "outputs": [{"name": "LOGITS", "datatype": "FP32", "shape": [-1, labels]}],
    }
    # max_batch_size 1: one request per forward pass, and perf_analyzer sends
    # the same [1, L] requests it sends to BatchServer.
    config = {
        "name": name, "platform": "pytorch_libtorch", "backend": "pytorch", "max_batch_size": 1,
        "input": [{"name": "INPUT_IDS", "data_type": "TYPE_INT64", "dims": [-1]},
                  {"name": "ATTENTION_MASK", "data_type": "TYPE_INT64", "dims": [-1]}],
        "output": [{"name": "LOGITS", "data_type": "TYPE_FP32", "dims": [labels]}],
        "instance_group": [{"kind": "KIND_CPU", "count": 1}],
    }

    def forward(ids, mask):
        # A context per call: autocast's state is per thread, and a shared
        # context object would race between the pool's threads. Under autocast
        # the classifier's logits come out bf16, which numpy cannot hold.
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.float().numpy()

    def forward_timed(ids, mask):
        if lock is None:
            return forward(ids, mask)
        with lock:
            return forward(ids, mask)

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/v2")
    def server_metadata():
        return {"name": "fastapi-baseline", "version": torch.__version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    @app.get("/v2/health/ready")
    def health():
        return Response(status_code=200)

    def known(model_name):
        return model_name == name

    def statistics():
        def duration(count, ns):
            return {"count": count, "ns": ns}
        c, ns = stats["count"], stats["ns"]
        return {"model_stats": [{
            "name": name, "version": "1", "last_inference": stats["last"], "inference_count": c, "execution_count": c,
            "inference_stats": {"success": duration(c, ns), "fail": duration(stats["fail"], 0), "queue": duration(c, 0),
                                "compute_input": duration(c, 0), "compute_infer": duration(c, ns),
                                "compute_output": duration(c, 0), "cache_hit": duration(0, 0), "cache_miss": duration(0, 0)},
            "batch_stats": [{"batch_size": 1, "compute_input": duration(c, 0), "compute_infer": duration(c, ns),
                             "compute_output": duration(c, 0)}] if c else [],
        }]}

    @app.get("/v2/models/stats")
    @app.get("/v2/models/{model_name}/stats")
    @app.get("/v2/models/{model_name}/versions/{version}/stats")
    def model_stats(model_name: str = name, version: str = "1"):
        return statistics()

    @app.get("/v2/models/{model_name}")
    @app.get("/v2/models/{model_name}/versions/{version}")
    def model_metadata(model_name: str, version: str = "1"):
        return metadata if known(model_name) else error(404, f"unknown model '{model_name}'")

    @app.get("/v2/models/{model_name}/ready")
    @app.get("/v2/models/{model_name}/versions/{version}/ready")
    def model_ready(model_name: str, version: str = "1"):
        return Response(status_code=200 if known(model_name) else 404)

    @app.get("/v2/models/{model_name}/config")
    @app.get("/v2/models/{model_name}/versions/{version}/config")
    def model_config(model_name: str, version: str = "1"):
        return config if known(model_name) else error(404, f"unknown model '{model_name}'")

    @app.post("/v2/models/{model_name}/infer")
    @app.post("/v2/models/{model_name}/versions/{version}/infer")
    async def infer(model_name: str, request: Request, version: str = "1"):
        if not known(model_name):
            return error(404, f"unknown model '{model_name}'")
        body = await request.body()
        header_length = request.headers.get("inference-header-content-length")
        try:
            if header_length is not None:
                header = json.loads(body[:int(header_length)])
                binary = memoryview(body)[int(header_length):]
            else:
                header, binary = json.loads(body), memoryview(b"")
            tensors, offset = {}, 0
            for tensor in header.get("inputs", []):
                dtype = NUMPY[tensor["datatype"]]
                size = (tensor.get("parameters") or {}).get("binary_data_size")
                if size is not None:
                    array = np.frombuffer(binary[offset:offset + size], dtype=dtype)
                    offset += size
                else:
                    array = np.asarray(tensor["data"], dtype=dtype)
                tensors[tensor["name"]] = array.reshape(tensor["shape"]).astype(np.int64, copy=False)
            ids = tensors["INPUT_IDS"]
            mask = tensors.get("ATTENTION_MASK", np.ones_like(ids))
            if ids.ndim != 2 or mask.shape != ids.shape:
                raise ValueError(f"INPUT_IDS must be [batch, length] and ATTENTION_MASK the same shape, got {ids.shape} and {mask.shape}")
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
            stats["fail"] += 1
            return error(400, f"bad request: {e}")
        start = time.perf_counter_ns()
        logits = await run_in_threadpool(forward_timed, np.ascontiguousarray(ids), np.ascontiguousarray(mask))
        stats["ns"] += time.perf_counter_ns() - start
        stats["count"] += ids.shape[0]
        stats["last"] = int(time.time() * 1000)

        requested = {o["name"]: o for o in header.get("outputs", [])}
        wants_binary = bool(((requested.get("LOGITS") or {}).get("parameters") or {}).get("binary_data",
                            (header.get("parameters") or {}).get("binary_data_output", False)))
        output = {"name": "LOGITS", "datatype": "FP32", "shape": list(logits.shape)}
        response = {"model_name": name, "model_version": "1", "outputs": [output]}
        if "id" in header:
            response["id"] = header["id"]
        if not wants_binary:
            output["data"] = logits.ravel().tolist()
            return JSONResponse(response)
        raw = logits.astype(np.float32).tobytes()
        output["parameters"] = {"binary_data_size": len(raw)}
        head = json.dumps(response).encode()
        return Response(head + raw, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(len(head))})

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model-dir", default=str(ROOT / "model_repository" / "distilbert_sst2" / "1"))
    parser.add_argument("--model-name", default="distilbert_sst2")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (BatchServer's instance uses 2)")
    parser.add_argument("--handler", choices=["threadpool", "serial"], default="threadpool")
    parser.add_argument("--bf16", action="store_true", help="run the forward under torch.autocast bf16 (CPU)")
    args = parser.parse_args()
    app = build_app(pathlib.Path(args.model_dir), args.model_name, args.threads, args.handler, args.bf16)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
