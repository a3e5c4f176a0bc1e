# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := data/synthetic

.PHONY: test demo shuffle-demo install clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# Generates the synthetic dataset unless data/synthetic/dataset.json says it is complete and made by this generator
# version (an older set is regenerated), then trains and tests the tiny MViT on it. OpenMP threads wait passively:
# when the loader's workers take a core, a spinning OpenMP thread burns it waiting for the preempted one (measured on
# 2 cores: 566 CPU-ms per training clip spinning, 103 passive, 101 with one thread).
demo: $(STAMP)
	$(PY) tools/make_synthetic_dataset.py --out $(DATA) --if-stale
	OMP_WAIT_POLICY=PASSIVE $(PY) tools/run_net.py --cfg configs/synthetic/MVIT_TINY.yaml

# The MViT paper's Table 9 on the synthetic dataset: trains the tiny MViT and the tiny ViT on the same budget (resuming
# in output/demo and output/vit_tiny), frame-shuffle probes both and prints them side by side (output/shuffle_demo.json).
# Options of tools/shuffle_demo.py go in ARGS, e.g. make shuffle-demo ARGS="--opts SOLVER.MAX_EPOCH 3".
shuffle-demo: $(STAMP)
	$(PY) tools/make_synthetic_dataset.py --out $(DATA) --if-stale
	$(PY) tools/shuffle_demo.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
