"""A batch run by the money server's own job runner (core/jobs/runner.py hands a `batch` job to the
batch runner, core/batches/runner.py): every line is charged exactly the oracle's price, once, on the
one charge path. tests/contract/test_batches.py covers the Batch API in depth, but its servers are
subprocesses, which the mutation run cannot see into (docs/testing.md); this server is in-process."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from openai.types import Batch

from tests.money.conftest import ORACLE
from tests.money.harness import NANO, Money
from tests.money.oracle import Tokens
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # the runner takes the batch in the background

CREDIT = 5 * NANO
MODEL = "m-chat-markup"  # a model markup over the global one and prices that round up to the nano
USAGE = {"prompt_tokens": 1234, "completion_tokens": 57}


def _line(custom_id: str, model: str = MODEL) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": custom_id}], "max_tokens": 100}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _job_status(money: Money, job_id: str) -> str:
    [(status,)] = money.rows("select status from jobs where id = ?", job_id)
    return str(status)


def _run_batch(money: Money, key: str, names: tuple[str, ...], model: str = MODEL) -> Batch:
    """A chat batch of one line per name, each answered with USAGE, run to its end by the runner."""
    client = money.client(key)
    money.script(*({"type": "usage", "mode": "exact", "usage": USAGE} for _ in names))
    data = b"".join(json.dumps(_line(name, model)).encode() + b"\n" for name in names)
    upload = client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # The batch is a row of the jobs table, which the runner ends once it has run the batch.
    wait_until(lambda: _job_status(money, batch.id) in ("completed", "failed"), f"job {batch.id} to end")
    return client.batches.retrieve(batch.id)


@pytest.mark.parametrize("model", [MODEL, "m-chat-batch"])  # without and with a batch discount
def test_a_batch_runs_every_line_and_charges_each_the_price_of_its_chat(fresh: Money, model: str) -> None:
    account, key = fresh.funded(CREDIT)
    client = fresh.client(key)
    done = _run_batch(fresh, key, ("first", "second"), model)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 0)
    assert done.output_file_id is not None
    output = [json.loads(line) for line in client.files.content(done.output_file_id).content.splitlines()]
    assert sorted(line["custom_id"] for line in output) == ["first", "second"]
    assert all(line["response"]["status_code"] == 200 for line in output)
    price = ORACLE.batch_line(model, Tokens(USAGE["prompt_tokens"], USAGE["completion_tokens"]))
    if model == "m-chat-batch":
        assert price < ORACLE.tokens(model, Tokens(USAGE["prompt_tokens"], USAGE["completion_tokens"]))
    rows = fresh.usage_rows(account)
    assert len(rows) == 2
    assert all(row["cost_nano"] == price for row in rows)
    assert all(row["request_id"].startswith(f"{done.id}/") for row in rows)
    assert fresh.charged(account) == 2 * price
    assert fresh.balances(account) == (CREDIT - 2 * price, 0)
    assert len(fresh.fake_requests()) == 2


def test_a_batch_is_not_paced_by_its_keys_per_minute_limit(fresh: Money) -> None:
    """Like the providers' batch queues, a batch's lines are paced by the batch runner, not by the
    key's per-minute limits (core/inference/pipeline.py `admit`): a key allowed one request a minute
    runs a batch of three, each line charged once. Money still binds every line."""
    account, key = fresh.funded(CREDIT, rate_limits={"rpm": 1})
    done = _run_batch(fresh, key, ("first", "second", "third"))
    assert done.request_counts is not None
    assert (done.status, done.request_counts.completed, done.request_counts.failed) == ("completed", 3, 0)
    price = ORACLE.batch_line(MODEL, Tokens(USAGE["prompt_tokens"], USAGE["completion_tokens"]))
    assert [row["cost_nano"] for row in fresh.usage_rows(account)] == [price] * 3
    assert fresh.balances(account) == (CREDIT - 3 * price, 0)
    # The key's own limit still holds for its live calls: the first is admitted, the second refused.
    body = {"model": MODEL, "messages": [{"role": "user", "content": "live"}], "max_tokens": 5}
    fresh.script({"type": "usage", "mode": "exact", "usage": USAGE})
    statuses = [fresh.call(key, "POST", "chat/completions", json=body).status_code for _ in range(2)]
    assert statuses == [200, 429]
