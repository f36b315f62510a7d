"""The Helm chart (helm/batch-server), offline. Each value set renders, lints
and validates against Kubernetes' own schemas (kubernetes-validate --strict;
the ServiceMonitor CRD, which has none there, against its structure here);
broken values fail. Then the rendered Deployment starts the real batch-server:
its flags are accepted, its probes answer 200 on the ports they name, the
Service's ports speak what their names say, and the drain fits the grace period."""

import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import jsonschema
import pytest
import requests
import tritonclient.grpc as grpcclient
import yaml
from kubernetes_validate import utils as kubernetes_validate

from conftest import BINARY, MODEL_REPOSITORY, ROOT, RunningServer, free_port, make_certificates

CHART = ROOT / "helm" / "batch-server"
VALUE_SETS = {"default": [], "gpu": ["values-gpu.yaml"], "cpu": ["values-cpu.yaml"], "tls": ["values-tls.yaml"]}
# The chart's kubeVersion floor and the newest schemas kubernetes-validate bundles.
KUBE_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# Container port names and the flags that set them.
PORT_FLAGS = {"http": "--http-port", "grpc": "--grpc-port", "metrics": "--metrics-port"}

# prometheus-operator's ServiceMonitor, restricted to the fields the chart
# writes; anything else, or a malformed duration, is an error.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
SERVICE_MONITOR = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"], "additionalProperties": False,
                     "properties": {"name": {"type": "string"}, "labels": STRING_MAP, "annotations": STRING_MAP}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"], "properties": {
            "selector": {"type": "object", "additionalProperties": False, "properties": {"matchLabels": STRING_MAP}},
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "matchNames": {"type": "array", "items": {"type": "string"}}, "any": {"type": "boolean"}}},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["port"], "properties": {
                    "port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                    "scheme": {"enum": ["http", "https"]},
                    "tlsConfig": {"type": "object", "additionalProperties": False, "required": ["ca"], "properties": {
                        "serverName": {"type": "string", "minLength": 1},
                        "ca": {"type": "object", "additionalProperties": False, "required": ["secret"], "properties": {
                            "secret": {"type": "object", "additionalProperties": False, "required": ["name", "key"],
                                       "properties": {"name": {"type": "string", "minLength": 1},
                                                      "key": {"type": "string", "minLength": 1}}}}}}},
                    "interval": {"type": "string", "pattern": DURATION},
                    "scrapeTimeout": {"type": "string", "pattern": DURATION},
                    "authorization": {"type": "object", "additionalProperties": False, "properties": {
                        "type": {"type": "string"},
                        "credentials": {"type": "object", "additionalProperties": False, "required": ["name", "key"],
                                        "properties": {"name": {"type": "string", "minLength": 1},
                                                       "key": {"type": "string", "minLength": 1}}}}}}}}}}}}
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR}


def seconds(duration):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", duration))


