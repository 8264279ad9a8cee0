"""The off-chain checks of an x402 top-up and of a SIGN-IN-WITH-X header (core/funding/x402_checks.py)."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from x402.http.utils import encode_payment_signature_header
from x402.schemas import PaymentPayload, PaymentRequirements

from tollway.core.funding.chain import (
    FUNCTION,
    SELECTOR,
    STATE_FUNCTION,
    STATE_SELECTOR,
    call_data,
)
from tollway.core.funding.x402_checks import (
    TYPES,
    Terms,
    X402Refusal,
    check_payment,
    check_siwx,
    decode_header,
)
from tollway.errors import TollwayError

NOW = 1_800_000_000
PAYER = Account.create()
PAY_TO = "0x" + "5e" * 20
ASSET = "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913"
TERMS = Terms(8453, ASSET, PAY_TO, "USD Coin", "2", 5_000_000, 10_000_000_000)


def header(value: int = 10_000_000, **change: Any) -> str:
    auth = {
        "from": PAYER.address,
        "to": change.pop("to", PAY_TO),
        "value": value,
        "validAfter": change.pop("valid_after", NOW - 60),
        "validBefore": change.pop("valid_before", NOW + 600),
        "nonce": "0x" + os.urandom(32).hex(),
    }
    domain = {
        "name": "USD Coin",
        "version": "2",
        "chainId": 8453,
        "verifyingContract": change.pop("asset", ASSET),
    }
    message = {**auth, "nonce": bytes.fromhex(auth["nonce"][2:])}
    signed = Account.sign_typed_data(change.pop("signer", PAYER).key, domain, TYPES, message)
    accepted = PaymentRequirements(
        scheme=change.pop("scheme", "exact"),
        network=change.pop("network", "eip155:8453"),
        asset=domain["verifyingContract"],
        amount=str(change.pop("accepted", value)),
        pay_to=change.pop("accepted_pay_to", auth["to"]),
        max_timeout_seconds=300,
    )
    wire = {key: str(v) if isinstance(v, int) else v for key, v in auth.items()}
    payload = {"authorization": wire, "signature": "0x" + bytes(signed.signature).hex()}
    return encode_payment_signature_header(PaymentPayload(payload=payload, accepted=accepted))


def reason(value: str) -> str:
    with pytest.raises(X402Refusal) as refused:
        check_payment(decode_header(value), TERMS, now=NOW)
    assert refused.value.status == 400
    return refused.value.reason


def test_a_good_payment_passes_and_encodes_the_usdc_call() -> None:
    auth = check_payment(decode_header(header()), TERMS, now=NOW)
    assert auth.payer == PAYER.address.lower() and auth.value == 10_000_000 and auth.to == PAY_TO
    data = call_data(auth)
    assert data.startswith("0x" + SELECTOR.hex()) and len(data) == 2 + 2 * (4 + 9 * 32)


def test_the_selector_is_the_first_four_bytes_of_the_functions_keccak() -> None:
    from eth_utils.crypto import keccak

    assert keccak(text=FUNCTION)[:4] == SELECTOR
    assert keccak(text=STATE_FUNCTION)[:4] == STATE_SELECTOR


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"signer": Account.create()}, "invalid_signature"),
        ({"to": "0x" + "11" * 20, "accepted_pay_to": PAY_TO}, "recipient_mismatch"),
        ({"to": "0x" + "11" * 20}, "recipient_mismatch"),
        ({"accepted": 20_000_000}, "amount_mismatch"),
        ({"valid_before": NOW + 3}, "expired"),
        ({"valid_after": NOW + 10}, "not_yet_valid"),
        ({"asset": "0x" + "22" * 20}, "asset_mismatch"),
        ({"network": "eip155:1"}, "unsupported_scheme"),
        ({"scheme": "upto"}, "unsupported_scheme"),
    ],
)
def test_each_bad_payment_has_its_reason(change: dict[str, Any], expected: str) -> None:
    assert reason(header(**change)) == expected


def test_amount_bounds() -> None:
    assert reason(header(4_999_999)) == "amount_out_of_range"
    assert reason(header(10_000_000_001)) == "amount_out_of_range"
    check_payment(decode_header(header(5_000_000)), TERMS, now=NOW)


@pytest.mark.parametrize(
    "value",
    [
        "%%%",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(json.dumps({"x402Version": 1}).encode()).decode(),
        base64.b64encode(json.dumps({"x402Version": 2, "payload": {}}).encode()).decode(),
    ],
)
def test_malformed_headers(value: str) -> None:
    with pytest.raises(X402Refusal) as refused:
        check_payment(decode_header(value), TERMS, now=NOW)
    assert refused.value.reason == "malformed_payment"


def siwx(
    account: Any = PAYER, domain: str = "api.example", chain: int = 8453, ttl: int = 600, **body: Any
) -> str:
    issued = datetime.fromtimestamp(NOW, UTC)
    lines = [
        f"{domain} wants you to sign in with your Ethereum account:",
        account.address,
        "",
        "Sign in",
        "",
        f"URI: https://{domain}",
        "Version: 1",
        f"Chain ID: {chain}",
        "Nonce: 0123456789abcdef",
        f"Issued At: {issued.isoformat()}",
        f"Expiration Time: {(issued + timedelta(seconds=ttl)).isoformat()}",
    ]
    message = "\n".join(lines)
    signature = Account.sign_message(encode_defunct(text=message), account.key).signature
    data = {
        "address": account.address,
        "message": message,
        "signature": "0x" + bytes(signature).hex(),
        **body,
    }
    return base64.b64encode(json.dumps(data).encode()).decode()


def test_siwx_proves_the_address() -> None:
    assert check_siwx(siwx(), domain="api.example", chain_id=8453, now=NOW) == PAYER.address.lower()


@pytest.mark.parametrize(
    "value",
    [
        siwx(domain="evil.example"),
        siwx(chain=1),
        siwx(ttl=-1),
        siwx(type="ed25519"),
        siwx(address="0x" + "11" * 20),
        base64.b64encode(b"{}").decode(),
        "not base64 at all",
    ],
)
def test_siwx_refusals_are_401(value: str) -> None:
    with pytest.raises(TollwayError) as refused:
        check_siwx(value, domain="api.example", chain_id=8453, now=NOW)
    assert refused.value.status == 401
