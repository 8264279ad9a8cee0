"""Tokens per minute count what a call really used: its prompt and its completion tokens.

Admission takes the estimate from the key's token budget; when the call ends the budget is
corrected to the upstream's actual usage. Two keys with the same `tpm` make the same two calls;
their first calls report different usage. The difference between the remaining tokens their second
calls are shown (`x-ratelimit-remaining-tokens`) is the difference in usage: prompt plus
completion. A correction that drops the prompt (or the completion) shows a different number.
"""

from __future__ import annotations

import time

import pytest

from tests.money.harness import Money

TPM = 100_000
USED = {"prompt_tokens": 20_000, "completion_tokens": 9_000}
# GCRA refills the budget continuously (TPM / 60 per second); the two keys' calls are a few ms
# apart, so their refills differ by far less than this.
TOLERANCE = 1_500


def _remaining_after(money: Money, usage: dict[str, int], stream: bool) -> int:
    account, key = money.funded(rate_limits={"tpm": TPM})
    body = {"model": "m-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    money.script({"type": "usage", "mode": "exact", "usage": usage})
    first = money.call(key, "POST", "chat/completions", json={**body, "stream": stream})
    assert first.status_code == 200, first.text
    assert int(first.headers["x-ratelimit-limit-tokens"]) == TPM
    # A stream settles in the background, and corrects the budget just after its ledger row.
    money.settle_until(account, 1)
    time.sleep(0.05)
    second = money.call(key, "POST", "chat/completions", json=body)
    assert second.status_code == 200, second.text
    return int(second.headers["x-ratelimit-remaining-tokens"])


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
def test_the_token_budget_is_charged_prompt_plus_completion(fresh: Money, stream: bool) -> None:
    idle = _remaining_after(fresh, {"prompt_tokens": 0, "completion_tokens": 0}, stream)
    busy = _remaining_after(fresh, USED, stream)
    used = USED["prompt_tokens"] + USED["completion_tokens"]
    assert abs((idle - busy) - used) < TOLERANCE, (idle, busy)
