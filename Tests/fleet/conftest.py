"""Prints the fleet test's figures (FLEET_REPORT) in pytest's terminal summary, before its closing line."""
from __future__ import annotations

import os
import pathlib


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = os.environ.get("FLEET_REPORT")
    if path and pathlib.Path(path).exists():
        terminalreporter.write_sep("-", f"fleet report ({path})")
        terminalreporter.write(pathlib.Path(path).read_text())
