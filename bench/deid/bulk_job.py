"""A bulk de-identification job: N notes (default 100,000; the corpus's notes
repeated under unique ids) through phi_deidentifier with batch-server-client
against one server. Reports notes/s, checks every id is in the output exactly
once, and that a sample of outputs equals single requests.

    .venv/bin/python bench/deid/bulk_job.py --binary .build/release/batch-server --notes 100000
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import tritonclient.grpc as grpcclient

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench" / "deid"))
import conftest  # noqa: E402
from redaction_overhead import cpu_name  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / ".build" / "release" / "batch-server"))
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args()
    client_binary = str(pathlib.Path(args.binary).with_name("batch-server-client"))
    corpus = sorted((ROOT / "bench" / "deid" / "data").glob("corpus-*.jsonl"))
    if not corpus:
        sys.exit("no corpus: run bench/deid/run.sh (or make_corpus.py) first")
    texts = [json.loads(line)["text"] for line in open(corpus[-1])]
    conftest.BINARY = args.binary
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        rows = [{"id": f"n{i:06d}", "text": texts[i % len(texts)]} for i in range(args.notes)]
        with open(scratch / "in.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        megabytes = (scratch / "in.jsonl").stat().st_size / 1e6
        server = conftest.RunningServer(conftest.MODEL_REPOSITORY, log_path=scratch / "server.log").wait_live(timeout=120)
        try:
            began = time.monotonic()
            result = subprocess.run([client_binary, "run", "phi_deidentifier", "--input", str(scratch / "in.jsonl"),
                                     "--output", str(scratch / "out.jsonl"), "--server", f"127.0.0.1:{server.grpc_port}",
                                     "--progress", "off"], capture_output=True, text=True)
            elapsed = time.monotonic() - began
            if result.returncode != 0:
                sys.exit(f"bulk client exited {result.returncode}: {result.stderr[-2000:]}")
            out = [json.loads(line) for line in open(scratch / "out.jsonl")]
            ids = [r["id"] for r in out]
            assert len(ids) == len(set(ids)) == args.notes, (len(ids), len(set(ids)))
            by_id = {r["id"]: r for r in out}
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
            mismatches = 0
            for row in rows[:: max(1, args.notes // args.sample)][: args.sample]:
                tensor = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
                tensor.set_data_from_numpy(np.array([[row["text"].encode()]], dtype=np.object_))
                single = client.infer("phi_deidentifier", [tensor]).as_numpy("DEIDENTIFIED_TEXT")[0][0].decode()
                got = by_id[row["id"]]["DEIDENTIFIED_TEXT"]
                mismatches += (got[0] if isinstance(got, list) else got) != single
        finally:
            server.stop()
    print(f"CPU: {cpu_name()}")
    print(f"{args.notes} notes ({megabytes:.1f} MB JSONL) through phi_deidentifier with batch-server-client: "
          f"{elapsed:.1f} s, {args.notes / elapsed:.0f} notes/s, {megabytes / elapsed:.2f} MB/s; every id once; "
          f"{args.sample - mismatches}/{args.sample} sampled outputs equal to single requests")


if __name__ == "__main__":
    main()
