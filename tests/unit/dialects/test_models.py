"""The catalog in Anthropic's and Gemini's model-list shapes: pagination as each API defines it."""

from __future__ import annotations

from tollway.dialects.models import Listed, anthropic_page, gemini_model, gemini_page

MODELS = [Listed(f"m{i}", f"Model {i}", 1_767_225_600, context_length=4096) for i in range(5)]


def ids(page: dict[str, object]) -> list[str]:
    return [str(m["id"]) for m in page["data"]]  # type: ignore[attr-defined]


def test_anthropic_pages_forward_with_after_id_and_back_with_before_id() -> None:
    first = anthropic_page(MODELS, before_id=None, after_id=None, limit=2)
    assert first is not None and ids(first) == ["m0", "m1"]
    assert (first["has_more"], first["first_id"], first["last_id"]) == (True, "m0", "m1")
    last = anthropic_page(MODELS, before_id=None, after_id="m2", limit=5)
    assert last is not None and ids(last) == ["m3", "m4"] and last["has_more"] is False
    back = anthropic_page(MODELS, before_id="m3", after_id=None, limit=2)
    assert back is not None and ids(back) == ["m1", "m2"] and back["has_more"] is True
    empty = anthropic_page(MODELS, before_id=None, after_id="m4", limit=2)
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    assert anthropic_page(MODELS, before_id=None, after_id="nope", limit=2) is None
    assert first["data"][0] == {  # type: ignore[index]
        "type": "model",
        "id": "m0",
        "display_name": "Model 0",
        "created_at": "2026-01-01T00:00:00Z",
    }


def test_gemini_pages_by_token_until_none_is_given() -> None:
    page = gemini_page(MODELS, page_size=3, page_token=None)
    assert page is not None and [m["name"] for m in page["models"]] == ["models/m0", "models/m1", "models/m2"]
    rest = gemini_page(MODELS, page_size=3, page_token=page["nextPageToken"])
    assert rest is not None and len(rest["models"]) == 2 and "nextPageToken" not in rest
    assert gemini_page(MODELS, page_size=3, page_token="forged") is None
    assert gemini_model(MODELS[0])["inputTokenLimit"] == 4096
    assert "outputTokenLimit" not in gemini_model(MODELS[0])
