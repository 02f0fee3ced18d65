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

# Speed benchmarks (figures in README.md, "Performance"); each prints its tables. About 15 minutes.
bench: $(STAMP)
	$(PY) bench/trace_latency.py
	$(PY) bench/attribution_latency.py
	$(PY) bench/app_latency.py
	$(PY) bench/train_throughput.py
	$(PY) bench/recipe_speed.py

# The same benchmarks at small sizes: checks that each runs, in about 2 minutes.
bench-quick: $(STAMP)
	$(PY) bench/trace_latency.py --quick
	$(PY) bench/attribution_latency.py --quick
	$(PY) bench/app_latency.py --quick
	$(PY) bench/train_throughput.py --quick

clean-venv:
	rm -rf $(VENV)
