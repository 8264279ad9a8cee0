"""An independent reference model of Tollway's price rules, in plain `Decimal`.

Written from the catalog's documented semantics (README, DESIGN §4, the docstrings of the catalog's
`pricing` fields), never by calling Tollway's pricing code, so a pricing bug cannot hide behind the
code that computes the expected value. It reads the prices straight from the catalog YAML.

The rules:
- markup: the model's own `markup`, else the catalog's; every price is multiplied by it.
- a unit price (USD per 1M tokens, per image, per 1M characters, per second) × markup is rounded
  up to the nano-USD (a markup never makes a price cheaper than intended);
- a synchronous call's cost is its units × those unit prices, summed exactly and rounded up once:
  - tokens: uncached prompt × input + cached × cached_input (else input) + non-reasoning
    completion × output + reasoning × reasoning (else output), per 1M tokens;
  - images (images/generations, image/generate): per_image × n × tier (longest side ≤ 1280: ×1,
    ≤ 2048: ×2, else ×4) × quality (low ×½, high/hd ×2, else ×1);
  - upscale: per_image × scale² / 4 (per_image is the 2x price); edit, background removal: per_image;
  - speech: per_million_chars × characters / 1M; transcription: per_second × milliseconds / 1000;
- an async job's quote (video, music, long speech, image tasks) is the USD total × markup, rounded
  up once:
  - video: an exact `per_generation["RES/Ns[/audio]"]` when listed; else seconds × (per_second +
    per_second_surcharges of the resolution and of "audio") + flat surcharges of both;
  - image tasks: n × (per_image, or per_image_input with an input image, + surcharges of the tier
    "1K|2K|4K" and of the quality);
  - music: seconds × per_second; long speech: characters × per_million_chars / 1M.
- a batch line (the Batch API) costs its call's price less `pricing.batch_discount` (a fraction),
  rounded up to the nano; without one, the full price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

import yaml

NANO = Decimal(1_000_000_000)
MILLION = Decimal(1_000_000)


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class Tokens:
    prompt: int = 0
    completion: int = 0
    cached: int = 0  # part of prompt
    reasoning: int = 0  # part of completion


class Oracle:
    def __init__(self, catalog_yaml: str) -> None:
        data: dict[str, Any] = yaml.safe_load(catalog_yaml)
        self.global_markup = Decimal(str(data.get("markup", "1.0")))
        self.models: dict[str, dict[str, Any]] = {m["id"]: m for m in data["models"]}

    def markup(self, model: str) -> Decimal:
        own = self.models[model].get("markup")
        return Decimal(str(own)) if own is not None else self.global_markup

    def price(self, model: str, field: str) -> Decimal | None:
        value = self.models[model]["pricing"].get(field)
        return None if value is None else Decimal(str(value))

    def unit_nano(self, model: str, field: str) -> Decimal:
        """A unit price with markup, in nano-USD, rounded up to the nano."""
        price = self.price(model, field)
        assert price is not None, f"{model} has no {field}"
        return Decimal(_ceil(price * self.markup(model) * NANO))

    # -- synchronous calls ----------------------------------------------------------------------

    def tokens(self, model: str, usage: Tokens) -> int:
        cached = min(max(usage.cached, 0), usage.prompt)
        reasoning = min(max(usage.reasoning, 0), usage.completion)
        input_ = self.unit_nano(model, "input")
        cached_price = self.unit_nano(model, "cached_input") if self.price(model, "cached_input") else input_
        output = self.unit_nano(model, "output") if self.price(model, "output") is not None else Decimal(0)
        reasoning_price = self.unit_nano(model, "reasoning") if self.price(model, "reasoning") else output
        total = (
            (usage.prompt - cached) * input_
            + cached * cached_price
            + (usage.completion - reasoning) * output
            + reasoning * reasoning_price
        )
        return _ceil(total / MILLION)

    def batch_line(self, model: str, usage: Tokens) -> int:
        discount = self.price(model, "batch_discount") or Decimal(0)
        return _ceil(self.tokens(model, usage) * (1 - discount))

    def image(self, model: str, *, width: int, height: int, quality: str | None, n: int) -> int:
        side = max(width, height)
        tier = 1 if side <= 1280 else 2 if side <= 2048 else 4
        factor = {"low": Decimal("0.5"), "high": Decimal(2), "hd": Decimal(2)}.get(quality or "", Decimal(1))
        return _ceil(self.unit_nano(model, "per_image") * n * tier * factor)

    def upscale(self, model: str, scale: Decimal) -> int:
        return _ceil(self.unit_nano(model, "per_image") * scale * scale / 4)

    def flat_image(self, model: str) -> int:
        return int(self.unit_nano(model, "per_image"))

    def speech(self, model: str, characters: int) -> int:
        return _ceil(self.unit_nano(model, "per_million_chars") * characters / MILLION)

    def transcription(self, model: str, milliseconds: int) -> int:
        return _ceil(self.unit_nano(model, "per_second") * milliseconds / 1000)

    # -- async job quotes -----------------------------------------------------------------------

    def _quote(self, model: str, usd: Decimal) -> int:
        return _ceil(usd * self.markup(model) * NANO)

    def video(self, model: str, *, seconds: int, resolution: str, audio: bool) -> int:
        pricing = self.models[model]["pricing"]
        key = f"{resolution}/{seconds}s" + ("/audio" if audio else "")
        table = pricing.get("per_generation") or {}
        if key in table:
            return self._quote(model, Decimal(str(table[key])))
        per_second = Decimal(str(pricing["per_second"]))
        flat = Decimal(0)
        per_second_extra = pricing.get("per_second_surcharges") or {}
        flat_extra = pricing.get("surcharges") or {}
        for option in [resolution] + (["audio"] if audio else []):
            per_second += Decimal(str(per_second_extra.get(option, "0")))
            flat += Decimal(str(flat_extra.get(option, "0")))
        return self._quote(model, per_second * seconds + flat)

    def image_task(self, model: str, *, n: int, tier: str, quality: str | None, with_input: bool) -> int:
        pricing = self.models[model]["pricing"]
        base = pricing.get("per_image_input") if with_input and pricing.get("per_image_input") else None
        each = Decimal(str(base or pricing["per_image"]))
        extra = pricing.get("surcharges") or {}
        for option in (tier, quality):
            if option:
                each += Decimal(str(extra.get(option, "0")))
        return self._quote(model, each * n)

    def music(self, model: str, seconds: int) -> int:
        return self._quote(model, Decimal(str(self.models[model]["pricing"]["per_second"])) * seconds)

    def long_speech(self, model: str, characters: int) -> int:
        price = Decimal(str(self.models[model]["pricing"]["per_million_chars"]))
        return self._quote(model, price * characters / MILLION)
