#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), builds in release mode and serves
# model_repository/ on the default ports: HTTP 8000 (gRPC 8001 and metrics
# 8002 once those frontends land). Extra arguments go to batch-server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release
# The onnxruntime backend's library: the onnxruntime wheel's, in .venv.
library="$(scripts/install-onnxruntime.sh)"
[ -f "$library" ] && export BATCHSERVER_ONNXRUNTIME_LIBRARY="${BATCHSERVER_ONNXRUNTIME_LIBRARY:-$library}"
exec .build/release/batch-server --model-repository model_repository "$@"