@pytest.fixture(scope="module")
def helm(tmp_path_factory):
    """Runs the helm that scripts/helm-tools.sh provides, with private state directories."""
    home = tmp_path_factory.mktemp("helm-home")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home),
           **{f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}}
    binary = subprocess.run([ROOT / "scripts" / "helm-tools.sh"], capture_output=True, text=True, check=True).stdout.strip()
    return lambda *args: subprocess.run([binary, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def values_args(files):
    return [arg for name in files for arg in ("-f", CHART / name)]  # an absolute path stays as it is


def render(helm, files=()):
    return helm("template", "bs", CHART, "--namespace", "inference", "--kube-version", KUBE_VERSIONS[0], *values_args(files))


@pytest.fixture(scope="module")
def manifests(helm):
    rendered = {}
    for name, files in VALUE_SETS.items():
        result = render(helm, files)
        assert result.returncode == 0, result.stderr
        rendered[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return rendered


def cluster_service(docs):
    """The ClusterIP Service (beside it, the optional headless one)."""
    return one([doc for doc in docs if doc["kind"] == "Service" and doc["spec"].get("clusterIP") != "None"], "Service")


def one(docs, kind):
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def validate(docs, directory):
    """Every problem with the manifests: Kubernetes kinds through kubernetes-validate
    --strict at each version (which only warns on a kind it has no schema for:
    counted as a failure here, so a misspelt kind or apiVersion cannot pass),
    CRD kinds through their structural schema."""
    problems = []
    core = []
    for doc in docs:
        schema = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
        if schema is None:
            core.append(doc)
            continue
        problems += [f"{doc['kind']} {'.'.join(map(str, e.path))}: {e.message}"
                     for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
        for endpoint in doc.get("spec", {}).get("endpoints", []):
            interval, timeout = endpoint.get("interval"), endpoint.get("scrapeTimeout")
            durations = [d for d in (interval, timeout) if d and re.fullmatch(DURATION, d)]
            if len(durations) == 2 and seconds(timeout) > seconds(interval):
                problems.append(f"{doc['kind']}: scrapeTimeout {timeout} exceeds interval {interval}")
    path = directory / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    versions = [arg for version in KUBE_VERSIONS for arg in ("-k", version)]
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", *versions, str(path)],
                            capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    problems += [line for line in lines if not line.startswith("INFO")]
    passed = sum(line.startswith("INFO") and " passed " in line for line in lines)
    if result.returncode != 0 or passed != len(core) * len(KUBE_VERSIONS):
        problems.append(f"kubernetes-validate: rc {result.returncode}, {passed} of {len(core) * len(KUBE_VERSIONS)} passed"
                        f"{result.stderr}")
    return problems


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_lints(helm, name):
    result = helm("lint", "--strict", "--kube-version", KUBE_VERSIONS[0], CHART, *values_args(VALUE_SETS[name]))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", VALUE_SETS)
def test_manifests_validate_against_kubernetes_schemas(manifests, name, tmp_path):
    docs = manifests[name]
    assert validate(docs, tmp_path) == []
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount"} <= kinds
    assert ("ServiceMonitor" in kinds) == (name in ("gpu", "tls"))


BROKEN_VALUES = {
    # Passes helm lint; only the strict schema sees the misspelt field.
    "misspelt toleration field": ({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "efect": "NoSchedule"}]},
                                  "'efect' was unexpected"),
    "CPU request as a list": ({"resources": {"requests": {"cpu": ["4"]}}}, "resources.requests.cpu"),
    "ServiceMonitor interval in words": ({"serviceMonitor": {"enabled": True, "interval": "15 seconds"}}, "interval"),
}


@pytest.mark.parametrize("case", BROKEN_VALUES)
def test_broken_values_fail_validation(helm, case, tmp_path):
    values, expected = BROKEN_VALUES[case]
    broken = tmp_path / "broken-values.yaml"
    broken.write_text(yaml.safe_dump(values))
    result = render(helm, [broken])
    assert result.returncode == 0, result.stderr
    problems = validate([doc for doc in yaml.safe_load_all(result.stdout) if doc], tmp_path)
    assert any(expected in problem for problem in problems), problems


REFUSED_VALUES = {
    "grace period shorter than the drain": ({"terminationGracePeriodSeconds": 30}, "must exceed preStopSleepSeconds + server.exitTimeoutSecs"),
    "mutual TLS on HTTP": ({"tls": {"secretName": "s", "http": {"enabled": True, "mutual": True}}}, "kubelet's HTTP probes"),
    "TLS without a Secret": ({"tls": {"grpc": {"enabled": True}}}, "need tls.secretName"),
    "metrics TLS scraped without a server name": (
        {"tls": {"secretName": "s", "metrics": {"enabled": True}}, "serviceMonitor": {"enabled": True}}, "needs tls.metrics.serverName"),
    "tokens without a scrape token": ({"auth": {"tokensSecretName": "t"}, "serviceMonitor": {"enabled": True}},
                                      "set serviceMonitor.bearerTokenSecret"),
    "no model repository": ({"modelRepository": {"persistentVolumeClaim": {"claimName": ""}}}, "set persistentVolumeClaim.claimName"),
}


@pytest.mark.parametrize("case", REFUSED_VALUES)
def test_values_that_cannot_work_are_refused(helm, case, tmp_path):
    values, message = REFUSED_VALUES[case]
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = render(helm, [path])
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize("name", VALUE_SETS)
def test_resources_refer_to_each_other(manifests, name):
    docs = manifests[name]
    deployment, service = one(docs, "Deployment"), cluster_service(docs)
    for headless in (doc for doc in docs if doc["kind"] == "Service" and doc["spec"].get("clusterIP") == "None"):
        # The bulk client's per-pod name: ready pods only, the gRPC port only.
        assert headless["metadata"]["name"] == service["metadata"]["name"] + "-headless"
        assert headless["spec"]["selector"] == service["spec"]["selector"]
        assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]
        assert not headless["spec"]["publishNotReadyAddresses"]
    pod = deployment["spec"]["template"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "batch-server")
    pod_labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports) == set(PORT_FLAGS)
    for port in service["spec"]["ports"]:
        assert ports[port["targetPort"]] == port["port"], port
    assert {p["name"]: p.get("appProtocol") for p in service["spec"]["ports"]}["grpc"] == "grpc"
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Pods", "Resource"]
    assert one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for monitor in (doc for doc in docs if doc["kind"] == "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    # One device per pod: replicas are GPUs.
    gpus = container["resources"]["limits"].get("nvidia.com/gpu")
    assert gpus == (1 if name != "cpu" else None)
    assert container["resources"]["requests"] == {k: v for k, v in container["resources"]["limits"].items() if k != "nvidia.com/gpu"}
    # Hardened: non-root, read-only root, no escalation, no capabilities, RuntimeDefault seccomp.
    security = container["securityContext"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] and security["runAsNonRoot"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"] and not security["privileged"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["automountServiceAccountToken"] is False
    for init in pod["spec"].get("initContainers", []):
        assert init["securityContext"] == security


def cpu_count(quantity):
    """What resourceFieldRef limits.cpu with divisor 1 yields: whole CPUs, rounded up."""
    text = str(quantity)
    return math.ceil(int(text[:-1]) / 1000) if text.endswith("m") else math.ceil(float(text))


class ChartServer(RunningServer):
    """RunningServer started with the Deployment's own command line."""

    def __init__(self, argv, env, ports, log_path):
        self.http_port, self.grpc_port, self.metrics_port = (ports[PORT_FLAGS[n]] for n in ("http", "grpc", "metrics"))
        self.log_path = log_path
        self.log = open(log_path, "w+b")
        self.process = subprocess.Popen([BINARY, *argv], stdout=self.log, stderr=subprocess.STDOUT, env=env)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_deployment_runs_the_real_server(manifests, name, tmp_path):
    docs = manifests[name]
    deployment, service = one(docs, "Deployment"), cluster_service(docs)
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "batch-server")
    flags = []
    for arg in container["args"]:
        assert arg.startswith("--") and "=" in arg, f"{arg}: the chart writes each flag as --name=value"
        flags.append(tuple(arg.split("=", 1)))
    value = dict(flags)  # the last occurrence, as the server reads single-valued flags

    # The container ports are the flags' ports.
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port_name, flag in PORT_FLAGS.items():
        assert container_ports[port_name] == int(value[flag]), port_name

    # The pod's files: every mount under a temporary root; Secrets hold what the
    # value set's comments say they hold, the model volume one example model.
    certs = make_certificates(tmp_path)
    metrics_token = "metrics-token-0123456789abcdef"
    tokens = {"tokens": [{"name": "prometheus", "token": metrics_token, "groups": ["metrics"]}]}
    secrets = {  # the Secrets values-tls.yaml names, with the keys it expects
        "batch-server-tls": {key: (certs / file).read_bytes()
                             for key, file in (("tls.crt", "server.pem"), ("tls.key", "server.key"), ("ca.crt", "ca.pem"))},
        "batch-server-tokens": {"tokens.json": json.dumps(tokens).encode(), "metrics-token": metrics_token.encode()},
    }
    root = tmp_path / "pod"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for mount in container["volumeMounts"]:
        target = root / mount["mountPath"].lstrip("/")
        volume = volumes[mount["name"]]
        if "secret" in volume:
            data = secrets[volume["secret"]["secretName"]]
            items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                (target / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                (target / item["path"]).write_bytes(data[item["key"]])
        elif mount["mountPath"] == value["--model-repository"]:
            shutil.copytree(MODEL_REPOSITORY / "simple", target / "simple")
        else:
            target.mkdir(parents=True)

    ports = {flag: free_port() for flag in PORT_FLAGS.values()}
    argv = []
    for flag, text in flags:
        if flag in ports:
            text = str(ports[flag])
        elif flag == "--host":
            text = "127.0.0.1"
        elif text.startswith("/"):
            assert any(text == m or text.startswith(m.rstrip("/") + "/") for m in mounts), f"{flag}={text} is outside every volume"
            text = str(root / text.lstrip("/"))
            assert pathlib.Path(text).exists(), f"{flag}: no such file in the pod: {text}"
        argv.append(f"{flag}={text}")
    env = dict(os.environ)
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif variable["valueFrom"].get("resourceFieldRef", {}).get("resource") == "limits.cpu":
            env[variable["name"]] = str(cpu_count(container["resources"]["limits"]["cpu"]))

    tls_http = value.get("--http-use-ssl") == "true"
    verify = str(certs / "ca.pem") if tls_http else True

    def probe_url(probe):
        get = probe["httpGet"]
        assert get["scheme"] == ("HTTPS" if tls_http else "HTTP")
        port = container_ports[get["port"]]  # a name: the container port of that name
        flag = PORT_FLAGS[get["port"]]
        assert port == int(value[flag])
        return f"{get['scheme'].lower()}://127.0.0.1:{ports[flag]}{get['path']}"

    server = ChartServer(argv, env, ports, tmp_path / "server.log")
    try:
        # Up as the kubelet sees it: the startup probe answers.
        startup = container["startupProbe"]
        deadline = time.monotonic() + min(60, startup["periodSeconds"] * startup["failureThreshold"])
        while True:
            assert server.process.poll() is None, f"batch-server refused the chart's flags:\n{server.read_log()}"
            try:
                if requests.get(probe_url(startup), verify=verify, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the startup probe never answered 200:\n{server.read_log()}"
            time.sleep(0.1)
        for kind, path in (("startupProbe", "/v2/health/live"), ("livenessProbe", "/v2/health/live"),
                           ("readinessProbe", "/v2/health/ready")):
            url = probe_url(container[kind])
            assert url.endswith(path), (kind, url)
            # No token: with authentication on, health stays open for probes.
            assert requests.get(url, verify=verify, timeout=5).status_code == 200, (kind, url, server.read_log())

        # The Service's grpc port speaks gRPC (TLS and client certificate as the value set says).
        options = {}
        if value.get("--grpc-use-ssl") == "true":
            options = {"ssl": True, "root_certificates": str(certs / "ca.pem")}
            if value.get("--grpc-use-ssl-mutual") == "true":
                options |= {"private_key": str(certs / "client.key"), "certificate_chain": str(certs / "client.pem")}
        grpc_port = ports[PORT_FLAGS[next(p["targetPort"] for p in service["spec"]["ports"] if p["name"] == "grpc")]]
        client = grpcclient.InferenceServerClient(f"localhost:{grpc_port}", **options)
        assert client.is_server_live(client_timeout=10)
        client.close()

        # The metrics port answers the ServiceMonitor's scrape, with its token,
        # and carries the counters docs/kubernetes.md's adapter rule reads.
        headers = {}
        scheme, verify = "http", True
        for monitor in (doc for doc in docs if doc["kind"] == "ServiceMonitor"):
            endpoint = monitor["spec"]["endpoints"][0]
            assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
            assert (endpoint["scheme"] == "https") == (value.get("--metrics-use-ssl") == "true")
            if "authorization" in endpoint:
                credentials = endpoint["authorization"]["credentials"]
                headers = {"Authorization": f"Bearer {secrets[credentials['name']][credentials['key']].decode()}"}
            if endpoint["scheme"] == "https":
                # Scrape as Prometheus would: the CA from the Secret, the certificate checked under serverName.
                ca = endpoint["tlsConfig"]["ca"]["secret"]
                (tmp_path / "scrape-ca.pem").write_bytes(secrets[ca["name"]][ca["key"]])
                scheme, verify = "https", str(tmp_path / "scrape-ca.pem")
                assert endpoint["tlsConfig"]["serverName"] == "localhost"
        host = "localhost" if scheme == "https" else "127.0.0.1"
        scrape = requests.get(f"{scheme}://{host}:{ports['--metrics-port']}/metrics", headers=headers, timeout=5, verify=verify)
        assert scrape.status_code == 200
        guide = (ROOT / "docs" / "kubernetes.md").read_text()
        for series in ("nv_inference_queue_duration_us", "nv_inference_request_success"):
            assert re.search(rf'^{series}{{model="simple",version="1"}} ', scrape.text, re.M), series
            assert re.search(rf"\b{series}\{{<<\.LabelMatchers>>}}", guide), f"the adapter rule must read {series}"
    finally:
        # Drain: preStop sleep, then SIGTERM, then at most --exit-timeout-secs,
        # all inside the grace period. The server exits 0 within its timeout.
        exit_timeout = int(value["--exit-timeout-secs"])
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        code = server.stop(timeout=exit_timeout + 5)
    assert pod["terminationGracePeriodSeconds"] > pre_stop + exit_timeout
    assert code == 0, server.read_log()
