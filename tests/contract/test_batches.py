"""Files and batches (issue 22) through the official openai SDK, on SQLite and PostgreSQL.

Own servers (small file limits, short job leases) on the contract catalog: `fake-chat` has
`batch_discount: "0.5"`, `fake-embed` none (full price). Every line's charge is checked against
the ledger and its usage row; every bad input is a 4xx with nothing charged; a batch survives a
server stopped (SIGTERM) or killed (SIGKILL) mid-batch with every line metered exactly once.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.contract.servers import Tollway, postgres_database, start_tollway
from tests.support.databases import query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow  # starts servers

ENV = {
    "TOLLWAY_FILES_MAX_BYTES": "20000",
    "TOLLWAY_FILES_MAX_LINE_BYTES": "2000",
    "TOLLWAY_JOBS_LEASE_SECONDS": "2",
    "TOLLWAY_JOBS_POLL_INTERVAL_SECONDS": "0.2",
    "TOLLWAY_BATCH_CONCURRENCY": "2",
    "TOLLWAY_HOLD_LEASE_SECONDS": "3",  # a killed server's holds are swept soon
    "TOLLWAY_SWEEP_INTERVAL_SECONDS": "1",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, own_fake: ServerProcess
) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp(f"batches-{request.param}")
    url = f"sqlite:///{tmp}/tollway.db" if request.param == "sqlite" else postgres_database()
    process = start_tollway(tmp, own_fake.base_url, url, ENV)
    yield Tollway(process, url, own_fake.base_url)
    process.stop()


@pytest.fixture
def fresh(server: Tollway) -> Iterator[Tollway]:
    server.fake("POST", "reset")
    yield server
    server.fake("POST", "reset")


def chat_line(custom_id: str, text: str = "hello", model: str = "fake-chat") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 20}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[Any]) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def upload(client: openai.OpenAI, data: bytes) -> Any:
    return client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")


def wait_ended(client: openai.OpenAI, batch_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still {batch.status}")


def output_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).content.splitlines()]


def settled(server: Tollway, batch_id: str) -> dict[str, int]:
    """Each settled line's reference → what the ledger charged it."""
    rows = query(
        server.database_url,
        "select reference, amount_nano from ledger where kind = 'settle' and reference like ?",
        f"{batch_id}/%",
    )
    return {str(ref): -int(amount) for ref, amount in rows}


def usage_rows(server: Tollway, batch_id: str) -> dict[str, tuple[int, int, int, str]]:
    rows = query(
        server.database_url,
        "select request_id, prompt_tokens, completion_tokens, cost_nano, endpoint from usage where request_id like ?",
        f"{batch_id}/%",
    )
    return {str(r[0]): (int(r[1]), int(r[2]), int(r[3]), str(r[4])) for r in rows}


def half_price(prompt: int, completion: int) -> int:
    """fake-chat: $1/M in, $2/M out (1000 and 2000 nano a token), then the 0.5 batch discount, rounded up."""
    full = prompt * 1000 + completion * 2000
    return (full + 1) // 2


def assert_untouched(server: Tollway, account_id: str, balance: int) -> None:
    assert server.ledger_sums(account_id)[:2] == (balance, 0)
    assert query(
        server.database_url,
        "select count(*) from ledger where account_id = ? and kind <> 'credit'",
        account_id,
    ) == [(0,)]


# -- the happy paths -------------------------------------------------------------------------------


