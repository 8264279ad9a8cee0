"""What an x402 top-up must be before anything touches the chain or the ledger (issue 25).

The payment is an x402 v2 `PaymentPayload` (the `x402` package's types) for the `exact` scheme on an
EVM chain: an EIP-3009 `transferWithAuthorization` of the token, signed by the payer with EIP-712.
`check_payment` verifies, off chain, everything a signature can prove: the scheme, network, asset and
recipient are this server's, the signed value is the value the payer accepted and within the
operator's bounds, the validity window is open (with time left to settle), and the signature is the
payer's. The nonce's single use is the database's (x402.py) and the token's (on chain).

`check_siwx` reads a SIGN-IN-WITH-X header (Venice's wallet authentication for the read routes): a
base64 JSON `{address, message, signature, timestamp, chainId}` whose message is an EIP-4361 (SIWE)
message signed with EIP-191 by `address`, for this domain and chain, not expired.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from x402.schemas import PaymentPayload

from tollway.errors import ErrorCode, TollwayError

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
NONCE = re.compile(r"^0x[0-9a-fA-F]{64}$")
SETTLE_MARGIN_SECONDS = 6  # a window closing sooner leaves no time to mine the settlement
SIWX_TTL_SECONDS = 600  # a sign-in without an Expiration Time is good this long after its Issued At
CLOCK_SKEW_SECONDS = 60
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


class X402Refusal(Exception):
    """A top-up refused: the HTTP status, Venice's machine-readable code, a message, the reason."""

    def __init__(self, status: int, code: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason


def invalid(message: str, reason: str) -> X402Refusal:
    return X402Refusal(400, "X402_INVALID_PAYMENT", message, reason)


@dataclass(frozen=True, slots=True)
class Terms:
    """What this server accepts: one `exact` USDC option on one EVM chain."""

    chain_id: int
    asset: str  # the token contract, lower-case
    pay_to: str  # the recipient, lower-case
    token_name: str
    token_version: str
    min_units: int
    max_units: int

    @property
    def network(self) -> str:
        return f"eip155:{self.chain_id}"

    def domain(self) -> dict[str, Any]:
        return {
            "name": self.token_name,
            "version": self.token_version,
            "chainId": self.chain_id,
            "verifyingContract": self.asset,
        }


@dataclass(frozen=True, slots=True)
class Authorization:
    """A verified EIP-3009 authorization, ready to settle."""

    payer: str  # lower-case
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: str  # 0x + 64 hex, lower-case
    signature: bytes  # 65 bytes: r, s, v


def decode_header(value: str) -> PaymentPayload:
    """The base64 x402 v2 PaymentPayload of a payment header; a 400 naming what is wrong."""
    try:
        data = orjson.loads(base64.b64decode(value.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise invalid("The payment header is not base64-encoded JSON.", "malformed_payment") from None
    if not isinstance(data, dict) or data.get("x402Version") != 2:
        raise invalid(
            "The payment header must be an x402 v2 PaymentPayload (x402Version 2).", "malformed_payment"
        )
    try:
        return PaymentPayload.model_validate(data)
    except ValidationError:
        raise invalid(
            "The payment header is not a valid x402 v2 PaymentPayload.", "malformed_payment"
        ) from None


def _authorization(payload: PaymentPayload) -> Authorization:
    inner = payload.payload
    auth = inner.get("authorization") if isinstance(inner, dict) else None
    signature = inner.get("signature") if isinstance(inner, dict) else None
    if not isinstance(auth, dict) or not isinstance(signature, str):
        raise invalid("The payload needs `authorization` and `signature` (EIP-3009).", "malformed_payment")
    try:
        payer, to, nonce = str(auth["from"]), str(auth["to"]), str(auth["nonce"])
        value, after, before = int(auth["value"]), int(auth["validAfter"]), int(auth["validBefore"])
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except (KeyError, TypeError, ValueError):
        raise invalid(
            "The authorization's fields are missing or not numbers/hex.", "malformed_payment"
        ) from None
    if not (ADDRESS.match(payer) and ADDRESS.match(to) and NONCE.match(nonce)) or len(raw) != 65:
        raise invalid("The authorization's addresses, nonce or signature are malformed.", "malformed_payment")
    if min(value, after, before) < 0 or max(value, after, before) >= 2**256:
        raise invalid("The authorization's numbers are out of range.", "malformed_payment")
    return Authorization(payer.lower(), to.lower(), value, after, before, nonce.lower(), raw)


def check_payment(payload: PaymentPayload, terms: Terms, now: float | None = None) -> Authorization:
    """The payment's authorization, if it pays this server what it says; else an X402Refusal."""
    accepted = payload.accepted
    if accepted.scheme != "exact" or accepted.network != terms.network:
        raise invalid(f"Only the `exact` scheme on {terms.network} is accepted.", "unsupported_scheme")
    if accepted.asset.lower() != terms.asset:
        raise invalid("The payment is not in this server's token.", "asset_mismatch")
    auth = _authorization(payload)
    if auth.to != terms.pay_to or accepted.pay_to.lower() != terms.pay_to:
        raise invalid("The payment's recipient is not this server's payTo address.", "recipient_mismatch")
    if str(auth.value) != accepted.amount.strip():
        raise invalid("The signed value is not the accepted amount.", "amount_mismatch")
    if not terms.min_units <= auth.value <= terms.max_units:
        raise invalid(
            f"A top-up is {terms.min_units} to {terms.max_units} base units (6 decimals).",
            "amount_out_of_range",
        )
    moment = int(now if now is not None else time.time())
    if auth.valid_after > moment:
        raise invalid("The authorization is not valid yet (validAfter).", "not_yet_valid")
    if auth.valid_before <= moment + SETTLE_MARGIN_SECONDS:
        raise invalid(
            "The authorization has expired, or expires before it can settle (validBefore).", "expired"
        )
    if _signer(auth, terms) != auth.payer:
        raise invalid("The signature is not the payer's for this authorization.", "invalid_signature")
    return auth


def _signer(auth: Authorization, terms: Terms) -> str:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    message = {
        "from": auth.payer,
        "to": auth.to,
        "value": auth.value,
        "validAfter": auth.valid_after,
        "validBefore": auth.valid_before,
        "nonce": bytes.fromhex(auth.nonce[2:]),
    }
    try:
        signable = encode_typed_data(terms.domain(), TYPES, message)
        return str(Account.recover_message(signable, signature=auth.signature)).lower()
    except Exception:  # an unrecoverable signature (bad v, s out of range) is simply not the payer's
        return ""


def _siwx_refused(message: str) -> TollwayError:
    return TollwayError(ErrorCode.AUTHENTICATION_FAILED, message)


def check_siwx(header: str, *, domain: str, chain_id: int, now: float | None = None) -> str:
    """The lower-case address a SIGN-IN-WITH-X header proves, or a 401."""
    try:
        data = orjson.loads(base64.b64decode(header.strip(), validate=True))
        address, message, signature = str(data["address"]), str(data["message"]), str(data["signature"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _siwx_refused("SIGN-IN-WITH-X must be base64 JSON with address, message, signature.") from None
    if str(data.get("type", "")).lower() == "ed25519" or not ADDRESS.match(address):
        raise _siwx_refused("Only EVM wallets (SIWE, EIP-191) can sign in on this server.")
    fields = _siwe_fields(message)
    if fields.get("domain") != domain or fields.get("address", "").lower() != address.lower():
        raise _siwx_refused(f"The SIWE message must be for domain {domain!r} and the header's address.")
    if fields.get("Chain ID") != str(chain_id):
        raise _siwx_refused(f"The SIWE message must be for chain {chain_id}.")
    moment = now if now is not None else time.time()
    issued, expires = _when(fields.get("Issued At")), _when(fields.get("Expiration Time"))
    if issued is None or issued > moment + CLOCK_SKEW_SECONDS:
        raise _siwx_refused("The SIWE message needs an Issued At that is not in the future.")
    if (expires if expires is not None else issued + SIWX_TTL_SECONDS) <= moment:
        raise _siwx_refused("The sign-in has expired: sign a new SIWE message.")
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        signer = str(Account.recover_message(encode_defunct(text=message), signature=signature)).lower()
    except Exception:
        signer = ""
    if signer != address.lower():
        raise _siwx_refused("The SIWE signature is not by the header's address.")
    return signer


def _siwe_fields(message: str) -> dict[str, str]:
    """EIP-4361: `<domain> wants you to sign in with your Ethereum account:`, the address, then `Key: value`."""
    lines = message.split("\n")
    head = " wants you to sign in with your Ethereum account:"
    if len(lines) < 2 or not lines[0].endswith(head):
        return {}
    fields = {"domain": lines[0].removesuffix(head), "address": lines[1].strip()}
    for line in lines[2:]:
        key, sep, value = line.partition(": ")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _when(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
