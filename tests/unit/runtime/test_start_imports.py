"""What a process loads to start: heavy libraries that only some requests need are loaded by those
requests (mcp_server/http.py, core/funding/deposit_addresses.py), so `tollway serve` and every CLI
command start without them. Each check runs in a fresh interpreter: this one has loaded everything."""

from __future__ import annotations

import subprocess
import sys

import pytest

DEFERRED = ("mcp", "eth_utils", "cytoolz", "bip32", "coincurve")


@pytest.mark.parametrize("module", ["tollway.runtime.app", "tollway.cli"])
def test_starting_does_not_load_the_libraries_only_some_requests_need(module: str) -> None:
    probe = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "sqlalchemy" in loaded  # the probe did import the module
    assert loaded.isdisjoint(DEFERRED), sorted(loaded.intersection(DEFERRED))
