"""Card top-ups are configured all or nothing, and their secrets never print with the settings."""

from __future__ import annotations

import pytest

from tollway.settings import ConfigurationError, Settings


def test_off_by_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert not settings.stripe_enabled
    settings.check_stripe()


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"stripe_secret_key": "sk_test_x"}, "TOLLWAY_STRIPE_WEBHOOK_SECRET, TOLLWAY_STRIPE_SUCCESS_URL"),
        (
            {"stripe_webhook_secret": "whsec_x", "stripe_success_url": "https://t/ok"},
            "TOLLWAY_STRIPE_SECRET_KEY",
        ),
    ],
)
def test_half_a_configuration_names_the_rest(given: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings(**given).check_stripe()  # type: ignore[arg-type]
    assert f"set {missing} too" in str(info.value)
    assert "sk_test_x" not in str(info.value) and "whsec_x" not in str(info.value)


def test_bounds_and_secrets() -> None:
    settings = Settings(
        stripe_secret_key="sk_test_secret",  # type: ignore[arg-type]
        stripe_webhook_secret="whsec_secret",  # type: ignore[arg-type]
        stripe_success_url="https://t/ok",
        stripe_min_usd="50",  # type: ignore[arg-type]
        stripe_max_usd="10",  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigurationError):
        settings.check_stripe()
    assert "sk_test_secret" not in repr(settings) and "whsec_secret" not in repr(settings)
