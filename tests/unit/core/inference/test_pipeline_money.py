"""Money pieces of the inference pipeline that no server test pinned (mutation run, docs/testing.md):
a batch line's hold at the model's batch discount (and a live call's at the full price), and the
generated text of a legacy completion chunk, which a stream without usage is billed by."""

from __future__ import annotations

from decimal import Decimal

from tollway.base.config import ModelConfig
from tollway.core.caller import Caller
from tollway.core.catalog.catalog import CatalogModel
from tollway.core.inference.chat_stream import delta_texts
from tollway.core.inference.pipeline import BatchLine, Call, _priced


def _model(**pricing: str) -> CatalogModel:
    config = ModelConfig.model_validate(
        {"id": "m", "routes": [{"provider": "p", "model": "x"}], "pricing": {"input": "1", **pricing}}
    )
    return CatalogModel(config, Decimal(1))


async def _keep(answer: object) -> None:
    return None


def _call(batch: bool) -> Call:
    line = BatchLine(keep=_keep, record=lambda conn: None) if batch else None
    return Call("req_1", Caller("inference", key_id="key_1", account_id="acct_1"), "chat", batch=line)


def _hold_for(amount: int) -> int:
    return amount * 10 + 1


def test_a_live_call_is_held_at_the_full_price() -> None:
    assert _priced(_hold_for, _model(batch_discount="0.5"), _call(batch=False)) is _hold_for


def test_a_batch_line_is_held_at_the_batch_discount_rounded_up() -> None:
    priced = _priced(_hold_for, _model(batch_discount="0.5"), _call(batch=True))
    assert priced(100) == 501  # 1001 at half price is 500.5: rounded up to the nano
    assert priced(0) == 1
    full = _priced(_hold_for, _model(), _call(batch=True))  # a model without a batch discount
    assert full(100) == 1001


def test_a_legacy_completion_chunk_s_text_is_what_it_generated() -> None:
    chunk = {"choices": [{"index": 0, "text": "toll"}, {"index": 1, "text": "way"}, {"index": 2}]}
    assert delta_texts(chunk) == ["toll", "way"]
    assert delta_texts({"choices": [{"delta": {"content": "hi"}}]}) == ["hi"]
