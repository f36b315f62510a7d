#!/usr/bin/env bash
# De-identification benchmark in one command: creates bench/deid/.venv, installs
# requirements.txt, makes the corpus, optionally starts BatchServer, and runs
# evaluate.py.  Extra arguments go to evaluate.py.
#
# Environment:
#   NOTES=2000              corpus size (notes)
#   SEED=20240314           corpus seed
#   CONTENDERS=...          default: presidio,scrubadub (+ batchserver when a server is given)
#   BATCH_SERVER_BIN=path   start this server binary here (from the repository root) and bench it
#   BATCH_SERVER_ARGS=...   extra server flags (e.g. "--deidentifier-model phi_deidentifier")
#   BATCH_SERVER_URL=url    bench an already running server instead (default http://127.0.0.1:$HTTP_PORT)
#   HTTP_PORT=8000 GRPC_PORT=8001 METRICS_PORT=8002
#
# For figures worth keeping, hold the build lock so that no Swift build shares the cores:
#   flock /tmp/swift-build.lock bench/deid/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
NOTES="${NOTES:-2000}"
SEED="${SEED:-20240314}"
HTTP_PORT="${HTTP_PORT:-8000}"
GRPC_PORT="${GRPC_PORT:-8001}"
METRICS_PORT="${METRICS_PORT:-8002}"

if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
  echo "$want" > "$stamp"
fi
py="$venv/bin/python"

mkdir -p "$here/data"
corpus="$here/data/corpus-${NOTES}-${SEED}.jsonl"
"$py" "$here/make_corpus.py" --notes "$NOTES" --seed "$SEED" --out "$corpus"

contenders="${CONTENDERS:-presidio,scrubadub}"
url="${BATCH_SERVER_URL:-http://127.0.0.1:${HTTP_PORT}}"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if [ -n "${BATCH_SERVER_BIN:-}" ]; then
  log="$here/data/server.log"
  echo "starting $BATCH_SERVER_BIN (log: $log)" >&2
  # shellcheck disable=SC2086  # BATCH_SERVER_ARGS is a list of flags
  (cd "$root" && exec "$BATCH_SERVER_BIN" --model-repository model_repository \
      --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" --metrics-port "$METRICS_PORT" \
      ${BATCH_SERVER_ARGS:-}) >"$log" 2>&1 &
  server_pid=$!
  "$py" - "$url" "$server_pid" <<'PY'
import os, sys, time, urllib.request
url, pid = sys.argv[1].rstrip("/") + "/v2/health/ready", int(sys.argv[2])
deadline = time.time() + 300
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("server exited before becoming ready; see bench/deid/data/server.log")
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.5)
sys.exit(f"server not ready at {url} after 300 s")
PY
fi
if [ -n "${BATCH_SERVER_BIN:-}${BATCH_SERVER_URL:-}" ] && [ -z "${CONTENDERS:-}" ]; then
  contenders="batchserver,$contenders"
fi

"$py" "$here/evaluate.py" --corpus "$corpus" --contenders "$contenders" --url "$url" "$@"
