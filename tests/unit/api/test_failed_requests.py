"""The failed-request middleware's memory of suspects: credentials this process saw fail or blocked,
checked before their calls; bounded, and forgotten a window later (api/middleware.py)."""

from __future__ import annotations

import time

import pytest

from tollway.api import middleware
from tollway.api.middleware import FailedRequests


def test_a_suspect_is_remembered_for_the_window_then_forgotten() -> None:
    failed = FailedRequests(app=None)  # type: ignore[arg-type]
    assert not failed._suspected("a")
    failed._suspect("a")
    assert failed._suspected("a")
    failed._suspects["a"] = time.monotonic() - 0.001  # its window has passed
    assert not failed._suspected("a")
    assert "a" not in failed._suspects


def test_the_memory_is_bounded_and_forgets_the_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(middleware, "SUSPECTS_MAX", 3)
    failed = FailedRequests(app=None)  # type: ignore[arg-type]
    for subject in "abc":
        failed._suspect(subject)
    failed._suspect("a")  # seen again: the newest now
    failed._suspect("d")
    assert list(failed._suspects) == ["c", "a", "d"]
