"""URLs a client gives us (image inputs, pages to scrape): never an internal address, however it is
spelled, and never a 5xx for a malformed one. Through the public routes that fetch them."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tests.contract.servers import Tollway
from tests.contract.test_errors import assert_error

pytestmark = pytest.mark.slow

# Internal addresses in IPv6 clothing: each carries an IPv4 address a relay or translator delivers to.
INTERNAL_IN_IPV6 = [
    "http://[2002:7f00:1::]/a.png",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::]/latest",  # 6to4 of 169.254.169.254 (cloud metadata)
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.png",  # Teredo
    "http://[64:ff9b::7f00:1]/a.png",  # NAT64 of 127.0.0.1
    "http://[64:ff9b:1::a00:1]/a.png",  # local-use NAT64
    "http://[::ffff:7f00:1]/a.png",  # IPv4-mapped 127.0.0.1
    "http://[::7f00:1]/a.png",  # IPv4-compatible 127.0.0.1
    "http://[::ffff:0:7f00:1]/a.png",  # IPv4-translated 127.0.0.1
]
MALFORMED = [
    "http://127.0.0.1:99999/a.png",
    "http://example.com:99999/a.png",
    "http://example.com:port/a.png",
    "http://[::1",
    "http://[::1/a.png",
    "http://[not-an-address]/a.png",
    "http://exa mple.com/a.png",
    "http://" + "a" * 300 + ".example/a.png",
    "http://",
]


def _post(tollway: Tollway, key: str, path: str, **kwargs: Any) -> httpx2.Response:
    return httpx2.post(f"{tollway.url}/v1/{path}", headers={"authorization": f"Bearer {key}"}, **kwargs)


def test_image_urls_are_400_naming_the_field_and_charge_nothing(tollway: Tollway) -> None:
    account = tollway.new_account("5.00")
    key = ""
    for index, url in enumerate(INTERNAL_IN_IPV6 + MALFORMED):
        if index % 8 == 0:
            key = tollway.new_key(account)  # the failed-request limit counts 20 per key
        for path, body in (("image/edit", {"prompt": "x", "image": url}), ("image/upscale", {"image": url})):
            response = _post(tollway, key, path, json=body)
            assert_error(response, 400, "VALIDATION", "image")
            assert (
                "address" in response.json()["error"]["message"]
                or "URL" in response.json()["error"]["message"]
            )
    # The same field in a multipart form.
    form = _post(
        tollway, tollway.new_key(account), "image/edit", data={"prompt": "x", "image": "http://[::1"}
    )
    assert_error(form, 400, "VALIDATION", "image")
    assert tollway.ledger_sums(account)[:3] == (5_000_000_000, 0, 5_000_000_000)


def test_scraping_skips_internal_and_malformed_urls_without_failing_the_call(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    text = (
        "summarise http://[::1]/x and http://[2002:7f00:1::]/y and http://127.0.0.1:99999/z and http://[::1"
    )
    response = _post(
        fresh_fake,
        key,
        "chat/completions",
        json={
            "model": "fake-chat",
            "messages": [{"role": "user", "content": text}],
            "venice_parameters": {"enable_web_scraping": True},
        },
    )
    assert response.status_code == 200, response.text
    upstream = fresh_fake.fake("GET", "stats")["last_request"]
    assert [m["role"] for m in upstream["messages"]] == ["user"]  # nothing was fetched into the prompt
    balance, reserved, ledger_sum, _ = fresh_fake.ledger_sums(account_id)
    assert reserved == 0 and balance == ledger_sum < 1_000_000_000  # the call itself is charged


def test_a_base64_image_is_still_taken(tollway: Tollway) -> None:
    """The refusals above are about URLs: an inline image on the same field is unaffected."""
    account = tollway.new_account("5.00")
    png = base64.b64encode(_png()).decode()
    response = _post(tollway, tollway.new_key(account), "image/upscale", json={"image": png, "scale": 2})
    assert response.status_code == 200, response.text


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 200, 200)).save(out, "PNG")
    return out.getvalue()
