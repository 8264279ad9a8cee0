"""An EVM chain over JSON-RPC (issue 25): `JsonRpc`, the transport both chain rails share; `Chain`, as much
as x402 settlement needs; `ChainReader`, as much as the USDC deposit watcher needs (core/funding/deposits.py).

The relayer (TOLLWAY_X402_SETTLEMENT_KEY) sends the token's `transferWithAuthorization(from, to,
value, validAfter, validBefore, nonce, v, r, s)` — the EIP-3009 function USDC has — and pays its
gas; the payer signed the authorization, so the relayer moves only what was authorized. A dry run
(`eth_call`) first: an authorization the token would refuse (a used nonce, too little balance) costs
no gas. The transaction's hash is known before it is sent (`Signed.tx_hash`), so a caller can record
it first and look the receipt up again after a crash. The key is never logged nor put in an error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx2

from tollway.core.funding.x402_checks import Authorization

# The selectors as constants (a unit test checks them against keccak): eth_abi, eth_account and eth_utils
# cost ~0.5 s at every start, so they are imported only where a rail uses them.
FUNCTION = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
SELECTOR = bytes.fromhex("e3ee160e")  # keccak(FUNCTION)[:4]
STATE_FUNCTION = "authorizationState(address,bytes32)"  # EIP-3009's view of a nonce
STATE_SELECTOR = bytes.fromhex("e94a0102")  # keccak(STATE_FUNCTION)[:4]
ARGUMENT_TYPES = [
    "address",
    "address",
    "uint256",
    "uint256",
    "uint256",
    "bytes32",
    "uint8",
    "bytes32",
    "bytes32",
]


class ChainError(Exception):
    """The chain could not be reached (`answered` False) or answered an error (the message has no secret)."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class Reverted(Exception):
    """The token refused the authorization (dry run or mined): nothing moved."""


@dataclass(frozen=True, slots=True)
class Signed:
    raw: str  # 0x… the signed transaction
    tx_hash: str  # 0x… lower-case


def call_data(auth: Authorization) -> str:
    sig = auth.signature
    v = sig[64] if sig[64] >= 27 else sig[64] + 27
    args = [auth.payer, auth.to, auth.value, auth.valid_after, auth.valid_before]
    args += [bytes.fromhex(auth.nonce[2:]), v, sig[:32], sig[32:64]]
    from eth_abi.abi import encode

    return "0x" + (SELECTOR + encode(ARGUMENT_TYPES, args)).hex()


