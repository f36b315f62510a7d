#!/usr/bin/env bash
# The serving benchmark in one command: installs its environment (bench/.venv,
# perf_analyzer) and runs bench/serving/run.py with the given options.
# For figures worth keeping, build the server in release first and hold the
# build lock so that no build shares the two cores:
#   swift build -c release --product batch-server
#   flock /tmp/swift-build.lock bench/serving/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python="$(bench/tools/install-baseline.sh | tail -n 1)"
exec "$python" bench/serving/run.py "$@"
