"""Logs never carry the values of a failed SQL statement: the engines hide their parameters and the
formatters remove what the database echoes (PostgreSQL's DETAIL, asyncpg's argument errors)."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tollway.store.transactor import Transactor
from tollway.telemetry.logs import JsonFormatter, TextFormatter, hide_database_values


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A logger writing through both of Tollway's formatters."""
    json_out, text_out = io.StringIO(), io.StringIO()
    logger = logging.getLogger(f"tollway.test.{uuid.uuid4().hex}")
    for stream, formatter in ((json_out, JsonFormatter()), (text_out, TextFormatter("%(message)s"))):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.propagate = False
    yield logger, json_out, text_out
    logger.handlers.clear()


def _assert_hidden(outputs: tuple[io.StringIO, io.StringIO], secret: str, logged: str) -> None:
    for out in outputs:
        written = out.getvalue()
        assert logged in written  # the failure itself is logged
        assert secret not in written, written


async def test_a_unique_violation_is_logged_without_the_values(
    engine: AsyncEngine, captured: tuple[logging.Logger, io.StringIO, io.StringIO]
) -> None:
    logger, *outputs = captured
    secret = f"secret-{uuid.uuid4().hex}"
    insert = text("insert into server_state (name, value) values (:name, :value)")
    async with engine.begin() as conn:
        await conn.execute(insert, {"name": secret, "value": secret})
    try:
        async with engine.begin() as conn:  # PostgreSQL: DETAIL:  Key (name)=(secret-…) already exists.
            await conn.execute(insert, {"name": secret, "value": secret})
    except Exception:
        logger.exception("insert failed: %s", "see exc")
    _assert_hidden((outputs[0], outputs[1]), secret, "server_state")


async def test_the_transactor_path_hides_values_too(
    engine: AsyncEngine, captured: tuple[logging.Logger, io.StringIO, io.StringIO]
) -> None:
    logger, *outputs = captured
    secret = f"secret-{uuid.uuid4().hex}"
    transactor = Transactor(engine)  # its own writer engine
    insert = text("insert into server_state (name, value) values (:name, :value)")
    try:
        await transactor.run(lambda conn: conn.execute(insert, {"name": secret, "value": "x"}))
        try:
            await transactor.run(lambda conn: conn.execute(insert, {"name": secret, "value": "x"}))
        except Exception as exc:
            logger.error("write failed: %s", exc)  # the message itself, not only a traceback
    finally:
        await transactor.aclose()
    _assert_hidden((outputs[0], outputs[1]), secret, "server_state")


async def test_an_argument_asyncpg_cannot_encode_is_logged_without_it(
    pg_url: str, captured: tuple[logging.Logger, io.StringIO, io.StringIO]
) -> None:
    from tollway.store.db import create_engine

    logger, *outputs = captured
    secret = f"secret-{uuid.uuid4().hex}"
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:  # asyncpg: invalid input for query argument $1: 'secret-…'
            await conn.execute(text("select cast(:v as bigint) + 1"), {"v": secret})
    except Exception:
        logger.exception("query failed")
    finally:
        await engine.dispose()
    _assert_hidden((outputs[0], outputs[1]), secret, "DataError")


def test_what_is_hidden() -> None:
    raw = (
        'duplicate key value violates unique constraint "uq"\nDETAIL:  Key (key_hash)=(abc123) already exists.\n'
        'invalid input syntax for type integer: "abc123"\n'
        "invalid input for query argument $3: 'abc123' (an integer is required)\n"
        "[SQL: INSERT INTO t VALUES ($1)]\n[parameters: ('abc123',)]"
    )
    hidden = hide_database_values(raw)
    assert "abc123" not in hidden
    assert 'duplicate key value violates unique constraint "uq"' in hidden and "[SQL: INSERT INTO t" in hidden
