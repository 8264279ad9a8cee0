"""Images against a real server: the openai SDK's images.generate, Venice's native routes over plain
HTTP, signed media links, bad inputs, and what each call charged."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from PIL import Image

from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow
CREDIT_NANO = 5_000_000_000
PER_IMAGE = 2_000_000  # local-procedural's $0.002 in the test catalog


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _png(width: int = 320, height: int = 240, colour: tuple[int, int, int] = (240, 240, 240)) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    image.paste((30, 60, 200), (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _charged(tollway: Tollway, account: str, expected_nano: int) -> None:
    balance, reserved, ledger_sum, reserved_sum = tollway.ledger_sums(account)
    assert reserved == 0 and reserved_sum == 0
    assert balance == ledger_sum == CREDIT_NANO - expected_nano


def _post(tollway: Tollway, key: str, path: str, **kwargs: Any) -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    return httpx2.post(f"{tollway.url}/v1/{path}", headers=headers, timeout=120, **kwargs)


def test_sdk_generate_b64_and_url_are_real_images_and_charged(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded()
    client = tollway.client(key)
    b64 = client.images.generate(model="local-procedural", prompt="a lighthouse", size="256x256", n=2)
    assert b64.data is not None and len(b64.data) == 2
    first = _image(base64.b64decode(b64.data[0].b64_json or ""))
    assert (first.format, first.size) == ("PNG", (256, 256))

    url = client.images.generate(
        model="local-procedural",
        prompt="a lighthouse",
        size="512x512",
        response_format="url",
        extra_body={"output_format": "jpeg"},
    )
    assert url.data is not None and url.data[0].url is not None
    link = url.data[0].url
    assert link.startswith(tollway.url + "/v1/media/")
    fetched = httpx2.get(link)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
    assert _image(fetched.content).format == "JPEG"

    webp = client.images.generate(
        model="local-procedural", prompt="x", size="256x256", extra_body={"output_format": "webp"}
    )
    assert webp.data is not None and _image(base64.b64decode(webp.data[0].b64_json or "")).format == "WEBP"
    _charged(tollway, account, 4 * PER_IMAGE)

    # The link is bound to its owner and its signature.
    _, stranger = funded()
    other = httpx2.get(link, headers={"authorization": f"Bearer {stranger}"})
    assert other.status_code == 404
    assert httpx2.get(link, headers={"authorization": f"Bearer {key}"}).status_code == 200
    assert httpx2.get(link[:-4] + "0000").status_code == 404


def test_resolution_tier_and_quality_set_the_price(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded()
    response = _post(
        tollway,
        key,
        "images/generations",
        json={"model": "local-procedural", "prompt": "a map", "resolution": "2K", "quality": "high"},
    )
    assert response.status_code == 200, response.text
    assert _image(base64.b64decode(response.json()["data"][0]["b64_json"])).size == (2048, 2048)
    assert response.headers["x-tollway-cost-nano"] == str(PER_IMAGE * 2 * 2)
    # An unknown model falls back to the default image model (Venice's images/generations).
    fallback = _post(
        tollway,
        key,
        "images/generations",
        json={"model": "dall-e-3", "prompt": "x", "size": "256x256", "quality": "low"},
    )
    assert fallback.status_code == 200 and fallback.headers["x-tollway-model-id"] == "local-procedural"
    _charged(tollway, account, PER_IMAGE * 4 + PER_IMAGE // 2)


def test_venice_generate_json_binary_and_deterministic_seed(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded()
    body = {
        "model": "local-procedural",
        "prompt": "dunes",
        "width": 512,
        "height": 384,
        "seed": 5,
        "variants": 2,
    }
    first = _post(tollway, key, "image/generate", json=body)
    assert first.status_code == 200, first.text
    payload = first.json()
    assert payload["id"].startswith("generate-image-") and set(payload["timing"]) >= {"total"}
    assert len(payload["images"]) == 2
    image = _image(base64.b64decode(payload["images"][0]))
    assert (image.format, image.size) == ("WEBP", (512, 384))  # webp is the native default
    again = _post(tollway, key, "image/generate", json=body).json()
    assert again["images"] == payload["images"]

    binary = _post(
        tollway,
        key,
        "image/generate",
        json={**body, "variants": 1, "return_binary": True, "format": "png", "style_preset": "Pixel Art"},
    )
    assert binary.status_code == 200 and binary.headers["content-type"] == "image/png"
    assert binary.headers["x-venice-is-blurred"] == "false"
    assert _image(binary.content).size == (512, 384)
    _charged(tollway, account, 5 * PER_IMAGE)


def test_venice_edit_upscale_background_and_styles(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded()
    source = _png()
    edit = _post(
        tollway,
        key,
        "image/edit",
        data={"prompt": "make it red"},
        files={"image": ("in.png", source, "image/png")},
    )
    assert edit.status_code == 200, edit.text
    assert edit.headers["content-type"] == "image/png" and _image(edit.content).size == (320, 240)

    upscale = _post(
        tollway, key, "image/upscale", json={"image": base64.b64encode(source).decode(), "scale": 2}
    )
    assert upscale.status_code == 200, upscale.text
    assert _image(upscale.content).size == (640, 480)
    enhance_only = _post(
        tollway,
        key,
        "image/upscale",
        data={"scale": "1", "enhance": "true"},
        files={"image": ("a.png", source)},
    )
    assert enhance_only.status_code == 200 and _image(enhance_only.content).size == (320, 240)

    data_url = "data:image/png;base64," + base64.b64encode(source).decode()
    cutout = _post(tollway, key, "image/background-remove", json={"image": data_url})
    assert cutout.status_code == 200, cutout.text
    result = _image(cutout.content)
    assert result.mode == "RGBA" and result.getpixel((2, 2))[3] == 0  # type: ignore[index]
    assert result.getpixel((160, 120))[3] == 255  # type: ignore[index]

    styles = httpx2.get(f"{tollway.url}/v1/image/styles", headers={"authorization": f"Bearer {key}"}).json()
    assert styles["object"] == "list" and "3D Model" in styles["data"]
    # edit $0.004 + upscale 2x $0.002 + enhance-only (1x = ¼ of the 2x price) + background $0.002
    _charged(tollway, account, 4_000_000 + 2_000_000 + 500_000 + 2_000_000)


def _error(response: httpx2.Response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["param"]


def test_bad_image_inputs_are_refused_and_nothing_is_charged(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account = tollway.new_account("5.00")

    def key() -> str:  # a fresh key per check: the failed-request limiter counts per key
        return tollway.new_key(account)

    png = _png()
    cases: list[tuple[str, dict[str, Any], tuple[int, str, str | None]]] = [
        (
            "image/edit",
            {"json": {"prompt": "x", "image": base64.b64encode(png[:60]).decode()}},
            (400, "CORRUPTED_IMAGE", "image"),
        ),
        (
            "image/edit",
            {"json": {"prompt": "x", "image": base64.b64encode(b"GIF89a....").decode()}},
            (400, "INVALID_IMAGE_FORMAT", "image"),
        ),
        (
            "image/edit",
            {"json": {"prompt": "x", "image": "A" * (11 * 1024 * 1024 * 4 // 3)}},
            (413, "INVALID_FILE_SIZE", "image"),
        ),
        (
            "image/edit",
            {"content": b"prompt=x", "headers": {"content-type": "text/plain"}},
            (415, "INVALID_CONTENT_TYPE", None),
        ),
        (
            "image/edit",
            {"json": {"prompt": "x", "image": "http://127.0.0.1:1/a.png"}},
            (400, "VALIDATION", "image"),
        ),
        (
            "image/edit",
            {"json": {"prompt": "x", "image": "http://169.254.169.254/latest"}},
            (400, "VALIDATION", "image"),
        ),
        (
            "image/upscale",
            {"json": {"image": base64.b64encode(_png(100, 100)).decode()}},
            (400, "VALIDATION", "image"),
        ),
        (
            "image/upscale",
            {"json": {"image": base64.b64encode(png).decode(), "scale": 5}},
            (400, "VALIDATION", "scale"),
        ),
        (
            "image/upscale",
            {"json": {"image": base64.b64encode(png).decode(), "scale": 1}},
            (400, "VALIDATION", "scale"),
        ),
        (
            "image/generate",
            {"json": {"model": "local-procedural", "prompt": "x", "steps": 51}},
            (400, "VALIDATION", "steps"),
        ),
        (
            "image/generate",
            {"json": {"model": "local-procedural", "prompt": "x", "width": 1288}},
            (400, "VALIDATION", "width"),
        ),
        (
            "image/generate",
            {"json": {"model": "local-procedural", "prompt": "x", "width": 500}},
            (400, "VALIDATION", "width"),
        ),
        (
            "image/generate",
            {"json": {"model": "local-procedural", "prompt": "x", "cfg_scale": 0}},
            (400, "VALIDATION", "cfg_scale"),
        ),
        (
            "image/generate",
            {"json": {"model": "local-procedural", "prompt": "x", "variants": 2, "return_binary": True}},
            (400, "VALIDATION", "variants"),
        ),
        (
            "image/generate",
            {"json": {"model": "local-procedural", "prompt": "x", "style_preset": "Nope"}},
            (400, "VALIDATION", "style_preset"),
        ),
        ("image/generate", {"json": {"model": "local-tts", "prompt": "x"}}, (400, "INVALID_MODEL", "model")),
        ("images/generations", {"json": {"prompt": "x", "size": "5000x5000"}}, (400, "VALIDATION", "size")),
        ("images/generations", {"json": {"prompt": ""}}, (400, "VALIDATION", "prompt")),
        ("images/generations", {"json": {"prompt": "x" * 1501}}, (400, "VALIDATION", "prompt")),
        ("images/generations", {"json": {"prompt": "x", "n": 5}}, (400, "VALIDATION", "n")),
    ]
    for path, kwargs, expected in cases:
        response = _post(tollway, key(), path, **kwargs)
        assert _error(response) == expected, (path, response.text)
    _charged(tollway, account, 0)


def test_insufficient_balance_is_402_before_any_work(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded("0.005")
    with pytest.raises(openai.APIStatusError) as caught:
        tollway.client(key).images.generate(
            model="local-procedural", prompt="x", extra_body={"resolution": "4K"}
        )
    assert caught.value.status_code == 402
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account)
    assert (balance, reserved, ledger_sum) == (5_000_000, 0, 5_000_000)


def test_content_policy_blocks_prompts_before_any_charge(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded()
    response = _post(
        tollway, key, "images/generations", json={"prompt": "a forbidden-banana-x1", "size": "256x256"}
    )
    assert _error(response) == (422, "CONTENT_BLOCKED", "messages")
    _charged(tollway, account, 0)