def test_chat_batch_charges_each_line_at_the_batch_price(fresh: Tollway) -> None:
    account_id, key = fresh.funded("5.00")
    client = fresh.client(key)
    before = fresh.ledger_sums(account_id)[0]
    entry = upload(client, jsonl([chat_line(f"req-{i}", f"question {i}") for i in range(5)]))
    assert (entry.object, entry.purpose, entry.status, entry.filename) == (
        "file",
        "batch",
        "processed",
        "input.jsonl",
    )
    assert entry.bytes > 0 and entry.id.startswith("file-") and entry.expires_at
    assert client.files.retrieve(entry.id).id == entry.id
    batch = client.batches.create(
        input_file_id=entry.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "one"},
    )
    assert batch.status in ("validating", "in_progress", "finalizing", "completed")
    assert batch.metadata == {"run": "one"} and batch.request_counts and batch.request_counts.total == 5
    done = wait_ended(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts and (done.request_counts.completed, done.request_counts.failed) == (5, 0)
    assert done.completed_at and done.in_progress_at and done.error_file_id is None
    lines = output_lines(client, done.output_file_id)
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(5)]
    charges, usage = settled(fresh, batch.id), usage_rows(fresh, batch.id)
    assert len(charges) == len(usage) == 5
    for line in lines:
        response = line["response"]
        assert response["status_code"] == 200 and line["error"] is None
        assert response["body"]["object"] == "chat.completion" and response["body"]["model"] == "fake-chat"
        reference = response["request_id"]
        prompt, completion, cost, endpoint = usage[reference]
        reported = response["body"]["usage"]
        assert (prompt, completion) == (reported["prompt_tokens"], reported["completion_tokens"])
        assert charges[reference] == cost == half_price(prompt, completion) > 0
        assert endpoint == "chat_batch"
    balance, reserved, ledger_total, reserved_total = fresh.ledger_sums(account_id)
    assert (reserved, reserved_total) == (0, 0)
    assert before - balance == sum(charges.values()) and ledger_total == balance
    # The output file is gone after its first download; the input went when the batch ended.
    with pytest.raises(openai.NotFoundError):
        client.files.content(done.output_file_id or "")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(entry.id)


def test_embeddings_batch_at_full_price(fresh: Tollway) -> None:
    _, key = fresh.funded("5.00")
    client = fresh.client(key)
    lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "fake-embed", "input": f"text {i}"},
        }
        for i in range(3)
    ]
    batch = client.batches.create(
        input_file_id=upload(client, jsonl(lines)).id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_ended(client, batch.id)
    assert done.status == "completed" and done.request_counts and done.request_counts.completed == 3
    out = output_lines(client, done.output_file_id)
    usage, charges = usage_rows(fresh, batch.id), settled(fresh, batch.id)
    for line in out:
        assert line["response"]["body"]["object"] == "list"
        prompt, _, cost, endpoint = usage[line["response"]["request_id"]]
        # fake-embed: $0.10/M = 100 nano a token, no discount.
        assert (
            charges[line["response"]["request_id"]] == cost == prompt * 100 and endpoint == "embeddings_batch"
        )


def test_completions_batch_at_full_price_and_a_chat_only_model_fails_its_line_uncharged(
    fresh: Tollway,
) -> None:
    account_id, key = fresh.funded("5.00")
    client = fresh.client(key)
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {"model": model, "prompt": f"count to {i}", "max_tokens": 8},
        }
        for i, model in enumerate(["fake-instruct", "fake-instruct", "fake-chat"])
    ]
    batch = client.batches.create(
        input_file_id=upload(client, jsonl(lines)).id, endpoint="/v1/completions", completion_window="24h"
    )
    done = wait_ended(client, batch.id)
    assert done.status == "completed" and done.request_counts
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    usage, charges = usage_rows(fresh, batch.id), settled(fresh, batch.id)
    out = output_lines(client, done.output_file_id)
    assert [line["custom_id"] for line in out] == ["c0", "c1"]
    for line in out:
        body = line["response"]["body"]
        assert body["object"] == "text_completion" and body["model"] == "fake-instruct"
        prompt, completion, cost, endpoint = usage[line["response"]["request_id"]]
        assert (prompt, completion) == (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])
        # fake-instruct: $1/M in, $2/M out, no batch discount.
        assert charges[line["response"]["request_id"]] == cost == prompt * 1000 + completion * 2000 > 0
        assert endpoint == "completions_batch"
    [failed] = output_lines(client, done.error_file_id)
    assert failed["custom_id"] == "c2" and failed["response"]["status_code"] == 400
    assert len(charges) == 2
    balance, reserved, ledger_total, _ = fresh.ledger_sums(account_id)
    assert reserved == 0 and ledger_total == balance == 5_000_000_000 - sum(charges.values())


