# Two commands do everything on a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup app test lint bench bench-quick clean-venv

# The venv is (re)built whenever it is missing or requirements.txt or pyproject.toml is newer than the
# last install: what the library and the app need (requirements.txt), then the project with its dev
# extra (pyproject.toml: the tests', linter's and benches' tools). The project is installed in editable
# mode, so `import vitrm`, `import app` and `import testkit` work from anywhere (the app, the tests'
# subprocesses, the benchmarks) without touching sys.path.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

app: $(STAMP)
	$(PY) -m streamlit run app/main.py

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(PY) -m ruff check .

# Speed benchmarks (docs/performance.md); each prints its tables.
# About 10 minutes on 2 cores. Not speed, run on their own: python -m bench.hostile_inputs and
# python -m bench.thirty_sessions (docs/reliability.md), python -m bench.comparison and
# python -m bench.independent_evaluation (trained checkpoints).
bench: $(STAMP)
	$(PY) -m bench.trace_latency
	$(PY) -m bench.attribution_latency
	$(PY) -m bench.app_latency
	$(PY) -m bench.load
	$(PY) -m bench.train_throughput
	$(PY) -m bench.recipe_speed

# The same benchmarks at small sizes: checks that each runs, in about 2 minutes.
bench-quick: $(STAMP)
	$(PY) -m bench.trace_latency --quick
	$(PY) -m bench.attribution_latency --quick
	$(PY) -m bench.app_latency --quick
	$(PY) -m bench.load --levels 1 --per-session 2 --no-cached
	$(PY) -m bench.train_throughput --quick

clean-venv:
	rm -rf $(VENV)
