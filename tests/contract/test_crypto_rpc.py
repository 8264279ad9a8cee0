"""Venice's crypto JSON-RPC proxy (issue 23, `POST /api/v1/crypto/rpc/{network}`) on a real server.

The nodes are real wire protocol: eth-tester's EVM behind JSON-RPC (tests/fakes/chain/, the x402 and
deposit tests' node) for Ethereum and zkSync, and tests/fakes/rpc_node.py for what eth-tester does not
answer (traces, txpool, Solana). Money is exact in nano-USD: a credit is 700 nano-USD (Venice's 7e-7
USD, the default), a call `baseCredits × tier`, a JSON-RPC error item 5 credits; every refusal is its
documented status and charges nothing; no answer or log line names a node URL (they carry keys).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway, start_tollway
from tests.contract.venice_spec import documented as venice_documented
from tests.fakes.chain.eip3009_chain import LocalChain
from tests.support.databases import query
from tests.support.processes import ServerProcess, start_fake

pytestmark = pytest.mark.slow
CREDIT_NANO = 700
SECRET = "key-SECRET"  # every node URL holds it, as a provider's key would be
ANSWERS: list[httpx2.Response] = []  # every answer of the module, checked for node URLs at the end


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    local = LocalChain()
    yield local
    local.close()


@pytest.fixture(scope="module")
def node() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.rpc_node") as process:
        yield process


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    fake_upstream: ServerProcess,
    chain: LocalChain,
    node: ServerProcess,
) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp("crypto-rpc")
    database_url = f"sqlite:///{tmp}/tollway.db"
    networks = {
        "ethereum-mainnet": f"{chain.url}/v2/{SECRET}-eth",
        "zksync-mainnet": f"{chain.url}/{SECRET}-zk",
        "arbitrum-mainnet": f"{node.base_url}/{SECRET}-arb",
        "solana-mainnet": f"{node.base_url}/?api-key={SECRET}-sol",
        "starknet-mainnet": f"{node.base_url}/{SECRET}-stark",
        "base-mainnet": f"http://127.0.0.1:9/{SECRET}-down",  # a node that is down
        "linea-mainnet": f"{node.base_url}/html/{SECRET}-html",  # a node that answers an HTML page
    }
    env = {"TOLLWAY_CRYPTO_RPC_NETWORKS": json.dumps(networks), "TOLLWAY_FAILED_REQUEST_LIMIT": "false"}
    process = start_tollway(tmp, fake_upstream.base_url, database_url, env)
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


def rpc(server: Tollway, network: str, body: Any, key: str | None, **headers: str) -> httpx2.Response:
    auth = {"authorization": f"Bearer {key}"} if key else {}
    answer = httpx2.post(
        f"{server.url}/api/v1/crypto/rpc/{network}", json=body, headers={**auth, **headers}, timeout=60
    )
    ANSWERS.append(answer)
    return answer


def call(method: str, params: list[Any] | None = None, ident: int | str = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params or [], "id": ident}


def documented(answer: httpx2.Response) -> Any:
    return venice_documented("POST /crypto/rpc/{network}", answer)


def charged(server: Tollway, account_id: str) -> int:
    """What the account was charged so far (it starts with 1.00 USD)."""
    return 1_000_000_000 - server.ledger_sums(account_id)[0]


def usage_row(server: Tollway, answer: httpx2.Response) -> tuple[Any, ...]:
    [row] = query(
        server.database_url,
        "select model, endpoint, provider, units, cost_nano, outcome, status_code from usage where request_id = ?",
        answer.headers["x-request-id"],
    )
    return row


def node_methods(node: ServerProcess) -> list[str]:
    return list(httpx2.get(f"{node.base_url}/_fake/stats").json()["methods"])


def test_a_single_call_is_charged_base_credits_times_its_tier(server: Tollway, chain: LocalChain) -> None:
    account_id, key = server.funded("1.00")
    answer = rpc(server, "ethereum-mainnet", call("eth_blockNumber"), key)
    assert answer.status_code == 200, answer.text
    body = documented(answer)
    assert body["jsonrpc"] == "2.0" and body["id"] == 1 and int(body["result"], 16) >= 0
    assert answer.headers["x-venice-rpc-credits"] == "20"
    assert answer.headers["x-venice-rpc-cost-usd"] == "0.00001400"  # the document's ≈ $0.000014
    assert answer.headers["x-tollway-cost-usd"] == "0.000014000"
    assert charged(server, account_id) == 20 * CREDIT_NANO
    assert usage_row(server, answer) == (
        "crypto-rpc",
        "crypto/rpc",
        "ethereum-mainnet",
        20,
        14_000,
        "completed",
        200,
    )
    zk = rpc(server, "zksync-mainnet", call("eth_chainId", ident="zk"), key)  # zkSync's base is 30
    assert zk.status_code == 200 and zk.json()["id"] == "zk"
    assert zk.headers["x-venice-rpc-credits"] == "30"
    assert charged(server, account_id) == 50 * CREDIT_NANO


def test_a_private_only_key_may_call_the_proxy(server: Tollway) -> None:
    """modelPrivacy says which models may see a key's prompts; no model sees a JSON-RPC call."""
    account_id, key = server.funded("1.00", model_privacy="PRIVATE_ONLY")
    answer = rpc(server, "ethereum-mainnet", call("eth_blockNumber"), key)
    assert answer.status_code == 200, answer.text
    assert charged(server, account_id) == 20 * CREDIT_NANO


