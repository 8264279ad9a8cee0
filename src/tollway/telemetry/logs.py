"""Structured logs: one JSON object per line, and the per-request context the access log reports.

Only whitelisted fields leave the process: request id, account id, key id, model, route, status,
latency and a few more. Never a key, a prompt, an answer or a header value. Messages and tracebacks
lose the values a failed SQL statement carries (`hide_database_values`): the engines already hide
their parameters, but PostgreSQL echoes values in its own errors (a unique key, a failing row).
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import re
import time
from typing import Any

import orjson

# Fields a log record may carry as `extra=`; anything else passed that way is dropped.
FIELDS = (
    "request_id",
    "account_id",
    "key_id",
    "model",
    "provider",
    "method",
    "route",
    "status",
    "latency_ms",
    "attempt",
    "bytes",
)

# The current request's context, filled as the request moves on: the access log reads it at the end.
_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tollway_request", default=None
)


def begin_request(info: dict[str, Any]) -> contextvars.Token[dict[str, Any] | None]:
    return _request.set(info)


def end_request(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _request.reset(token)


def current() -> dict[str, Any]:
    """The identifiers collected so far for the current request (empty outside a request)."""
    return _request.get() or {}


def note(**fields: Any) -> None:
    """Add identifiers (never content) to the current request's access-log line."""
    info = _request.get()
    if info is not None:
        info.update({k: v for k, v in fields.items() if v is not None})


# Where a database error quotes values: PostgreSQL's DETAIL line ("Key (key_hash)=(…) already
# exists", "Failing row contains (…)"), its "invalid input syntax for type …: "value"", asyncpg's
# "invalid input for query argument $1: 'value' (…)", and SQLAlchemy's "[parameters: …]" should an
# engine ever be made without hide_parameters.
_DATABASE_VALUES = (
    (re.compile(r"(DETAIL:)[^\n]*"), r"\1 (hidden: it may quote values)"),
    (re.compile(r"(invalid input (?:syntax|value) for [^:\n]*:)[^\n]*"), r"\1 (value hidden)"),
    (re.compile(r"(invalid input for query argument \$\d+)[^\n]*"), r"\1 (value hidden)"),
    (re.compile(r"\[parameters: [^\n]*"), "[parameters hidden]"),
)


def hide_database_values(text: str) -> str:
    for pattern, replacement in _DATABASE_VALUES:
        text = pattern.sub(replacement, text)
    return text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return hide_database_values(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # `serve --workers N`: which worker (runtime/supervisor.py)
            "msg": hide_database_values(record.getMessage()),
        }
        info = _request.get()
        if info is not None and "request_id" in info:
            data["request_id"] = info["request_id"]
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exc"] = hide_database_values(self.formatException(record.exc_info))
        return orjson.dumps(data, default=str).decode()


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A dictConfig for Tollway and uvicorn (uvicorn's own access log is replaced by ours)."""
    formatter: dict[str, Any] = (
        {"()": "tollway.telemetry.logs.JsonFormatter"}
        if fmt == "json"
        else {
            "()": "tollway.telemetry.logs.TextFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    )
    level = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "tollway": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # The HTTP clients log every upstream request at INFO: a line per call that repeats our
            # access log, names upstream URLs, and cost 5 % of the event loop (docs/benchmarks.md).
            **{name: {"level": "WARNING"} for name in ("httpx2", "httpcore2", "httpx", "httpcore")},
        },
        "root": {"handlers": ["default"], "level": level},
    }


def configure(level: str, fmt: str) -> None:
    logging.config.dictConfig(logging_config(level, fmt))
