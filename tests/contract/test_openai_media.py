"""OpenAI's other media routes through the openai SDK against a real server: images.edit (multipart,
with a mask), images.create_variation and audio.translations (refused: no engine), streamed
transcription events, speech as SSE events, and `max_tokens: 0` / `top_logprobs: 0` on chat."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable

import httpx2
import openai
import pytest
from PIL import Image

from tests.contract.refusals import assert_error, untouched
from tests.contract.servers import Tollway

pytestmark = pytest.mark.slow
CREDIT_NANO = 5_000_000_000
EDIT_PRICE = 4_000_000  # local-image-edit: $0.004 per image
TEXT = "Welcome to the gateway. Your prepaid balance is twelve dollars."


def _png(width: int = 128, height: int = 96, mode: str = "RGB", colour: object = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), colour).save(out, "PNG")  # type: ignore[arg-type]
    return out.getvalue()


def _mask(width: int = 128, height: int = 96) -> bytes:
    """Opaque everywhere but the left half, which is transparent: only that half may change."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    out = io.BytesIO()
    mask.save(out, "PNG")
    return out.getvalue()


def test_images_edit_with_a_mask_changes_only_the_masked_part_and_is_charged(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded()
    client = tollway.client(key)
    original = _png()
    answer = client.images.edit(
        model="local-image-edit",
        image=("in.png", original),
        mask=("mask.png", _mask()),
        prompt="make it blue",
    )
    assert answer.data is not None and len(answer.data) == 1
    edited = Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json or ""))).convert("RGB")
    assert edited.size == (128, 96)
    assert edited.getpixel((120, 50)) == (200, 40, 40)  # the opaque half of the mask: untouched
    assert edited.getpixel((10, 50)) != (200, 40, 40)  # the transparent half: edited
    unmasked = client.images.edit(model="local-image-edit", image=("in.png", original), prompt="make it blue")
    assert unmasked.data is not None and unmasked.data[0].b64_json
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account)
    assert (balance, reserved, ledger_sum) == (CREDIT_NANO - 2 * EDIT_PRICE, 0, balance)


@pytest.mark.parametrize(
    ("files", "data", "param"),
    [
        ({"image": ("a.png", _png()), "mask": ("m.png", _mask(64, 64))}, {}, "mask"),  # another size
        ({"image": ("a.png", _png()), "mask": ("m.png", _png())}, {}, "mask"),  # no alpha channel
        ({"image": ("a.png", _png()), "mask": ("m.png", b"not an image")}, {}, "mask"),
        ({"image": ("a.png", b"not an image")}, {}, "image"),
        ({}, {}, "image"),
        ({"image": ("a.png", _png())}, {"n": "2"}, "n"),
        ({"image": ("a.png", _png())}, {"size": "512x512"}, "size"),
        ({"image": ("a.png", _png())}, {"prompt": ""}, "prompt"),
        ({"image": ("a.png", _png())}, {"model": "local-procedural"}, "model"),
    ],
)
def test_bad_image_edits_are_400_and_charge_nothing(
    tollway: Tollway,
    funded: Callable[..., tuple[str, str]],
    files: dict[str, tuple[str, bytes]],
    data: dict[str, str],
    param: str,
) -> None:
    account, key = funded()
    with untouched(tollway, account):
        response = httpx2.post(
            f"{tollway.url}/v1/images/edits",
            headers={"authorization": f"Bearer {key}"},
            data={"model": "local-image-edit", "prompt": "blue", **data},
            files=files or {"other": ("x.txt", b"x")},
            timeout=60,
        )
    assert_error(response, 400, response.json()["error"]["code"], param)


def test_variations_and_translations_are_refused_in_openais_shape(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    """Where the model's upstream does not serve them (the embedded engines make no variations and
    translate nothing); test_media_pass_through.py has the upstreams that do."""
    account, key = funded()
    client = tollway.client(key)
    with untouched(tollway, account):
        with pytest.raises(openai.BadRequestError) as variation:
            client.images.create_variation(model="local-procedural", image=("a.png", _png()))
        with pytest.raises(openai.BadRequestError) as translation:
            client.audio.translations.create(model="whisper-1", file=("a.wav", b"RIFF0000WAVE"))
    assert_error(variation.value.response, 400, "UNSUPPORTED_CAPABILITY", "model")
    assert "does not offer image-variation" in variation.value.message
    assert_error(translation.value.response, 400, "UNSUPPORTED_CAPABILITY", "model")
    assert "does not translate" in translation.value.message


def test_speech_as_sse_events_and_transcription_as_stream_events(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded()
    client = tollway.client(key)
    with client.audio.speech.with_streaming_response.create(
        model="local-tts", voice="af_sky", input=TEXT, response_format="wav", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["input_tokens"] > 0
    wav = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert wav.startswith(b"RIFF")
    spoken = len(TEXT) * 3_500  # local-tts: $3.50 per 1M characters, settled as the stream ends
    deadline = time.monotonic() + 10
    while CREDIT_NANO - tollway.ledger_sums(account)[0] != spoken and time.monotonic() < deadline:
        time.sleep(0.05)
    assert CREDIT_NANO - tollway.ledger_sums(account)[0] == spoken
    stream = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav), stream=True)
    received = list(stream)
    assert {e.type for e in received[:-1]} == {"transcript.text.delta"}
    done = received[-1]
    assert done.type == "transcript.text.done" and "gateway" in done.text.lower()
    assert (
        "".join(e.delta for e in received[:-1] if e.type == "transcript.text.delta").strip()
        == done.text.strip()
    )
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account)
    assert balance < CREDIT_NANO - spoken and (reserved, ledger_sum) == (0, balance)


def test_stream_fields_the_engine_cannot_honour_are_400_naming_them(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account, key = funded()
    headers = {"authorization": f"Bearer {key}"}
    with untouched(tollway, account):
        speech = httpx2.post(
            f"{tollway.url}/v1/audio/speech",
            headers=headers,
            json={"model": "local-tts", "input": "hi", "stream_format": "chunks"},
        )
        transcript = httpx2.post(
            f"{tollway.url}/v1/audio/transcriptions",
            headers=headers,
            data={"model": "whisper-1", "stream": "true", "response_format": "srt"},
            files={"file": ("a.wav", b"RIFF0000WAVE")},
        )
    assert_error(speech, 400, speech.json()["error"]["code"], "stream_format")
    assert_error(transcript, 400, transcript.json()["error"]["code"], "stream")


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": 0}, "max_completion_tokens")],
)
def test_chat_zero_output_cap_is_400_naming_the_field(
    tollway: Tollway, funded: Callable[..., tuple[str, str]], extra: dict[str, int], param: str
) -> None:
    account, key = funded()
    with untouched(tollway, account), pytest.raises(openai.BadRequestError) as caught:
        tollway.client(key).chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "hi"}],
            **extra,  # type: ignore[arg-type]
        )
    assert_error(caught.value.response, 400, caught.value.code or "", param)


def test_top_logprobs_zero_is_served_as_openai_does(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    """OpenAI takes `top_logprobs: 0` with `logprobs: true` (the chosen tokens' logprobs, no alternatives)."""
    _, key = funded()
    answer = tollway.client(key).chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=3,
        logprobs=True,
        top_logprobs=0,
    )
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert all(not item.top_logprobs for item in logprobs.content)
