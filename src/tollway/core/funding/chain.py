"""An EVM chain over JSON-RPC, as much as x402 settlement needs (issue 25).

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

FUNCTION = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
SELECTOR = bytes.fromhex("e3ee160e")  # keccak(FUNCTION)[:4] (a unit test checks it): no eth_utils at start
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
    from eth_abi.abi import encode  # imported here: eth_abi/eth_account cost ~0.5 s at every start

    sig = auth.signature
    v = sig[64] if sig[64] >= 27 else sig[64] + 27
    args = [auth.payer, auth.to, auth.value, auth.valid_after, auth.valid_before]
    args += [bytes.fromhex(auth.nonce[2:]), v, sig[:32], sig[32:64]]
    return "0x" + (SELECTOR + encode(ARGUMENT_TYPES, args)).hex()


class Chain:
    def __init__(self, rpc_url: str, chain_id: int, asset: str, key: str, *, timeout: float = 30.0) -> None:
        self._url = rpc_url
        self._chain_id = chain_id
        self._asset = asset
        from eth_account import Account  # only a server that settles x402 payments needs it

        self._account = Account.from_key(key)
        self._client = httpx2.AsyncClient(timeout=timeout)
        self._send_lock = asyncio.Lock()  # one relayer nonce at a time in this process
        self._ids = 0

    @property
    def relayer(self) -> str:
        return str(self._account.address)

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

    async def dry_run(self, auth: Authorization) -> int:
        """The gas the settlement needs; Reverted if the token would refuse it."""
        tx = {"from": self.relayer, "to": self._asset, "data": call_data(auth)}
        await self.rpc("eth_call", [tx, "latest"])
        return int(await self.rpc("eth_estimateGas", [tx]), 16)

    async def sign(self, auth: Authorization, gas: int) -> Signed:
        """The settlement, signed with the relayer's next nonce (hold `sending` from here to `send`)."""
        nonce = int(await self.rpc("eth_getTransactionCount", [self.relayer, "pending"]), 16)
        gas_price = int(await self.rpc("eth_gasPrice", []), 16)
        from eth_utils.address import to_checksum_address

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
