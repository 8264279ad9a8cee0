"""The `openai-agents` package runs a two-step tool-calling agent through Tollway's Responses API:
the model calls a function tool, the agent runs it and sends back a function_call_output, the model
answers. On the OpenAI-compatible fake, on the Anthropic-shaped fake (both translations at once),
and on the embedded SmolLM2 model (its call forced by llama.cpp's grammar: providers/local/tools.py),
buffered and streamed, billed exactly what the ledger holds. Skipped where `openai-agents` is not
installed (a dev dependency to pin: pyproject.toml `dev`, requirements.lock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.contract.servers import Protocols, Tollway
from tests.support.databases import query

agents = pytest.importorskip("agents")
pytestmark = pytest.mark.slow


@pytest.fixture
def funded(protocols: Protocols) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        account = protocols.new_account("5.00")
        return account, protocols.new_key(account)

    return make


def _agent(server: Tollway, key: str, model: str, seen: list[str], settings: Any = None) -> Any:
    agents.set_tracing_disabled(True)  # no traces sent to OpenAI from a test

    @agents.function_tool
    def lookup(echo: str) -> str:
        """Look something up."""
        seen.append(echo)
        return "three"

    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    return agents.Agent(
        name="finder",
        instructions="Use the lookup tool, then answer.",
        tools=[lookup],
        model=agents.OpenAIResponsesModel(model=model, openai_client=client),
        model_settings=settings or agents.ModelSettings(),
    )


async def _run(agent: Any, stream: bool) -> Any:
    if not stream:
        return await agents.Runner.run(agent, "find cats")
    result = agents.Runner.run_streamed(agent, "find cats")
    async for _ in result.stream_events():
        pass
    return result


def _charged(server: Protocols, account: str) -> int:
    balance, reserved, ledger_sum, reserved_sum = server.ledger_sums(account)
    assert (reserved, ledger_sum, reserved_sum) == (0, balance, 0)
    return 5_000_000_000 - balance


@pytest.mark.parametrize(
    ("model", "stream"), [("claude-fake", False), ("claude-fake", True), ("fake-chat", False)]
)
def test_a_two_step_tool_calling_agent(
    fresh_protocols: Protocols, funded: Callable[[], tuple[str, str]], model: str, stream: bool
) -> None:
    account, key = funded()
    if model == "fake-chat":  # the OpenAI fake calls a tool only when told to, then echoes the user
        fresh_protocols.script_on(
            "openai", {"type": "reply", "chunks": ['{"echo": "find cats"}'], "tool_call": "lookup"}
        )
    seen: list[str] = []
    agent = _agent(fresh_protocols, key, model, seen)
    result = asyncio.run(_run(agent, stream))
    assert seen == ["find cats"]  # step one: the model called the tool, the agent ran it
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    expected = "echo: result three" if model == "claude-fake" else "echo: find cats"
    assert result.final_output == expected  # step two: the model answered from the tool's output
    usage = result.context_wrapper.usage
    assert usage.requests == 2 and usage.input_tokens > 0 and usage.output_tokens > 0
    # the two calls' charges, from the usage the agent saw, equal the ledger's (input $1, output $2)
    assert _charged(fresh_protocols, account) == usage.input_tokens * 1_000 + usage.output_tokens * 2_000


@pytest.mark.parametrize("stream", [False, True])
def test_a_two_step_tool_calling_agent_on_the_embedded_model(tollway: Tollway, stream: bool) -> None:
    """tool_choice "required" makes the first call a grammar-forced tool call; the SDK's
    `reset_tool_choice` (on by default) drops it after the call, so the second call answers in text."""
    account, key = tollway.funded("1.00")
    seen: list[str] = []
    settings = agents.ModelSettings(tool_choice="required", temperature=0)
    result = asyncio.run(_run(_agent(tollway, key, "smollm2-135m", seen, settings), stream))
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    call = result.new_items[0].raw_item
    assert call.name == "lookup" and seen == [json.loads(call.arguments)["echo"]]  # the agent ran the call
    assert result.new_items[1].output == "three"
    assert isinstance(result.final_output, str) and result.final_output.strip()  # answered after the tool
    usage = result.context_wrapper.usage
    assert usage.requests == 2
    rows = query(
        tollway.database_url,
        "select prompt_tokens, completion_tokens, cost_nano, model from usage where account_id = ? order by id",
        account,
    )
    assert [row[3] for row in rows] == ["smollm2-135m", "smollm2-135m"]  # both model calls, each charged
    assert all(int(row[2]) > 0 for row in rows)
    assert (
        sum(int(r[0]) for r in rows) == usage.input_tokens
        and sum(int(r[1]) for r in rows) == usage.output_tokens
    )
    # $0.10 in / $0.40 out per 1M tokens: 100 and 400 nano-USD a token
    assert sum(int(row[2]) for row in rows) == usage.input_tokens * 100 + usage.output_tokens * 400
    balance, reserved, ledger_sum, reserved_sum = tollway.ledger_sums(account)
    assert (reserved, ledger_sum, reserved_sum) == (0, balance, 0)
    assert 1_000_000_000 - balance == sum(int(row[2]) for row in rows)
