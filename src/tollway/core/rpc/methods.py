"""Venice's JSON-RPC method table and credit arithmetic (its OpenAPI document, `POST /crypto/rpc/{network}`).

Credits of one call = `baseCredits[chain] × methodTier`: base 20 for the EVM chains and Starknet, 30 for
zkSync Era and Solana; tier 1 (standard), 2 (advanced: `trace_*`, `debug_*`, `arbtrace_*`,
`txpool_inspect`, `txpool_status`) or 4 (large: the trace replays, `txpool_content`, Solana's
`getLargestAccounts` and `getSupply`). An item the node answers with a JSON-RPC `error` costs 5 credits
instead. Methods are allow-listed: stateful filters (`eth_newFilter` …: their state lives on one backend
of a load-balanced node) and WebSocket-only subscriptions are refused with why, and so is any method
not in the table or of another chain family (an `eth_*` call to Starknet). A batch with one refused
method is refused whole, before anything is held or sent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from tollway.errors import ErrorCode, TollwayError

STANDARD, ADVANCED, LARGE = 1, 2, 4
ERROR_CREDITS = 5  # an item the node answered with a JSON-RPC error, whatever its tier
MAX_BATCH = 100
Family = Literal["evm", "starknet", "solana"]

EVM_STANDARD = frozenset(
    {
        *("eth_blockNumber", "eth_call", "eth_chainId", "eth_estimateGas", "eth_feeHistory", "eth_gasPrice"),
        *("eth_getBalance", "eth_getBlockByHash", "eth_getBlockByNumber", "eth_getBlockReceipts"),
        *("eth_getBlockTransactionCountByHash", "eth_getBlockTransactionCountByNumber", "eth_getCode"),
        *("eth_getLogs", "eth_getProof", "eth_getStorageAt", "eth_getTransactionByBlockHashAndIndex"),
        *("eth_getTransactionByBlockNumberAndIndex", "eth_getTransactionByHash", "eth_getTransactionCount"),
        *(
            "eth_getTransactionReceipt",
            "eth_getUncleByBlockHashAndIndex",
            "eth_getUncleByBlockNumberAndIndex",
        ),
        *("eth_getUncleCountByBlockHash", "eth_getUncleCountByBlockNumber", "eth_maxPriorityFeePerGas"),
        *("eth_blobBaseFee", "eth_protocolVersion", "eth_sendRawTransaction", "eth_syncing"),
        *("eth_createAccessList", "eth_simulateV1", "net_version", "net_listening", "net_peerCount"),
        *("web3_clientVersion", "web3_sha3"),
        # ERC-4337 bundler methods
        *("eth_sendUserOperation", "eth_estimateUserOperationGas", "eth_getUserOperationByHash"),
        *("eth_getUserOperationReceipt", "eth_supportedEntryPoints"),
    }
)
EVM_EXTENSIONS = ("zks_", "linea_", "bor_")  # chain-family extensions, standard tier
EVM_ADVANCED = ("trace_", "debug_", "arbtrace_")
EVM_LARGE = frozenset({"trace_replayBlockTransactions", "trace_replayTransaction", "txpool_content"})
SOLANA = frozenset(
    {
        *("getAccountInfo", "getBalance", "getBlock", "getBlockCommitment", "getBlockHeight"),
        *("getBlockProduction", "getBlockTime", "getBlocks", "getBlocksWithLimit", "getClusterNodes"),
        *("getEpochInfo", "getEpochSchedule", "getFeeForMessage", "getFirstAvailableBlock"),
        *("getGenesisHash", "getHealth", "getHighestSnapshotSlot", "getIdentity", "getInflationGovernor"),
        *("getInflationRate", "getInflationReward", "getLatestBlockhash", "getLeaderSchedule"),
        *("getMaxRetransmitSlot", "getMaxShredInsertSlot", "getMinimumBalanceForRentExemption"),
        *("getMultipleAccounts", "getProgramAccounts", "getRecentPerformanceSamples"),
        *("getRecentPrioritizationFees", "getSignatureStatuses", "getSignaturesForAddress", "getSlot"),
        *("getSlotLeader", "getSlotLeaders", "getStakeMinimumDelegation", "getTokenAccountBalance"),
        *("getTokenAccountsByDelegate", "getTokenAccountsByOwner", "getTokenLargestAccounts"),
        *("getTokenSupply", "getTransaction", "getTransactionCount", "getVersion", "getVoteAccounts"),
        *(
            "isBlockhashValid",
            "minimumLedgerSlot",
            "requestAirdrop",
            "sendTransaction",
            "simulateTransaction",
        ),
    }
)
SOLANA_LARGE = frozenset({"getLargestAccounts", "getSupply"})
FILTERS = frozenset(
    {
        *("eth_newFilter", "eth_newBlockFilter", "eth_newPendingTransactionFilter"),
        *("eth_getFilterChanges", "eth_getFilterLogs", "eth_uninstallFilter"),
    }
)
STATEFUL = "a stateful filter method, not supported behind a load-balanced HTTP proxy: use eth_getLogs"
WEBSOCKET = "WebSocket-only: this proxy is HTTP-only"


def family(network: str) -> Family:
    """The chain family of a Venice network slug (`starknet-mainnet`, `solana-devnet`, `base-sepolia` …)."""
    if network.startswith("starknet-"):
        return "starknet"
    if network.startswith("solana-"):
        return "solana"
    return "evm"


def base_credits(network: str) -> int:
    return 30 if network.startswith(("zksync-", "solana-")) else 20


def tier(method: str, chain: Family) -> int | str:
    """The method's pricing tier on `chain`, or why it is refused."""
    if method in FILTERS:
        return STATEFUL
    if method in ("eth_subscribe", "eth_unsubscribe") or method.endswith(("Subscribe", "Unsubscribe")):
        return WEBSOCKET
    if chain == "solana":
        return LARGE if method in SOLANA_LARGE else STANDARD if method in SOLANA else _unmapped(chain)
    if chain == "starknet":
        return STANDARD if method.startswith("starknet_") else _unmapped(chain)
    if method in EVM_LARGE or method.startswith("arbtrace_replay"):
        return LARGE
    if method.startswith(EVM_ADVANCED) or method in ("txpool_inspect", "txpool_status"):
        return ADVANCED
    if method in EVM_STANDARD or method.startswith(EVM_EXTENSIONS):
        return STANDARD
    return _unmapped(chain)