def test_responses_batch_keeps_each_answer_as_a_response_at_the_batch_price(fresh: Tollway) -> None:
    """Lines of /v1/responses run as the live route runs a stateless call (translated to chat, at the
    batch price) and their answers are Response objects; one that asks for storage fails uncharged."""
    account_id, key = fresh.funded("5.00")
    client = fresh.client(key)
    bodies = [
        {"model": "fake-chat", "input": "one two", "instructions": "be brief", "max_output_tokens": 16},
        {"model": "fake-chat", "input": [{"role": "user", "content": "three four five"}]},
        {"model": "fake-chat", "input": "six", "store": True},  # storage is off here
    ]
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/responses", "body": body}
        for i, body in enumerate(bodies)
    ]
    batch = client.batches.create(
        input_file_id=upload(client, jsonl(lines)).id, endpoint="/v1/responses", completion_window="24h"
    )
    done = wait_ended(client, batch.id)
    assert done.status == "completed" and done.request_counts
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    usage, charges = usage_rows(fresh, batch.id), settled(fresh, batch.id)
    out = output_lines(client, done.output_file_id)
    assert [line["custom_id"] for line in out] == ["r0", "r1"]
    for line in out:
        response = openai.types.responses.Response.model_validate(line["response"]["body"])
        assert response.object == "response" and response.status == "completed" and response.output_text
        assert response.usage is not None
        prompt, completion, cost, endpoint = usage[line["response"]["request_id"]]
        assert (prompt, completion) == (response.usage.input_tokens, response.usage.output_tokens)
        assert charges[line["response"]["request_id"]] == cost == half_price(prompt, completion) > 0
        assert endpoint == "responses_batch"
    [failed] = output_lines(client, done.error_file_id)
    assert failed["custom_id"] == "r2" and failed["response"]["status_code"] == 400
    balance, reserved, ledger_total, _ = fresh.ledger_sums(account_id)
    assert reserved == 0 and ledger_total == balance == 5_000_000_000 - sum(charges.values())


def test_lists_page_through_files_and_batches(fresh: Tollway) -> None:
    _, key = fresh.funded("5.00")
    client = fresh.client(key)
    ids = [upload(client, jsonl([chat_line("a")])).id for _ in range(3)]
    page = client.files.list(limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2] and page.has_more
    rest = client.files.list(limit=2, after=page.data[-1].id)
    assert [f.id for f in rest.data] == [ids[0]] and not rest.has_more
    made = [
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for file_id in ids[:2]
    ]
    listed = client.batches.list(limit=1)
    assert [b.id for b in listed.data] == [made[1]] and listed.has_more
    assert [b.id for b in client.batches.list(limit=5, after=made[1]).data] == [made[0]]
    deleted = client.files.delete(ids[2])
    assert deleted.deleted and deleted.id == ids[2]
    for batch_id in made:
        wait_ended(client, batch_id)


# -- bad input: a 4xx, nothing charged --------------------------------------------------------------


def bad_line_files() -> dict[str, tuple[bytes, str]]:
    good = [chat_line(f"ok-{i}") for i in range(6)]
    return {
        "bad line 7": (jsonl([*good, b'{"custom_id": "x", "method": "POST", "url": ']), "Line 7"),
        "line over the limit": (jsonl([chat_line("big", "x" * 3000)]), "Line 1: "),
        "custom_id twice": (jsonl([chat_line("same"), chat_line("same")]), "used on line 1"),
        "unsupported url": (
            jsonl([{**chat_line("u"), "url": "/v1/images/generations"}]),
            "'/v1/images/generations'",
        ),
        "GET": (jsonl([{**chat_line("g"), "method": "GET"}]), '"POST"'),
        "no model": (jsonl([{**chat_line("m"), "body": {"messages": []}}]), "`model`"),
    }


@pytest.mark.parametrize("case", list(bad_line_files()))
def test_a_bad_file_is_refused_naming_its_line(fresh: Tollway, case: str) -> None:
    account_id, key = fresh.funded("1.00")
    data, named = bad_line_files()[case]
    with pytest.raises(openai.BadRequestError) as refused:
        upload(fresh.client(key), data)
    assert named in refused.value.message
    assert fresh.client(key).files.list().data == []
    assert_untouched(fresh, account_id, 1_000_000_000)


def test_a_file_over_the_size_limit_is_413(fresh: Tollway) -> None:
    account_id, key = fresh.funded("1.00")
    data = jsonl([chat_line(f"id-{i}", "y" * 1500) for i in range(15)])  # > 20000 bytes, each line fine
    with pytest.raises(openai.APIStatusError) as refused:
        upload(fresh.client(key), data)
    assert refused.value.status_code == 413 and "20000" in refused.value.message
    assert_untouched(fresh, account_id, 1_000_000_000)


