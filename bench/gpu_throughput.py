"""GPU encoder throughput against batch size and instance count, through the
server with perf_analyzer. Needs a CUDA host; elsewhere it says so and exits 0
(no GPU has been lent to this project yet, so no figures exist: docs/gpu.md).

    .venv/bin/python bench/gpu_throughput.py [--binary .build/release/batch-server]
"""
import argparse
import ctypes
import ctypes.util
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))


def device_count():
    name = ctypes.util.find_library("cuda")
    if name is None:
        return 0
    driver = ctypes.CDLL(name)
    count = ctypes.c_int(0)
    return count.value if driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / ".build" / "release" / "batch-server"))
    parser.add_argument("--perf-analyzer", default=str(ROOT / "bench" / "tools" / "perf_analyzer" / "perf_analyzer"))
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--length", type=int, default=128)
    args = parser.parse_args()
    if device_count() == 0:
        print("gpu_throughput: no CUDA driver or device on this host; nothing measured")
        return 0
    from conftest import RunningServer
    config = (ROOT / "model_repository" / "distilbert_sst2" / "config.pbtxt").read_text()
    print("instances,concurrency,length,infer_per_sec,p50_us,p99_us")
    for instances in map(int, args.instances.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            repo = pathlib.Path(tmp) / "repo"
            model = repo / "distilbert_sst2"
            model.mkdir(parents=True)
            (model / "1").symlink_to(ROOT / "model_repository" / "distilbert_sst2" / "1")
            (model / "labels.txt").symlink_to(ROOT / "model_repository" / "distilbert_sst2" / "labels.txt")
            (model / "config.pbtxt").write_text(config + f"\ninstance_group [ {{ kind: KIND_GPU count: {instances} }} ]\n")
            server = RunningServer(repo, ["--require-gpu", "true"], log_path=pathlib.Path(tmp) / "server.log").wait_live()
            try:
                for concurrency in map(int, args.concurrency.split(",")):
                    csv = pathlib.Path(tmp) / "pa.csv"
                    subprocess.run([args.perf_analyzer, "-m", "distilbert_sst2", "-i", "grpc", "-u", f"127.0.0.1:{server.grpc_port}",
                                    "--shape", f"INPUT_IDS:{args.length}", "--shape", f"ATTENTION_MASK:{args.length}",
                                    "--concurrency-range", str(concurrency), "-f", str(csv)], check=True, capture_output=True)
                    row = dict(zip(*[line.split(",") for line in csv.read_text().splitlines()[:2]]))
                    print(f"{instances},{concurrency},{args.length},{row['Inferences/Second']},{row['p50 latency']},{row['p99 latency']}")
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
