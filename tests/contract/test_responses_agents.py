"""The `openai-agents` package runs a two-step tool-calling agent through Tollway's Responses API:
the model calls a function tool, the agent runs it and sends back a function_call_output, the model
answers. On the OpenAI-compatible fake, on the Anthropic-shaped fake (both translations at once),
buffered and streamed, billed exactly what the ledger holds. Skipped where `openai-agents` is not
installed (a dev dependency to pin: pyproject.toml `dev`, requirements.lock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.contract.servers import Protocols

agents = pytest.importorskip("agents")
pytestmark = pytest.mark.slow


@pytest.fixture
def funded(protocols: Protocols) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        account = protocols.new_account("5.00")
        return account, protocols.new_key(account)

    return make


def _agent(server: Protocols, key: str, model: str, seen: list[str]) -> Any:
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
    )


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

    async def run() -> Any:
        if not stream:
            return await agents.Runner.run(agent, "find cats")
        result = agents.Runner.run_streamed(agent, "find cats")
        async for _ in result.stream_events():
            pass
        return result

    result = asyncio.run(run())
    assert seen == ["find cats"]  # step one: the model called the tool, the agent ran it
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    expected = "echo: result three" if model == "claude-fake" else "echo: find cats"
    assert result.final_output == expected  # step two: the model answered from the tool's output
    usage = result.context_wrapper.usage
    assert usage.requests == 2 and usage.input_tokens > 0 and usage.output_tokens > 0
    # the two calls' charges, from the usage the agent saw, equal the ledger's (input $1, output $2)
    assert _charged(fresh_protocols, account) == usage.input_tokens * 1_000 + usage.output_tokens * 2_000
