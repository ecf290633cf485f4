# spikeloop: `make test` and `make demo` set themselves up (virtual environment, installs).
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
BUILD   := build
XDIST   ?= -n 2

.PHONY: all test demo bench lint clean venv verilog

all: test

venv: $(STAMP)

# Re-install only when the project's declared dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(XDIST) tests

demo: $(STAMP)
	$(VENV)/bin/spikeloop demo --out $(BUILD)/demo

# Verilog of the default core (or CONFIG="--sizes 784,256,10 --lanes 16 --chunk 64") under build/verilog.
CONFIG ?= --sizes 784,256,128,10 --lanes 16 --chunk 64
verilog: $(STAMP)
	$(PY) -m spikeloop.rtl.verilog $(CONFIG) --out $(BUILD)/verilog

bench: $(STAMP)
	$(PY) bench/bench_golden.py

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(BUILD)
