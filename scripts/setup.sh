#!/usr/bin/env bash
# Set up a development/run environment in ./.venv: the CPU build of torch 2.13.0, then
# c3llm (editable) with its test extras. Re-running it is safe and fast.
#
# torch is pinned here, not left to the resolver: an unpinned torch pulls a multi-GB CUDA
# build. Off this project's machines, point pip at the CPU wheels, e.g.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"
else
    "${PIP[@]}" "torch==${TORCH_VERSION}"
fi
"${PIP[@]}" -e ".[dev]"
.venv/bin/python -c "import torch, c3llm; print('c3llm', c3llm.__version__, '| torch', torch.__version__)"
