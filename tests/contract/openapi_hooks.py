"""Schemathesis hooks of the OpenAPI gate (tests/contract/test_openapi.py), loaded by the `schemathesis`
process it runs (SCHEMATHESIS_HOOKS). What they need of the running server comes in TOLLWAY_GATE (JSON).

- The key: the operator key on the operator routes (/v1/admin/..., /metrics), else the gate account's
  admin-scope key.
- Real values, in half the generated cases: a catalog model for the route (openapi_gate.yaml), ids of
  the account's jobs, media, tasks and spare key, a valid image; so the routes run past validation.
- The gate key is never revoked, rotated or edited: a DELETE, PATCH or rotation the stateful phase aims at
  it (its id is in GET keys) takes the spare key instead; and the gate account is never suspended, edited
  or debited: an operator route naming it (GET /v1/admin/accounts lists it) names the target account.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import wave
from typing import Any

import schemathesis
from PIL import Image

GATE: dict[str, Any] = json.loads(os.environ.get("TOLLWAY_GATE", "{}"))
OPERATOR_ROUTES = ("/v1/admin/", "/metrics")
# Per route, the catalog model a generated `model` (`model_id` on videos/generate) is swapped for.
MODELS = {
    "/v1/chat/completions": "fake-chat",
    "/v1/messages": "fake-chat",
    "/v1/responses": "fake-chat",
    "/v1/responses/input_tokens": "fake-chat",
    "/v1/account/calculate-cost": "fake-chat",
    "/v1/embeddings": "fake-embed",
    "/v1/images/generations": "local-procedural",
    "/v1/image/generate": "local-procedural",
    "/v1/images/generate": "local-procedural",
    "/v1/image/edit": "local-image-edit",
    "/v1/image/upscale": "local-upscaler",
    "/v1/image/background-remove": "local-background-remover",
    "/v1/audio/speech": "local-tts",
    "/v1/audio/voices": "local-tts",
    "/v1/audio/transcriptions": "local-whisper-tiny-en",
    "/v1/video/quote": "up-video",
    "/v1/video/queue": "up-video",
    "/v1/videos/generate": "up-video",
    "/v1/audio/queue": "up-music",
}


def _png(side: int = 256) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 60, 30)).save(out, "PNG")
    return out.getvalue()


def _wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


PNG, WAV = _png(), _wav()
SPEECH_CHARS, SPEECH_MAX = 24, 4096  # what the gate lets Piper speak; the route's own limit
SLOW = {"/v1/audio/speech": 0.2, "/v1/audio/transcriptions": 0.2}  # embedded Piper and Whisper
CHANCE = random.Random(int(GATE.get("seed", 0)))  # which cases get real values: the same every run


@schemathesis.auth(refresh_interval=None)
class GateKey:
    def get(self, case: Any, context: Any) -> dict[str, str]:
        return {"operator": GATE["operator_key"], "account": GATE["key"]}

    def set(self, case: Any, keys: dict[str, str], context: Any) -> None:
        operator = case.operation.path.startswith(OPERATOR_ROUTES)
        case.headers = {
            **(case.headers or {}),
            "Authorization": f"Bearer {keys['operator' if operator else 'account']}",
        }


def real(case: Any) -> Any:
    """`case` with real values where it names a model, an id or an image."""
    ids: dict[str, list[str]] = GATE["ids"]
    path = case.operation.path
    for name, value in list((case.path_parameters or {}).items()):
        if name in ids:
            case.path_parameters[name] = ids[name][len(str(value)) % len(ids[name])]
    query = dict(case.query or {})
    if path == "/v1/media/{media_id}":
        query.update(GATE["media_query"])
    if path in ("/v1/images/status", "/v1/videos/status"):
        query["task_id"] = ids["task_id"][0]
    if path == "/v1/audio/voices":
        query["model"] = MODELS[path]
    case.query = query
    if isinstance(case.body, dict):
        body = dict(case.body)
        if path in MODELS:
            body["model_id" if path == "/v1/videos/generate" else "model"] = MODELS[path]
        if "queue_id" in body:
            body["queue_id"] = ids["queue_id"][0]
        form = case.media_type == "multipart/form-data"
        if "image" in body:
            body["image"] = PNG if form else base64.b64encode(PNG).decode()
        if "file" in body and form:
            body["file"] = WAV
        case.body = body
    return case


def cheap(case: Any) -> None:
    """Work that succeeds stays small, whatever the case: Piper takes 40 ms a character and a 4K image
    is 16 Mpixels of Pillow. Values past the limits are left alone, so their 400s are still checked."""
    if not isinstance(case.body, dict):
        return
    body = dict(case.body)
    speech = body.get("input")
    if case.operation.path == "/v1/audio/speech" and isinstance(speech, str) and len(speech) <= SPEECH_MAX:
        body["input"] = speech[:SPEECH_CHARS]
    if body.get("resolution") in ("2K", "4K"):
        body["resolution"] = "1K"
    for many in ("n", "variants", "num_images"):
        if body.get(many) in (2, 3, 4, "2", "3", "4"):
            body[many] = 1
    case.body = body


def _spare_the_gate_key(case: Any) -> None:
    """The stateful phase finds the gate key's id in GET keys: a DELETE, PATCH or rotation of it takes the
    spare instead; and the gate account's id in GET admin/accounts: the target account instead."""
    spare = GATE["ids"]["key_id"][0]
    parameters = case.path_parameters or {}
    if case.operation.path.startswith(OPERATOR_ROUTES) and parameters.get("account_id") == GATE["account_id"]:
        case.path_parameters["account_id"] = GATE["ids"]["account_id"][0]
    if case.method.upper() == "PATCH" or case.operation.path.endswith("/rotate"):
        if parameters.get("key_id") == GATE["key_id"]:
            case.path_parameters["key_id"] = spare
        return
    if case.method.upper() != "DELETE":
        return
    if (case.path_parameters or {}).get("key_id") == GATE["key_id"]:
        case.path_parameters["key_id"] = spare
    if (case.query or {}).get("id") == GATE["key_id"]:
        case.query["id"] = spare


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    """Every phase's cases pass here: half of them get real values (fewer where a call costs seconds)."""
    if CHANCE.random() < SLOW.get(case.operation.path, 0.5):
        real(case)
    cheap(case)
    _spare_the_gate_key(case)
