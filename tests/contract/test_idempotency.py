"""`Idempotency-Key`: a retried call is metered once; the first result is replayed.

Chat first (the fake upstream counts its calls), then every other route that costs money through
the same wrapper: Anthropic and Gemini inbound (official SDKs), images (JSON, binary, multipart),
speech (binary and streamed), queued jobs and tasks. Calls run are counted as ledger reservations.
"""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from PIL import Image

from tests.contract.servers import Tollway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
BODY = {"model": "fake-chat", "messages": [{"role": "user", "content": "one two three"}]}


def call(tollway: Tollway, key: str, idem: str, body: dict[str, object] = BODY) -> httpx2.Response:
    return httpx2.post(
        f"{tollway.url}/v1/chat/completions",
        json=body,
        timeout=30,
        headers={"authorization": f"Bearer {key}", "idempotency-key": idem},
    )


def test_a_repeated_key_is_replayed_and_metered_once(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    first = call(fresh_fake, key, "order-1")
    balance_after_first = fresh_fake.ledger_sums(account_id)[0]
    second = call(fresh_fake, key, "order-1")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert fresh_fake.fake_calls() == 1
    assert fresh_fake.ledger_sums(account_id)[0] == balance_after_first < 1_000_000_000
    different = call(fresh_fake, key, "order-1", {**BODY, "temperature": 0.1})
    assert different.status_code == 400 and different.json()["error"]["param"] == "Idempotency-Key"
    # Another account may use the same key string: keys are per account.
    _, other_key = funded("1.00")
    assert "idempotent-replayed" not in call(fresh_fake, other_key, "order-1").headers


def test_streams_replay_and_a_running_call_is_409(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    balance = fresh_fake.ledger_sums(account_id)[0]
    stream_body = {**BODY, "stream": True}
    first = call(fresh_fake, key, "s-1", stream_body)
    replay = call(fresh_fake, key, "s-1", stream_body)
    assert replay.text == first.text and first.text.rstrip().endswith("data: [DONE]")
    assert fresh_fake.fake_calls() == 1
    charged_once = fresh_fake.ledger_sums(account_id)[0]
    assert charged_once < balance
    fresh_fake.script({"type": "delay_first_byte", "seconds": 2})
    results: list[httpx2.Response] = []
    seen = fresh_fake.fake_calls()
    slow = threading.Thread(target=lambda: results.append(call(fresh_fake, key, "slow-1")))
    slow.start()
    wait_until(lambda: fresh_fake.fake_calls() > seen, "the first call reached the upstream")
    busy = call(fresh_fake, key, "slow-1")
    slow.join()
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "CONFLICT"
    assert results[0].status_code == 200


def test_a_failed_call_is_forgotten_so_its_retry_runs(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    fresh_fake.script({"type": "status", "status": 500})
    assert call(fresh_fake, key, "retry-1").status_code == 502
    assert fresh_fake.ledger_sums(account_id)[0] == 1_000_000_000  # the failure cost nothing
    retried = call(fresh_fake, key, "retry-1")
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert fresh_fake.fake_calls() == 2


# -- every other route that costs money: one shared wrapper (src/tollway/api/idempotent.py) ---------

PER_IMAGE = 2_000_000  # local-procedural's $0.002
PER_CHAR = 3_500  # local-tts: $3.50 per million characters
ANTHROPIC_BODY = {
    "model": "fake-chat",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "one two"}],
}
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "one two"}]}]}


