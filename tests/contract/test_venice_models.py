"""GET /api/v1/models in Venice's shape (issue 23): `model_spec.privacy`, every capability flag, prices
under the document's keys, Venice's type names; the catalog routes answer without a key, and a key that
is sent must be valid. The schema itself is checked by test_venice_conformance.py; these pin the values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tests.contract.refusals import assert_error
from tests.contract.servers import Tollway
from tests.contract.venice_spec import operations, schema_errors

pytestmark = pytest.mark.slow


def get(server: Tollway, path: str, key: str | None = None) -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.get(f"{server.url}{path}", headers=headers)


def models_schema() -> dict[str, Any]:
    [op] = [o for o in operations() if o.name == "GET /models"]
    return dict(op.responses()["200"]["content"]["application/json"]["schema"])


def by_id(response: httpx2.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["data"]}


def test_api_v1_models_is_venices_model_response_without_a_key(tollway: Tollway) -> None:
    listed = get(tollway, "/api/v1/models")
    assert schema_errors(models_schema(), listed.json()) == []
    models = by_id(listed)
    local, upstream = models["smollm2-135m"], models["fake-chat"]
    assert local["owned_by"] == "venice.ai" and local["model_spec"]["privacy"] == "private"
    assert upstream["model_spec"]["privacy"] == "anonymized"
    flags = upstream["model_spec"]["capabilities"]
    assert flags["supportsFunctionCalling"] is True and flags["supportsVision"] is False
    assert flags["supportsE2EE"] is False and flags["supportsTeeAttestation"] is False
    assert flags["quantization"] == "not-available"
    assert upstream["model_spec"]["pricing"] == {
        "input": {"usd": 1.0, "diem": 1.0},
        "output": {"usd": 2.0, "diem": 2.0},
    }


@pytest.mark.parametrize(
    ("model", "pricing"),
    [
        ("local-procedural", {"generation": {"usd": 0.002, "diem": 0.002}}),
        ("local-image-edit", {"inpaint": {"usd": 0.004, "diem": 0.004}}),
        (
            "local-upscaler",
            {"upscale": {"2x": {"usd": 0.002, "diem": 0.002}, "4x": {"usd": 0.008, "diem": 0.008}}},
        ),
        ("local-tts", {"per_thousand_characters": {"usd": 0.0035, "diem": 0.0035}}),
        ("local-whisper-tiny-en", {"per_audio_second": {"usd": 0.0001, "diem": 0.0001}}),
        ("minilm-l6-v2", {"input": {"usd": 0.02, "diem": 0.02}}),
    ],
)
def test_media_prices_are_under_the_documents_keys(
    tollway: Tollway, model: str, pricing: dict[str, Any]
) -> None:
    assert by_id(get(tollway, "/api/v1/models"))[model]["model_spec"]["pricing"] == pricing


def test_venices_type_names_are_accepted_and_v1_keeps_ours(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    asr = by_id(get(tollway, "/api/v1/models?type=asr"))
    # the catalog's speech-to-text models: the embedded Whisper and fake-translate (test_media_pass_through.py)
    assert sorted(asr) == ["fake-translate", "local-whisper-tiny-en"]
    assert {model["type"] for model in asr.values()} == {"asr"}
    assert by_id(get(tollway, "/api/v1/models?type=code")) == {}  # no model has the `code` capability
    _, key = funded("1.00")
    ours = by_id(get(tollway, "/v1/models?type=stt", key))["local-whisper-tiny-en"]
    assert ours["type"] == "stt" and ours["owned_by"] == "tollway"
    assert_error(get(tollway, "/api/v1/models?type=bogus"), 400, "VALIDATION", "type")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models",
        "/api/v1/models/traits",
        "/api/v1/models/compatibility_mapping",
        "/api/v1/image/styles",
    ],
)
def test_the_catalog_routes_answer_without_a_key_and_refuse_a_bad_one(tollway: Tollway, path: str) -> None:
    assert get(tollway, path).status_code == 200
    assert_error(get(tollway, path, "tw_notarealkey"), 401, "AUTHENTICATION_FAILED")
    assert_error(
        httpx2.get(f"{tollway.url}{path}", headers={"authorization": "Basic eA=="}),
        401,
        "AUTHENTICATION_FAILED",
    )


def test_the_operator_key_still_does_not_list_models(tollway: Tollway) -> None:
    from tests.contract.servers import OPERATOR_KEY

    assert_error(get(tollway, "/api/v1/models", OPERATOR_KEY), 403, "UNAUTHORIZED")
