#!/usr/bin/env bash
# Installs what BatchServer needs to build, serve and test on a Debian machine
# with the Swift toolchain: Debian packages, a Python virtual environment
# (.venv) with the test clients, and the Swift build. Safe to rerun.
#   scripts/setup.sh            debug build (tests)
#   scripts/setup.sh release    release build (serving)
set -euo pipefail
cd "$(dirname "$0")/.."
configuration="${1:-debug}"

need_apt=()
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
# oneDNN, the CPU matrix-product library of the encoder backend.
[ -f /usr/include/oneapi/dnnl/dnnl.h ] || need_apt+=(libdnnl-dev)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)   # the TLS tests make their certificates
# The de-identifier's safe list of common English words.
[ -f /usr/share/dict/american-english ] || need_apt+=(wamerican)
# The response cache tests start a real Redis server (and read it with redis-cli).
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || need_apt+=(redis-server redis-tools)
# protoc: the TEI gRPC test generates its Python client from Protos/tei/tei.proto.
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
# PySpark (the Spark job tests) runs on a Java runtime: Spark 4 needs 17 or later.
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if [ ! -x .venv/bin/python ] || ! cmp -s requirements-test.txt .venv/.requirements-installed; then
  echo "setup: creating the Python virtual environment in .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-test.txt
  cp requirements-test.txt .venv/.requirements-installed
fi
# The Spark and Ray helpers, editable: the engines' workers import them from .venv.
.venv/bin/python -c 'import batchserver_client' 2>/dev/null || .venv/bin/pip install -q -e ./clients/python

echo "setup: ONNX Runtime (C API header for the build, the wheel's library at run time): $(scripts/install-onnxruntime.sh)"

echo "setup: helm for the chart's offline checks: $(scripts/helm-tools.sh)"

echo "setup: encoder model files in model_repository/"
.venv/bin/python scripts/make_models.py

echo "setup: swift build -c $configuration"
swift build -c "$configuration" --product batch-server
