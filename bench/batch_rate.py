"""Lines per second through the batch runner (issue 22), on SQLite and PostgreSQL.

Starts the fake OpenAI upstream and one `tollway serve` per store (the contract servers of
tests/contract/servers.py, default batch settings), uploads N chat lines with the openai SDK, and
times a batch from `create` to `completed`; then checks every line was settled once. Run from the
repository root: `PYTHONPATH=src:. python bench/batch_rate.py --lines 300`.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

from tests.contract.servers import Tollway, postgres_database, start_tollway
from tests.support.databases import query
from tests.support.processes import start_fake


def measure(tollway: Tollway, lines: int) -> float:
    # A key whose rpm the batch cannot reach: the figure is the runner's, not the plan's limit (a
    # batch's lines count against the key's rate limits like live calls: 60 rpm on the standard plan).
    _, key = tollway.funded("100.00", rate_limits={"rpm": 1_000_000, "rpd": 100_000_000})
    client = tollway.client(key)
    body = b"".join(
        json.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "fake-chat",
                    "messages": [{"role": "user", "content": f"q {i}"}],
                    "max_tokens": 16,
                },
            }
        ).encode()
        + b"\n"
        for i in range(lines)
    )
    entry = client.files.create(file=("in.jsonl", io.BytesIO(body)), purpose="batch")
    started = time.perf_counter()
    batch = client.batches.create(
        input_file_id=entry.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        time.sleep(0.05)
        batch = client.batches.retrieve(batch.id)
    elapsed = time.perf_counter() - started
    assert batch.request_counts is not None and batch.request_counts.completed == lines, batch
    [(settled,)] = query(
        tollway.database_url,
        "select count(*) from ledger where kind = 'settle' and reference like ?",
        f"{batch.id}/%",
    )
    assert settled == lines, (settled, lines)
    return lines / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4, help="TOLLWAY_BATCH_CONCURRENCY")
    args = parser.parse_args()
    with start_fake("tests.fakes.openai_upstream") as fake, tempfile.TemporaryDirectory() as tmp:
        for store in ("sqlite", "postgresql"):
            folder = Path(tmp) / store
            folder.mkdir()
            url = f"sqlite:///{folder}/tollway.db" if store == "sqlite" else postgres_database()
            process = start_tollway(
                folder,
                fake.base_url,
                url,
                {
                    "TOLLWAY_JOBS_POLL_INTERVAL_SECONDS": "0.2",
                    "TOLLWAY_BATCH_CONCURRENCY": str(args.concurrency),
                },
            )
            try:
                rate = measure(Tollway(process, url, fake.base_url), args.lines)
            finally:
                process.stop()
            print(
                f"{store}: {args.lines} lines, {args.concurrency} at once, {rate:.1f} lines/s through the runner"
            )


if __name__ == "__main__":
    main()
