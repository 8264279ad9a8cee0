"""How often the job runner looks for due jobs that nothing woke it for (core/jobs/runner.py).

A job submitted here wakes the runner at once; a job due again after its poll delay, or put by another
replica, is found only by the next pass. The passes follow `jobs_poll_interval_seconds`, kept between
50 ms (a tiny setting must not spin on the database) and 2 s (a due job never waits longer).
"""

from __future__ import annotations

import pytest

from tollway.core.jobs.runner import pass_interval
from tollway.settings import Settings


@pytest.mark.parametrize(
    ("poll_seconds", "expected"),
    [(0.001, 0.05), (0.05, 0.05), (0.1, 0.1), (1.5, 1.5), (2.0, 2.0), (2.5, 2.0), (30.0, 2.0)],
)
def test_the_runner_passes_at_the_poll_interval_kept_between_50_ms_and_2_s(
    poll_seconds: float, expected: float
) -> None:
    assert pass_interval(Settings(jobs_poll_interval_seconds=poll_seconds)) == pytest.approx(expected)
