# The two commands of the README:   make demo   and   make test
# Each does its own set-up on a fresh machine: a virtualenv in .venv, the pinned
# packages from PyPI (ziglang brings the clang that compiles the program), the build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# llama-cpp-python has no wheel on PyPI: pip builds it (~5 min on 2 cores, then cached).
# Portable x86-64 flags, as measured in ../shared/design/llama.md.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_LLAMAFILE=OFF

.PHONY: setup build demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

build: setup
	$(BIN)/decentral program build
	$(BIN)/python -m decentral_chain.gateway.model

demo: build
	$(BIN)/decentral demo

test: build
	$(BIN)/ruff check decentral_chain tests bench
	$(BIN)/python -m pytest -q

bench: build
	$(BIN)/python bench/compute_units.py

clean:
	rm -rf target .pytest_cache
