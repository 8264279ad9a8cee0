"""Speech and transcription against a real server: the openai SDK, real audio bytes (checked by
header and decoded with the packaged ffmpeg), a TTS → STT round trip, bad inputs, and charges."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from decimal import Decimal

import httpx2
import openai
import pytest

from tests.contract.servers import Tollway
from tollway.providers.local.ffmpeg import decode_to_pcm, probe_seconds

pytestmark = pytest.mark.slow
CREDIT_NANO = 5_000_000_000
TEXT = "Welcome to the gateway. Your prepaid balance is twelve dollars."
PER_MILLION_CHARS = 3_500_000_000
PER_SECOND = 100_000


@pytest.fixture(scope="module")
def speech(tollway: Tollway, funded: Callable[..., tuple[str, str]]) -> dict[str, object]:
    """One account that speaks TEXT as mp3 and wav (the first call starts Piper: seconds)."""
    account, key = funded()
    client = tollway.client(key)
    mp3 = client.audio.speech.create(model="local-tts", voice="alloy", input=TEXT, response_format="mp3")
    wav = client.audio.speech.create(model="local-tts", voice="af_sky", input=TEXT, response_format="wav")
    return {"account": account, "key": key, "mp3": mp3.content, "wav": wav.content}


@pytest.fixture(scope="module")
def funded(tollway: Tollway) -> Callable[..., tuple[str, str]]:
    def make(credit: str = "5.00") -> tuple[str, str]:
        account_id = tollway.new_account(credit)
        return account_id, tollway.new_key(account_id)

    return make


def test_speech_is_real_mp3_and_wav_and_charged_per_character(
    tollway: Tollway, speech: dict[str, object]
) -> None:
    mp3, wav = speech["mp3"], speech["wav"]
    assert isinstance(mp3, bytes) and isinstance(wav, bytes)
    assert mp3[:3] == b"ID3" or mp3[:2] in (b"\xff\xfb", b"\xff\xf3")
    seconds = probe_seconds(mp3)
    assert seconds is not None and seconds > 1.5
    assert len(decode_to_pcm(mp3)) > 16000 * 2  # over a second of decoded samples
    with wave.open(io.BytesIO(wav)) as parsed:
        assert (parsed.getnchannels(), parsed.getsampwidth()) == (1, 2)
        assert parsed.getnframes() / parsed.getframerate() > 1.5
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(str(speech["account"]))
    expected = 2 * -(-PER_MILLION_CHARS * len(TEXT) // 1_000_000)
    assert reserved == 0 and balance == ledger_sum == CREDIT_NANO - expected


def test_transcription_round_trip_recognises_the_words(tollway: Tollway, speech: dict[str, object]) -> None:
    key = str(speech["key"])
    client = tollway.client(key)
    before = tollway.ledger_sums(str(speech["account"]))[0]
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("speech.wav", speech["wav"])
    )  # type: ignore[arg-type]
    result = raw.parse()
    words = result.text.lower()
    assert "gateway" in words and "balance" in words, result.text
    after = tollway.ledger_sums(str(speech["account"]))[0]
    with wave.open(io.BytesIO(speech["wav"])) as parsed:  # type: ignore[arg-type]
        seconds = parsed.getnframes() / parsed.getframerate()
    charged = before - after
    assert abs(charged - PER_SECOND * seconds) <= PER_SECOND  # billed by the second (ms precision)
    # The answer says what it cost: the ledger's charge, in the body and the header.
    assert Decimal(str(raw.http_response.json()["usage"]["cost"])) * 1_000_000_000 == charged
    assert Decimal(raw.headers["x-tollway-cost-usd"]) * 1_000_000_000 == charged

    verbose = client.audio.transcriptions.create(
        model="local-whisper-tiny-en",
        file=("speech.mp3", speech["mp3"]),  # type: ignore[arg-type]
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.duration > 1.5 and verbose.language == "english"
    assert verbose.words and verbose.words[0].word.lower().startswith("welcome")
    assert verbose.segments and verbose.segments[0].end > verbose.segments[0].start

    headers = {"authorization": f"Bearer {key}"}
    for fmt, marker in (("srt", "00:00:00,000 --> "), ("vtt", "WEBVTT"), ("text", "gateway")):
        response = httpx2.post(
            f"{tollway.url}/v1/audio/transcriptions",
            headers=headers,
            data={"model": "whisper-1", "response_format": fmt},
            files={"file": ("speech.mp3", speech["mp3"])},  # type: ignore[dict-item]
            timeout=120,
        )
        assert response.status_code == 200, response.text
        assert marker in response.text.lower() or marker in response.text
    _, reserved, _, reserved_sum = tollway.ledger_sums(str(speech["account"]))
    assert reserved == 0 and reserved_sum == 0


def test_streaming_speech_arrives_sentence_by_sentence_as_one_file(
    tollway: Tollway, speech: dict[str, object]
) -> None:
    chunks: list[bytes] = []
    with httpx2.stream(
        "POST",
        f"{tollway.url}/v1/audio/speech",
        headers={"authorization": f"Bearer {speech['key']}"},
        json={
            "model": "local-tts",
            "input": "One sentence. Another sentence. A third one.",
            "streaming": True,
            "response_format": "mp3",
        },
        timeout=120,
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
        chunks.extend(response.iter_bytes())
    audio = b"".join(chunks)
    seconds = probe_seconds(audio)
    assert len(chunks) > 1 and seconds is not None and seconds > 1.0


@pytest.mark.parametrize(
    ("base", "fmt", "content_type", "magic"),
    [
        ("/v1", "opus", "audio/ogg", b"OggS"),
        ("/api/v1", "opus", "audio/opus", b"OggS"),  # Venice's document names it so
        ("/v1", "flac", "audio/flac", b"fLaC"),
        ("/v1", "aac", "audio/aac", b"\xff"),
        ("/v1", "pcm", "audio/pcm", b""),
    ],
)
def test_every_speech_format_has_its_content_type(
    tollway: Tollway, speech: dict[str, object], base: str, fmt: str, content_type: str, magic: bytes
) -> None:
    response = httpx2.post(
        f"{tollway.url}{base}/audio/speech",
        headers={"authorization": f"Bearer {speech['key']}"},
        json={"model": "local-tts", "input": "Hello there.", "response_format": fmt, "speed": 1.5},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert response.content.startswith(magic) and len(response.content) > 1000


def test_voices_are_listed(tollway: Tollway, speech: dict[str, object]) -> None:
    response = httpx2.get(
        f"{tollway.url}/v1/audio/voices", headers={"authorization": f"Bearer {speech['key']}"}
    )
    voices = {v["id"] for v in response.json()["data"]}
    assert {"af_sky", "alloy", "en_US-joe-medium"} <= voices


def test_bad_audio_inputs_are_refused_and_nothing_is_charged(
    tollway: Tollway, funded: Callable[..., tuple[str, str]]
) -> None:
    account = tollway.new_account("5.00")
    cases: list[tuple[str, dict[str, object], tuple[int, str, str | None]]] = [
        (
            "audio/speech",
            {"json": {"model": "local-tts", "input": "hi", "voice": "nobody"}},
            (400, "VALIDATION", "voice"),
        ),
        (
            "audio/speech",
            {"json": {"model": "local-tts", "input": "hi", "speed": 0.2}},
            (400, "VALIDATION", "speed"),
        ),
        (
            "audio/speech",
            {"json": {"model": "local-tts", "input": "hi", "speed": 4.5}},
            (400, "VALIDATION", "speed"),
        ),
        ("audio/speech", {"json": {"model": "local-tts", "input": ""}}, (400, "VALIDATION", "input")),
        ("audio/speech", {"json": {"model": "local-tts", "input": "x" * 4097}}, (400, "VALIDATION", "input")),
        (
            "audio/speech",
            {"json": {"model": "local-tts", "input": "hi", "response_format": "ogg"}},
            (400, "VALIDATION", "response_format"),
        ),
        (
            "audio/speech",
            {"json": {"model": "local-procedural", "input": "hi"}},
            (400, "INVALID_MODEL", "model"),
        ),
        ("audio/transcriptions", {"json": {"model": "whisper-1"}}, (415, "INVALID_CONTENT_TYPE", None)),
        (
            "audio/transcriptions",
            {"data": {"model": "whisper-1"}, "files": {"other": ("a.txt", b"x")}},
            (400, "VALIDATION", "file"),
        ),
        (
            "audio/transcriptions",
            {"data": {"model": "whisper-1", "response_format": "doc"}, "files": {"file": ("a.wav", b"RIFF")}},
            (400, "VALIDATION", "response_format"),
        ),
        (
            "audio/transcriptions",
            {
                "data": {"model": "whisper-1", "timestamp_granularities[]": "word"},
                "files": {"file": ("a.wav", b"RIFF")},
            },
            (400, "VALIDATION", "timestamp_granularities"),
        ),
        (
            "audio/transcriptions",
            {"data": {"model": "whisper-1"}, "files": {"file": ("a.wav", b"not audio at all")}},
            (400, "VALIDATION", "file"),
        ),
        (
            "audio/transcriptions",
            {"data": {"model": "whisper-1"}, "files": {"file": ("a.wav", b"x" * (25 * 1024 * 1024 + 10))}},
            (413, None, None),
        ),
    ]
    for path, kwargs, (status, code, param) in cases:
        key = tollway.new_key(account)  # a fresh key per check: the failed-request limiter counts per key
        response = httpx2.post(
            f"{tollway.url}/v1/{path}",
            headers={"authorization": f"Bearer {key}"},
            timeout=120,
            **kwargs,  # type: ignore[arg-type]
        )
        assert response.status_code == status, (path, response.text)
        if code is not None:
            error = response.json()["error"]
            assert (error["code"], error["param"]) == (code, param), (path, response.text)
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account)
    assert (balance, reserved, ledger_sum) == (CREDIT_NANO, 0, CREDIT_NANO)


def test_speech_beyond_the_balance_is_402(tollway: Tollway, funded: Callable[..., tuple[str, str]]) -> None:
    account, key = funded("0.000001")
    with pytest.raises(openai.APIStatusError) as caught:
        tollway.client(key).audio.speech.create(model="local-tts", voice="alloy", input="x" * 4000)
    assert caught.value.status_code == 402
    assert tollway.ledger_sums(account)[:3] == (1000, 0, 1000)


def test_speech_with_nothing_to_speak_is_400_and_free(tollway: Tollway) -> None:
    """Punctuation or control characters alone, or characters the voice makes no sound of, are the
    client's input: 400 naming `input` with the request id, nothing charged (not a 502 "engine failed")."""
    account = tollway.new_account("5.00")
    for body in (
        {"input": "."},
        {"input": "\u0013 ?!"},
        {"input": "\U0003335a"},  # no letter in Unicode yet: Piper makes no sound of it
        {"input": "\U0003335a", "stream": True},
        {"input": "\u200d\ufe0f"},  # an emoji's joiner and variation selector without the emoji
        {"input": "\u200d\ufe0f", "stream": True},
        {"input": "\U0001f389\U0001f44d"},  # emoji only: no letter or digit to speak
    ):
        key = tollway.new_key(account)  # the failed-request limiter counts per key
        response = httpx2.post(
            f"{tollway.url}/v1/audio/speech",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "local-tts", **body},
            timeout=120,
        )
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("VALIDATION", "input"), response.text
        assert error["request_id"] == response.headers["x-request-id"]
    queued = httpx2.post(
        f"{tollway.url}/v1/audio/queue",
        headers={"authorization": f"Bearer {tollway.new_key(account)}"},
        json={"model": "local-tts", "input": "... ?"},
    )
    assert queued.status_code == 400 and queued.json()["error"]["param"] == "input", queued.text
    balance, reserved, ledger_sum, _ = tollway.ledger_sums(account)
    assert (balance, reserved, ledger_sum) == (CREDIT_NANO, 0, CREDIT_NANO)


def test_speech_leaves_out_what_it_cannot_speak(tollway: Tollway) -> None:
    """A control character, or a sentence with nothing to speak inside real text (streamed sentence by
    sentence), is silence, not a failed call."""
    key = tollway.new_key(tollway.new_account("5.00"))
    for body in (
        {"input": "Hello\u0013 there."},
        {"input": "Hello there. . Bye now.", "stream": True},
        {
            "input": "Hi there. \u200d\ufe0f. Bye \U0001f468\u200d\U0001f469\u200d\U0001f467 now.",
            "stream": True,
        },
    ):
        response = httpx2.post(
            f"{tollway.url}/v1/audio/speech",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "local-tts", "response_format": "wav", **body},
            timeout=120,
        )
        assert response.status_code == 200, (body, response.text)
        assert len(decode_to_pcm(response.content)) > 16000  # half a second of speech at least
