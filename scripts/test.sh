#!/usr/bin/env bash
# Runs every test: the Swift unit tests (swift-testing), then the end-to-end
# tests (pytest) that start the real server on free loopback ports and talk
# to it with tritonclient. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh debug
echo "test: swift test"
swift test
# The parsers under libFuzzer for a bounded time (FUZZ_SECONDS per target; 0 skips).
if [ "${FUZZ_SECONDS:-30}" != 0 ]; then
  echo "test: scripts/fuzz.sh ${FUZZ_SECONDS:-30}"
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
echo "test: pytest Tests/e2e"
BATCH_SERVER_BIN="$PWD/.build/debug/batch-server" .venv/bin/python -m pytest -q Tests/e2e "$@"
