"""Models list and embeddings through the official openai SDK."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable

import httpx2
import pytest

from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow


def test_models_list_shape_type_filter_and_spec(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    _, key = funded("1.00")
    ids = [m.id for m in tollway.client(key).models.list()]
    assert {"smollm2-135m", "minilm-l6-v2", "fake-chat", "fake-embed"} <= set(ids)
    headers = {"authorization": f"Bearer {key}"}
    embedding_only = httpx2.get(f"{tollway.url}/v1/models?type=embedding", headers=headers).json()
    assert embedding_only["object"] == "list" and embedding_only["type"] == "embedding"
    assert {m["id"] for m in embedding_only["data"]} == {"minilm-l6-v2", "fake-embed"}
    spec = next(m for m in embedding_only["data"] if m["id"] == "fake-embed")["model_spec"]
    assert spec["pricing"]["input"] == {"usd": 0.1, "diem": 0.1} and spec["privacy"] == "anonymized"
    chat = httpx2.get(f"{tollway.url}/v1/models/fake-chat", headers=headers).json()
    assert chat["model_spec"]["capabilities"]["supportsFunctionCalling"] is True
    assert chat["model_spec"]["maxCompletionTokens"] == 1000
    bad = httpx2.get(f"{tollway.url}/v1/models?type=bogus", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "type"


def test_embeddings_float_base64_and_dimensions(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    client = fresh_fake.client(key)
    # The SDK asks for base64 by default and decodes it: a wrong encoding would garble these numbers.
    via_sdk = client.embeddings.create(model="fake-embed", input=["alpha", "beta"], dimensions=8)
    assert [len(d.embedding) for d in via_sdk.data] == [8, 8]
    headers = {"authorization": f"Bearer {key}"}
    floats = httpx2.post(
        f"{fresh_fake.url}/v1/embeddings",
        headers=headers,
        json={"model": "fake-embed", "input": "alpha", "dimensions": 8},
    ).json()
    assert floats["data"][0]["embedding"] == pytest.approx(via_sdk.data[0].embedding, rel=1e-6)
    b64 = httpx2.post(
        f"{fresh_fake.url}/v1/embeddings",
        headers=headers,
        json={"model": "fake-embed", "input": "alpha", "dimensions": 8, "encoding_format": "base64"},
    ).json()
    decoded = struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"]))
    assert list(decoded) == pytest.approx(floats["data"][0]["embedding"], rel=1e-6)
    assert fresh_fake.ledger_sums(account_id)[0] < 1_000_000_000
    unsupported = httpx2.post(
        f"{fresh_fake.url}/v1/embeddings",
        headers=headers,
        json={"model": "minilm-l6-v2", "input": "alpha", "dimensions": 8},
    )
    assert unsupported.status_code == 400 and unsupported.json()["error"]["param"] == "dimensions"
