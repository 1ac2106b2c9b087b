# `make demo` and `make test` work on a fresh clone: they create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is pinned here (not in pyproject) so the bootstrap takes the local CPU build
# instead of resolving a multi-GB CUDA wheel.
TORCH_PIN := torch==2.13.0

.PHONY: demo test gpu-check install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIN)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The main job: every fusion and the unimodal rows on AV-digits (hard), one seed, the options chosen on
# validation (docs/results/tuning), and a smaller budget than the README's results so it fits in
# ~10 minutes on 2 cores.
DEMO_EPOCHS := 3
demo: install
	@echo "wsfusion demo: $(DEMO_EPOCHS) epochs and 1 seed, a smaller budget than the README's Results (20 epochs, 5 seeds); expect lower accuracies."
	$(VENV)/bin/wsfusion compare --data av-digits --hard --epochs $(DEMO_EPOCHS) --seeds 1 \
		--fusion-options docs/results/tuning/chosen.json --out runs/demo
	@echo "wsfusion demo: done with the reduced budget ($(DEMO_EPOCHS) epochs, 1 seed); the full regime is in README.md, Results."

test: install-test
	$(PY) -m pytest -q

# On a CUDA machine: the device-parametrised tests on cuda and the GPU benchmarks, one summary table.
gpu-check: install-test
	$(PY) benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
