# Two commands: `make demo` (set up + run the demo on embedded data) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# Two worker processes (pytest-xdist), one per core; a test file stays in one worker, so its
# module-scoped fixtures run once. PYTEST_WORKERS=0 runs in this process. The 15 slowest tests
# are listed at the end.
PYTEST_WORKERS ?= 2

.PHONY: demo test venv lint bench clean

venv: $(STAMP)

# Re-installs only when the pinned requirements or the package metadata change.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m demo_report --workdir=runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