def _unmapped(chain: Family) -> str:
    return f"not a method this proxy serves on {'an EVM' if chain == 'evm' else 'a ' + chain.title()} network"


@dataclass(frozen=True, slots=True)
class Calls:
    """A checked request: its items as the node is sent them, and each item's credits if it succeeds."""

    items: list[dict[str, Any]]
    batch: bool
    credits: list[int]

    @property
    def worst_case(self) -> int:
        """What the hold covers: every item at its full tier (an error item costs less)."""
        return sum(self.credits)

    def body(self) -> Any:
        return self.items if self.batch else self.items[0]


def _bad(message: str, param: str | None = None) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


def _item(raw: Any, at: str, position: int) -> dict[str, Any]:
    """One JSON-RPC 2.0 request object, with `jsonrpc` filled in when the caller left it out, and `id`:
    a call without one would be a notification, which a node answers with nothing — nothing to relay,
    yet the node did the work — while Venice's answers always carry an id. It gets its position
    (from 1: a single call's is 1)."""
    if not isinstance(raw, dict):
        raise _bad(f"Each batch item must be a JSON-RPC 2.0 request object; {at or 'the body'} is not.", at)
    if not isinstance(raw.get("method"), str) or not raw["method"]:
        raise _bad("`method` is required: the JSON-RPC method name, a string.", f"{at}.method")
    if raw.get("jsonrpc", "2.0") != "2.0":
        raise _bad('`jsonrpc` must be "2.0": this proxy speaks JSON-RPC 2.0.', f"{at}.jsonrpc")
    if "params" in raw and not isinstance(raw["params"], list | dict):
        raise _bad("`params` must be an array (or an object of named parameters).", f"{at}.params")
    ident = raw.get("id")
    if isinstance(ident, bool) or not isinstance(ident, int | str | None):
        raise _bad("`id` must be an integer or a string.", f"{at}.id")
    return {"jsonrpc": "2.0", **raw} if "id" in raw else {"jsonrpc": "2.0", **raw, "id": position}


def check(body: Any, network: str) -> Calls:
    """The request checked whole (shape, batch size, every method): a 400 before anything is held."""
    batch = isinstance(body, list)
    if not batch and not isinstance(body, dict):
        raise _bad(f"Send a JSON-RPC 2.0 request object, or a batch: an array of 1 to {MAX_BATCH} of them.")
    raws: list[Any] = body if batch else [body]
    if not raws or len(raws) > MAX_BATCH:
        raise _bad(f"A batch holds 1 to {MAX_BATCH} requests; this one has {len(raws)}.")
    items = [_item(raw, f"[{i}]" if batch else "", i + 1) for i, raw in enumerate(raws)]
    chain, base = family(network), base_credits(network)
    tiers = [tier(item["method"], chain) for item in items]
    refused = {item["method"]: why for item, why in zip(items, tiers, strict=True) if isinstance(why, str)}
    if refused:
        listed = "; ".join(f"{method} ({why})" for method, why in refused.items())
        raise TollwayError(
            ErrorCode.VALIDATION,
            f"Unsupported method{'s' if len(refused) > 1 else ''} for {network}: {listed}. "
            "Nothing was sent or charged.",
            extra={"unsupported_methods": sorted(refused)},
        )
    return Calls(items, batch, [base * t for t in tiers if isinstance(t, int)])


def _id_key(value: Any) -> str:
    return f"{type(value).__name__}:{value}"


def credits(calls: Calls, answer: Any) -> int:
    """What the node's answer earned: each item its full credits, or 5 when the node answered it with
    a JSON-RPC `error` (matched by `id`). One error object answering the whole request (a node that
    refused the batch, or a single call's error) puts every item at 5."""
    answers = answer if isinstance(answer, list) else [answer]
    whole = isinstance(answer, dict) and "error" in answer and (not calls.batch or answer.get("id") is None)
    if whole:
        return ERROR_CREDITS * len(calls.items)
    failed = Counter(_id_key(a.get("id")) for a in answers if isinstance(a, dict) and "error" in a)
    total = 0
    for item, full in zip(calls.items, calls.credits, strict=True):
        key = _id_key(item.get("id"))
        if failed[key] > 0:
            failed[key] -= 1
            total += ERROR_CREDITS
        else:
            total += full
    return total
