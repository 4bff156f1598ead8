# The two commands of the README:   make demo   and   make test
# Each does its own set-up on a fresh machine: a virtualenv in .venv, the locked packages
# from PyPI (requirements.lock, every file hash-checked; ziglang brings the clang that
# compiles the program), the build. `make lock` re-resolves pyproject.toml's ranges.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The second environment: the core on current solana-py / solders (requirements-current.lock)
CURRENT ?= .venv-current
CURRENT_STAMP := $(CURRENT)/.installed-stamp
CORE_TESTS := tests/test_codecs.py tests/test_client.py tests/test_verify.py tests/test_verify_forged.py \
	tests/test_cli_audit.py
# llama-cpp-python has no wheel on PyPI: pip builds it (~5 min on 2 cores, then cached).
# Portable x86-64 flags, as measured in ../shared/design/llama.md.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_LLAMAFILE=OFF

.PHONY: setup build demo test test-current bench clean lock

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

$(CURRENT_STAMP): pyproject.toml requirements-current.lock
	$(PYTHON) -m venv $(CURRENT)
	$(CURRENT)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements-current.lock
	$(CURRENT)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(CURRENT_STAMP)

build: setup
	$(BIN)/decentral program build
	$(BIN)/python -m decentral_chain.gateway.model
	$(BIN)/python -m decentral_chain.gateway.embedding_model

demo: build
	$(BIN)/decentral demo

test: build test-current
	$(BIN)/ruff check decentral_chain tests bench
	$(BIN)/ruff format --check decentral_chain tests bench
	$(BIN)/python -m pytest -q

# The core tests again on current solana-py 0.41 / solders 0.29 (part of `make test`)
test-current: build $(CURRENT_STAMP)
	$(CURRENT)/bin/python -m pytest -q -p no:cacheprovider $(CORE_TESTS)

bench: build
	$(BIN)/python bench/compute_units.py

clean:
	rm -rf target .pytest_cache dist build

# Re-resolve the ranges of pyproject.toml (all extras) into requirements.lock, and the second
# environment (tests/current.in) into requirements-current.lock, with hashes, keeping every
# version a lock already has where the ranges allow it.
lock:
	$(PYTHON) -m venv target/lock-venv
	target/lock-venv/bin/pip install --quiet pip-tools==7.6.2
	grep -E '^[a-z0-9_.-]+==' requirements.lock | sed 's/ .*//' > target/lock-constraints.txt
	target/lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra dev \
		--no-emit-index-url --no-emit-find-links --annotation-style=line \
		-c target/lock-constraints.txt --output-file requirements.lock pyproject.toml
	touch requirements-current.lock
	grep -E '^[a-z0-9_.-]+==' requirements-current.lock | sed 's/ .*//' > target/lock-current-constraints.txt
	target/lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra localnet \
		--extra build --no-emit-index-url --no-emit-find-links --annotation-style=line \
		-c target/lock-current-constraints.txt --output-file requirements-current.lock pyproject.toml tests/current.in
	sed -i -e '/^# WARNING: pip install will require/d' -e '/^# Consider using a hashable URL/d' \
		-e '/^decentral-chain @ /d' -e 's/ --constraint=[^ ]*//' -e 's/-c target\/lock[a-z-]*-constraints.txt, //' \
		-e 's/, -c target\/lock[a-z-]*-constraints.txt//' -e 's/  # via -c target\/lock[a-z-]*-constraints.txt$$//' \
		requirements.lock requirements-current.lock
