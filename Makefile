# Two commands do everything on a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup app test bench bench-quick clean-venv

# The venv is (re)built whenever it is missing or requirements.txt is newer than the last install.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

app: $(STAMP)
	$(PY) -m streamlit run app/main.py

test: $(STAMP)
	$(PY) -m pytest -q tests

# Speed benchmarks (README.md, "Performance" and "Many users at once"); each prints its tables.
# About 10 minutes on 2 cores. Not speed, run on their own: bench/hostile_inputs.py (README,
# "Reliability"), bench/comparison.py and bench/independent_evaluation.py (trained checkpoints).
bench: $(STAMP)
	$(PY) bench/trace_latency.py
	$(PY) bench/attribution_latency.py
	$(PY) bench/app_latency.py
	$(PY) bench/load.py
	$(PY) bench/train_throughput.py
	$(PY) bench/recipe_speed.py

# The same benchmarks at small sizes: checks that each runs, in about 2 minutes.
bench-quick: $(STAMP)
	$(PY) bench/trace_latency.py --quick
	$(PY) bench/attribution_latency.py --quick
	$(PY) bench/app_latency.py --quick
	$(PY) bench/load.py --levels 1 --per-session 2 --no-cached
	$(PY) bench/train_throughput.py --quick

clean-venv:
	rm -rf $(VENV)
