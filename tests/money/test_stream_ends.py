"""How a streamed chat completion ends, and what it is charged, in every way it can end.

core/inference/chat_stream.py relays an upstream stream through a producer task and a bounded queue, and
settles before its last frame. A stream can end:
- completed: the content chunks (model = the catalog id), the usage chunk when the client asked
  for it (the LAST usage the upstream sent, never a sum; the stream's own id and created), then
  [DONE]; charged the oracle price of that usage, and the client can see it before the end;
- broken by the upstream (a cut, an error event): the content so far, then one UPSTREAM_ERROR
  frame and no [DONE]; charged the estimate of what was relayed;
- left by its client: the producer drains the upstream and bills all of it (client_disconnect),
  or, past `stream_drain_seconds`, what it produced in time (client_disconnect_timeout);
- cut by a shutdown: billed what was relayed (outcome shutdown, 503), never left as a hold.
Tool-call arguments count in an estimate like content does; thinking a client asked to have stripped
is billed though never shown.

Every charge is checked against the oracle's price of the usage row's tokens. The session server
runs on both backends; the drain and shutdown cases need a server of their own (SQLite).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.money.conftest import ORACLE, Fakes, own_server
from tests.money.harness import NANO, Money
from tests.money.oracle import Tokens
from tollway.base import tokens
from tollway.core.inference.chat_stream import ChatStream
from tollway.core.inference.pipeline import Pipeline
from tollway.core.money.prices import TokenUsage

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 100 * NANO
WORDS = "every word of this prompt comes back as one chunk of the answer"
REPLY = ("echo: " + WORDS).split()  # the fake's answer: one word, one chunk, one token
PIECES = [REPLY[0]] + [" " + w for w in REPLY[1:]]  # the content of each chunk
PROMPT = len(WORDS.split())  # the fake counts whitespace words
BROKEN = "The upstream failed mid-stream; the answer is incomplete."
SHUTDOWN = (
    "The server is shutting down; the answer is incomplete and was billed as far as it went. "
    "Retry on another replica."
)


def _body(include_usage: bool | None = None, content: str = WORDS) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m-chat", "messages": [{"role": "user", "content": content}]}
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    return {**body, "stream": True}


@dataclass
class Read:
    request_id: str
    frames: list[Any]  # each `data:` payload: a dict, or the string "[DONE]"
    dropped: bool = False  # the connection ended before the end of the body

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if isinstance(f, dict) and f.get("choices")]

    @property
    def pieces(self) -> list[str]:
        return [c["choices"][0]["delta"].get("content") or "" for c in self.chunks]


def read(
    money: Money, key: str, body: dict[str, Any], leave_after: int | None = None, at_two: Any = None
) -> Read:
    """Stream a chat completion; with `leave_after`, close the connection after that many chunks;
    `at_two` is called once two chunks have arrived."""
    headers = {"authorization": f"Bearer {key}"}
    url = f"{money.url}/v1/chat/completions"
    with httpx2.stream("POST", url, json=body, headers=headers, timeout=15) as response:
        assert response.status_code == 200, response.read()
        got = Read(response.headers["x-request-id"], [])
        try:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    payload = line.removeprefix("data: ")
                    got.frames.append(payload if payload == "[DONE]" else json.loads(payload))
                    if at_two is not None and len(got.chunks) == 2 and len(got.frames) == 2:
                        at_two()
                if leave_after is not None and len(got.chunks) == leave_after:
                    return got
        except httpx2.RemoteProtocolError:
            got.dropped = True
    return got


def _row(money: Money, account: str) -> dict[str, Any]:
    [row] = money.usage_rows(account)
    assert row["cost_nano"] == money.charged(account)
    assert money.balances(account) == (CREDIT - row["cost_nano"], 0)  # no hold left behind
    return row


def _priced(row: dict[str, Any]) -> int:
    """The oracle's price of a usage row's tokens."""
    usage = Tokens(
        row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"], row["reasoning_tokens"]
    )
    return ORACLE.tokens("m-chat", usage)


def _estimate(body: dict[str, Any], pieces: list[str]) -> tuple[int, int]:
    """What Tollway estimates without usage: the prompt's tokens, the tokens of each relayed piece."""
    return tokens.count_prompt(body), tokens.count(pieces)


