"""Shared fixtures; the MicroPython plugin runs every portable test on the unix port as well."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "portable"))

pytest_plugins = ["tests.micropython_plugin"]
