"""Hot-path statements compiled once per dialect and run on the driver's cursor.

The ledger runs about ten statements per call. For each, SQLAlchemy's `Connection.execute` builds
a cache key, an execution context and a result wrapper: on SQLite that was four times the cost of
the statement itself (22 µs against 5 µs, docs/benchmarks.md). A `Prepared` statement keeps what
matters from SQLAlchemy (the SQL written once as Core and compiled per dialect, bind processors so
values are stored exactly as SQLAlchemy stores them, scalar column defaults, errors raised as
`sqlalchemy.exc` classes) and skips the rest. It runs inside the caller's transaction, on the
same connection: SQLite's stdlib driver, or asyncpg's adapter under `run_sync`.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Insert, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # bind names in the order the driver takes its positional parameters
    processors: tuple[Callable[[Any], Any] | None, ...]


@dataclass(frozen=True, slots=True)
class _Context:
    """What an execution context's `handle_dbapi_exception` reads: the dialect."""

    dialect: Dialect


class Prepared:
    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._defaults: dict[str, Any] = {}
        if isinstance(statement, Insert):  # Python-side scalar defaults, as Connection.execute applies
            for column in statement.table.columns:
                default = column.default
                if default is not None and getattr(default, "is_scalar", False):
                    self._defaults[column.key] = default.arg  # type: ignore[attr-defined]
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}
        self._rows: dict[tuple[str, ...], Any] = {}  # returned column names -> row class

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Run with `params`; return the first row (attribute access by column name) or None."""
        plan, values = self._bind(conn, params)
        cursor = self._cursor(conn)
        try:
            cursor.execute(plan.sql, values)
            if not cursor.description:
                return None
            row = cursor.fetchone()
            return None if row is None else self._row_class(cursor.description)(*row)
        except conn.dialect.loaded_dbapi.Error as error:
            raise _wrapped(conn, plan, values, error) from error
        finally:
            cursor.close()

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row, rows of the same keys, in one driver call (executemany: asyncpg sends
        them all before it reads the answers, one round trip for the lot)."""
        if not rows:
            return
        bound = [self._bind(conn, row) for row in rows]
        plan = bound[0][0]
        if any(other is not plan for other, _ in bound):
            raise ValueError("Prepared.many needs rows of the same keys")
        cursor = self._cursor(conn)
        try:
            cursor.executemany(plan.sql, [values for _, values in bound])
        except conn.dialect.loaded_dbapi.Error as error:
            raise _wrapped(conn, plan, bound[0][1], error) from error
        finally:
            cursor.close()

    def _bind(self, conn: Connection, params: Mapping[str, Any]) -> tuple[_Plan, tuple[Any, ...]]:
        if self._defaults:
            params = {**self._defaults, **params}
        key = (conn.dialect.name, tuple(params))
        plan = self._plans.get(key) or self._compile(conn, key)
        values = tuple(
            value if process is None else process(value)
            for value, process in zip((params[n] for n in plan.names), plan.processors, strict=True)
        )
        return plan, values

    @staticmethod
    def _cursor(conn: Connection) -> Any:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        # As the asyncpg dialect's execution context does (pre_exec, handle_dbapi_exception): after a
        # schema change, its cached prepared statements are prepared again rather than failing on
        # this connection for good.
        schema_asof = getattr(conn.dialect, "_invalidate_schema_cache_asof", None)
        if schema_asof is not None:
            cursor._invalidate_schema_cache_asof = schema_asof  # type: ignore[union-attr]
        return cursor

    def _compile(self, conn: Connection, key: tuple[str, tuple[str, ...]]) -> _Plan:
        compiled = self._statement.compile(dialect=conn.dialect, column_keys=list(key[1]))
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        # What Connection.execute applies; a sequence only for tuple binds, which these never use.
        found = cast(Mapping[str, Callable[[Any], Any]], compiled._bind_processors)
        plan = _Plan(compiled.string, names, tuple(found.get(n) for n in names))
        self._plans[key] = plan
        return plan

    def _row_class(self, description: Any) -> Any:
        names = tuple(column[0] for column in description)
        row_class = self._rows.get(names)
        if row_class is None:
            row_class = self._rows[names] = namedtuple("Row", names)
        return row_class


def _wrapped(conn: Connection, plan: _Plan, values: tuple[Any, ...], error: Exception) -> exc.StatementError:
    conn.dialect.execution_ctx_cls.handle_dbapi_exception(_Context(conn.dialect), error)  # type: ignore[arg-type]
    return exc.DBAPIError.instance(  # values hidden, as every engine does (store/db.py)
        plan.sql,
        values,
        error,
        conn.dialect.loaded_dbapi.Error,
        hide_parameters=True,
        dialect=conn.dialect,
    )
