# Every target sets up .venv first (when missing or stale), so a fresh machine needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every optional part is installed for the demo and the tests, so nothing in them skips.
EXTRAS ?= dev,ja,speech,triton,ray,onnx,tensorboard,playground,lightning,hf

.PHONY: demo test test-quick lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/leaky demo --out out/demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest

test-quick: $(STAMP)
	$(BIN)/pytest -m "not slow" -x -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/leaky bench --json out/bench.json

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
