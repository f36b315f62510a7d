"""Fixtures that run the real batch-server binary on free loopback ports."""

import atexit
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("BATCH_SERVER_BIN", str(ROOT / ".build" / "debug" / "batch-server"))
SHIPPED_REPOSITORY = ROOT / "model_repository"
FP32_PIN = 'parameters { key: "precision" value: { string_value: "fp32" } }\n'


def pin_fp32(config: str) -> str:
    """An encoder model's config with its precision pinned to fp32 where it
    names none: `auto` serves bf16 on CPUs with AMX or AVX512_BF16, and the
    tests that hold numbers to fp32's tolerance must get fp32 everywhere."""
    if 'backend: "transformer_encoder"' in config and '"precision"' not in config:
        return config + FP32_PIN
    return config


def pinned_repository(source: pathlib.Path) -> pathlib.Path:
    """A copy of `source` whose encoder configs are pinned to fp32; every
    other file and directory is a symbolic link to the original."""
    target = pathlib.Path(tempfile.mkdtemp(prefix="batchserver-repo-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    for model in sorted(source.iterdir()):
        config = model / "config.pbtxt"
        if not config.is_file() or pin_fp32(config.read_text()) == config.read_text():
            (target / model.name).symlink_to(model)
            continue
        (target / model.name).mkdir()
        for entry in model.iterdir():
            if entry.name != "config.pbtxt":
                (target / model.name / entry.name).symlink_to(entry)
        (target / model.name / "config.pbtxt").write_text(pin_fp32(config.read_text()))
    return target


# The shipped repository as the tests serve it: encoders at fp32 on every CPU.
MODEL_REPOSITORY = pinned_repository(SHIPPED_REPOSITORY)
# ONNX Runtime for the onnxruntime backend: the wheel's library in .venv
# (scripts/install-onnxruntime.sh). Servers find it through this variable.
ONNXRUNTIME_LIBRARY = next(iter(sorted(ROOT.glob(".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.*"))), None)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory):
    """A CA (ca.pem), a server certificate for localhost and 127.0.0.1
    (server.pem, server.key) and a client certificate (client.pem, client.key)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=BatchServer test CA", cwd=directory)
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={'localhost' if name == 'server' else 'test-client'}", cwd=directory)
        (directory / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)
    return directory


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environment(onnxruntime=True):
    """The servers' environment: ours, with the ONNX Runtime library named
    (or, with onnxruntime=False, with none to be found)."""
    env = dict(os.environ)
    env.pop("BATCHSERVER_ONNXRUNTIME_LIBRARY", None)
    if onnxruntime and ONNXRUNTIME_LIBRARY:
        env["BATCHSERVER_ONNXRUNTIME_LIBRARY"] = str(ONNXRUNTIME_LIBRARY)
    elif not onnxruntime:
        env["BATCHSERVER_ONNXRUNTIME_LIBRARY"] = "/nonexistent/libonnxruntime.so.1"
    return env


class RunningServer:
    """One batch-server process; its log is kept for assertions."""

    def __init__(self, repository, extra_args=(), log_path=None, http_port=None, grpc_port=None, env=None, host="127.0.0.1"):
        # Given ports restart a server where clients expect it (a pod coming back).
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = free_port()
        self.host = host
        self.log_path = log_path
        self.log = open(log_path, "w+b")
        self.process = subprocess.Popen(
            [
                BINARY,
                "--model-repository", str(repository),
                "--host", host,
                "--http-port", str(self.http_port),
                "--grpc-port", str(self.grpc_port),
                "--metrics-port", str(self.metrics_port),
                *extra_args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env if env is not None else server_environment(),
        )

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def base(self) -> str:
        return f"http://{self.http_url}"

    def wait_live(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"batch-server exited with {self.process.returncode}:\n{self.read_log()}")
            try:
                if requests.get(f"{self.base}/v2/health/live", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"batch-server did not come up:\n{self.read_log()}")

    def read_log(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def stop(self, timeout=30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture
def start_server(tmp_path):
    """Starts servers on demand; each is stopped (SIGTERM) after the test."""
    servers = []

    def start(repository=MODEL_REPOSITORY, extra_args=(), env=None):
        server = RunningServer(repository, extra_args, log_path=tmp_path / f"server-{len(servers)}.log", env=env)
        servers.append(server)
        return server.wait_live()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server on the example model repository, shared by a test module."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    running = RunningServer(MODEL_REPOSITORY, log_path=log).wait_live()
    yield running
    code = running.stop()
    assert code == 0, f"batch-server exited with {code}:\n{running.read_log()}"
