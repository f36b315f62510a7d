#!/usr/bin/env python3
"""Fault, soak, overload and connection-churn checks of BatchServer and its
bulk client (batch-server-client), against real servers on loopback.

    .venv/bin/python bench/reliability/suite.py faults  [--rows 20000]
    .venv/bin/python bench/reliability/suite.py soak    [--minutes 10]
    .venv/bin/python bench/reliability/suite.py overload
    .venv/bin/python bench/reliability/suite.py churn   [--connections 10000]
    .venv/bin/python bench/reliability/suite.py all     (what docs/reliability.md reports)

Each prints its figures and appends them to bench/results/reliability.json.
Tests/e2e/test_reliability.py runs the same functions with small sizes in
the normal test run. Binaries: .build/debug unless --build-dir is given.
"""

import argparse
import asyncio
import concurrent.futures
import json
import os
import pathlib
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402

MODEL = "distilbert_sst2"
WORDS = "patient reports chest pain after surgery and mild fever resolved with rest".split()


def log(message):
    print(f"[reliability] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_name():
    flags = ""
    name = platform.processor()
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            break
    wanted = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name} ({os.cpu_count()} cores; {' '.join(wanted)})"


class Server:
    """One batch-server process; restartable on the same ports."""

    def __init__(self, build, work, name, extra=(), grpc_port=None, http_port=None):
        self.build, self.work, self.name, self.extra = build, pathlib.Path(work), name, list(extra)
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        log_file = open(self.work / f"{self.name}-{self.starts}.log", "wb")
        self.process = subprocess.Popen(
            [str(self.build / "batch-server"), "--model-repository", str(ROOT / "model_repository"), "--host", "127.0.0.1",
             "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port), "--metrics-port", str(free_port()),
             *self.extra], stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5) as sock:
                    sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
                    if b" 200 " in sock.recv(200):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not become ready")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout=60):
        """SIGTERM: readiness off, queued and in-flight requests finish, exit 0."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def rss_mib(self):
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stats(self):
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            model = stub.ModelStatistics(service_pb2.ModelStatisticsRequest(name=MODEL)).model_stats[0]
        return model.inference_stats.success.count, model.inference_stats.fail.count

    @property
    def address(self):
        return f"127.0.0.1:{self.grpc_port}"


class UnavailableServer:
    """A gRPC server that answers UNAVAILABLE to every call (a pod that is up
    but not serving: overloaded, or behind a proxy that lost its backend)."""

    def __init__(self, port):
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(8))

        class Refuse(grpc.GenericRpcHandler):
            def service(self, details):
                def refuse(request, context):
                    context.abort(grpc.StatusCode.UNAVAILABLE, "temporarily unavailable (fault injection)")
                return grpc.unary_unary_rpc_method_handler(refuse)

        self.server.add_generic_rpc_handlers([Refuse()])
        self.server.add_insecure_port(f"127.0.0.1:{port}")

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *_):
        self.server.stop(0).wait()


def note(i):
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3 + i % 9))


def write_rows(path, count):
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"id": f"note-{i:06d}", "text": note(i)}) + "\n")


def client_command(build, input_path, output, servers, extra=()):
    command = [str(build / "batch-server-client"), "run", MODEL, "--input", str(input_path), "--output", str(output),
               "--progress", "off", *extra]
    for server in servers:
        command += ["--server", server]
    return command


def lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def wait_for_lines(path, count, process, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and lines(path) < count:
        if process.poll() is not None:
            raise RuntimeError(f"the client exited early with {process.returncode}")
        time.sleep(0.05)


def read_results(path):
    results = {}
    duplicates = 0
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["id"] in results:
                duplicates += 1
            results[row["id"]] = row["LOGITS"]
    return results, duplicates


def compare(path, reference):
    results, duplicates = read_results(path)
    lost = len(set(reference) - set(results))
    extra = len(set(results) - set(reference))
    wrong = sum(1 for key, value in results.items() if key in reference and not np.allclose(value, reference[key], atol=1e-4))
    return {"rows": len(reference), "lost": lost, "duplicates": duplicates, "unexpected": extra, "wrong": wrong}


# ------------------------------------------------------------------ faults

def faults(build, work, rows=20000):
    """One job over two servers through four faults; every id exactly once
    with the result a fault-free run gives."""
    work = pathlib.Path(work)
    input_path = work / "faults.jsonl"
    write_rows(input_path, rows)
    a, b = Server(build, work, "a").start(), Server(build, work, "b").start()
    try:
        log(f"faults: reference run of {rows} rows on two servers, no faults")
        started = time.monotonic()
        subprocess.run(client_command(build, input_path, work / "reference.jsonl", [a.address, b.address], ["--restart"]),
                       check=True, timeout=1800)
        reference_seconds = time.monotonic() - started
        reference, _ = read_results(work / "reference.jsonl")

        output = work / "faulted.jsonl"
        command = client_command(build, input_path, output, [a.address, b.address],
                                 ["--restart", "--summary-json", str(work / "faulted-summary.json")])
        events = []
        started = time.monotonic()
        client = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(work / "client-1.log", "w"))

        wait_for_lines(output, rows * 15 // 100, client)
        log("faults: SIGKILL server a, start it again")
        a.kill()
        time.sleep(1)
        a.start()
        events.append(("SIGKILL a, restart", time.monotonic() - started))

        wait_for_lines(output, rows * 35 // 100, client)
        log("faults: SIGTERM server b (drain), start it again")
        code = b.terminate()
        events.append((f"SIGTERM b (exit {code}), restart", time.monotonic() - started))
        b.start()

        wait_for_lines(output, rows * 55 // 100, client)
        log("faults: kill -9 the client, rerun the same command")
        client.send_signal(signal.SIGKILL)
        client.wait()
        events.append(("kill -9 client, rerun", time.monotonic() - started))
        rerun = [part for part in command if part != "--restart"]
        client = subprocess.Popen(rerun, stdout=subprocess.DEVNULL, stderr=open(work / "client-2.log", "w"))

        wait_for_lines(output, rows * 75 // 100, client)
        log("faults: server a answers UNAVAILABLE for 10 s")
        a.kill()
        with UnavailableServer(a.grpc_port):
            events.append(("a answers UNAVAILABLE for 10 s", time.monotonic() - started))
            time.sleep(10)
        a.start()

        code = client.wait(timeout=1800)
        seconds = time.monotonic() - started
        summary = json.loads((work / "faulted-summary.json").read_text())
        result = compare(output, reference)
        result.update({"client_exit": code, "seconds": round(seconds, 1), "reference_seconds": round(reference_seconds, 1),
                       "retries_after_rerun": summary["retries"], "resumed_rows": summary["resumed"],
                       "events": [{"fault": name, "at_s": round(at, 1)} for name, at in events]})
        log(f"faults: {result}")
        return result
    finally:
        for server in (a, b):
            if server.process and server.process.poll() is None:
                server.kill()


# ------------------------------------------------------------------ soak

def soak(build, work, minutes=10.0, perf_analyzer=None, sample_seconds=5):
    """Saturation for `minutes` through the bulk client and a latency probe
    (perf_analyzer when installed, else a tritonclient loop) together:
    requests sent = responses received + errors reported; RSS sampled."""
    work = pathlib.Path(work)
    server = Server(build, work, "soak").start()
    duration = minutes * 60
    rows = int(400 * duration) + 1000  # more than the server can do in the time
    input_path = work / "soak.jsonl"
    write_rows(input_path, rows)
    samples = []
    probe_latencies = []  # (seconds since start, latency ms)
    probe_counts = {"sent": 0, "ok": 0, "error": 0}
    stop = threading.Event()
    try:
        started = time.monotonic()
        client = subprocess.Popen(client_command(build, input_path, work / "soak-out.jsonl", [server.address],
                                                 ["--restart", "--summary-json", str(work / "soak-summary.json"),
                                                  "--give-up-secs", "60"]),
                                  stdout=subprocess.DEVNULL, stderr=open(work / "soak-client.log", "w"))
        perf = None
        if perf_analyzer:
            data = work / "pa-text.json"
            data.write_text(json.dumps({"data": [{"TEXT": {"content": [note(i)], "shape": [1]}} for i in range(64)]}))
            perf = subprocess.Popen(
                [perf_analyzer, "-m", MODEL, "-i", "grpc", "-u", server.address, "--input-data", str(data),
                 "--concurrency-range", "2", "--measurement-mode", "time_windows",
                 "--measurement-interval", str(int(duration * 1000)), "--max-trials", "1", "-s", "100",
                 "-f", str(work / "soak-pa.csv")],
                stdout=open(work / "soak-pa.log", "w"), stderr=subprocess.STDOUT)

        def probe():
            stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.address))
            i = 0
            while not stop.is_set():
                request = service_pb2.ModelInferRequest(model_name=MODEL, id=f"probe-{i}")
                tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1, 1])
                tensor.contents.bytes_contents.append(note(i).encode())
                t0 = time.monotonic()
                probe_counts["sent"] += 1
                try:
                    stub.ModelInfer(request, timeout=30)
                    probe_counts["ok"] += 1
                    probe_latencies.append((t0 - started, (time.monotonic() - t0) * 1000))
                except grpc.RpcError:
                    probe_counts["error"] += 1
                i += 1
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        while time.monotonic() - started < duration:
            samples.append((round(time.monotonic() - started, 1), round(server.rss_mib(), 1)))
            time.sleep(sample_seconds)
        stop.set()
        prober.join()
        # SIGTERM: the client stops sending, waits for what is in flight, commits, exits 2 (resumable).
        client.send_signal(signal.SIGTERM)
        client_exit = client.wait(timeout=120)
        if perf:
            perf.wait(timeout=120)
        time.sleep(1)
        success, fail = server.stats()
        output_rows = lines(work / "soak-out.jsonl")
        errors_rows = lines(work / "soak-out.jsonl.errors.jsonl")
        pa_requests = None
        if perf and (work / "soak-pa.csv").exists():
            import csv
            row = next(csv.DictReader(open(work / "soak-pa.csv")))
            pa_requests = row.get("Inferences/Second")
        warm = [rss for t, rss in samples if t >= 60] or [rss for _, rss in samples]
        times = [t for t, _ in samples if t >= 60] or [t for t, _ in samples]
        slope = float(np.polyfit(np.array(times) / 60, warm, 1)[0]) if len(warm) > 2 else float("nan")
        p99_by_minute = {}
        for t, latency in probe_latencies:
            p99_by_minute.setdefault(int(t // 60), []).append(latency)
        bulk = json.loads((work / "soak-summary.json").read_text())
        result = {
            "minutes": minutes, "server_success": success, "server_fail": fail, "client_exit": client_exit,
            "bulk_sent": bulk["succeeded"] + bulk["errors"], "bulk_rows_written": output_rows, "bulk_errors": errors_rows,
            "bulk_rows_per_s": round(bulk["rowsPerSecond"], 1),
            # Every request the bulk client and the probe sent was answered: what the server
            # counts beyond theirs is perf_analyzer's.
            "server_success_minus_bulk_and_probe": success - output_rows - probe_counts["ok"],
            "probe_sent": probe_counts["sent"], "probe_ok": probe_counts["ok"], "probe_errors": probe_counts["error"],
            "perf_analyzer_inferences_per_s": pa_requests,
            "rss_first_mib": samples[0][1], "rss_last_mib": samples[-1][1], "rss_max_mib": max(r for _, r in samples),
            "rss_slope_mib_per_min_after_1_min": round(slope, 3),
            "probe_p99_ms_by_minute": {m: round(float(np.percentile(v, 99)), 1) for m, v in sorted(p99_by_minute.items())},
            "rss_samples": samples,
        }
        log(f"soak: {({k: v for k, v in result.items() if k != 'rss_samples'})}")
        return result
    finally:
        stop.set()
        if server.process.poll() is None:
            server.kill()


# ------------------------------------------------------------------ overload

def overload(build, work, clients=400, queue=32):
    """Far more concurrent requests than the queue bound: the excess gets a
    fast UNAVAILABLE, every accepted request finishes, RSS stays bounded."""
    work = pathlib.Path(work)
    server = Server(build, work, "overload", extra=["--default-max-queue-size", str(queue)]).start()
    rss_before = server.rss_mib()
    try:
        async def run():
            # Many connections, as many clients would open: one connection's
            # stream limit would hold requests back on the client side.
            channels = [grpc.aio.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])
                        for _ in range(max(1, clients // 50))]
            stubs = [service_pb2_grpc.GRPCInferenceServiceStub(channel) for channel in channels]
            outcomes = []

            async def one(i):
                stub = stubs[i % len(stubs)]
                request = service_pb2.ModelInferRequest(model_name=MODEL, id=f"o{i}")
                tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1, 1])
                tensor.contents.bytes_contents.append(note(i).encode())
                t0 = time.monotonic()
                try:
                    await stub.ModelInfer(request, timeout=120)
                    outcomes.append(("ok", time.monotonic() - t0))
                except grpc.aio.AioRpcError as error:
                    outcomes.append((error.code().name, time.monotonic() - t0))

            await asyncio.gather(*(one(i) for i in range(clients)))
            for channel in channels:
                await channel.close()
            return outcomes

        outcomes = asyncio.run(run())
        rss_after = server.rss_mib()
        refused = [t for code, t in outcomes if code == "UNAVAILABLE"]
        accepted = [t for code, t in outcomes if code == "ok"]
        other = [code for code, _ in outcomes if code not in ("ok", "UNAVAILABLE")]
        success, fail = server.stats()
        result = {
            "concurrent_requests": clients, "queue_bound": queue, "accepted": len(accepted), "refused_unavailable": len(refused),
            "other_errors": len(other), "refusal_p99_ms": round(float(np.percentile(refused, 99)) * 1000, 1) if refused else None,
            "accepted_p99_ms": round(float(np.percentile(accepted, 99)) * 1000, 1) if accepted else None,
            "server_success": success, "rss_before_mib": round(rss_before, 1), "rss_after_mib": round(rss_after, 1),
        }
        log(f"overload: {result}")
        return result
    finally:
        server.kill()


# ------------------------------------------------------------------ churn

def churn(build, work, connections=10000, threads=8):
    """Short-lived client connections, each one call then closed: RSS flat."""
    work = pathlib.Path(work)
    server = Server(build, work, "churn").start()
    samples = [(0, round(server.rss_mib(), 1))]
    try:
        done = [0]
        lock = threading.Lock()

        def worker(count):
            for _ in range(count):
                with grpc.insecure_channel(server.address) as channel:
                    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                    assert stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=10).live
                with lock:
                    done[0] += 1

        started = time.monotonic()
        per = connections // threads
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(worker, per) for _ in range(threads)]
            while not all(f.done() for f in futures):
                time.sleep(1)
                samples.append((done[0], round(server.rss_mib(), 1)))
            for f in futures:
                f.result()
        time.sleep(2)
        samples.append((done[0], round(server.rss_mib(), 1)))
        after_first_tenth = [rss for count, rss in samples if count >= connections // 10]
        result = {
            "connections": done[0], "seconds": round(time.monotonic() - started, 1),
            "rss_start_mib": samples[0][1], "rss_after_10pct_mib": after_first_tenth[0] if after_first_tenth else None,
            "rss_end_mib": samples[-1][1], "rss_max_mib": max(r for _, r in samples),
        }
        log(f"churn: {result}")
        return result
    finally:
        server.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["faults", "soak", "overload", "churn", "all"])
    parser.add_argument("--build-dir", default=str(ROOT / ".build" / "debug"))
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--perf-analyzer", default=str(ROOT / "bench" / "tools" / "perf_analyzer" / "run"))
    args = parser.parse_args()
    build = pathlib.Path(args.build_dir)
    perf = args.perf_analyzer if pathlib.Path(args.perf_analyzer).exists() else None
    results = {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%d"), "build": str(build.relative_to(ROOT)) if build.is_relative_to(ROOT) else str(build)}
    with tempfile.TemporaryDirectory(prefix="reliability-") as work:
        if args.scenario in ("faults", "all"):
            results["faults"] = faults(build, work, args.rows)
        if args.scenario in ("overload", "all"):
            results["overload"] = overload(build, work)
        if args.scenario in ("churn", "all"):
            results["churn"] = churn(build, work, args.connections)
        if args.scenario in ("soak", "all"):
            results["soak"] = soak(build, work, args.minutes, perf)
    out = ROOT / "bench" / "results" / "reliability.json"
    history = json.loads(out.read_text()) if out.exists() else []
    history.append(results)
    out.write_text(json.dumps(history, indent=1) + "\n")
    print(json.dumps({k: v for k, v in results.items()}, indent=1, default=str))


if __name__ == "__main__":
    main()
