#!/usr/bin/env bash
# Installs the embedding benchmark's peers (bench/embeddings/run.py) into
# bench/.venv-embeddings without touching the system or the project's .venv:
# infinity-emb 0.0.78 and sentence-transformers (with FastAPI and uvicorn,
# which infinity's server extra brings) on PyTorch's CPU build. Safe to
# rerun. Prints the environment's python on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=bench/.venv-embeddings
requirements=bench/embeddings/requirements-peers.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/.requirements-installed"; then
  echo "install-embedding-peers: creating $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -r "$requirements" >&2
  "$venv/bin/python" -c 'import torch, infinity_emb, sentence_transformers, fastapi; assert not torch.cuda.is_available(); print("install-embedding-peers: torch", torch.__version__, "infinity", infinity_emb.__version__, "sentence-transformers", sentence_transformers.__version__)' >&2
  cp "$requirements" "$venv/.requirements-installed"
fi
echo "$PWD/$venv/bin/python"
