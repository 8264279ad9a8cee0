"""The console's HTML: one layout, escaping helpers and form pieces. Every value from the database or
the caller goes through `e()` (html.escape, quotes too): a key labelled `<script>` renders as text."""

from __future__ import annotations

import contextlib
import functools
import html
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tollway import __version__
from tollway.console.sessions import SignInRequired, Viewer, viewer
from tollway.errors import TollwayError

# Scripts only from our own origin; no inline script, no framing: a stored label cannot run code.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _nav(who: Viewer | None) -> str:
    if who is None:
        return ""
    links = [("/console", "Dashboard")]
    if who.caller.is_operator:
        links += [
            ("/console/operator/accounts", "Accounts"),
            ("/console/operator/credit", "Credit an account"),
            ("/console/operator/usage", "Usage and revenue"),
            ("/console/operator/upstreams", "Upstreams"),
            ("/console/operator/catalog", "Catalog"),
            ("/console/operator/audit", "Audit log"),
            ("/console/operator/status", "System status"),
        ]
    else:
        links += [
            ("/console/keys", "Keys"),
            ("/console/usage", "Usage"),
            ("/console/models", "Models"),
            ("/console/jobs", "Jobs"),
            ("/console/quickstart", "Quick start"),
            ("/console/funding", "Funding"),
            ("/console/billing", "Billing"),
        ]
    links.append(("/docs", "API docs"))
    items = "".join(f'<li><a href="{href}">{e(text)}</a></li>' for href, text in links)
    out = form("/console/logout", who, '<button type="submit">Sign out</button>', css="inline")
    return f'<nav aria-label="Console"><ul>{items}</ul>{out}</nav>'


def page(title: str, body: str, who: Viewer | None = None, status: int = 200) -> HTMLResponse:
    role = (
        "" if who is None else ("operator" if who.caller.is_operator else f"account {who.caller.account_id}")
    )
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · Tollway console</title><link rel="stylesheet" href="/console/static/console.css">
<script src="/console/static/console.js" defer></script></head>
<body><header><a class="brand" href="/console">Tollway console</a> <span class="who">{e(role)}</span>{_nav(who)}</header>
<main id="main"><h1>{e(title)}</h1>{body}</main>
<footer>Tollway {e(__version__)}</footer></body></html>"""
    return HTMLResponse(doc, status_code=status, headers=SECURITY_HEADERS)


def form(action: str, who: Viewer | None, inner: str, *, css: str = "", method: str = "post") -> str:
    token = "" if who is None else f'<input type="hidden" name="csrf" value="{e(who.csrf)}">'
    return f'<form method="{method}" action="{e(action)}" class="{e(css)}">{token}{inner}</form>'


def field(
    name: str, label: str, *, kind: str = "text", value: str = "", required: bool = False, hint: str = ""
) -> str:
    req = " required" if required else ""
    help_id = f"{name}-hint"
    described = f' aria-describedby="{help_id}"' if hint else ""
    hint_html = f'<small id="{help_id}">{e(hint)}</small>' if hint else ""
    return (
        f'<p><label for="{name}">{e(label)}</label>'
        f'<input id="{name}" name="{name}" type="{kind}" value="{e(value)}"{req}{described}>{hint_html}</p>'
    )


def select(name: str, label: str, options: Iterable[tuple[str, str]], chosen: str = "") -> str:
    opts = "".join(
        f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>' for v, t in options
    )
    return f'<p><label for="{name}">{e(label)}</label><select id="{name}" name="{name}">{opts}</select></p>'


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], caption: str, raw_cols: int = 0) -> str:
    """A table; every cell escaped except the last `raw_cols` (buttons built by this package)."""
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = list(row)
        split = len(cells) - raw_cols
        tds = [f"<td>{e(c)}</td>" for c in cells[:split]] + [f"<td>{c}</td>" for c in cells[split:]]
        body.append("<tr>" + "".join(tds) + "</tr>")
    if not body:
        body.append('<tr><td colspan="99">Nothing yet.</td></tr>')
    return f"<table><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def notice(message: str, kind: str = "error") -> str:
    role = "alert" if kind == "error" else "status"
    return f'<p class="notice {kind}" role="{role}">{e(message)}</p>'


def pager(base: str, page_no: int, pages: int, query: str = "") -> str:
    links = []
    if page_no > 1:
        links.append(f'<a href="{e(base)}?{e(query)}&amp;page={page_no - 1}" rel="prev">Previous</a>')
    links.append(f"<span>Page {page_no} of {max(pages, 1)}</span>")
    if page_no < pages:
        links.append(f'<a href="{e(base)}?{e(query)}&amp;page={page_no + 1}" rel="next">Next</a>')
    return f'<nav class="pager" aria-label="Pages">{" ".join(links)}</nav>'


def guarded(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """A console page: no session → the sign-in form; a refused action → the page with the message, and
    the status the API would answer (404 for another account's id, 403 for a missing CSRF token)."""

    @functools.wraps(handler)
    async def run(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(request, *args, **kwargs)
        except SignInRequired:
            return RedirectResponse("/console/login", status_code=303)
        except TollwayError as exc:
            who = None
            with contextlib.suppress(SignInRequired, TollwayError):
                who = await viewer(request)
            return page(
                "Not done",
                notice(exc.message) + '<p><a href="/console">Back to the dashboard</a></p>',
                who,
                exc.status,
            )

    return run


def checkbox(name: str, label: str, checked: bool, *, value: str = "on", box_id: str = "") -> str:
    ident = box_id or name
    mark = " checked" if checked else ""
    return (
        f'<p class="check"><input type="checkbox" id="{e(ident)}" name="{e(name)}" value="{e(value)}"{mark}>'
        f'<label for="{e(ident)}">{e(label)}</label></p>'
    )


def idempotency_field() -> str:
    """A fresh key per form render: submitting the same form twice (a double click, a reload) applies
    once, as the API's Idempotency-Key header does."""
    return f'<input type="hidden" name="idempotency_key" value="console-{uuid.uuid4().hex}">'
