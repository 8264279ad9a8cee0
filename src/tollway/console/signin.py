"""Sign-in and sign-out: a key in a form, exchanged for an HttpOnly, SameSite=Strict session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tollway.console import sessions
from tollway.console.html import field, form, guarded, notice, page
from tollway.errors import TollwayError

router = APIRouter()


def _login_page(message: str = "", status: int = 200) -> Response:
    body = (notice(message) if message else "") + form(
        "/console/login",
        None,
        field(
            "key",
            "API key",
            kind="password",
            required=True,
            hint="An admin-scope key of your account, or the operator key. It is used once to open a "
            "session and is not stored in your browser.",
        )
        + '<p><button type="submit">Sign in</button></p>',
    )
    return page("Sign in", body, None, status)


@router.get("/console/login", summary="Console sign-in form")
async def login_form(request: Request) -> Response:
    return _login_page()


@router.post("/console/login", summary="Exchange a key for a console session cookie")
async def login(request: Request) -> Response:
    # SameSite=Strict on the cookie is the CSRF guard here: there is no session yet to take a token from.
    key = str((await request.form()).get("key") or "")
    try:
        token, _ = await sessions.sign_in(request, key)
    except TollwayError as exc:
        message = "That key was not accepted." if exc.status == 401 else exc.message
        return _login_page(message + " Check it and try again.", exc.status)
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=int(sessions.LIFETIME.total_seconds()),
        path="/console",  # never sent to the API routes
        httponly=True,
        samesite="strict",
        secure=_behind_tls(request),
    )
    return response


def _behind_tls(request: Request) -> bool:
    """Secure cookies when the browser speaks TLS: directly, or to a proxy that says so."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


@router.post("/console/logout", summary="End the console session")
@guarded
async def logout(request: Request) -> Response:
    who = await sessions.viewer(request)
    sessions.check_csrf(who, str((await request.form()).get("csrf") or ""))
    await sessions.sign_out(request)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/console")
    return response
