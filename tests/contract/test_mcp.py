"""The MCP server (issue 26) driven by the official SDK's client against a real `tollway serve`:
streamable HTTP at /mcp, and stdio through `python -m tollway mcp`. Every tool is a REST call with the
caller's key, so a chat is charged exactly once, by the ledger, and a refusal is a tool error."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.contract.servers import REPO, Tollway

pytestmark = pytest.mark.slow

TOOLS = {
    "list_models", "chat", "embeddings", "generate_image", "edit_image", "upscale_image", "speech",
    "transcribe", "quote_job", "queue_job", "retrieve_job", "balance", "usage", "list_keys",
    "create_key", "revoke_key", "usage_by_key",
}  # fmt: skip
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> Tollway:
    return request.getfixturevalue("tollway" if request.param == "sqlite" else "tollway_pg")  # type: ignore[no-any-return]


@asynccontextmanager
async def over_http(t: Tollway, key: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=300)
    async with (
        http,
        Client(streamable_http_client(f"{t.url}/mcp", http_client=http), mode="legacy") as client,
    ):
        yield client


@asynccontextmanager
async def over_stdio(t: Tollway, key: str) -> AsyncIterator[Client]:
    env = {
        "TOLLWAY_BASE_URL": t.url,
        "TOLLWAY_API_KEY": key,
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO / "src")),
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "tollway", "mcp"], env=env, cwd=REPO)
    async with Client(params, mode="legacy", read_timeout_seconds=300) as client:
        yield client


def text_of(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def sums(t: Tollway, account_id: str) -> tuple[int, int, int, int]:
    """(balance, reserved, ledger sum, reserved-delta sum) from the database (a thread: its own loop)."""
    return await asyncio.to_thread(t.ledger_sums, account_id)


async def charged_chat(t: Tollway, client: Client, account_id: str) -> None:
    before = await sums(t, account_id)
    result = await client.call_tool("chat", {"model": "smollm2-135m", "messages": HELLO, "max_tokens": 8})
    assert not result.is_error, text_of(result)
    answer = result.structured_content
    assert answer is not None and answer["content"] and answer["usage"]["completion_tokens"] >= 1
    cost_nano = int(Decimal(str(answer["cost_usd"])) * 10**9)
    assert cost_nano > 0
    balance, reserved, ledger_sum, reserved_sum = await sums(t, account_id)
    assert before[0] - balance == cost_nano  # the answer's cost is what the ledger took, once
    assert reserved == 0 and reserved_sum == 0 and balance == ledger_sum


async def test_http_lists_every_tool_and_charges_a_chat_exactly(server: Tollway) -> None:
    account_id, key = server.funded("1.00")
    async with over_http(server, key) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == TOOLS
        chat = next(t for t in (await client.list_tools()).tools if t.name == "chat")
        assert chat.description and "messages" in chat.input_schema["required"]
        await charged_chat(server, client, account_id)
        balance = await client.call_tool("balance", {})
        assert not balance.is_error, text_of(balance)


async def test_stdio_lists_every_tool_and_charges_a_chat_exactly(tollway: Tollway) -> None:
    account_id, key = tollway.funded("1.00")
    async with over_stdio(tollway, key) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
        await charged_chat(tollway, client, account_id)


async def test_admin_tools_are_refused_to_an_inference_key_and_work_for_an_admin_key(server: Tollway) -> None:
    account_id, key = server.funded("1.00")
    async with over_http(server, key) as client:
        for tool, arguments in (("list_keys", {}), ("create_key", {"label": "x"}), ("usage_by_key", {})):
            refused = await client.call_tool(tool, arguments)
            assert refused.is_error, tool
            assert "HTTP 40" in text_of(refused)
    admin = server.new_key(account_id, scope="admin")
    async with over_http(server, admin) as client:
        made = await client.call_tool("create_key", {"label": "from-mcp"})
        assert not made.is_error, text_of(made)
        listed = await client.call_tool("list_keys", {})
        assert "from-mcp" in str(listed.structured_content)


async def test_a_bad_argument_is_a_tool_error_and_nothing_is_charged(server: Tollway) -> None:
    account_id, key = server.funded("1.00")
    before = await sums(server, account_id)
    async with over_http(server, key) as client:
        wrong_type = await client.call_tool("chat", {"model": "smollm2-135m", "messages": "hello"})
        assert wrong_type.is_error and "messages" in text_of(wrong_type)
        unknown = await client.call_tool("chat", {"model": "no-such-model", "messages": HELLO})
        assert unknown.is_error and "HTTP 400 INVALID_MODEL" in text_of(unknown)
        too_long = await client.call_tool(
            "generate_image", {"model": "local-procedural", "prompt": "x" * 1501}
        )
        assert too_long.is_error
        still_serving = await client.call_tool("list_models", {"type": "embedding"})
        assert not still_serving.is_error
        assert "minilm-l6-v2" in str(still_serving.structured_content)
    assert await sums(server, account_id) == before


async def test_a_keys_rate_limit_is_shared_by_rest_and_mcp_calls(server: Tollway) -> None:
    """One limit, one pipeline: a REST call uses the key's only request this minute, so the MCP call is a 429."""
    account_id, key = server.funded("1.00", rate_limits={"rpm": 1})
    rest = await asyncio.to_thread(
        server.client(key).embeddings.create, model="minilm-l6-v2", input=["the one call this minute"]
    )
    assert rest.data
    after_rest = await sums(server, account_id)
    async with over_http(server, key) as client:
        limited = await client.call_tool("embeddings", {"model": "minilm-l6-v2", "input": ["one too many"]})
    assert limited.is_error and "HTTP 429" in text_of(limited)
    assert await sums(server, account_id) == after_rest  # refused before any hold


