# The two commands: `make demo` (the whole pipeline on the embedded synthetic
# dataset) and `make test` (the test suite). Both create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench clean-demo

$(STAMP): requirements.txt utils/fastparse.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m utils.fastparse --build
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) run_pipeline.py --config configs/demo.yaml

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/run_all.py

clean-demo:
	rm -rf output/demo data/mcs_synthetic