def test_a_call_without_jsonrpc_or_id_is_answered_with_its_position_as_id(server: Tollway) -> None:
    """Venice's document requires only `method`; without an `id` a node would answer nothing."""
    account_id, key = server.funded("1.00")
    answer = rpc(server, "ethereum-mainnet", {"method": "eth_chainId"}, key)
    assert answer.status_code == 200, answer.text
    assert documented(answer)["id"] == 1
    batch = rpc(server, "ethereum-mainnet", [{"method": "eth_chainId"}, {"method": "net_version"}], key)
    assert [item["id"] for item in documented(batch)] == [1, 2]
    assert charged(server, account_id) == 60 * CREDIT_NANO


def test_a_batch_of_mixed_tiers_is_charged_the_sum(server: Tollway, node: ServerProcess) -> None:
    account_id, key = server.funded("1.00")
    batch = [
        call("eth_call", [{"to": "0x" + "11" * 20, "data": "0x"}, "latest"], 1),  # 1×
        call("trace_block", ["latest"], 2),  # 2×
        call("debug_traceTransaction", ["0x" + "00" * 32], 3),  # 2×
        call("trace_replayTransaction", ["0x" + "00" * 32, ["trace"]], 4),  # 4×
        call("txpool_content", [], 5),  # 4×
        call("arbtrace_replayBlockTransactions", ["latest", ["trace"]], 6),  # 4×
        call("txpool_status", [], 7),  # 2×
    ]
    answer = rpc(server, "arbitrum-mainnet", batch, key)
    assert answer.status_code == 200, answer.text
    assert [item["id"] for item in documented(answer)] == [1, 2, 3, 4, 5, 6, 7]
    credits = 20 * (1 + 2 + 2 + 4 + 4 + 4 + 2)
    assert answer.headers["x-venice-rpc-credits"] == str(credits)
    assert charged(server, account_id) == credits * CREDIT_NANO
    solana = rpc(server, "solana-mainnet", [call("getBalance", ["So1ana"], 1), call("getSupply", [], 2)], key)
    assert solana.status_code == 200, solana.text
    assert solana.headers["x-venice-rpc-credits"] == str(30 * (1 + 4))
    assert charged(server, account_id) == (credits + 150) * CREDIT_NANO


def test_a_json_rpc_error_item_is_billed_five_credits(server: Tollway, chain: LocalChain) -> None:
    account_id, key = server.funded("1.00")
    holder = chain.w3.eth.accounts[0]
    batch = [
        call("eth_getBalance", [holder, "latest"], "ok"),
        call("eth_getBalance", ["0xnot", "latest"], "bad"),
    ]
    answer = rpc(server, "ethereum-mainnet", batch, key)
    assert answer.status_code == 200, answer.text
    ok, bad = documented(answer)
    assert int(ok["result"], 16) > 0 and "error" in bad and bad["id"] == "bad"
    assert answer.headers["x-venice-rpc-credits"] == str(20 + 5)
    assert charged(server, account_id) == 25 * CREDIT_NANO
    single = rpc(server, "ethereum-mainnet", call("eth_getBalance", ["0xnot", "latest"]), key)
    assert single.status_code == 200 and "error" in single.json()
    assert single.headers["x-venice-rpc-credits"] == "5"
    assert charged(server, account_id) == 30 * CREDIT_NANO


