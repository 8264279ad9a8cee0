"""Waiting on a condition instead of sleeping a guessed time: what a timing-robust test does.

A `time.sleep(x)` then an assert holds only while the machine is fast enough; on a loaded 2-core CI
runner the thing waited for can take many times longer. `wait_until` polls, with a deadline that is
for failures only (generous), so a passing test is as fast as the machine allows."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object], what: str, timeout: float = 60.0, interval: float = 0.05
) -> None:
    """Return as soon as `condition()` is truthy; fail saying `what` was awaited after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)