# -- completed ------------------------------------------------------------------------------------

FULL = {"prompt_tokens": PROMPT, "completion_tokens": len(REPLY), "total_tokens": PROMPT + len(REPLY)}
DETAILED = {
    "prompt_tokens": 40,
    "completion_tokens": 30,
    "total_tokens": 70,
    "prompt_tokens_details": {"cached_tokens": 12},
    "completion_tokens_details": {"reasoning_tokens": 9},
}
COMPLETED: dict[
    str, tuple[bool | None, dict[str, Any], dict[str, Any]]
] = {  # include_usage, the fake's behaviour, the usage the upstream reported last
    "usage-chunk": (True, {"type": "slow", "delay": 0}, FULL),
    "running-totals": (True, {"type": "usage", "mode": "every_chunk"}, FULL),
    "cached-and-reasoning": (True, {"type": "usage", "mode": "exact", "usage": DETAILED}, DETAILED),
    "usage-not-asked": (False, {"type": "slow", "delay": 0}, FULL),
    "stream-options-absent": (None, {"type": "usage", "mode": "every_chunk"}, FULL),
}


@pytest.mark.parametrize("case", list(COMPLETED))
def test_a_completed_stream_ends_with_the_usage_it_was_charged_then_done(fresh: Money, case: str) -> None:
    include_usage, behavior, reported = COMPLETED[case]
    account, key = fresh.funded(CREDIT)
    fresh.script(behavior)
    got = read(fresh, key, _body(include_usage))
    # Settled before the last frame: the charge is there the moment the client has seen [DONE].
    row = _row(fresh, account)

    assert got.frames[-1] == "[DONE]" and not got.dropped
    assert "".join(got.pieces) == "echo: " + WORDS
    assert {c["model"] for c in got.chunks} == {"m-chat"}
    assert all("usage" not in c for c in got.chunks)  # upstream usage is never relayed as is
    ids = {(c["id"], c["created"]) for c in got.chunks}
    assert len(ids) == 1
    if include_usage:
        assert len(got.frames) == len(REPLY) + 2
        [(stream_id, created)] = ids
        no_details = {
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        # The cost is what the ledger charged, settled before this frame left.
        usage = {**no_details, **reported, "cost": float(Decimal(row["cost_nano"]).scaleb(-9))}
        assert row["cost_nano"] > 0
        assert got.frames[-2] == {
            "id": stream_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": "m-chat",
            "choices": [],
            "usage": usage,
        }
    else:
        assert len(got.frames) == len(REPLY) + 1  # no usage chunk

    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        reported["prompt_tokens"],
        reported["completion_tokens"],
    )
    assert (row["cached_tokens"], row["reasoning_tokens"]) == (
        reported.get("prompt_tokens_details", {}).get("cached_tokens", 0),
        reported.get("completion_tokens_details", {}).get("reasoning_tokens", 0),
    )
    assert (row["provider"], row["usage_source"], row["outcome"], row["status_code"]) == (
        "fake",
        "provider",
        "completed",
        200,
    )
    assert row["cost_nano"] == _priced(row) > 0


# -- broken by the upstream -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cut", "error_event"])
def test_a_stream_the_upstream_breaks_ends_in_one_error_frame_and_bills_what_was_relayed(
    fresh: Money, kind: str
) -> None:
    account, key = fresh.funded(CREDIT)
    fresh.script({"type": kind, "after_chunks": 3})
    body = _body(True)
    got = read(fresh, key, body)

    assert got.pieces == PIECES[:3]
    assert {c["model"] for c in got.chunks} == {"m-chat"}
    error = {"message": BROKEN, "type": "server_error", "code": "UPSTREAM_ERROR", "param": None}
    assert got.frames[3:] == [{"error": {**error, "request_id": got.request_id}}]  # and no [DONE]
    assert not got.dropped

    # The fake sent no usage before it broke: the relayed text is counted.
    row = _row(fresh, account)
    assert (row["prompt_tokens"], row["completion_tokens"]) == _estimate(body, PIECES[:3])
    assert (row["provider"], row["usage_source"], row["outcome"], row["status_code"]) == (
        "fake",
        "estimated",
        "upstream_error",
        502,
    )
    assert row["cost_nano"] == _priced(row) > 0


