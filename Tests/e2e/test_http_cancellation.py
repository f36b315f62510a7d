"""A client that closes its HTTP connection has its queued requests dropped
before compute, counted CANCELED, as gRPC cancellation already does."""

import json
import socket
import threading
import time

import requests

from test_batching import write_model

BODY = json.dumps({"inputs": [{"name": n, "shape": [1, 16], "datatype": "INT32", "data": [1] * 16}
                              for n in ("INPUT0", "INPUT1")]}).encode()


def send_and_keep_open(port):
    """Sends one infer request on its own connection and returns the socket unread."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
    return sock


def canceled_count(server):
    text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("nv_inference_request_failure{") and 'model="slow"' in line and 'reason="CANCELED"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def slow_server(start_server, tmp_path, delay_ms):
    """A server whose model `slow` takes `delay_ms` per execution, one request each."""
    repo = tmp_path / "repo"
    repo.mkdir()
    write_model(repo, "slow", f'parameters {{ key: "execute_delay_ms" value: {{ string_value: "{delay_ms}" }} }}\n'
                "dynamic_batching { preferred_batch_size: [ 1 ] }")
    return start_server(repo)


def test_closed_connections_drop_their_queued_requests(start_server, tmp_path):
    server = slow_server(start_server, tmp_path, 1500)
    # One request computes for 1.5 s; sixteen queue behind it.
    first = {}
    blocker = threading.Thread(target=lambda: first.update(
        response=requests.post(f"{server.base}/v2/models/slow/infer", data=BODY, timeout=30)))
    blocker.start()
    time.sleep(0.2)
    sockets = [send_and_keep_open(server.http_port) for _ in range(16)]
    time.sleep(0.3)
    for sock in sockets:
        sock.close()
    blocker.join()
    assert first["response"].status_code == 200
    deadline = time.monotonic() + 10
    while canceled_count(server) < 12 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert canceled_count(server) >= 12
    stats = requests.get(f"{server.base}/v2/models/slow/stats", timeout=5).json()["model_stats"][0]
    assert stats["execution_count"] <= 1 + 16 - 12
    # The server goes on serving.
    assert requests.get(f"{server.base}/v2/health/ready", timeout=5).status_code == 200
    again = requests.post(f"{server.base}/v2/models/slow/infer", data=BODY, timeout=30)
    assert again.status_code == 200 and again.json()["outputs"][0]["data"] == [2] * 16


def test_a_client_that_waits_gets_its_answer(start_server, tmp_path):
    """The close watcher does not cancel requests whose client is still there."""
    server = slow_server(start_server, tmp_path, 100)
    with requests.Session() as session:    # one kept-alive connection, several requests
        for _ in range(3):
            response = session.post(f"{server.base}/v2/models/slow/infer", data=BODY, timeout=30)
            assert response.status_code == 200
    assert canceled_count(server) == 0
