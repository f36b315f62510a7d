#!/usr/bin/env bash
# Installs what the serving benchmark (bench/serving/run.py) needs, without
# touching the system or the project's .venv:
#   - bench/.venv: PyTorch's CPU build (torch==2.13.0+cpu, published on PyPI;
#     no CUDA libraries), Hugging Face transformers, FastAPI + uvicorn (the
#     seeds' baseline server), numpy and matplotlib (the harness and its plots),
#     pinned in bench/serving/requirements-baseline.txt;
#   - perf_analyzer, through bench/tools/install-perf-analyzer.sh.
# Safe to rerun: does nothing when the pinned set is already installed.
# Prints the virtual environment's python on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=bench/.venv
requirements=bench/serving/requirements-baseline.txt

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/.requirements-installed"; then
  echo "install-baseline: creating $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -r "$requirements" >&2
  # The CPU build must load without any CUDA library and honour 2 threads.
  "$venv/bin/python" -c 'import torch; torch.set_num_threads(2); assert not torch.cuda.is_available(); assert torch.get_num_threads() == 2; print("install-baseline: torch", torch.__version__, "CPU,", torch.get_num_threads(), "threads")' >&2
  cp "$requirements" "$venv/.requirements-installed"
fi

bench/tools/install-perf-analyzer.sh >&2
echo "$PWD/$venv/bin/python"
