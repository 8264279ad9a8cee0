"""Event tables (issue 26's usage events, issue 25's low-balance alerts): the outbox every event waits
in until a sink took it, and each account's alert setting. Kept apart from tables.py, on the same
`metadata`. Metadata only: no prompt, answer or secret is ever written here."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from tollway.store.tables import metadata

# The outbox (migration 0012, store/outbox.py, core/events/): one row per (event, sink), inserted in the
# transaction that made the event (a usage row's settlement; an alert's crossing), so an event exists
# exactly when its cause committed. state pending -> sent (or failed, for an alert whose receiver gave
# up); a publisher claims due rows by pushing next_attempt_at forward (a lease) and writing its claim.
event_outbox = Table(
    "event_outbox",
    metadata,
    Column("id", String(120), primary_key=True),  # the event id: stable, the consumer's dedup key
    Column("sink", String(16), primary_key=True),  # nats | webhook | alert
    Column("kind", String(32), nullable=False),  # usage | balance.low
    Column("account_id", String(40), nullable=False),
    Column("payload", Text, nullable=False),  # the event's JSON, exactly as delivered
    Column("state", String(12), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claim", String(40)),
    Column("last_error", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
)
Index("ix_event_outbox_due", event_outbox.c.state, event_outbox.c.next_attempt_at)

# Low-balance alerts (migration 0012, core/events/alerts.py): an account's threshold and webhook URL.
# `armed`: the next crossing below fires (one conditional UPDATE disarms it with the outbox insert);
# re-armed once the balance is back at or above the threshold. The signing secret is never stored:
# it is HMAC(pepper, account, secret_nonce), shown once when the alert is set.
balance_alerts = Table(
    "balance_alerts",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    Column("threshold_nano", BigInteger, nullable=False),
    Column("url", String(2048), nullable=False),
    Column("secret_nonce", String(40), nullable=False),
    Column("armed", Boolean, nullable=False),
    Column("fired", Integer, nullable=False, default=0),  # crossings so far: the alert event ids' counter
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
