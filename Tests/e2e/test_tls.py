"""TLS and mutual TLS on HTTP and gRPC, with certificates made in the test,
through tritonclient's ssl options; plain-text clients fail cleanly."""

import socket
import ssl
import subprocess

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


def tls_args(certs, mutual):
    args = []
    for proto in ("grpc", "http"):
        args += [f"--{proto}-use-ssl", "true", f"--{proto}-server-cert", str(certs / "server.pem"),
                 f"--{proto}-server-key", str(certs / "server.key")]
        if mutual:
            args += [f"--{proto}-use-ssl-mutual", "true", f"--{proto}-root-cert", str(certs / "ca.pem")]
    return args


def inputs(module):
    tensors = []
    for name in ("INPUT0", "INPUT1"):
        t = module.InferInput(name, [1, 16], "INT32")
        t.set_data_from_numpy(np.ones((1, 16), np.int32))
        tensors.append(t)
    return tensors


def start_tls(certs, mutual):
    """Starts a server with TLS and waits until it answers over TLS."""
    from conftest import MODEL_REPOSITORY, RunningServer
    import time
    server = RunningServer(MODEL_REPOSITORY, tls_args(certs, mutual), log_path=certs / f"server-{mutual}.log")
    cert = (str(certs / "client.pem"), str(certs / "client.key")) if mutual else None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"https://127.0.0.1:{server.http_port}/v2/health/live", verify=str(certs / "ca.pem"),
                            cert=cert, timeout=1).status_code == 200:
                return server
        except requests.exceptions.RequestException:
            time.sleep(0.1)
    server.stop()
    raise TimeoutError(server.read_log())


def test_tls_on_both_protocols(certs):
    server = start_tls(certs, mutual=False)
    try:
        g = grpcclient.InferenceServerClient(f"localhost:{server.grpc_port}", ssl=True,
                                             root_certificates=str(certs / "ca.pem"))
        assert (g.infer("simple", inputs(grpcclient)).as_numpy("OUTPUT0") == 2).all()
        g.close()
        h = httpclient.InferenceServerClient(f"localhost:{server.http_port}", ssl=True,
                                             ssl_options={"ca_certs": str(certs / "ca.pem")})
        assert (h.infer("simple", inputs(httpclient)).as_numpy("OUTPUT0") == 2).all()
        h.close()
        # Plain text against the TLS ports fails cleanly, and the server keeps serving.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{server.http_port}/v2/health/live", timeout=5)
        plain = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        with pytest.raises(InferenceServerException):
            plain.is_server_live(client_timeout=5)
        plain.close()
        assert requests.get(f"https://127.0.0.1:{server.http_port}/v2/health/live", verify=str(certs / "ca.pem"),
                            timeout=5).status_code == 200
        # TLS 1.1 is refused.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.maximum_version = ssl.TLSVersion.TLSv1_1  # noqa: deprecated on purpose: the server must refuse it
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):
                context.wrap_socket(raw)
    finally:
        server.stop()


def test_mutual_tls(certs):
    server = start_tls(certs, mutual=True)
    try:
        g = grpcclient.InferenceServerClient(f"localhost:{server.grpc_port}", ssl=True,
                                             root_certificates=str(certs / "ca.pem"),
                                             private_key=str(certs / "client.key"),
                                             certificate_chain=str(certs / "client.pem"))
        assert (g.infer("simple", inputs(grpcclient)).as_numpy("OUTPUT0") == 2).all()
        g.close()
        h = httpclient.InferenceServerClient(f"localhost:{server.http_port}", ssl=True,
                                             ssl_options={"ca_certs": str(certs / "ca.pem"),
                                                          "certfile": str(certs / "client.pem"),
                                                          "keyfile": str(certs / "client.key")})
        assert (h.infer("simple", inputs(httpclient)).as_numpy("OUTPUT0") == 2).all()
        h.close()
        # Without a client certificate the handshake is refused.
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(f"https://127.0.0.1:{server.http_port}/v2/health/live", verify=str(certs / "ca.pem"), timeout=5)
        anonymous = grpcclient.InferenceServerClient(f"localhost:{server.grpc_port}", ssl=True,
                                                     root_certificates=str(certs / "ca.pem"))
        with pytest.raises(InferenceServerException):
            anonymous.is_server_live(client_timeout=5)
        anonymous.close()
    finally:
        server.stop()


def test_metrics_over_tls(certs):
    """The metrics port can have its own TLS (mutual here: only scrapers holding a client certificate)."""
    from conftest import MODEL_REPOSITORY, RunningServer
    server = RunningServer(MODEL_REPOSITORY, [
        "--metrics-use-ssl", "true", "--metrics-server-cert", str(certs / "server.pem"),
        "--metrics-server-key", str(certs / "server.key"),
        "--metrics-use-ssl-mutual", "true", "--metrics-root-cert", str(certs / "ca.pem"),
    ], log_path=certs / "server-metrics.log")
    try:
        server.wait_live()
        url = f"https://127.0.0.1:{server.metrics_port}/metrics"
        scrape = requests.get(url, verify=str(certs / "ca.pem"), timeout=5,
                              cert=(str(certs / "client.pem"), str(certs / "client.key")))
        assert scrape.status_code == 200 and "nv_inference_count" in scrape.text
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(url, verify=str(certs / "ca.pem"), timeout=5)  # no client certificate
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5)
        assert requests.get(f"{server.base}/v2/health/live", timeout=5).status_code == 200
    finally:
        server.stop()


def test_metrics_tls_needs_certificate_files(tmp_path):
    from conftest import BINARY, MODEL_REPOSITORY
    result = subprocess.run([BINARY, "--model-repository", str(MODEL_REPOSITORY), "--metrics-use-ssl", "true"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--metrics-use-ssl needs --metrics-server-cert and --metrics-server-key" in result.stderr
