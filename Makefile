# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := data/synthetic

.PHONY: test demo install clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# Generates the synthetic dataset once (test.csv is written last, so its presence means the set is complete),
# then trains and tests the tiny MViT on it.
demo: $(STAMP)
	test -f $(DATA)/test.csv || $(PY) tools/make_synthetic_dataset.py --out $(DATA)
	$(PY) tools/run_net.py --cfg configs/synthetic/MVIT_TINY.yaml

clean:
	rm -rf $(VENV) build *.egg-info
