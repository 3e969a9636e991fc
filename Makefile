# ctharmony: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch, installed before the package so its range is already satisfied.
TORCH_CPU ?= torch==2.13.0

.PHONY: setup test lint demo reproduce benchmark bench clean

setup: $(STAMP)

# pip's own output goes to $(SETUP_LOG) (shown only when a step fails).
SETUP_LOG := $(VENV)/setup.log
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (torch CPU, ctharmony and its dev tools; log: $(SETUP_LOG))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@( $(PIP) --upgrade pip && $(PIP) $(TORCH_CPU) && $(PIP) -e '.[dev]' ) >$(SETUP_LOG) 2>&1 \
		|| { tail -n 40 $(SETUP_LOG); echo "setup failed: see $(SETUP_LOG)"; exit 1; }
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check platform tests jobs bench

# The suite, then every docstring example of the package (none is marked SKIP: see test_help_examples.py).
# Headless Chromium (Debian's package) renders the HTML report in tests/evaluate/test_evaluate_browser.py.
test: setup lint
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)
	PYTHONUTF8=1 $(VENV)/bin/pytest -q
	PYTHONUTF8=1 $(VENV)/bin/pytest -q --doctest-modules platform/ctharmony

demo: setup
	@$(VENV)/bin/ctharmony demo

# The paper-sized test cohort: 43 test exams (and 16 training patients), same pipeline as the demo.
reproduce: setup
	$(VENV)/bin/ctharmony demo --out reproduce-out --train-patients 16 --test-patients 43

# Where the GAN beats a linear map (docs/benchmark.md): simulated sites, real anatomy (every real case REAL_CT has),
# an unseen site; 3 training seeds, figures with 95 % CIs. SEEDS=1 for a quick look.
REAL_CT ?= data/real
REAL_CASES ?= siemens-abdomen-ct ts-example-ct dcmqi-ct-3slice
REAL_ARGS = $(foreach c,$(REAL_CASES),$(if $(wildcard $(REAL_CT)/$(c)),--real-series $(REAL_CT)/$(c) \
	--real-mask $(REAL_CT)/$(c)-liver.nii.gz))
SEEDS ?= 3
# REAL_TRAINING=1: also the real-anatomy recipe (leave one real patient out; per seed 1 + (cases + 1) trainings)
REAL_TRAINING ?=
benchmark: setup
	$(VENV)/bin/ctharmony benchmark --out benchmark-out --seeds $(SEEDS) $(REAL_ARGS) $(if $(REAL_TRAINING),--real-training)

bench: setup
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info platform/*.egg-info .pytest_cache
