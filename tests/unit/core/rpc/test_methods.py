"""Venice's JSON-RPC method table and credits (core/rpc/methods.py), by the document's lists."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from tollway.core.money.prices import rpc_cost, usd_8, usd_to_nano
from tollway.core.rpc import methods
from tollway.errors import TollwayError
from tollway.settings import Settings

FINE = {"evm": "eth_blockNumber", "solana": "getSlot", "starknet": "starknet_chainId"}  # a batch's good item


def call(method: str, ident: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": [], "id": ident}


@pytest.mark.parametrize(
    ("network", "method", "credits"),
    [
        ("ethereum-mainnet", "eth_call", 20),
        ("base-sepolia", "eth_getBalance", 20),
        ("ethereum-mainnet", "eth_sendUserOperation", 20),  # ERC-4337
        ("zksync-mainnet", "zks_getL1BatchNumber", 30),
        ("zksync-sepolia", "eth_blockNumber", 30),
        ("linea-mainnet", "linea_estimateGas", 20),
        ("polygon-mainnet", "bor_getAuthor", 20),
        ("starknet-mainnet", "starknet_blockNumber", 20),
        ("solana-mainnet", "getAccountInfo", 30),
        ("ethereum-mainnet", "trace_block", 40),
        ("ethereum-mainnet", "debug_traceTransaction", 40),
        ("arbitrum-mainnet", "arbtrace_block", 40),
        ("ethereum-mainnet", "txpool_status", 40),
        ("ethereum-mainnet", "txpool_inspect", 40),
        ("ethereum-mainnet", "trace_replayBlockTransactions", 80),
        ("ethereum-mainnet", "trace_replayTransaction", 80),
        ("ethereum-mainnet", "txpool_content", 80),
        ("arbitrum-mainnet", "arbtrace_replayTransaction", 80),
        ("solana-devnet", "getLargestAccounts", 120),
        ("solana-mainnet", "getSupply", 120),
    ],
)
def test_credits_are_base_times_tier(network: str, method: str, credits: int) -> None:
    assert methods.check(call(method), network).worst_case == credits


@pytest.mark.parametrize(
    ("network", "method", "why"),
    [
        ("ethereum-mainnet", "eth_newFilter", "eth_getLogs"),
        ("ethereum-mainnet", "eth_newBlockFilter", "stateful"),
        ("ethereum-mainnet", "eth_getFilterLogs", "stateful"),
        ("ethereum-mainnet", "eth_subscribe", "WebSocket-only"),
        ("ethereum-mainnet", "eth_unsubscribe", "WebSocket-only"),
        ("solana-mainnet", "slotSubscribe", "WebSocket-only"),
        ("solana-mainnet", "accountUnsubscribe", "WebSocket-only"),
        ("starknet-mainnet", "eth_call", "Starknet"),
        ("solana-mainnet", "eth_blockNumber", "Solana"),
        ("ethereum-mainnet", "getBalance", "EVM"),
        ("ethereum-mainnet", "eth_sign", "EVM"),
        ("ethereum-mainnet", "personal_unlockAccount", "EVM"),
    ],
)
def test_refused_methods_say_why(network: str, method: str, why: str) -> None:
    with pytest.raises(TollwayError) as refused:
        methods.check([call(FINE[methods.family(network)], 0), call(method)], network)
    assert refused.value.status == 400
    assert refused.value.extra == {"unsupported_methods": [method]}
    assert why in refused.value.message and method in refused.value.message


def test_jsonrpc_is_filled_in_and_the_body_keeps_its_shape() -> None:
    single = methods.check({"method": "eth_chainId", "id": 7}, "base-mainnet")
    assert single.body() == {"jsonrpc": "2.0", "method": "eth_chainId", "id": 7}
    # No `id` (a notification, which a node would answer with nothing): its position, from 1.
    assert methods.check({"method": "eth_chainId"}, "base-mainnet").body()["id"] == 1
    numbered = methods.check(
        [{"method": "eth_chainId"}, call("eth_call", None), {"method": "net_version"}], "x"
    )
    assert [item["id"] for item in numbered.items] == [1, None, 3]
    batch = methods.check([call("eth_chainId")], "base-mainnet")
    assert batch.batch and batch.body() == [call("eth_chainId")]


def test_an_error_item_costs_five_credits_matched_by_id() -> None:
    calls = methods.check(
        [call("trace_block", 1), call("eth_call", "b"), call("txpool_content", 3)], "base-mainnet"
    )
    answer = [
        {"jsonrpc": "2.0", "id": 3, "error": {"code": -32601, "message": "method not found"}},
        {"jsonrpc": "2.0", "id": 1, "result": []},
        {"jsonrpc": "2.0", "id": "b", "result": "0x"},
    ]
    assert methods.credits(calls, answer) == 40 + 20 + 5
    assert methods.credits(calls, [{"id": 1, "result": []}, {"id": "b"}, {"id": 3}]) == 40 + 20 + 80


def test_one_error_for_the_whole_request_puts_every_item_at_five() -> None:
    whole = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}}
    assert (
        methods.credits(methods.check([call("eth_call", 1), call("trace_block", 2)], "base-mainnet"), whole)
        == 10
    )
    single = methods.check(call("trace_replayTransaction"), "base-mainnet")
    assert methods.credits(single, {"jsonrpc": "2.0", "id": 1, "error": {"code": 3, "message": "x"}}) == 5
    assert methods.credits(single, {"jsonrpc": "2.0", "id": 1, "result": {}}) == 80


def test_an_error_never_costs_more_than_the_hold() -> None:
    cheapest = min(methods.base_credits(n) for n in ("base-mainnet", "solana-mainnet", "zksync-era"))
    assert cheapest * methods.STANDARD > methods.ERROR_CREDITS


def test_the_credit_price_setting_is_whole_nano_usd() -> None:
    price = usd_to_nano(Settings().crypto_rpc_credit_usd)
    assert price == 700  # Venice's ~7e-7 USD
    assert usd_8(rpc_cost(20, price)) == "0.00001400" and usd_8(rpc_cost(80, price)) == "0.00005600"
    assert Settings(crypto_rpc_credit_usd=Decimal("0.000000001")).crypto_rpc_credit_usd == Decimal("1e-9")
    with pytest.raises(ValidationError, match="9 decimals"):
        Settings(crypto_rpc_credit_usd=Decimal("0.0000000005"))
