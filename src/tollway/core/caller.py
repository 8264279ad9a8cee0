"""Who is calling, as every floor above the keys sees it: the operator, or a key of an account.

`Caller` is what authentication (core/access/keys.py) answers and what the pipeline, the limits gate,
the content policy and the jobs read; `KeyLimit` is the key's consumption limit the ledger holds
against. Kept apart from the key-minting code so that reading a caller never imports SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class KeyLimit:
    """A key's consumption limit: a second reservation, against the key, in its UTC period."""

    key_id: str
    limit_nano: int
    period: str  # day | week | month | total


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the operator, or a key of an account."""

    scope: str  # operator | admin | inference
    key_id: str | None = None
    account_id: str | None = None
    label: str | None = None
    content_tier: str = "sfw"
    age_verified: bool = False
    key_limit: KeyLimit | None = None
    rate_limits: dict[str, int] | None = None
    expires_at: datetime | None = None
    plan: str = "standard"  # the account's plan: default rate limits (core/limits/gate.py)
    model_privacy: str = (
        "ALL"  # ALL | PRIVATE_TEXT | PRIVATE_ONLY: the models it may call (core/catalog/privacy.py)
    )

    @property
    def is_operator(self) -> bool:
        return self.scope == "operator"