@pytest.mark.parametrize(
    ("network", "methods", "refused"),
    [
        (
            "ethereum-mainnet",
            ["eth_blockNumber", "eth_newFilter", "eth_subscribe"],
            ["eth_newFilter", "eth_subscribe"],
        ),
        (
            "ethereum-mainnet",
            ["eth_getFilterChanges", "eth_uninstallFilter"],
            ["eth_getFilterChanges", "eth_uninstallFilter"],
        ),
        ("solana-mainnet", ["getBalance", "accountSubscribe"], ["accountSubscribe"]),
        ("starknet-mainnet", ["starknet_blockNumber", "eth_call"], ["eth_call"]),  # EVM on Starknet
        (
            "arbitrum-mainnet",
            ["eth_sign", "personal_sign"],
            ["eth_sign", "personal_sign"],
        ),  # not in the table
    ],
)
def test_a_batch_with_an_unsupported_method_is_refused_whole_and_charges_nothing(
    server: Tollway,
    chain: LocalChain,
    node: ServerProcess,
    network: str,
    methods: list[str],
    refused: list[str],
) -> None:
    account_id, key = server.funded("1.00")
    sent = (len(chain.requests), len(node_methods(node)))
    with untouched(server, account_id):
        answer = rpc(server, network, [call(m, [], i) for i, m in enumerate(methods)], key)
    assert_error(answer, 400, "VALIDATION")
    body = documented(answer)
    assert body["unsupported_methods"] == refused
    assert all(m in body["error"] for m in refused)
    assert (len(chain.requests), len(node_methods(node))) == sent  # nothing reached a node


def test_the_reasons_are_venices(server: Tollway) -> None:
    _, key = server.funded("1.00")
    filters = rpc(server, "ethereum-mainnet", call("eth_newFilter", [{}]), key).json()["error"]
    assert "eth_getLogs" in filters and "stateful" in filters
    assert (
        "HTTP-only"
        in rpc(server, "ethereum-mainnet", call("eth_subscribe", ["newHeads"]), key).json()["error"]
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([call("eth_blockNumber", [], i) for i in range(101)], None),  # over 100
        ([], None),  # an empty batch
        ("eth_blockNumber", None),  # not an object
        ([call("eth_blockNumber"), 7], "[1]"),
        ({"jsonrpc": "1.0", "method": "eth_blockNumber", "id": 1}, "jsonrpc"),
        ({"jsonrpc": "2.0", "id": 1}, "method"),
        ({"jsonrpc": "2.0", "method": "eth_blockNumber", "params": "latest", "id": 1}, "params"),
        ({"jsonrpc": "2.0", "method": "eth_blockNumber", "id": {"x": 1}}, "id"),
        ([call("eth_blockNumber"), {"jsonrpc": "2.0", "id": 2}], "[1].method"),
    ],
)
def test_a_body_that_is_not_json_rpc_2_is_a_400_and_charges_nothing(
    server: Tollway, chain: LocalChain, body: Any, param: str | None
) -> None:
    account_id, key = server.funded("1.00")
    sent = len(chain.requests)
    with untouched(server, account_id):
        answer = rpc(server, "ethereum-mainnet", body, key)
    assert_error(answer, 400, "VALIDATION", param)
    documented(answer)
    assert len(chain.requests) == sent