def _png(colour: tuple[int, int, int] = (240, 240, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(out, "PNG")
    return out.getvalue()


def reserves(tollway: Tollway, account_id: str) -> int:
    """How many calls this account ran (each one reserves once), read from the database."""
    with sqlite3.connect(tollway.database_url.removeprefix("sqlite:///")) as conn:
        row = conn.execute(
            "select count(*) from ledger where account_id = ? and kind = 'reserve'", (account_id,)
        ).fetchone()
    return int(row[0])


def post(tollway: Tollway, key: str, path: str, idem: str, **kwargs: Any) -> httpx2.Response:
    headers = {"authorization": f"Bearer {key}", "idempotency-key": idem, **kwargs.pop("headers", {})}
    return httpx2.post(f"{tollway.url}{path}", headers=headers, timeout=60, **kwargs)


def streamed(tollway: Tollway, key: str, path: str, idem: str, body: dict[str, Any]) -> httpx2.Response:
    with httpx2.stream(
        "POST",
        f"{tollway.url}{path}",
        json=body,
        timeout=60,
        headers={"authorization": f"Bearer {key}", "idempotency-key": idem},
    ) as response:
        response.read()
    return response


def test_anthropic_sdk_replays_buffered_and_streamed_messages_once(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    client = anthropic.Anthropic(base_url=fresh_fake.url, api_key=key, max_retries=0, timeout=30)
    messages: list[Any] = [{"role": "user", "content": "one two three"}]

    def create(idem: str, max_tokens: int = 50) -> Any:
        return client.messages.with_raw_response.create(
            model="fake-chat",
            max_tokens=max_tokens,
            messages=messages,
            extra_headers={"Idempotency-Key": idem},
        )

    first = create("m-1")
    balance = fresh_fake.ledger_sums(account_id)[0]
    again = create("m-1")
    assert again.http_response.content == first.http_response.content
    assert again.parse().id == first.parse().id and again.parse().content[0].type == "text"
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert fresh_fake.fake_calls() == 1 and reserves(fresh_fake, account_id) == 1
    assert fresh_fake.ledger_sums(account_id)[0] == balance < 1_000_000_000
    with pytest.raises(anthropic.BadRequestError) as different:
        create("m-1", max_tokens=51)
    assert different.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "Idempotency-Key" in different.value.message

    def stream_text() -> str:
        events = client.messages.create(
            model="fake-chat",
            max_tokens=50,
            messages=messages,
            stream=True,
            extra_headers={"Idempotency-Key": "m-stream"},
        )
        return "".join(
            e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
        )

    texts = [stream_text(), stream_text()]  # each read to its end: a stream is kept once it ended
    assert texts[0] == texts[1] and texts[0]
    stream_body = {**ANTHROPIC_BODY, "stream": True}
    live = streamed(fresh_fake, key, "/v1/messages", "m-raw", stream_body)
    replayed = streamed(fresh_fake, key, "/v1/messages", "m-raw", stream_body)
    assert replayed.content == live.content and live.content.rstrip().endswith(b'{"type":"message_stop"}')
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.headers["content-type"] == live.headers["content-type"]
    assert fresh_fake.fake_calls() == 3 and reserves(fresh_fake, account_id) == 3


def test_gemini_replays_generate_and_stream_once(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    client = genai.Client(
        api_key=key, http_options=genai_types.HttpOptions(base_url=f"{fresh_fake.url}/", api_version="v1beta")
    )

    def config(idem: str) -> genai_types.GenerateContentConfig:
        return genai_types.GenerateContentConfig(
            max_output_tokens=50, http_options=genai_types.HttpOptions(headers={"Idempotency-Key": idem})
        )

    first = client.models.generate_content(model="fake-chat", contents="one two", config=config("g-1"))
    again = client.models.generate_content(model="fake-chat", contents="one two", config=config("g-1"))
    assert again.text == first.text and again.response_id == first.response_id
    assert fresh_fake.fake_calls() == 1 and reserves(fresh_fake, account_id) == 1
    raw = post(fresh_fake, key, "/v1beta/models/fake-chat:generateContent", "g-raw", json=GEMINI_BODY)
    replay = post(fresh_fake, key, "/v1beta/models/fake-chat:generateContent", "g-raw", json=GEMINI_BODY)
    assert replay.content == raw.content and replay.headers["idempotent-replayed"] == "true"
    # The model, the method and `alt` are part of the request a key is bound to.
    for path in (
        "/v1beta/models/fake-chat:streamGenerateContent",
        "/v1beta/models/fake-embed:generateContent",
    ):
        refused = post(fresh_fake, key, path, "g-raw", json=GEMINI_BODY)
        assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert fresh_fake.fake_calls() == 2

    stream_path = "/v1beta/models/fake-chat:streamGenerateContent?alt=sse"
    chunks = [
        list(
            client.models.generate_content_stream(
                model="fake-chat", contents="red blue", config=config("g-s")
            )
        )
        for _ in range(2)
    ]
    assert [c.text for c in chunks[0]] == [c.text for c in chunks[1]]
    body = {**GEMINI_BODY, "contents": [{"role": "user", "parts": [{"text": "red blue"}]}]}
    first_stream = streamed(fresh_fake, key, stream_path, "g-s2", body)
    replayed_stream = streamed(fresh_fake, key, stream_path, "g-s2", body)
    assert replayed_stream.content == first_stream.content and b"data: " in first_stream.content
    assert fresh_fake.fake_calls() == 4 and reserves(fresh_fake, account_id) == 4


def test_a_running_anthropic_or_gemini_call_is_409_and_charged_once(
    fresh_fake: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    fresh_fake.script({"type": "delay_first_byte", "seconds": 2}, {"type": "delay_first_byte", "seconds": 2})
    calls = {
        "anthropic": lambda: post(fresh_fake, key, "/v1/messages", "busy", json=ANTHROPIC_BODY),
        "gemini": lambda: post(
            fresh_fake, key, "/v1beta/models/fake-chat:generateContent", "busy-g", json=GEMINI_BODY
        ),
    }
    firsts: dict[str, httpx2.Response] = {}
    threads = [
        threading.Thread(target=lambda name=name, run=run: firsts.__setitem__(name, run()))
        for name, run in calls.items()
    ]
    seen = fresh_fake.fake_calls()
    for thread in threads:
        thread.start()
    wait_until(lambda: fresh_fake.fake_calls() >= seen + 2, "both first calls reached the upstream")
    busy = {name: run() for name, run in calls.items()}
    for thread in threads:
        thread.join()
    assert busy["anthropic"].status_code == busy["gemini"].status_code == 409
    assert busy["anthropic"].json()["type"] == "error" and busy["gemini"].json()["error"]["code"] == 409
    assert busy["anthropic"].headers["retry-after"] == "1"
    assert firsts["anthropic"].status_code == firsts["gemini"].status_code == 200
    replays = {name: run() for name, run in calls.items()}
    assert all(replays[n].content == firsts[n].content for n in calls)
    assert fresh_fake.fake_calls() == 2 and reserves(fresh_fake, account_id) == 2


def test_images_replay_byte_identical_and_charge_once(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    client = tollway.client(key)

    def generate(idem: str, prompt: str = "a lighthouse") -> Any:
        return client.images.with_raw_response.generate(
            model="local-procedural", prompt=prompt, size="256x256", extra_headers={"Idempotency-Key": idem}
        )

    first, again = generate("img-1"), generate("img-1")  # a random seed each run: only a replay matches
    assert again.http_response.content == first.http_response.content
    assert again.headers["idempotent-replayed"] == "true"
    with pytest.raises(openai.BadRequestError) as different:
        generate("img-1", prompt="a lighthouse at night")
    assert different.value.code == "VALIDATION" and different.value.param == "Idempotency-Key"

    native = {
        "model": "local-procedural",
        "prompt": "a fox",
        "width": 256,
        "height": 256,
        "return_binary": True,
    }
    binary = post(tollway, key, "/v1/image/generate", "img-2", json=native)
    replay = post(tollway, key, "/api/v1/image/generate", "img-2", json=native)
    assert binary.headers["content-type"] == replay.headers["content-type"] == "image/webp"
    assert replay.content == binary.content and replay.content[:4] == b"RIFF"
    assert replay.headers["x-venice-is-blurred"] == "false"

    # Multipart: a retry's new boundary is the same request.
    source = _png()
    edits = [
        post(
            tollway,
            key,
            "/v1/image/edit",
            "img-3",
            data={"prompt": "make it red", "model": "local-image-edit"},
            files={"image": ("in.png", source, "image/png")},
            headers={"content-type": f"multipart/form-data; boundary=b{n}"},
        )
        for n in range(2)
    ]
    assert [e.status_code for e in edits] == [200, 200] and edits[1].content == edits[0].content
    assert edits[1].headers["idempotent-replayed"] == "true"
    other = post(
        tollway,
        key,
        "/v1/image/edit",
        "img-3",
        data={"prompt": "make it red", "model": "local-image-edit"},
        files={"image": ("in.png", _png(colour=(0, 0, 0)), "image/png")},
    )
    assert other.status_code == 400 and other.json()["error"]["param"] == "Idempotency-Key"
    assert reserves(tollway, account_id) == 3
    assert tollway.ledger_sums(account_id)[:2] == (1_000_000_000 - 2 * PER_IMAGE - 4_000_000, 0)


def test_concurrent_duplicate_images_run_once(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    body = {"model": "local-procedural", "prompt": "a crowd", "width": 1280, "height": 1280, "variants": 4}
    results: list[httpx2.Response] = []
    start = threading.Barrier(3)

    def run() -> None:
        start.wait()
        results.append(post(tollway, key, "/v1/image/generate", "same", json=body))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses[0] == 200 and set(statuses) <= {200, 409} and 409 in statuses, statuses
    assert all(r.json()["error"]["code"] == "CONFLICT" for r in results if r.status_code == 409)
    assert len({r.content for r in results if r.status_code == 200}) == 1
    assert reserves(tollway, account_id) == 1
    assert tollway.ledger_sums(account_id)[:2] == (1_000_000_000 - 4 * PER_IMAGE, 0)


def test_speech_replays_the_same_audio_bytes_and_charges_once(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    client = tollway.client(key)
    words = "Hello there. This is said once."

    def speak(idem: str, voice: str = "alloy") -> Any:
        return client.audio.speech.with_raw_response.create(
            model="local-tts", voice=voice, input=words, extra_headers={"Idempotency-Key": idem}
        )

    first, again = speak("tts-1"), speak("tts-1")
    assert again.content == first.content and len(first.content) > 1000
    assert again.headers["content-type"] == "audio/mpeg" and again.headers["idempotent-replayed"] == "true"
    with pytest.raises(openai.BadRequestError):
        speak("tts-1", voice="af_sky")
    body = {"model": "local-tts", "input": words, "streaming": True}
    live = streamed(tollway, key, "/v1/audio/speech", "tts-2", body)
    replay = streamed(tollway, key, "/v1/audio/speech", "tts-2", body)
    assert live.status_code == replay.status_code == 200 and replay.content == live.content
    assert replay.headers["content-type"] == "audio/mpeg" and replay.headers["idempotent-replayed"] == "true"
    assert reserves(tollway, account_id) == 2
    deadline = time.monotonic() + 10  # a stream is settled in a task of its own
    while tollway.ledger_sums(account_id)[1] and time.monotonic() < deadline:
        time.sleep(0.05)
    spoken = 1_000_000_000 - 2 * len(words) * PER_CHAR
    assert tollway.ledger_sums(account_id)[:2] == (spoken, 0)

    # Transcriptions: the SDK's multipart (a new boundary per request) is bound by its content.
    def transcribe(idem: str) -> Any:
        return client.audio.transcriptions.with_raw_response.create(
            model="whisper-1", file=("said.mp3", first.content), extra_headers={"Idempotency-Key": idem}
        )

    heard, heard_again = transcribe("stt-1"), transcribe("stt-1")
    assert heard_again.http_response.content == heard.http_response.content
    assert heard.parse().text.strip() and heard_again.headers["idempotent-replayed"] == "true"
    assert reserves(tollway, account_id) == 3
    assert 0 < spoken - tollway.ledger_sums(account_id)[0] < 1_000_000  # one transcription: ~2 s of audio


def test_queued_jobs_and_tasks_are_created_once(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account_id, key = funded("1.00")
    job = {"model": "local-tts", "input": "Queued words."}
    queued = post(tollway, key, "/v1/audio/queue", "job-1", json=job)
    again = post(tollway, key, "/v1/audio/queue", "job-1", json=job)
    assert queued.status_code == 200 and again.content == queued.content
    assert again.json()["queue_id"] == queued.json()["queue_id"]
    task = {"prompt": "a boat", "model": "local-procedural"}
    created = post(tollway, key, "/v1/images/generate", "task-1", json=task)
    repeated = post(tollway, key, "/v1/images/generate", "task-1", json=task)
    assert created.json()["success"] is True and repeated.content == created.content
    refused = post(tollway, key, "/v1/images/generate", "task-1", json={**task, "prompt": "a ship"})
    assert refused.status_code == 400 and refused.json()["success"] is False
    assert refused.json()["error"]["param"] == "Idempotency-Key"
    assert reserves(tollway, account_id) == 2
