PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo quiz test bench bench-mlp bench-jacobian fuzz docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,examples]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/train_mlp.py

quiz: $(STAMP)
	$(PY) examples/quiz.py

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-mlp: $(STAMP)
	$(PY) benchmarks/mlp_step.py

bench-jacobian: $(STAMP)
	$(PY) benchmarks/jacobian.py

docs: $(STAMP)
	$(PY) docs/numpy_support.py --write

fuzz: $(STAMP)
	$(PY) tests/fuzz_run.py --programs 10000

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis out
