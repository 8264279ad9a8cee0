"""Low-balance alerts (issue 25): an account sets a threshold and a webhook URL; when its balance
falls below the threshold, one signed alert goes to the URL; the alert re-arms once the balance is
back at or above the threshold. Once per crossing, across replicas: the crossing is one conditional
UPDATE (`armed` true → false, counting `fired`) and the outbox row, in one transaction.

The balance compared is the settled one (`accounts.balance_nano`), not what holds leave available, so
a call in flight does not make the alert flap. Crossings are found by the publisher's poll
(`check`), whichever debit caused them: settlements, card refunds, operator debits.

The signing secret is HMAC(pepper, "balance-alert:<account>:<nonce>"): shown when the alert is set,
never stored; the nonce changes only when the alert is deleted and set again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.base.clock import utcnow
from tollway.base.ids import new_id
from tollway.core.events.webhooks import Poster, Undeliverable
from tollway.core.money.prices import nano_to_usd
from tollway.store import outbox
from tollway.store.event_tables import balance_alerts as ba
from tollway.store.outbox import Claimed
from tollway.store.tables import accounts

KIND = "balance.low"


@dataclass(frozen=True, slots=True)
class Alert:
    account_id: str
    threshold_nano: int
    url: str
    armed: bool
    signing_secret: str

    def view(self, *, with_secret: bool) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "object": "balance_alert",
            "threshold_usd": nano_to_usd(self.threshold_nano),
            "url": self.url,
            "armed": self.armed,
        }
        if with_secret:
            shown["signing_secret"] = self.signing_secret
        return shown


class Alerts:
    def __init__(self, engine: AsyncEngine, pepper: bytes, poster: Poster, max_attempts: int = 12) -> None:
        self.engine = engine
        self._pepper = pepper
        self.poster = poster
        self.max_attempts = max_attempts

    def secret(self, account_id: str, nonce: str) -> str:
        mac = hmac.new(self._pepper, f"balance-alert:{account_id}:{nonce}".encode(), hashlib.sha256)
        return "whsec_" + mac.hexdigest()

    async def put(self, account_id: str, threshold_nano: int, url: str) -> Alert:
        """Set (or change) the account's alert; the URL must pass the SSRF rules (a 400 otherwise)."""
        await self.poster.vet(url)
        now = utcnow()
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(select(ba.c.secret_nonce).where(ba.c.account_id == account_id))
            ).first()
            if found is None:
                nonce = new_id("aln")
                await conn.execute(
                    insert(ba).values(
                        account_id=account_id,
                        threshold_nano=threshold_nano,
                        url=url,
                        secret_nonce=nonce,
                        armed=True,
                        fired=0,
                        updated_at=now,
                    )
                )
            else:
                nonce = found[0]
                await conn.execute(
                    update(ba)
                    .where(ba.c.account_id == account_id)
                    .values(threshold_nano=threshold_nano, url=url, armed=True, updated_at=now)
                )
        return Alert(account_id, threshold_nano, url, True, self.secret(account_id, nonce))

    async def get(self, account_id: str) -> Alert | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(ba).where(ba.c.account_id == account_id))).first()
        if row is None:
            return None
        return Alert(
            account_id, row.threshold_nano, row.url, row.armed, self.secret(account_id, row.secret_nonce)
        )

    async def delete(self, account_id: str) -> bool:
        async with self.engine.begin() as conn:
            return bool((await conn.execute(delete(ba).where(ba.c.account_id == account_id))).rowcount)

    async def check(self) -> int:
        """Fire the alerts whose balance crossed below, re-arm those back above: crossings fired."""
        crossed = (
            select(ba.c.account_id, ba.c.threshold_nano, ba.c.armed, ba.c.fired, accounts.c.balance_nano)
            .join(accounts, accounts.c.id == ba.c.account_id)
            .where(
                or_(
                    and_(ba.c.armed.is_(True), accounts.c.balance_nano < ba.c.threshold_nano),
                    and_(ba.c.armed.is_(False), accounts.c.balance_nano >= ba.c.threshold_nano),
                )
            )
            .limit(500)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(crossed)).all()
        fired = 0
        for row in rows:
            if row.armed:
                fired += await self._fire(row.account_id, row.threshold_nano, row.fired, row.balance_nano)
            else:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        update(ba)
                        .where(ba.c.account_id == row.account_id, ba.c.armed.is_(False))
                        .values(armed=True)
                    )
        return fired

    async def _fire(self, account_id: str, threshold: int, count: int, balance: int) -> int:
        event_id = f"balance_low_{account_id}_{count + 1}"
        body = {
            "id": event_id,
            "type": KIND,
            "account_id": account_id,
            "threshold_usd": nano_to_usd(threshold),
            "balance_usd": nano_to_usd(balance),
            "occurred_at": utcnow().isoformat(),
        }
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True)
        async with self.engine.begin() as conn:
            claimed = await conn.execute(
                update(ba)
                .where(ba.c.account_id == account_id, ba.c.armed.is_(True), ba.c.fired == count)
                .values(armed=False, fired=count + 1)
            )
            if claimed.rowcount != 1:
                return 0  # another replica fired it, or the alert changed meanwhile
            await conn.run_sync(lambda c: outbox.add(c, event_id, "alert", KIND, account_id, payload))
        return 1


class AlertSink:
    """Delivers alert rows to the account's URL as it is now, signed with the account's secret."""

    name = "alert"
    concurrency = 4

    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts
        self.max_attempts: int | None = alerts.max_attempts

    async def deliver(self, row: Claimed) -> None:
        alert = await self.alerts.get(row.account_id)
        if alert is None:
            raise Undeliverable("the account deleted its alert")
        await self.alerts.poster.post(alert.url, row.payload.encode(), row.id, alert.signing_secret.encode())

    async def aclose(self) -> None:
        return None