def test_bytes_that_are_not_json_are_a_400_and_charge_nothing(server: Tollway) -> None:
    account_id, key = server.funded("1.00")
    with untouched(server, account_id):
        answer = httpx2.post(
            f"{server.url}/api/v1/crypto/rpc/ethereum-mainnet",
            content=b'{"jsonrpc": "2.0", "method": ',
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
    ANSWERS.append(answer)
    assert_error(answer, 400, "VALIDATION")


def test_an_unknown_network_is_a_400_naming_the_networks_route(server: Tollway) -> None:
    account_id, key = server.funded("1.00")
    with untouched(server, account_id):
        answer = rpc(server, "dogecoin-mainnet", call("eth_blockNumber"), key)
    assert_error(answer, 400, "VALIDATION", "network")
    assert "/api/v1/crypto/rpc/networks" in documented(answer)["error"]


@pytest.mark.parametrize("network", ["base-mainnet", "linea-mainnet"])
def test_a_node_down_or_answering_html_is_a_502_and_charges_nothing(server: Tollway, network: str) -> None:
    account_id, key = server.funded("1.00")
    with untouched(server, account_id, held_and_released=True):
        answer = rpc(server, network, call("eth_blockNumber"), key)
    assert_error(answer, 502, "UPSTREAM_ERROR")
    assert network in answer.json()["error"] and "Nothing was charged" in answer.json()["error"]
    model, _, provider, units, cost, outcome, status = usage_row(server, answer)
    assert (model, provider, units, cost, outcome, status) == (
        "crypto-rpc",
        network,
        0,
        0,
        "upstream_error",
        502,
    )


def test_an_idempotency_key_replays_the_answer_and_charges_once(server: Tollway, chain: LocalChain) -> None:
    account_id, key = server.funded("1.00")
    first = rpc(server, "ethereum-mainnet", call("eth_blockNumber"), key, **{"Idempotency-Key": "rpc-once-1"})
    sent = len(chain.requests)
    again = rpc(server, "ethereum-mainnet", call("eth_blockNumber"), key, **{"Idempotency-Key": "rpc-once-1"})
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-venice-rpc-credits"] == "20"
    assert "idempotent-replayed" not in first.headers
    assert len(chain.requests) == sent and charged(server, account_id) == 20 * CREDIT_NANO
    with untouched(server, account_id):
        other = rpc(server, "ethereum-mainnet", call("eth_chainId"), key, **{"Idempotency-Key": "rpc-once-1"})
    assert_error(other, 400, "VALIDATION")
    documented(other)


def test_a_balance_that_cannot_pay_the_worst_case_is_a_402_before_the_node(
    server: Tollway, chain: LocalChain
) -> None:
    account_id, key = server.funded("0.000020")  # 20,000 nano-USD: one standard call, not two
    sent = len(chain.requests)
    with untouched(server, account_id):
        answer = rpc(
            server, "ethereum-mainnet", [call("eth_chainId", [], 1), call("eth_blockNumber", [], 2)], key
        )
    assert_error(answer, 402, "INSUFFICIENT_BALANCE")
    documented(answer)
    assert len(chain.requests) == sent


def test_no_key_is_a_401(server: Tollway) -> None:
    answer = rpc(server, "ethereum-mainnet", call("eth_blockNumber"), None)
    assert_error(answer, 401, "AUTHENTICATION_FAILED")
    documented(answer)


def test_the_rate_limit_is_a_429_with_venices_custom_message(server: Tollway) -> None:
    account_id = server.new_account("1.00")
    key = server.new_key(account_id, rate_limits={"rpm": 1})
    assert rpc(server, "ethereum-mainnet", call("eth_blockNumber"), key).status_code == 200
    with untouched(server, account_id):
        answer = rpc(server, "ethereum-mainnet", call("eth_blockNumber"), key)
    assert_error(answer, 429, "RATE_LIMITED")
    assert "Rate limit" in documented(answer)["customMessage"]
    assert answer.headers["retry-after"]
    assert answer.headers["x-ratelimit-limit"] == "1" and answer.headers["x-ratelimit-remaining"] == "0"
    assert int(answer.headers["x-ratelimit-reset"]) > time.time()


def test_no_answer_or_log_line_names_a_node_url(server: Tollway) -> None:
    """Every answer this worker saw (xdist may spread the module's tests over workers, so this test
    makes its own on each path: answered, node down, HTML node, refused method, unknown network), and
    the server's whole log, hold no node URL or key."""
    _, key = server.funded("1.00")
    for network in (
        "ethereum-mainnet",
        "arbitrum-mainnet",
        "solana-mainnet",
        "base-mainnet",
        "linea-mainnet",
    ):
        rpc(server, network, call("eth_blockNumber"), key)
    rpc(server, "ethereum-mainnet", call("eth_newFilter"), key)
    rpc(server, "nowhere-mainnet", call("eth_blockNumber"), key)
    assert {answer.status_code for answer in ANSWERS} >= {200, 400, 502}
    for answer in ANSWERS:
        assert SECRET not in answer.text and SECRET not in str(answer.headers)
        assert "127.0.0.1:9/" not in answer.text
    log = server.process.log_text()
    assert SECRET not in log