async def test_an_empty_balance_is_a_402_tool_error_before_any_model_runs(server: Tollway) -> None:
    account_id, key = server.funded("0")
    async with over_http(server, key) as client:
        refused = await client.call_tool("chat", {"model": "smollm2-135m", "messages": HELLO})
    assert refused.is_error and "HTTP 402" in text_of(refused)
    balance, reserved, ledger_sum, _ = await sums(server, account_id)
    assert balance == 0 and reserved == 0 and ledger_sum == 0


async def test_media_comes_back_as_mcp_content_and_resources_read(tollway: Tollway) -> None:
    _, key = tollway.funded("1.00")
    async with over_http(tollway, key) as client:
        image = await client.call_tool(
            "generate_image",
            {"model": "local-procedural", "prompt": "a red square", "width": 64, "height": 64},
        )
        assert not image.is_error, text_of(image)
        assert image.content[0].type == "image" and image.content[0].mime_type == "image/png"
        spoken = await client.call_tool(
            "speech", {"model": "local-tts", "input": "Hello world.", "response_format": "wav"}
        )
        assert not spoken.is_error, text_of(spoken)
        assert spoken.content[0].type == "audio" and spoken.content[0].mime_type.startswith("audio/")
        heard = await client.call_tool(
            "transcribe", {"model": "whisper-1", "audio_base64": spoken.content[0].data, "filename": "a.wav"}
        )
        assert not heard.is_error, text_of(heard)
        assert "hello" in str(heard.structured_content).lower()
        catalog = await client.read_resource("tollway://catalog/text")
        assert "smollm2-135m" in catalog.contents[0].text  # type: ignore[union-attr]
        reference = await client.read_resource("tollway://reference/llms.txt")
        assert reference.contents[0].text.startswith("# Tollway")  # type: ignore[union-attr]


def test_mcp_needs_a_valid_key(tollway: Tollway) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    accept = {"accept": "application/json, text/event-stream"}
    assert httpx2.post(f"{tollway.url}/mcp", json=initialize, headers=accept).status_code == 401
    bad = {**accept, "authorization": "Bearer tw_not-a-key"}
    assert httpx2.post(f"{tollway.url}/mcp", json=initialize, headers=bad).status_code == 401


def test_llms_full_names_every_openapi_path(tollway: Tollway) -> None:
    spec = httpx2.get(f"{tollway.url}/openapi.json").json()
    full = httpx2.get(f"{tollway.url}/llms-full.txt")
    assert full.status_code == 200 and full.headers["content-type"].startswith("text/markdown")
    for path, operations in spec["paths"].items():
        for method in operations:
            assert f"### {method.upper()} {path}\n" in full.text, (method, path)
    index = httpx2.get(f"{tollway.url}/llms.txt").text
    assert index.startswith("# Tollway\n\n> ") and "(/llms-full.txt#post-v1-chat-completions)" in index


def test_docs_export_writes_the_served_documents_and_mcp_needs_a_key(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO / "src"))}
    env.pop("TOLLWAY_API_KEY", None)
    run = [sys.executable, "-m", "tollway"]
    done = subprocess.run(
        [*run, "docs", "export", str(tmp_path / "site")], env=env, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0
    spec = json.loads((tmp_path / "site" / "openapi.json").read_text())
    full = (tmp_path / "site" / "llms-full.txt").read_text()
    assert all(f"### {m.upper()} {p}\n" in full for p, ops in spec["paths"].items() for m in ops)
    assert (tmp_path / "site" / "llms.txt").read_text().startswith("# Tollway\n")
    refused = subprocess.run(
        [*run, "mcp"],
        env=env,
        cwd=tmp_path,
        timeout=60,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode == 2 and "TOLLWAY_API_KEY" in refused.stderr
