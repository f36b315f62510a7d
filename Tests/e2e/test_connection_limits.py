"""Idle and slow clients are disconnected after the configured timeouts, and
the server keeps serving everyone else meanwhile."""

import socket
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import MODEL_REPOSITORY, RunningServer


@pytest.fixture(scope="module")
def short_timeouts(tmp_path_factory):
    log = tmp_path_factory.mktemp("limits") / "server.log"
    server = RunningServer(MODEL_REPOSITORY, ["--http-idle-timeout-secs", "1", "--grpc-idle-timeout-secs", "1"],
                           log_path=log).wait_live()
    yield server
    server.stop()


def closed_by_server_within(sock, seconds):
    """Seconds until the server closed the connection (recv returns b"" or resets), None if it stayed open."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return time.monotonic() - start
    except ConnectionResetError:
        return time.monotonic() - start
    except socket.timeout:
        return None


def test_trickled_http_headers_are_cut_off(short_timeouts):
    with socket.create_connection(("127.0.0.1", short_timeouts.http_port)) as sock:
        sock.sendall(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        assert closed_by_server_within(sock, 10) is not None


def test_trickled_http_body_is_cut_off(short_timeouts):
    with socket.create_connection(("127.0.0.1", short_timeouts.http_port)) as sock:
        sock.sendall(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inp")
        assert closed_by_server_within(sock, 10) is not None


def test_idle_keepalive_http_connection_is_closed(short_timeouts):
    with socket.create_connection(("127.0.0.1", short_timeouts.http_port)) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert closed_by_server_within(sock, 10) is not None


def test_busy_http_connection_stays_open(short_timeouts):
    """A client that keeps sending requests is never cut off, only an idle one."""
    with socket.create_connection(("127.0.0.1", short_timeouts.http_port)) as sock:
        sock.settimeout(5)
        for _ in range(6):
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(0.4)


@pytest.mark.parametrize("opening", [b"", b"PRI * HTTP/2.0\r\n"], ids=["nothing", "half-preface"])
def test_grpc_connection_that_never_starts_is_closed(short_timeouts, opening):
    with socket.create_connection(("127.0.0.1", short_timeouts.grpc_port)) as sock:
        sock.sendall(opening)
        assert closed_by_server_within(sock, 10) is not None


def test_grpc_client_reconnects_after_idle_close(short_timeouts):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{short_timeouts.grpc_port}")
    try:
        t0 = grpcclient.InferInput("INPUT0", [1, 16], "INT32")
        t0.set_data_from_numpy(np.ones((1, 16), np.int32))
        t1 = grpcclient.InferInput("INPUT1", [1, 16], "INT32")
        t1.set_data_from_numpy(np.ones((1, 16), np.int32))
        assert (client.infer("simple", [t0, t1]).as_numpy("OUTPUT0") == 2).all()
        time.sleep(2.5)  # the server sends GOAWAY and closes the idle connection
        assert (client.infer("simple", [t0, t1]).as_numpy("OUTPUT0") == 2).all()
    finally:
        client.close()
