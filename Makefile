# Everything a newcomer needs: `make demo` and `make test` set up .venv by themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test check lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@echo "compiling the mentions index kernels (once, about 20 s)"
	$(BIN)/python -c "from hubbub.mentions.store import warm_up; warm_up()"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hubbub --data-dir data/demo demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

check: lint test

bench: $(STAMP)
	$(BIN)/hubbub bench ingest --json
	$(BIN)/hubbub bench ingest --log jetstream --json
	$(BIN)/hubbub bench mentions --pages 1000000 --json
	$(BIN)/hubbub bench reports --json

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
