"""The output cap a hold is sized for is the cap the upstream is sent, on every upstream dialect.

The fake upstreams' `fill` behaviour answers exactly as many tokens as the cap they receive (2,024
when they receive none, as a real model that never stops on its own): a cap that did not reach the
upstream shows as a charge above the hold (which the ledger would cap, serving the rest free).
Prices: $1.00 in, $2.00 out per 1M tokens (1,000 and 2,000 nano-USD a token); `fill-*` models have
max_output_tokens 1000 (tests/contract/servers.py ROUTED_NAMES)."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
import pytest

from tests.contract.servers import Protocols
from tests.support.databases import query

pytestmark = pytest.mark.slow
KINDS = ["openai", "anthropic", "gemini"]
HELLO = [{"role": "user", "content": "hello there"}]
CATALOG_CAP = 1000


def cost(prompt: int, completion: int) -> int:
    return prompt * 1_000 + completion * 2_000


def sent_cap(server: Protocols, kind: str) -> dict[str, Any]:
    """The output-cap fields of the last request the `kind` upstream received, by name."""
    sent = server.last_request(kind)
    if kind == "gemini":
        config = sent.get("generationConfig") or {}
        return {k: v for k, v in config.items() if k == "maxOutputTokens"}
    return {k: v for k, v in sent.items() if k in ("max_tokens", "max_completion_tokens")}


def chat(server: Protocols, key: str, model: str, stream: bool, **extra: Any) -> tuple[str, dict[str, Any]]:
    """(the answer's text, its usage), buffered or streamed (usage asked for)."""
    body: dict[str, Any] = {"model": model, "messages": HELLO, "stream": stream, **extra}
    if stream:
        body["stream_options"] = {"include_usage": True}
    response = httpx2.post(
        f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body, timeout=60
    )
    assert response.status_code == 200, response.text
    if not stream:
        answer = response.json()
        assert answer["choices"][0]["finish_reason"] == "length"
        return answer["choices"][0]["message"]["content"], answer["usage"]
    text, usage = "", None
    for line in response.text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = orjson.loads(line.removeprefix("data: "))
        assert "error" not in chunk, chunk
        for choice in chunk.get("choices") or ():
            text += choice["delta"].get("content") or ""
        usage = chunk.get("usage") or usage
    assert response.text.rstrip().endswith("data: [DONE]") and usage is not None
    return text, usage


def hold_and_charge(server: Protocols, account: str) -> tuple[int, int]:
    """The one call's hold and its charge, from the ledger; the account's books must balance."""
    rows = query(
        server.database_url,
        "select kind, amount_nano, reserved_delta_nano from ledger where account_id = ? and kind <> 'credit'",
        account,
    )
    kinds = {str(kind): (int(amount), int(delta)) for kind, amount, delta in rows}
    assert set(kinds) == {"reserve", "settle"}, rows
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (reserved, reserved_sum, ledger_sum) == (0, 0, balance)
    return kinds["reserve"][1], -kinds["settle"][0]


@pytest.mark.parametrize("asked", [None, 300, 5000])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_the_upstream_gets_the_cap_the_hold_covers_and_the_charge_is_what_it_produced(
    fresh_protocols: Protocols, kind: str, stream: bool, asked: int | None
) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "fill"})
    limit = {} if asked is None else {"max_tokens": asked}
    text, usage = chat(fresh_protocols, key, f"fill-{kind}", stream, **limit)
    cap = min(asked or CATALOG_CAP, CATALOG_CAP)  # the client's limit, clamped to the catalog's
    field = "maxOutputTokens" if kind == "gemini" else "max_tokens"
    assert sent_cap(fresh_protocols, kind) == {field: cap}
    assert len(text.split()) == usage["completion_tokens"] == cap  # as much as it was allowed
    hold, charge = hold_and_charge(fresh_protocols, account)
    assert charge == cost(usage["prompt_tokens"], cap)  # exactly what was produced, nothing free
    assert charge <= hold


def test_max_completion_tokens_reaches_the_upstream_under_its_own_name(fresh_protocols: Protocols) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on("openai", {"type": "fill"})
    _, usage = chat(fresh_protocols, key, "fill-openai", False, max_completion_tokens=7000)
    assert sent_cap(fresh_protocols, "openai") == {"max_completion_tokens": CATALOG_CAP}
    hold, charge = hold_and_charge(fresh_protocols, account)
    assert charge == cost(usage["prompt_tokens"], CATALOG_CAP) <= hold


def test_a_model_without_a_catalog_cap_sends_the_default_cap(fresh_protocols: Protocols) -> None:
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on("openai", {"type": "fill"})
    _, usage = chat(fresh_protocols, key, "fill-default", True)
    assert sent_cap(fresh_protocols, "openai") == {"max_tokens": 4096}
    hold, charge = hold_and_charge(fresh_protocols, account)
    assert charge == cost(usage["prompt_tokens"], 4096) <= hold


def test_an_allow_list_keeps_the_cap_under_the_name_it_takes(fresh_protocols: Protocols) -> None:
    # fake-strict takes [max_tokens, temperature]: the client's max_completion_tokens is sent as max_tokens.
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on("openai", {"type": "fill"})
    _, usage = chat(fresh_protocols, key, "strict-chat", False, max_completion_tokens=20)
    assert sent_cap(fresh_protocols, "openai") == {"max_tokens": 20}
    hold, charge = hold_and_charge(fresh_protocols, account)
    assert charge == cost(usage["prompt_tokens"], 20) <= hold


@pytest.mark.parametrize("kind", KINDS)
def test_a_gemini_client_without_max_output_tokens_is_capped_at_the_catalogs(
    fresh_protocols: Protocols, kind: str
) -> None:
    # Before the cap was sent, an Anthropic upstream got its dialect's default (4096) against a hold for 1000.
    account, key = fresh_protocols.funded()
    fresh_protocols.script_on(kind, {"type": "fill"})
    response = httpx2.post(
        f"{fresh_protocols.url}/v1beta/models/fill-{kind}:generateContent",
        headers={"x-goog-api-key": key},
        json={"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usageMetadata"]
    assert usage["candidatesTokenCount"] == CATALOG_CAP
    field = "maxOutputTokens" if kind == "gemini" else "max_tokens"
    assert sent_cap(fresh_protocols, kind) == {field: CATALOG_CAP}
    hold, charge = hold_and_charge(fresh_protocols, account)
    assert charge == cost(usage["promptTokenCount"], CATALOG_CAP) <= hold
