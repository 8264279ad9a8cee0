"""Venice's `billing/usage-analytics`: the account's spend over a window, by day, model and key, for a
dashboard. Read through UsageReports.grouped (whole days from the usage_daily rollup), summed in
nano-USD and shown as numbers at the end. Tollway bills USD only: every DIEM figure is 0. Units are
tokens for token-priced calls and requests otherwise (the grouped rows carry no finer units).
No HTTP here (api/accounts/billing_history.py)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.core.catalog.catalog import Catalog
from tollway.core.money.prices import NANO_PER_USD, usd_to_nano
from tollway.core.money.usage_reports import UsageReports
from tollway.errors import ErrorCode, TollwayError

MAX_DAYS = 90
TOP = 8
_LOOKBACK = re.compile(r"^[1-9]\d{0,2}d$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Venice's model type names (its document: LLM, IMAGE, TTS, ASR, VIDEO); others have none.
MODEL_TYPES = {"text": "LLM", "image": "IMAGE", "inpaint": "IMAGE", "upscale": "IMAGE", "tts": "TTS"}
MODEL_TYPES |= {"stt": "ASR", "video": "VIDEO", "music": "AUDIO", "embedding": "EMBEDDING"}


def _bad(message: str, param: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


def window(lookback: str | None, start_date: str | None, end_date: str | None) -> tuple[date, date, str]:
    """(first day, last day, the `lookback` to echo): `Nd` (1 to 90, default 7d) ending today, or
    startDate and endDate together (YYYY-MM-DD, at most 90 days)."""
    if (start_date is None) != (end_date is None):
        missing = "endDate" if end_date is None else "startDate"
        raise _bad("startDate and endDate go together: send both, or neither.", missing)
    if start_date is not None and end_date is not None:
        days: list[date] = []
        for name, value in (("startDate", start_date), ("endDate", end_date)):
            try:
                days.append(date.fromisoformat(value) if _DATE.match(value) else date.fromisoformat("x"))
            except ValueError:
                raise _bad(f"`{name}` must be a date, YYYY-MM-DD.", name) from None
        first, last = days
        if last < first:
            raise _bad("`endDate` is before `startDate`.", "endDate")
        if (last - first).days + 1 > MAX_DAYS:
            raise _bad(f"The window is at most {MAX_DAYS} days.", "endDate")
        return first, last, f"{start_date}:{end_date}"
    lookback = lookback or "7d"
    if not _LOOKBACK.match(lookback) or int(lookback[:-1]) > MAX_DAYS:
        raise _bad(f"`lookback` must be 1d to {MAX_DAYS}d.", "lookback")
    today = datetime.now(UTC).date()
    return today - timedelta(days=int(lookback[:-1]) - 1), today, lookback


def _usd(nano: int) -> float:
    return float(Decimal(nano) / NANO_PER_USD)


def _ms(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC).timestamp() * 1000)


def _daily(days: list[str], spend: dict[tuple[str, str], int], top: list[str]) -> list[dict[str, Any]]:
    return [{"date": _ms(day), **{name: _usd(spend.get((day, name), 0)) for name in top}} for day in days]


async def analytics(
    engine: AsyncEngine,
    catalog: Catalog,
    account_id: str,
    key_id: str | None,
    first: date,
    last: date,
    lookback: str,
) -> dict[str, Any]:
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(last, time.max, tzinfo=UTC)
    report = await UsageReports(engine).grouped(account_id, start, end)
    rows = [r for r in report["data"] if key_id is None or r["key_id"] == key_id]
    by_day: dict[str, int] = defaultdict(int)
    models: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # nano, tokens, requests
    keys: dict[str | None, list[Any]] = {}
    model_day: dict[tuple[str, str], int] = defaultdict(int)
    key_day: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        nano = usd_to_nano(row["cost_usd"])
        tokens = int(row["prompt_tokens"]) + int(row["completion_tokens"])
        by_day[row["day"]] += nano
        bucket = models[row["model"]]
        bucket[0] += nano
        bucket[1] += tokens
        bucket[2] += int(row["requests"])
        label = row["key_label"] or row["key_id"] or "Web App"
        key = keys.setdefault(row["key_id"], [label, 0, 0])
        key[1] += nano
        key[2] += tokens or int(row["requests"])
        model_day[(row["day"], row["model"])] += nano
        key_day[(row["day"], key[0])] += nano
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    by_model = sorted(models.items(), key=lambda item: (-item[1][0], item[0]))
    by_key = sorted(keys.items(), key=lambda item: (-item[1][1], item[1][0]))
    top_models = [name for name, _ in by_model[:TOP]]
    top_keys = list(dict.fromkeys(entry[0] for _, entry in by_key))[:TOP]
    return {
        "lookback": lookback,
        "byDate": [{"date": day, "USD": _usd(by_day.get(day, 0)), "DIEM": 0} for day in days],
        "byModel": [_model_entry(catalog, name, *totals) for name, totals in by_model],
        "byModelDaily": _daily(days, model_day, top_models),
        "topModels": top_models,
        "byKey": [
            {
                "apiKeyId": kid,
                "description": label,
                "totalUsd": _usd(nano),
                "totalDiem": 0,
                "totalUnits": units,
            }
            for kid, (label, nano, units) in by_key
        ],
        "byKeyDaily": _daily(days, key_day, top_keys),
        "topKeyNames": top_keys,
    }


def _model_entry(catalog: Catalog, name: str, nano: int, tokens: int, requests: int) -> dict[str, Any]:
    try:
        model_type: str | None = MODEL_TYPES.get(catalog.resolve(name).type)
    except TollwayError:  # a model since removed from the catalog
        model_type = None
    return {
        "modelName": name,
        "modelType": model_type,
        "unitType": "tokens" if tokens else "requests",
        "totalUsd": _usd(nano),
        "totalDiem": 0,
        "totalUnits": tokens or requests,
    }
