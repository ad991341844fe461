# The two commands of the README's quick start. Both set up .venv first (scripts/setup.sh
# picks the CPU build of torch where there is no GPU), so they work on a fresh clone.
CONFIG ?= configs/default.yaml
export HF_HUB_OFFLINE := 1

.PHONY: setup run test lint

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/benrl run --config $(CONFIG)

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports
