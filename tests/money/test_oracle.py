"""Property test: random priced requests of every kind, sent to a real server, are charged exactly
what the independent price oracle (tests/money/oracle.py) says, to the nano-USD.

Each example is one call on a fresh account with plenty of credit; the ledger is read back from
the database (the settle rows), and the ledger invariants are checked after every call. The
catalog (tests/money/conftest.py) has markups ≠ 1 and surcharges, so a price rule that drops a
markup, a surcharge, a tier, a quality factor, a cached or reasoning price, or rounds the wrong
way, shows. Hypothesis is derandomised: CI and `make mutate` see the same examples every run.
"""

from __future__ import annotations

import base64
import io
import wave
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money
from tests.money.oracle import Tokens

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 1000 * NANO


@dataclass(frozen=True)
class Case:
    """One priced request: how to send it, and what the oracle says it costs."""

    kind: str
    params: dict[str, Any]

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"Case({self.kind}, {self.params})"


def png(width: int = 96, height: int = 64) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), (240, 240, 240))
    image.paste((30, 60, 200), (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    image.save(out, "PNG")
    return out.getvalue()


def wav(seconds: int) -> bytes:
    """`seconds` of a quiet 16 kHz tone: whole seconds, so the engine's duration is exact."""
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(bytes(2 * 16000 * seconds))
    return out.getvalue()


# -- strategies -----------------------------------------------------------------------------------


@st.composite
def chat_cases(draw: st.DrawFn) -> Case:
    model = draw(st.sampled_from(["m-chat", "m-chat-markup", "m-chat-discount"]))
    prompt = draw(st.integers(0, 300_000))
    completion = draw(st.integers(0, 400))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": draw(st.integers(0, prompt))},
        "completion_tokens_details": {"reasoning_tokens": draw(st.integers(0, completion))},
    }
    return Case("chat", {"model": model, "stream": draw(st.booleans()), "usage": usage})


@st.composite
def image_cases(draw: st.DrawFn) -> Case:
    width, height = draw(st.sampled_from([(256, 256), (1280, 720), (1296, 64), (2048, 1024), (64, 2100)]))
    quality = draw(st.sampled_from([None, "auto", "low", "standard", "medium", "high", "hd"]))
    return Case("image", {"width": width, "height": height, "quality": quality, "n": draw(st.integers(1, 4))})


# Each kind of request, with how many random examples it gets per backend.
STRATEGIES: dict[str, tuple[st.SearchStrategy[Case], int]] = {
    "chat": (chat_cases(), 16),
    "embeddings": (st.builds(lambda n: Case("embeddings", {"tokens": n}), st.integers(0, 2_000_000)), 5),
    "image": (image_cases(), 6),
    "venice_image": (st.builds(lambda v: Case("venice_image", {"variants": v}), st.integers(1, 4)), 3),
    "upscale": (
        st.builds(
            lambda s: Case("upscale", {"scale": s}), st.sampled_from(["1.5", "2", "2.25", "3", "3.7", "4"])
        ),
        4,
    ),
    "flat_image": (
        st.builds(lambda m: Case("flat_image", {"model": m}), st.sampled_from(["m-edit", "m-bg"])),
        2,
    ),
    "speech": (
        st.builds(
            lambda t: Case("speech", {"input": t}),
            st.text(st.sampled_from("abc déf, GHI. ünï ☃!?"), min_size=1, max_size=60).filter(
                # Piper exits on text with nothing to pronounce ("?"): a 502 that charges nothing,
                # left for the input-hardening issue; here every input has a letter.
                lambda t: any(c.isalpha() for c in t)
            ),
        ),
        4,
    ),
    "transcription": (st.builds(lambda s: Case("transcription", {"seconds": s}), st.integers(1, 3)), 3),
    "video_quote": (
        st.builds(
            lambda m, s, r, a: Case("video_quote", {"model": m, "seconds": s, "resolution": r, "audio": a}),
            st.just("m-video"),
            st.integers(1, 20),
            st.sampled_from(["360p", "480p", "720p", "1080p"]),
            st.booleans(),
        ),
        10,
    ),
    "video_table_quote": (
        st.builds(
            lambda key: Case("video_quote", {"model": "m-video-table", **key}),
            st.sampled_from(
                [
                    {"seconds": 1, "resolution": "360p", "audio": False},
                    {"seconds": 2, "resolution": "360p", "audio": False},
                    {"seconds": 1, "resolution": "360p", "audio": True},
                    {"seconds": 2, "resolution": "480p", "audio": True},
                ]
            ),
        ),
        4,
    ),
    "video_queue": (
        st.builds(
            lambda s, r, a: Case("video_queue", {"seconds": s, "resolution": r, "audio": a}),
            st.integers(1, 2),
            st.sampled_from(["360p", "480p"]),
            st.booleans(),
        ),
        3,
    ),
    "music": (st.builds(lambda s: Case("music", {"seconds": s}), st.integers(1, 3)), 2),
    "image_task": (
        st.builds(
            lambda n, r, q, i: Case("image_task", {"n": n, "resolution": r, "quality": q, "input": i}),
            st.integers(1, 2),
            st.sampled_from(["1K", "2K"]),
            st.sampled_from([None, "hd", "standard"]),
            st.booleans(),
        ),
        4,
    ),
}


# Jobs hold their quote at submit and settle it in the background.
JOB_KINDS = ("video_queue", "music", "image_task", "long_speech", "video_task")
STRATEGIES["long_speech"] = (
    st.builds(
        lambda t: Case("long_speech", {"input": t}),
        st.text("abcdef ghij.", min_size=5, max_size=40).filter(lambda t: any(c.isalpha() for c in t)),
    ),
    2,
)
STRATEGIES["video_task"] = (
    st.builds(lambda s, a: Case("video_task", {"seconds": s, "audio": a}), st.integers(1, 2), st.booleans()),
    2,
)


# -- sending a case, and what the oracle expects --------------------------------------------------


def expected(case: Case) -> int:
    p = case.params
    if case.kind == "chat":
        u = p["usage"]
        tokens = Tokens(
            u["prompt_tokens"],
            u["completion_tokens"],
            u.get("prompt_tokens_details", {}).get("cached_tokens", 0),
            u.get("completion_tokens_details", {}).get("reasoning_tokens", 0),
        )
        return ORACLE.tokens(p["model"], tokens)
    if case.kind == "embeddings":
        return ORACLE.tokens("m-embed", Tokens(prompt=p["tokens"]))
    if case.kind == "image":
        return ORACLE.image("m-image", width=p["width"], height=p["height"], quality=p["quality"], n=p["n"])
    if case.kind == "venice_image":
        return ORACLE.image("m-image", width=512, height=384, quality=None, n=p["variants"])
    if case.kind == "upscale":
        return ORACLE.upscale("m-upscale", Decimal(p["scale"]))
    if case.kind == "flat_image":
        return ORACLE.flat_image(p["model"])
    if case.kind == "speech":
        return ORACLE.speech("m-tts", len(p["input"]))
    if case.kind == "transcription":
        return ORACLE.transcription("m-stt", 1000 * p["seconds"])
    if case.kind in ("video_quote", "video_queue"):
        model = p.get("model", "m-video")
        return ORACLE.video(model, seconds=p["seconds"], resolution=p["resolution"], audio=p["audio"])
    if case.kind == "music":
        return ORACLE.music("m-music", p["seconds"])
    if case.kind == "long_speech":
        return ORACLE.long_speech("m-tts", len(p["input"]))
    if case.kind == "video_task":
        return ORACLE.video("m-video", seconds=p["seconds"], resolution="360p", audio=p["audio"])
    assert case.kind == "image_task"
    return ORACLE.image_task(
        "m-image", n=p["n"], tier=p["resolution"], quality=p["quality"], with_input=p["input"]
    )


def post(money: Money, key: str, case: Case) -> httpx2.Response:
    """Send the case's request (scripting the fake upstream first where it needs to)."""
    p = case.params
    if case.kind == "chat":
        money.script({"type": "usage", "mode": "exact", "usage": p["usage"]})
        body = {"model": p["model"], "messages": [{"role": "user", "content": "price me"}]}
        body["max_tokens"] = p.get("max_tokens", 400)
        response = money.call(key, "POST", "chat/completions", json={**body, "stream": p["stream"]})
    elif case.kind == "embeddings":
        money.script({"type": "usage", "mode": "exact", "usage": {"prompt_tokens": p["tokens"]}})
        response = money.call(key, "POST", "embeddings", json={"model": "m-embed", "input": ["a b", "c"]})
    elif case.kind == "image":
        body = {"model": "m-image", "prompt": "a kite", "size": f"{p['width']}x{p['height']}", "n": p["n"]}
        if p["quality"] is not None:
            body["quality"] = p["quality"]
        response = money.call(key, "POST", "images/generations", json=body)
    elif case.kind == "venice_image":
        body = {"model": "m-image", "prompt": "dunes", "width": 512, "height": 384, "variants": p["variants"]}
        response = money.call(key, "POST", "image/generate", json=body)
    elif case.kind == "upscale":
        body = {
            "model": "m-upscale",
            "image": base64.b64encode(png(320, 240)).decode(),
            "scale": float(p["scale"]),
        }
        response = money.call(key, "POST", "image/upscale", json=body)
    elif case.kind == "flat_image":
        path = "image/edit" if p["model"] == "m-edit" else "image/background-remove"
        body = {
            "model": p["model"],
            "image": base64.b64encode(png(320, 240)).decode(),
            "prompt": "make it red",
        }
        response = money.call(key, "POST", path, json=body)
    elif case.kind == "speech":
        body = {"model": "m-tts", "input": p["input"], "voice": "alloy", "response_format": "wav"}
        response = money.call(key, "POST", "audio/speech", json=body)
    elif case.kind == "transcription":
        response = money.call(
            key,
            "POST",
            "audio/transcriptions",
            data={"model": "m-stt"},
            files={"file": ("tone.wav", wav(p["seconds"]))},
        )
    elif case.kind == "video_quote":
        body = {
            "model": p["model"],
            "duration": p["seconds"],
            "resolution": p["resolution"],
            "audio": p["audio"],
        }
        response = money.call(key, "POST", "video/quote", json=body)
    elif case.kind == "video_queue":
        body = {
            "model": "m-video",
            "prompt": "waves",
            "duration": p["seconds"],
            "resolution": p["resolution"],
            "audio": p["audio"],
        }
        response = money.call(key, "POST", "video/queue", json=body)
    elif case.kind == "music":
        body = {"model": "m-music", "prompt": "a hum", "duration": p["seconds"]}
        response = money.call(key, "POST", "audio/queue", json=body)
    elif case.kind == "long_speech":
        response = money.call(key, "POST", "audio/queue", json={"model": "m-tts", "input": p["input"]})
    elif case.kind == "video_task":
        body = {
            "model": "m-video",
            "prompt": "rain",
            "duration": p["seconds"],
            "resolution": "360p",
            "generate_audio": p["audio"],
        }
        response = money.call(key, "POST", "videos/generate", json=body)
    else:
        body = {"model": "m-image", "prompt": "a cat", "num_images": p["n"], "resolution": p["resolution"]}
        if p["quality"] is not None:
            body["quality"] = p["quality"]
        if p["input"]:
            body["mode"] = "image"
            body["image_url"] = "data:image/png;base64," + base64.b64encode(png(320, 240)).decode()
        response = money.call(key, "POST", "images/generate", json=body)
    return response


def send(money: Money, key: str, case: Case) -> int | None:
    """Make the call; returns the quote for quote-only cases (nothing is charged), else None."""
    response = post(money, key, case)
    assert response.status_code in (200, 201, 202), response.text
    if case.kind == "video_quote":
        return int(Decimal(response.json()["quote_usd"]) * NANO)
    if case.kind == "chat" and case.params["stream"]:
        assert response.text.rstrip().endswith("data: [DONE]"), response.text[-300:]
    return None


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_every_priced_request_is_charged_what_the_oracle_says(money: Money, kind: str) -> None:
    strategy, examples = STRATEGIES[kind]

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=strategy)
    def check(case: Case) -> None:
        money.reset_fake()
        account, key = money.funded(CREDIT)
        quote = send(money, key, case)
        price = expected(case)
        if quote is not None:
            assert quote == price
            assert money.balances(account) == (CREDIT, 0)  # a quote holds and charges nothing
            return
        if case.kind in JOB_KINDS:
            # The quote is held at submit and charged when the job completes: at every moment the
            # money that left the available balance is exactly the quote.
            balance, reserved = money.balances(account)
            assert CREDIT - balance + reserved == price
        money.settle_until(account, 1, seconds=60)  # streams and jobs settle in the background
        charged = money.charged(account)
        assert charged == price, f"{case}: charged {charged}, oracle {price}"
        assert money.balances(account) == (CREDIT - price, 0)
        [row] = money.usage_rows(account)
        assert row["cost_nano"] == price

    check()


@pytest.mark.parametrize("model", ["m-chat", "m-chat-markup", "m-chat-discount", "m-embed"])
def test_oracle_unit_prices_are_marked_up_and_rounded_up(model: str) -> None:
    """The oracle itself, by hand, on the catalog's numbers: a check of the reference, not of Tollway."""
    by_hand = {
        "m-chat": Decimal("0.15") * Decimal("1.25"),
        "m-chat-markup": Decimal("3.000000007") * Decimal("1.5"),
        "m-chat-discount": Decimal("0.5") * Decimal("0.85"),
        "m-embed": Decimal("0.13") * Decimal("1.1"),
    }[model]
    nano = by_hand * NANO
    assert ORACLE.unit_nano(model, "input") == nano.to_integral_value(rounding="ROUND_CEILING")
    # 1M prompt tokens cost exactly the marked-up unit price
    assert ORACLE.tokens(model, Tokens(prompt=1_000_000)) == int(ORACLE.unit_nano(model, "input"))
