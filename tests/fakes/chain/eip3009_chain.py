"""A real local EVM for the x402 and USDC deposit tests: eth-tester (py-evm) served over JSON-RPC on
127.0.0.1, with the EIP-3009 test token (eip3009_token.vy) compiled by vyper in-process and deployed on
it (more instances on demand), deposits, empty blocks and reorgs (snapshot/revert), and what a paying
wallet does: sign a `TransferWithAuthorization` (EIP-712) into an x402 v2 payment header with
the `x402` package's types, and sign in with SIWE (EIP-4361) for the SIGN-IN-WITH-X header.

The chain runs in a thread of the test process; a Tollway server subprocess settles through HTTP to it
like it would to a Base node. eth-tester is not thread-safe: every request holds one lock.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import vyper  # type: ignore[import-untyped]
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3
from web3.types import Wei
from x402.http.utils import encode_payment_signature_header
from x402.schemas import PaymentPayload, PaymentRequirements

TOKEN_SOURCE = Path(__file__).with_name("eip3009_token.vy")
FORMATTED = frozenset({"eth_getLogs", "eth_getBlockByNumber", "eth_blockNumber"})
TYPES = {
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ]
}


def _wire(value: Any) -> Any:
    """eth-tester's Python values as a node's JSON-RPC: quantities and bytes as 0x hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {key: value if key in ("jsonrpc",) else _wire(value) for key, value in dict(value).items()}
    if isinstance(value, list | tuple):
        return [_wire(item) for item in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    chain: LocalChain

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        # A batch (an array) is answered item by item, in order, as an array (the crypto RPC proxy's tests).
        answer = [self._one(item) for item in request] if isinstance(request, list) else self._one(request)
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _one(self, request: dict[str, Any]) -> dict[str, Any]:
        params = json.dumps(request.get("params", [])).lower()
        while any(part in params for part in self.chain.stalled):  # a node that does not answer (yet)
            time.sleep(0.05)
        with self.chain.lock:
            self.chain.requests.append(request["method"])
            try:
                answer = self.chain.call(request["method"], request.get("params", []))
            except Exception as exc:  # what a node says of a reverted call or a bad transaction
                answer = {"jsonrpc": "2.0", "error": {"code": 3, "message": str(exc)[:300]}}
        wired = {**_wire(dict(answer)), "id": request.get("id")}
        error = dict(answer).get("error")
        if isinstance(error, dict):  # a node's error code is a JSON integer, not a hex quantity
            code = error.get("code")
            wired["error"] = {
                "code": code if isinstance(code, int) else -32000,
                "message": str(error.get("message", "")),
            }
        return wired

    def log_message(self, *args: Any) -> None:
        pass


class LocalChain:
    """eth-tester behind a JSON-RPC HTTP server; `url` is what TOLLWAY_CHAIN_RPC_URL gets."""

    def __init__(self) -> None:
        self._provider = EthereumTesterProvider()
        self.w3 = Web3(self._provider)
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.stalled: set[str] = set()  # a request whose params contain one of these waits until removed
        handler = type("Handler", (_Handler,), {"chain": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._compiled = vyper.compile_code(TOKEN_SOURCE.read_text(), output_formats=["abi", "bytecode"])
        self.token = self.deploy_token()
        self.chain_id = int(self.w3.eth.chain_id)

    def deploy_token(self) -> Any:
        """Another instance of the test token (a test of its own: its own logs, its own cursor)."""
        out = self._compiled
        with self.lock:
            tx = (
                self.w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
                .constructor()
                .transact({"from": self.w3.eth.accounts[0]})
            )
            address = self.w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
        return self.w3.eth.contract(address=address, abi=out["abi"])

    def transfer(self, token: Any, to: str, units: int) -> tuple[str, int]:
        """A holder's `transfer` of `units` to `to` (a deposit): (its tx hash, its block number)."""
        holder = list(self.w3.eth.accounts)[1]
        with self.lock:
            minted = token.functions.mint(holder, units).transact({"from": holder})
            self.w3.eth.wait_for_transaction_receipt(minted)
            tx = token.functions.transfer(Web3.to_checksum_address(to), units).transact({"from": holder})
            receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        return "0x" + bytes(tx).hex(), int(receipt["blockNumber"])

    def mine(self, blocks: int) -> int:
        """`blocks` empty blocks; the new head."""
        with self.lock:
            self._tester().mine_blocks(blocks)
            return int(self.w3.eth.block_number)

    def snapshot(self) -> Any:
        with self.lock:
            return self._tester().take_snapshot()

    def revert(self, snapshot: Any) -> None:
        """Back to the snapshot: the blocks after it are gone (a reorg, as the next blocks replace them)."""
        with self.lock:
            self._tester().revert_to_snapshot(snapshot)

    def _tester(self) -> Any:
        tester = self._provider.ethereum_tester
        assert tester is not None
        return tester

    def call(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request as a node answers it. Filters and logs (eth_getLogs: `fromBlock`, log
        fields in camelCase) need eth-tester's own request and result formatters (its provider
        middleware); the other methods go to the provider as they always did (the x402 tests)."""
        if method in FORMATTED:
            bare = Web3(self._provider, middleware=[])  # web3's own (ENS) middleware breaks OR-ed topics
            return self._provider.request_func(bare, bare.middleware_onion)(method, params)
        return self._provider.make_request(method, params)  # type: ignore[arg-type]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fund_eth(self, address: str, wei: int = 10**18) -> None:
        with self.lock:
            tx = self.w3.eth.send_transaction(
                {"from": self.w3.eth.accounts[0], "to": address, "value": Wei(wei)}
            )
            self.w3.eth.wait_for_transaction_receipt(tx)

    def mint(self, address: str, units: int) -> None:
        with self.lock:
            tx = self.token.functions.mint(Web3.to_checksum_address(address), units).transact(
                {"from": self.w3.eth.accounts[0]}
            )
            self.w3.eth.wait_for_transaction_receipt(tx)

    def balance(self, address: str) -> int:
        with self.lock:
            return int(self.token.functions.balanceOf(Web3.to_checksum_address(address)).call())

    def used(self, address: str, nonce: str) -> bool:
        with self.lock:
            return bool(
                self.token.functions.authorizationState(
                    Web3.to_checksum_address(address), bytes.fromhex(nonce[2:])
                ).call()
            )

    def stall(self, address: str, on: bool = True) -> None:
        """On: every call naming `address` (e.g. a payer's dry run) hangs, as a node that stopped answering."""
        part = address.lower().removeprefix("0x")
        self.stalled.add(part) if on else self.stalled.discard(part)

    def mine_to_now(self) -> int:
        """Mine empty blocks until the latest is stamped now (eth-tester stamps a block when its parent
        is mined, so after a pause one block is stamped back then); the latest block's timestamp."""
        with self.lock:
            tester = self._provider.ethereum_tester
            assert tester is not None
            tester.mine_blocks(2)
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def automine(self, on: bool) -> None:
        """Off: sent transactions wait in the pool (a slow chain); on: they are mined at once."""
        with self.lock:
            tester = self._provider.ethereum_tester
            assert tester is not None
            tester.enable_auto_mine_transactions() if on else tester.disable_auto_mine_transactions()


@dataclass
class Payment:
    header: str
    nonce: str
    value: int


def sign_payment(
    chain: LocalChain,
    payer: LocalAccount,
    pay_to: str,
    value: int,
    *,
    accepted_amount: int | None = None,
    valid_after: int | None = None,
    valid_before: int | None = None,
    nonce: str | None = None,
    asset: str | None = None,
    signer: LocalAccount | None = None,
    accepted_pay_to: str | None = None,
) -> Payment:
    """An x402 v2 `exact` payment header: the payer's EIP-3009 authorization of `value` to `pay_to`."""
    now = int(time.time())
    after = now - 60 if valid_after is None else valid_after
    before = now + 600 if valid_before is None else valid_before
    nonce = nonce or "0x" + os.urandom(32).hex()
    token = asset or chain.token.address
    domain = {"name": "USD Coin", "version": "2", "chainId": chain.chain_id, "verifyingContract": token}
    message = {
        "from": payer.address,
        "to": Web3.to_checksum_address(pay_to),
        "value": value,
        "validAfter": after,
        "validBefore": before,
        "nonce": bytes.fromhex(nonce[2:]),
    }
    signed = Account.sign_typed_data((signer or payer).key, domain, TYPES, message)
    authorization = {
        "from": payer.address,
        "to": Web3.to_checksum_address(pay_to),
        "value": str(value),
        "validAfter": str(after),
        "validBefore": str(before),
        "nonce": nonce,
    }
    accepted = PaymentRequirements(
        scheme="exact",
        network=f"eip155:{chain.chain_id}",
        asset=token,
        amount=str(value if accepted_amount is None else accepted_amount),
        pay_to=accepted_pay_to or Web3.to_checksum_address(pay_to),
        max_timeout_seconds=300,
        extra={"name": "USD Coin", "version": "2"},
    )
    payload = PaymentPayload(
        x402_version=2,
        payload={"authorization": authorization, "signature": "0x" + bytes(signed.signature).hex()},
        accepted=accepted,
    )
    return Payment(encode_payment_signature_header(payload), nonce, value)


def siwx_header(
    account: LocalAccount, domain: str, chain_id: int, *, ttl: timedelta = timedelta(minutes=10)
) -> str:
    """A SIGN-IN-WITH-X header: an EIP-4361 message signed with EIP-191, as Venice's document shows."""
    issued = datetime.now(UTC)
    message = "\n".join(
        [
            f"{domain} wants you to sign in with your Ethereum account:",
            account.address,
            "",
            "Sign in to Venice API",
            "",
            f"URI: http://{domain}",
            "Version: 1",
            f"Chain ID: {chain_id}",
            f"Nonce: {os.urandom(8).hex()}",
            f"Issued At: {issued.isoformat().replace('+00:00', 'Z')}",
            f"Expiration Time: {(issued + ttl).isoformat().replace('+00:00', 'Z')}",
        ]
    )
    signature = Account.sign_message(encode_defunct(text=message), account.key).signature
    body = {
        "address": account.address,
        "message": message,
        "signature": "0x" + bytes(signature).hex(),
        "timestamp": int(issued.timestamp() * 1000),
        "chainId": chain_id,
    }
    return base64.b64encode(json.dumps(body).encode()).decode()
