"""Suite-wide set-up.

The suite starts a few hundred Python subprocesses (`tollway serve`, the CLI, the fake upstreams). With
PYTHONDONTWRITEBYTECODE set in the environment each of them compiled Tollway's ~250 modules from source
again: ~0.25 s of CPU per start on the 2-core CI machine. The children may write bytecode
(`__pycache__/` is in .gitignore); the variable is dropped for them only, never for the caller's shell.
"""

from __future__ import annotations

import os

import pytest

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# The longest tests, started first. xdist hands tests to its workers in collection order, and the OpenAPI
# gate alone takes 3–4 minutes on a loaded 2-core machine: started late, it can set the run's end.
LONGEST_FIRST = ("tests/contract/test_openapi.py", "tests/contract/test_venice_conformance.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(
        key=lambda item: not item.nodeid.startswith(LONGEST_FIRST)
    )  # stable: the rest keep their order
