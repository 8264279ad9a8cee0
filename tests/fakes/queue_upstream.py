"""A fake queue/poll media upstream (Venice/NightVeil `video|audio/queue` + `retrieve`).

Run it as ``python -m tests.fakes.queue_upstream --port P`` from the repo root. A submit with an
``Idempotency-Key`` already seen answers the same queue id and creates nothing (stats count both).

``POST /_fake/script {"behaviors": [...]}`` queues behaviors (FIFO); each NEW job takes one at
submit (an empty queue means ``{"type": "complete", "after_polls": 1}``):

- ``{"type": "complete", "after_polls": N, "seconds": S, "via_url": bool, "duration": D}``: PROCESSING for
  N polls and at least S seconds after submit, then the MP4 (the retrieve body itself, or JSON with a
  download URL when via_url); ``duration`` is reported in that JSON. With via_url, ``"file_type": T``
  is the download's Content-Type (``""``: the header sent empty).
- ``{"type": "fail", "after_polls": N}``: PROCESSING for N polls, then ``{"status": "FAILED"}``.
- ``{"type": "filtered"}``: retrieve says FAILED with code CONTENT_FILTERED.
- ``{"type": "hang"}``: every retrieve answers 503 until ``POST /_fake/release`` (then: complete).
- ``{"type": "reject", "status": 400}``: the submit itself is refused with that status (no job).
- ``{"type": "status", "status": 503}``: the submit answers that status once (no job); retried.
- any behavior may add ``"submit_delay": S``: the submit answers S seconds late (a slow upstream),
  ``"poll_delay": S``: every retrieve of that job answers S seconds late, and ``"message": M`` (reject): the error message of the refusal.

``POST /_fake/reset`` clears everything; ``GET /_fake/stats`` shows calls and jobs.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import subprocess
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.common import JSON, FakeState, arg_parser, fake_app, fake_state, serve

API_KEY = "upstream-secret"
FAKE_SECONDS = 2


@functools.cache
def sample_mp4() -> bytes:
    """A real 2 s H.264 MP4 (ffmpeg's test pattern), made once."""
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fake.mp4"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                *("-hide_banner", "-loglevel", "error", "-f", "lavfi"),
                *("-i", f"testsrc=duration={FAKE_SECONDS}:size=320x240:rate=10"),
                *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out)),
            ],
            check=True,
            timeout=60,
        )
        return out.read_bytes()


class _State(FakeState):
    health: ClassVar[JSON] = {"ok": True}

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[str, JSON] = {}
        self.keys: dict[str, str] = {}
        self.calls = {"submit": 0, "poll": 0, "download": 0}
        self.released = False
        self.ids = itertools.count(1)
        self.last_submit: JSON = {}

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def stats(self) -> JSON:
        jobs = {k: {"type": v["type"], "polls": v["polls"], "key": v["key"]} for k, v in self.jobs.items()}
        return {"calls": self.calls, "jobs": jobs, "last_submit": self.last_submit}


def _count(request: Request, call: str) -> _State | Response:
    """The fake's state, with this authenticated call counted; a 401 (not counted) for a wrong key."""
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
    state: _State = fake_state(request)
    state.calls[call] += 1
    return state


async def submit(request: Request) -> Response:
    state = _count(request, "submit")
    if isinstance(state, Response):
        return state
    body = await request.json()
    key = request.headers.get("idempotency-key")
    if key and key in state.keys:
        return JSONResponse({"model": body.get("model"), "queue_id": state.keys[key]})
    behavior = state.next_behavior({"type": "complete", "after_polls": 1})
    await asyncio.sleep(float(behavior.get("submit_delay", 0)))
    if behavior["type"] in ("reject", "status"):
        status = int(behavior.get("status", 400))
        return JSONResponse({"error": {"message": behavior.get("message", "refused")}}, status_code=status)
    queue_id = f"up-{next(state.ids)}"
    if key:
        state.keys[key] = queue_id
    kind = "audio" if "audio" in request.url.path else "video"
    state.jobs[queue_id] = {**behavior, "kind": kind, "submitted": time.monotonic(), "polls": 0, "key": key}
    state.last_submit = {k: v for k, v in body.items() if k != "prompt"} | {"has_prompt": "prompt" in body}
    return JSONResponse({"model": body.get("model"), "queue_id": queue_id})


async def retrieve(request: Request) -> Response:
    state = _count(request, "poll")
    if isinstance(state, Response):
        return state
    body = await request.json()
    job = state.jobs.get(str(body.get("queue_id")))
    if job is None:
        return JSONResponse({"error": {"message": "no such job"}}, status_code=404)
    job["polls"] += 1
    await asyncio.sleep(float(job.get("poll_delay", 0)))
    kind = job["type"]
    if kind == "hang" and not state.released:
        return JSONResponse({"error": {"message": "unavailable"}}, status_code=503)
    if kind == "filtered":
        return JSONResponse({"status": "FAILED", "error": {"code": "CONTENT_FILTERED"}})
    elapsed = time.monotonic() - job["submitted"]
    polls_required = int(job.get("after_polls", 1))
    if kind == "hang":
        polls_required = 0
    if job["polls"] <= polls_required or elapsed < float(job.get("seconds", 0)):
        return JSONResponse(
            {
                "status": "PROCESSING",
                "progress": min(90, job["polls"] * 30),
                "average_execution_time": 4000,
                "execution_duration": int(elapsed * 1000),
            }
        )
    if kind == "fail":
        return JSONResponse({"status": "FAILED", "error": {"code": "GENERATION_FAILED"}})
    if job.get("via_url"):
        answer: JSON = {"status": "COMPLETED", "download_url": f"/v1/files/{body['queue_id']}"}
        if job.get("duration") is not None:
            answer["duration"] = job["duration"]
        return JSONResponse(answer)
    return Response(sample_mp4(), media_type="video/mp4")


async def files(request: Request) -> Response:
    state = _count(request, "download")
    if isinstance(state, Response):
        return state
    job = state.jobs.get(request.path_params["queue_id"]) or {}
    return Response(sample_mp4(), headers={"content-type": str(job.get("file_type", "video/mp4"))})


async def release(request: Request) -> Response:
    fake_state(request).released = True
    return JSONResponse({"ok": True})


def create_app() -> Starlette:
    routes = [
        Route("/v1/video/queue", submit, methods=["POST"]),
        Route("/v1/audio/queue", submit, methods=["POST"]),
        Route("/v1/video/retrieve", retrieve, methods=["POST"]),
        Route("/v1/audio/retrieve", retrieve, methods=["POST"]),
        Route("/v1/files/{queue_id}", files),
        Route("/_fake/release", release, methods=["POST"]),
    ]
    return fake_app(routes, _State())


def main(argv: list[str] | None = None) -> None:
    args = arg_parser(host=False).parse_args(argv)
    sample_mp4()
    serve(create_app(), port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
