#!/usr/bin/env bash
# Runs every test: the Swift unit tests (swift-testing), then the end-to-end
# tests (pytest) that start the real server on free loopback ports and talk
# to it with tritonclient. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh debug
echo "test: swift test"
swift test
echo "test: pytest Tests/e2e"
BATCH_SERVER_BIN="$PWD/.build/debug/batch-server" .venv/bin/python -m pytest -q Tests/e2e "$@"