# -- left by the client ---------------------------------------------------------------------------


def test_a_client_that_leaves_mid_stream_is_billed_for_the_whole_answer_the_upstream_produced(
    fresh: Money,
) -> None:
    account, key = fresh.funded(CREDIT)
    fresh.script({"type": "slow", "delay": 0.05})  # the stream runs on after the client leaves
    got = read(fresh, key, _body(False), leave_after=2)
    assert got.pieces == PIECES[:2]
    fresh.settle_until(account, 1)

    row = _row(fresh, account)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT, len(REPLY))  # the provider's
    assert (row["provider"], row["usage_source"], row["outcome"], row["status_code"]) == (
        "fake",
        "provider",
        "client_disconnect",
        499,
    )
    assert row["cost_nano"] == _priced(row) == ORACLE.tokens("m-chat", Tokens(PROMPT, len(REPLY)))


def test_a_client_that_leaves_a_stream_slower_than_the_drain_is_billed_for_what_was_produced_in_time(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    with own_server(money_fakes, tmp_path, stream_drain_seconds=0.25) as (money, _):
        account, key = money.funded(CREDIT)
        money.script({"type": "slow", "delay": 0.5})  # 6 s in all; the drain gives up after 0.25 s
        body = _body(True)
        started = time.monotonic()
        got = read(money, key, body, leave_after=2)
        assert got.pieces == PIECES[:2]
        money.settle_until(account, 1)
        assert time.monotonic() - started < 4, "the drain waited for the whole stream"

        row = _row(money, account)
        # The chunk that arrived after the client left was produced (and started the drain's clock);
        # the upstream never finished, so no usage came and the produced text is counted.
        produced = [_estimate(body, PIECES[:n]) for n in range(3, len(PIECES))]
        assert (row["prompt_tokens"], row["completion_tokens"]) in produced
        assert (row["provider"], row["usage_source"], row["outcome"], row["status_code"]) == (
            "fake",
            "estimated",
            "client_disconnect_timeout",
            499,
        )
        assert row["cost_nano"] == _priced(row) > 0


# -- cut by a shutdown ----------------------------------------------------------------------------


def test_a_server_stopped_mid_stream_cuts_it_and_bills_the_relayed_part(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    # uvicorn gives the stream 0.5 s, then the lifespan's drain min(drain, grace) = 0.3 s more.
    with own_server(money_fakes, tmp_path, graceful=0.5, shutdown_grace_seconds=0.3) as (money, server):
        account, key = money.funded(CREDIT)
        money.script({"type": "slow", "delay": 0.3})  # about 4 s of stream
        body = _body(True)
        stopping = threading.Thread(target=server.stop)
        got = read(money, key, body, at_two=stopping.start)
        stopping.join(30)
        assert not server.thread.is_alive()

        assert got.dropped  # uvicorn closed the connection: the answer is visibly incomplete
        assert 2 <= len(got.pieces) < len(PIECES) and got.pieces == PIECES[: len(got.pieces)]
        row = _row(money, account)  # settled during the shutdown, not left as a hold
        produced = [_estimate(body, PIECES[:n]) for n in range(len(got.pieces), len(PIECES))]
        assert (row["prompt_tokens"], row["completion_tokens"]) in produced
        assert (row["provider"], row["usage_source"], row["outcome"], row["status_code"]) == (
            "fake",
            "estimated",
            "shutdown",
            503,
        )
        assert row["cost_nano"] == _priced(row) > 0


def test_a_stream_cut_by_the_drain_while_its_client_reads_settles_then_sends_the_shutdown_frame() -> None:
    """In process: under a plain uvicorn the client is gone before the lifespan's drain (see above);
    `tollway serve` cuts at the grace's end while clients read (test_operations.py checks the frame
    over the wire in each dialect). Here the order settle → frame is checked."""

    def chunk(text: str) -> dict[str, Any]:
        delta = {"content": text}
        return {"id": "chatcmpl-x", "created": 7, "model": "up", "choices": [{"index": 0, "delta": delta}]}

    async def scenario() -> tuple[list[bytes], list[tuple[Any, ...]], float]:
        received: list[bytes] = []
        settled: list[tuple[Any, ...]] = []

        async def settle(usage: TokenUsage, source: str, outcome: str, status: int) -> int:
            await asyncio.sleep(0.05)  # a frame sent before the settlement would reach the client now
            settled.append((usage, source, outcome, status, len(received)))
            return 1

        async def upstream() -> Any:
            yield chunk(" two")
            await asyncio.Event().wait()  # an upstream still going when the grace runs out

        pipeline = Pipeline(None, None, None, drain_seconds=60)  # type: ignore[arg-type]
        stream = ChatStream(
            request_id="req_cut",
            model_id="m-chat",
            first=chunk("one"),
            upstream=upstream(),
            settle=settle,
            prompt_estimate=11,
            wants_usage=True,
            drain_seconds=60,
        )

        async def client() -> None:
            async for frame in stream.start(pipeline._background):
                received.append(frame)

        reading = asyncio.create_task(client())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await pipeline.drain(0.2)
        waited = time.monotonic() - started
        await asyncio.wait_for(reading, 5)
        assert not pipeline._background
        return received, settled, waited

    received, settled, waited = asyncio.run(scenario())
    assert waited >= 0.2  # the grace was given before the cut
    assert settled == [(TokenUsage(11, tokens.count(["one", " two"])), "estimated", "shutdown", 503, 2)]
    error = {"message": SHUTDOWN, "type": "server_error", "code": "SERVICE_UNAVAILABLE", "param": None}
    assert [json.loads(f.removeprefix(b"data: ")) for f in received[2:]] == [
        {"error": {**error, "request_id": "req_cut"}}
    ]
    assert all(f.endswith(b"\n\n") for f in received)


# -- tool calls -----------------------------------------------------------------------------------


def test_a_streamed_tool_call_without_usage_is_estimated_on_its_arguments(fresh: Money) -> None:
    account, key = fresh.funded(CREDIT)
    arguments = ['{"city": ', '"Reykjavík", ', '"unit": "celsius"}']
    fresh.script({"type": "reply", "chunks": arguments, "tool_call": "weather", "omit_usage": True})
    body = _body(True)
    got = read(fresh, key, body)

    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in got.chunks]
    assert "".join(c["function"]["arguments"] for c in calls) == "".join(arguments)
    assert calls[0]["function"]["name"] == "weather"
    prompt, completion = _estimate(body, arguments)
    assert completion > len(arguments)
    assert got.frames[-2]["usage"]["completion_tokens"] == completion  # what was charged, shown
    assert got.frames[-1] == "[DONE]"
    row = _row(fresh, account)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)
    assert (row["usage_source"], row["outcome"], row["status_code"]) == ("estimated", "completed", 200)
    assert row["cost_nano"] == _priced(row) > 0


# -- thinking stripped ------------------------------------------------------------------------------


def test_a_stream_that_strips_thinking_shows_only_the_answer_and_bills_the_thinking_too(fresh: Money) -> None:
    """venice_parameters.strip_thinking_response: the <think> block is cut from the relayed chunks
    (even split across them), and the tokens the model spent on it are still billed."""
    account, key = fresh.funded(CREDIT)
    pieces = ["<thi", "nk>weighing the options", "</think>", "the answer"]
    fresh.script({"type": "reply", "chunks": pieces, "omit_usage": True})
    body = {**_body(True), "venice_parameters": {"strip_thinking_response": True}}
    got = read(fresh, key, body)

    assert "".join(got.pieces) == "the answer"
    assert got.frames[-1] == "[DONE]"
    prompt, completion = _estimate(body, pieces)
    assert completion > tokens.count(["the answer"])
    row = _row(fresh, account)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)
    assert got.frames[-2]["usage"]["completion_tokens"] == completion
    assert row["cost_nano"] == _priced(row) > 0