class JsonRpc:
    """One node's JSON-RPC over HTTP. Errors name the method, never the URL (it may carry an API key)."""

    def __init__(self, rpc_url: str, *, timeout: float = 30.0) -> None:
        self._url = rpc_url
        self._client = httpx2.AsyncClient(timeout=timeout)
        self._ids = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def rpc(self, method: str, params: list[Any]) -> Any:
        self._ids += 1
        try:
            answer = await self._client.post(
                self._url, json={"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
            )
            body = answer.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise ChainError(
                f"{method}: the chain's JSON-RPC did not answer ({type(exc).__name__})"
            ) from None
        if not isinstance(body, dict):
            raise ChainError(f"{method}: an unreadable JSON-RPC answer")
        if body.get("error") is not None:
            error = body["error"]
            message = str(error.get("message", error) if isinstance(error, dict) else error)[:200]
            if "revert" in message.lower() or method == "eth_estimateGas":
                raise Reverted(message)
            raise ChainError(f"{method}: {message}", answered=True)
        return body.get("result")


class ChainReader(JsonRpc):
    """What the deposit watcher reads: the head, a contract's logs in a bounded range, a block's hash."""

    async def block_number(self) -> int:
        return _quantity(await self.rpc("eth_blockNumber", []), "eth_blockNumber")

    async def logs(self, address: str, first: int, last: int, topics: list[Any]) -> list[dict[str, Any]]:
        found = await self.rpc(
            "eth_getLogs",
            [{"address": address, "fromBlock": hex(first), "toBlock": hex(last), "topics": topics}],
        )
        if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
            raise ChainError("eth_getLogs: an unreadable answer", answered=True)
        return found

    async def block_hash(self, number: int) -> str | None:
        """The canonical block's hash at `number` now (lower-case 0x…), None when there is none yet."""
        block = await self.rpc("eth_getBlockByNumber", [hex(number), False])
        if not isinstance(block, dict) or not isinstance(block.get("hash"), str):
            return None
        return str(block["hash"]).lower()


def _quantity(value: Any, method: str) -> int:
    try:
        return int(str(value), 16)
    except ValueError:
        raise ChainError(f"{method}: an unreadable quantity", answered=True) from None


class Chain(JsonRpc):
    def __init__(self, rpc_url: str, chain_id: int, asset: str, key: str, *, timeout: float = 30.0) -> None:
        super().__init__(rpc_url, timeout=timeout)
        self._chain_id = chain_id
        self._asset = asset
        from eth_account import Account

        self._account = Account.from_key(key)
        self._send_lock = asyncio.Lock()  # one relayer nonce at a time in this process

    @property
    def relayer(self) -> str:
        return str(self._account.address)

    async def dry_run(self, auth: Authorization) -> int:
        """The gas the settlement needs; Reverted if the token would refuse it."""
        tx = {"from": self.relayer, "to": self._asset, "data": call_data(auth)}
        await self.rpc("eth_call", [tx, "latest"])
        return int(await self.rpc("eth_estimateGas", [tx]), 16)

    async def sign(self, auth: Authorization, gas: int) -> Signed:
        """The settlement, signed with the relayer's next nonce (hold `sending` from here to `send`)."""
        from eth_utils.address import to_checksum_address

        nonce = int(await self.rpc("eth_getTransactionCount", [self.relayer, "pending"]), 16)
        gas_price = int(await self.rpc("eth_gasPrice", []), 16)
        tx = {  # EIP-1559 (type 2), as Base expects; the tip at most the going price
            "type": 2,
            "to": to_checksum_address(self._asset),
            "data": call_data(auth),
            "value": 0,
            "gas": gas + gas // 5,
            "maxFeePerGas": 2 * gas_price,
            "maxPriorityFeePerGas": min(gas_price, 10**9),
            "nonce": nonce,
            "chainId": self._chain_id,
        }
        signed = self._account.sign_transaction(tx)
        return Signed("0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex())

    @property
    def sending(self) -> asyncio.Lock:
        return self._send_lock

    async def send(self, signed: Signed) -> None:
        await self.rpc("eth_sendRawTransaction", [signed.raw])

    async def receipt(self, tx_hash: str) -> bool | None:
        """True: mined and succeeded; False: mined and reverted; None: not mined (yet)."""
        found = await self.rpc("eth_getTransactionReceipt", [tx_hash])
        if not found:
            return None
        return int(str(found.get("status", "0x0")), 16) == 1

    async def authorization_used(self, payer: str, nonce: str) -> bool:
        """Whether the token has consumed this authorization (by our transaction or anyone's)."""
        from eth_abi.abi import encode

        data = (
            "0x" + (STATE_SELECTOR + encode(["address", "bytes32"], [payer, bytes.fromhex(nonce[2:])])).hex()
        )
        answer = await self.rpc(
            "eth_call", [{"from": self.relayer, "to": self._asset, "data": data}, "latest"]
        )
        return int(str(answer or "0x")[2:] or "0", 16) != 0

    async def latest_timestamp(self) -> int:
        """The latest block's timestamp: a later block's is never smaller, so an authorization whose
        validBefore is at or below it can never be settled any more."""
        block = await self.rpc("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict):
            raise ChainError("eth_getBlockByNumber: no latest block")
        return int(str(block.get("timestamp", "0x0")), 16)

    async def wait(self, tx_hash: str, seconds: float) -> bool | None:
        """The receipt's outcome, polled for `seconds` (None: still not mined)."""
        deadline = asyncio.get_running_loop().time() + seconds
        delay = 0.05
        while True:
            outcome = await self.receipt(tx_hash)
            if outcome is not None or asyncio.get_running_loop().time() >= deadline:
                return outcome
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
