"""A catalog reload while a stream is running: the stream is not cut, and it is charged the prices it
was admitted under; the next request pays the new ones.

The reload replaces the upstream provider (its headers change) while the stream still reads from the
old one; the old one is closed only once the requests and streams it serves have ended (runtime/reload.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.money.conftest import CATALOG, Fakes, own_server
from tests.money.harness import NANO, Money, write_catalog
from tests.money.oracle import Oracle, Tokens
from tests.money.test_stream_ends import read

pytestmark = pytest.mark.slow  # starts a server

CREDIT = 5 * NANO
OLD, NEW = 'input: "0.15", output: "0.60"', 'input: "0.30", output: "1.90"'
RELOADED = CATALOG.replace(OLD, NEW).replace(
    'base_url: "{fake}/v1", api_key_env: MONEY_UPSTREAM_KEY}}',
    'base_url: "{fake}/v1", api_key_env: MONEY_UPSTREAM_KEY, headers: {{x-test-catalog: "2"}}}}',
    1,
)


def _price(oracle: Oracle, money: Money, account: str) -> tuple[int, int]:
    """(charged, the oracle's price of the usage row's tokens)."""
    [row] = money.usage_rows(account)
    return money.charged(account), oracle.tokens(
        "m-chat", Tokens(row["prompt_tokens"], row["completion_tokens"])
    )


def test_a_stream_admitted_before_a_reload_ends_whole_at_the_prices_it_was_admitted_under(
    money_fakes: Fakes, tmp_path: Path
) -> None:
    assert OLD in CATALOG and RELOADED.count("x-test-catalog") == 1
    old, new = Oracle(CATALOG.format(fake="u", queue="u")), Oracle(RELOADED.format(fake="u", queue="u"))
    body = {
        "model": "m-chat",
        "messages": [{"role": "user", "content": "a slow answer please"}],
        "stream": True,
    }
    with own_server(money_fakes, tmp_path) as (money, _):
        account, key = money.funded(CREDIT)
        money.script({"type": "slow", "delay": 0.2})
        reloads = []

        def reload() -> None:
            write_catalog(tmp_path, RELOADED, fake=money_fakes.openai.url, queue=money_fakes.queue.url)
            answer = money.admin("POST", "/reload")
            reloads.append((answer.status_code, answer.text))

        got = read(money, key, body, at_two=reload)
        assert [status for status, _ in reloads] == [200], reloads
        assert got.frames[-1] == "[DONE]" and not got.dropped  # the stream was not cut by the reload
        money.settle_until(account, 1)
        charged, at_old = _price(old, money, account)
        assert charged == at_old > 0

        later, later_key = money.funded(CREDIT)
        answer = money.client(later_key).chat.completions.create(
            model="m-chat", messages=[{"role": "user", "content": "after the reload"}]
        )
        assert answer.choices[0].message.content
        assert money.fake_requests()[-1]["_headers"].get("x-test-catalog") == "2"
        charged, at_new = _price(new, money, later)
        assert charged == at_new != _price(old, money, later)[1]
