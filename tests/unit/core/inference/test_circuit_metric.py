"""A route's circuit breaker opening is counted, per provider (tollway_upstream_cooldowns_total):
what the dashboard's cooldown panel and the "upstream down" alert read."""

from __future__ import annotations

from tollway.core.inference.router import Circuit, RetryPolicy
from tollway.telemetry import metrics


def _opened(provider: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value("tollway_upstream_cooldowns_total", {"provider": provider}) or 0.0
    )


def test_opening_and_reopening_after_a_failed_probe_are_counted_once_each() -> None:
    policy = RetryPolicy(failure_threshold=2, cooldown_seconds=10)
    circuit, before = Circuit(), _opened("unit-breaker")
    circuit.failed(0, policy, "unit-breaker")
    assert _opened("unit-breaker") == before  # below the threshold: still closed
    circuit.failed(1, policy, "unit-breaker")
    circuit.failed(2, policy, "unit-breaker")  # more failures while open: not a new opening
    assert _opened("unit-breaker") == before + 1
    assert circuit.admit(20)  # the cooldown is over: this call is the probe
    circuit.failed(20, policy, "unit-breaker")
    assert _opened("unit-breaker") == before + 2
    circuit.succeeded()
    assert circuit.open_until is None