def test_bad_batches_are_refused(fresh: Tollway) -> None:
    account_id, key = fresh.funded("1.00")
    client = fresh.client(key)
    chat_file = upload(client, jsonl([chat_line("a"), chat_line("b", model="fake-uncensored")])).id
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=chat_file, endpoint="/v1/responses", completion_window="24h")  # type: ignore[arg-type]
    assert "/v1/responses" in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=chat_file, endpoint="/v1/embeddings", completion_window="24h")
    assert "Line 1" in refused.value.message
    with pytest.raises(openai.PermissionDeniedError) as denied:  # a model the key may not use
        client.batches.create(
            input_file_id=chat_file, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "Line 2" in denied.value.message
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id=chat_file, endpoint="/v1/chat/completions", completion_window="48h"
        )  # type: ignore[arg-type]
    assert client.batches.list().data == []
    assert_untouched(fresh, account_id, 1_000_000_000)


def test_another_accounts_file_and_batch_are_404(fresh: Tollway) -> None:
    _, owner_key = fresh.funded("1.00")
    account_id, other_key = fresh.funded("1.00")
    owner, other = fresh.client(owner_key), fresh.client(other_key)
    entry = upload(owner, jsonl([chat_line("secret", "my private prompt")]))
    for call in (
        lambda: other.files.retrieve(entry.id),
        lambda: other.files.content(entry.id),
        lambda: other.files.delete(entry.id),
        lambda: other.batches.create(
            input_file_id=entry.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError) as missing:
            call()
        assert "private" not in str(missing.value.body)
    assert owner.files.content(entry.id).content.startswith(b'{"custom_id"')  # still there for its owner
    batch = owner.batches.create(
        input_file_id=entry.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.cancel(batch.id)
    assert_untouched(fresh, account_id, 1_000_000_000)
    wait_ended(owner, batch.id)


def test_cancel_of_a_finished_batch_is_409(fresh: Tollway) -> None:
    account_id, key = fresh.funded("1.00")
    client = fresh.client(key)
    batch = client.batches.create(
        input_file_id=upload(client, jsonl([chat_line("one")])).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    assert wait_ended(client, batch.id).status == "completed"
    charged = fresh.ledger_sums(account_id)[0]
    with pytest.raises(openai.ConflictError) as refused:
        client.batches.cancel(batch.id)
    assert "completed" in refused.value.message
    assert fresh.ledger_sums(account_id)[:2] == (charged, 0)


# -- stopping: balance, cancel -----------------------------------------------------------------------


def test_a_batch_the_balance_cannot_cover_stops_cleanly(fresh: Tollway) -> None:
    # Each line holds its prompt plus 20 output tokens at half price (~25 µUSD) and costs less: $0.00006 pays a few.
    account_id, key = fresh.funded("0.00006")
    client = fresh.client(key)
    batch = client.batches.create(
        input_file_id=upload(client, jsonl([chat_line(f"l{i}") for i in range(12)])).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = wait_ended(client, batch.id)
    assert done.status == "completed" and done.request_counts
    answered, failed = done.request_counts.completed, done.request_counts.failed
    assert answered + failed == 12 and 0 < answered < 12
    errors = output_lines(client, done.error_file_id)
    assert len(errors) == failed
    codes = {
        line["error"]["code"] if line["error"] else line["response"]["body"]["error"]["type"]
        for line in errors
    }
    assert codes == {"insufficient_balance"}
    charges = settled(fresh, batch.id)
    assert len(charges) == answered
    balance, reserved, ledger_total, _ = fresh.ledger_sums(account_id)
    assert reserved == 0 and balance >= 0 and balance == 60_000 - sum(charges.values()) == ledger_total


def test_cancel_stops_a_running_batch(fresh: Tollway) -> None:
    account_id, key = fresh.funded("5.00")
    client = fresh.client(key)
    fresh.script(*[{"type": "delay_first_byte", "seconds": 0.3}] * 30)
    batch = client.batches.create(
        input_file_id=upload(client, jsonl([chat_line(f"c{i}") for i in range(30)])).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    time.sleep(1.0)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    done = wait_ended(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at and done.request_counts
    answered = done.request_counts.completed
    assert 0 < answered < 30 and done.request_counts.failed == 30 - answered
    errors = output_lines(client, done.error_file_id)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert len(settled(fresh, batch.id)) == answered
    assert fresh.ledger_sums(account_id)[1] == 0


def test_batch_lines_are_not_held_to_the_keys_per_minute_limits(fresh: Tollway) -> None:
    """A key allowed 2 calls a minute, one at a time, runs a 6-line batch in full (the batch runner
    paces it, as the providers' batch queues do), every line charged once; its live calls stay limited."""
    account_id, key = fresh.funded("5.00", rate_limits={"rpm": 2, "concurrency": 1})
    client = fresh.client(key)
    batch = client.batches.create(
        input_file_id=upload(client, jsonl([chat_line(f"q{i}") for i in range(6)])).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = wait_ended(client, batch.id, timeout=90)
    assert done.request_counts and (done.request_counts.completed, done.request_counts.failed) == (6, 0)
    charges = settled(fresh, batch.id)
    assert len(charges) == 6
    assert fresh.ledger_sums(account_id)[:2] == (5_000_000_000 - sum(charges.values()), 0)
    live = []
    for _ in range(3):
        try:
            client.with_options(max_retries=0).chat.completions.create(**chat_line("live")["body"])
            live.append(200)
        except openai.RateLimitError:
            live.append(429)
    assert live.count(429) >= 1, live


def test_a_key_revoked_mid_batch_spends_nothing_more(fresh: Tollway) -> None:
    account_id, key = fresh.funded("5.00")
    client = fresh.client(key)
    fresh.script(*[{"type": "delay_first_byte", "seconds": 0.3}] * 30)
    batch = client.batches.create(
        input_file_id=upload(client, jsonl([chat_line(f"k{i}") for i in range(30)])).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    _wait_for(lambda: len(settled(fresh, batch.id)) >= 2)
    [(key_id,)] = query(fresh.database_url, "select key_id from batches where id = ?", batch.id)
    assert fresh.admin("DELETE", f"/keys/{key_id}").status_code in (200, 204)
    deadline = time.monotonic() + 60
    while (
        status := query(fresh.database_url, "select status from batches where id = ?", batch.id)[0][0]
    ) not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    [(answered, failed, stop)] = query(
        fresh.database_url, "select completed, failed, stop_code from batches where id = ?", batch.id
    )
    assert stop == "key_revoked" and answered + failed == 30 and failed > 0
    charged = settled(fresh, batch.id)
    assert len(charged) == answered
    assert fresh.ledger_sums(account_id)[:2] == (5_000_000_000 - sum(charged.values()), 0)


# -- restarts: a stopped server, a killed one ---------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_batch_survives_its_server_metering_each_line_once(
    tmp_path: Path, own_fake: ServerProcess, backend: str, how: str
) -> None:
    url = f"sqlite:///{tmp_path}/tollway.db" if backend == "sqlite" else postgres_database()
    first = Tollway(start_tollway(tmp_path, own_fake.base_url, url, ENV), url, own_fake.base_url)
    first.fake("POST", "reset")
    account_id, key = first.funded("5.00")
    total = 24
    first.script(*[{"type": "delay_first_byte", "seconds": 0.25}] * total)
    client = first.client(key)
    batch = client.batches.create(
        input_file_id=upload(client, jsonl([chat_line(f"r{i}") for i in range(total)])).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    _wait_for(lambda: len(settled(first, batch.id)) >= 3)
    if how == "stop":
        first.process.stop()  # SIGTERM: the runner hands its lease back
    else:
        first.process.kill()  # SIGKILL: the lease expires
    assert len(settled(first, batch.id)) < total, "the batch ended before its server went"
    second = Tollway(start_tollway(tmp_path, own_fake.base_url, url, ENV), url, own_fake.base_url)
    try:
        done = wait_ended(second.client(key), batch.id, timeout=90)
        assert done.status == "completed" and done.request_counts
        assert (done.request_counts.completed, done.request_counts.failed) == (total, 0)
        lines = output_lines(second.client(key), done.output_file_id)
        assert sorted(line["custom_id"] for line in lines) == sorted(f"r{i}" for i in range(total))
        charges = settled(second, batch.id)
        # One settlement a line, and exactly the one the output names.
        lines_charged = [ref.split("/")[1].split("-")[0] for ref in charges]
        assert sorted(lines_charged, key=int) == [str(n) for n in range(1, total + 1)]
        assert {line["response"]["request_id"] for line in lines} == set(charges)
        balance, reserved, ledger_total, _ = second.ledger_sums(account_id)
        if how == "stop":
            assert reserved == 0
        else:  # a killed server's holds go when the sweeper finds their lease expired
            _wait_for(lambda: second.ledger_sums(account_id)[1] == 0, timeout=60)
        assert balance == 5_000_000_000 - sum(charges.values()) == second.ledger_sums(account_id)[2]
        assert ledger_total <= balance
    finally:
        second.process.stop()


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- Anthropic Message Batches ---------------------------------------------------------------------


def message_request(custom_id: str, model: str = "fake-chat") -> dict[str, Any]:
    params = {"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": f"hi {custom_id}"}]}
    return {"custom_id": custom_id, "params": params}


def test_anthropic_message_batch_runs_on_the_same_runner(fresh: Tollway) -> None:
    account_id, key = fresh.funded("5.00")
    client = anthropic.Anthropic(base_url=fresh.url, api_key=key, max_retries=0)
    batch = client.messages.batches.create(requests=[message_request(f"m{i}") for i in range(3)])  # type: ignore[list-item]
    assert batch.type == "message_batch" and batch.processing_status in ("in_progress", "ended")
    assert batch.id.startswith("msgbatch_")
    deadline = time.monotonic() + 60
    while (batch := client.messages.batches.retrieve(batch.id)).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    counts = batch.request_counts
    assert (counts.succeeded, counts.errored, counts.processing, counts.canceled) == (3, 0, 0, 0)
    assert batch.ended_at is not None and batch.results_url
    results = sorted(client.messages.batches.results(batch.id), key=lambda r: r.custom_id)
    assert [r.custom_id for r in results] == ["m0", "m1", "m2"]
    charges, usage = settled(fresh, batch.id), usage_rows(fresh, batch.id)
    assert len(charges) == 3
    for result in results:
        assert result.result.type == "succeeded"
        message = result.result.message
        assert message.type == "message" and message.content[0].type == "text"
        [(reference, (prompt, completion, cost, _))] = [
            (ref, row)
            for ref, row in usage.items()
            if (row[0], row[1]) == (message.usage.input_tokens, message.usage.output_tokens)
        ][:1]
        assert charges[reference] == cost == half_price(prompt, completion)
    assert [b.id for b in client.messages.batches.list(limit=5).data] == [batch.id]
    assert fresh.client(key).batches.list().data == []  # the OpenAI surface lists its own batches
    with pytest.raises(anthropic.ConflictError):
        client.messages.batches.cancel(batch.id)
    balance, reserved, _, _ = fresh.ledger_sums(account_id)
    assert reserved == 0 and balance == 5_000_000_000 - sum(charges.values())


def test_anthropic_bad_message_batches_are_refused(fresh: Tollway) -> None:
    account_id, key = fresh.funded("1.00")
    client = anthropic.Anthropic(base_url=fresh.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.batches.create(requests=[message_request("a"), message_request("a")])  # type: ignore[list-item]
    assert "requests[1]" in refused.value.message
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        client.messages.batches.create(
            requests=[message_request("a"), message_request("b", "fake-uncensored")]
        )  # type: ignore[list-item]
    assert "Line 2" in denied.value.message
    _, other_key = fresh.funded("1.00")
    mine = client.messages.batches.create(requests=[message_request("x")])  # type: ignore[list-item]
    other = anthropic.Anthropic(base_url=fresh.url, api_key=other_key, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        fresh.client(key).batches.retrieve(mine.id)  # not an OpenAI batch either
    assert client.messages.batches.list().data[0].id == mine.id
    deadline = time.monotonic() + 60
    while client.messages.batches.retrieve(mine.id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert len(settled(fresh, mine.id)) == 1
    assert len(query(fresh.database_url, "select id from batches where account_id = ?", account_id)) == 1
