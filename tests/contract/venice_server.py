"""The Venice conformance server: `tollway serve` with the shipped catalog (embedded models only), an
account with credit, an inference key and an admin key; and one run of every documented probe on it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.contract.servers import REPO, Tollway, start_tollway
from tests.contract.venice_run import Answer, Context, run
from tests.support.processes import start_fake

FIGURES_PATH = REPO / "docs" / "venice-conformance.json"
DEFAULT_CATALOG = REPO / "catalog" / "default.yaml"
# A run sends ~150 requests, many of them bad on purpose, from two keys: rate limits and the
# failed-request limit would answer 429 to what is being measured.
UNLIMITED = {"rpm": 1_000_000, "rpd": 1_000_000, "tpm": 1_000_000_000}
# Chat is asked of the fake OpenAI upstream (wire level), the rest of the embedded engines: the
# embedded LLM takes seconds a request on a busy machine, and chat has a probe per enum value.
FAKE_CHAT = {
    "id": "fake-chat",
    "type": "text",
    "routes": [{"provider": "fake", "model": "gpt-4o-mini"}],
    "pricing": {"input": "1.00", "output": "2.00"},
    "max_output_tokens": 1000,
}


def conformance_catalog(fake_url: str) -> str:
    catalog = yaml.safe_load(DEFAULT_CATALOG.read_text())
    catalog["providers"].append(
        {"id": "fake", "kind": "openai", "base_url": f"{fake_url}/v1", "api_key_env": "FAKE_UPSTREAM_KEY"}
    )
    catalog["models"].append(FAKE_CHAT)
    return yaml.safe_dump(catalog)


def conformance_context(server: Tollway) -> Context:
    account_id = server.new_account("50.00")
    return Context(
        url=server.url,
        inference_key=server.new_key(account_id, rate_limits=UNLIMITED),
        admin_key=server.new_key(account_id, scope="admin", rate_limits=UNLIMITED),
        wallet_key="0x" + secrets.token_hex(32),
    )


def x402_env() -> dict[str, str]:
    """x402 on, for Base USDC: the probes (402 requirements, a signed-in wallet's balance and
    transactions) never reach the chain, so its RPC URL is a closed port. Settlement is test_x402.py's."""
    return {
        "TOLLWAY_X402_PAY_TO": "0x" + "5e" * 20,
        "TOLLWAY_CHAIN_RPC_URL": "http://127.0.0.1:9",
        "TOLLWAY_USDC_CONTRACT": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        "TOLLWAY_X402_SETTLEMENT_KEY": "0x" + secrets.token_hex(32),
    }


def conformance_run(
    tmp: Path, on_answer: Callable[[Answer], None] | None = None
) -> tuple[set[str], list[Answer]]:
    """Start the servers in `tmp`, run every probe, stop them."""
    with (
        start_fake("tests.fakes.openai_upstream") as fake,
        start_fake("tests.fakes.search_upstream") as search,
        start_fake("tests.fakes.rpc_node") as node,
    ):
        database_url = f"sqlite:///{tmp}/tollway.db"
        catalog = tmp / "venice.yaml"
        catalog.write_text(conformance_catalog(fake.base_url))
        env = {
            "TOLLWAY_CONFIG": str(catalog),
            "TOLLWAY_FAILED_REQUEST_LIMIT": "false",
            "TOLLWAY_SEARCH_URL": f"{search.base_url}/search",  # augment/search's backend (a fake SearXNG)
            # crypto/rpc/{network}: the document's example network, on a fake JSON-RPC node
            "TOLLWAY_CRYPTO_RPC_NETWORKS": json.dumps({"ethereum-mainnet": f"{node.base_url}/rpc"}),
            "TOLLWAY_WEB3_KEYS": "true",  # api_keys/generate_web3_key: off by default, checked here
            **x402_env(),
        }
        process = start_tollway(tmp, fake.base_url, database_url, env)
        try:
            return run(conformance_context(Tollway(process, database_url, fake.base_url)), on_answer)
        finally:
            process.stop()
