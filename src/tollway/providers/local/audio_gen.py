"""`local-procedural-music` and `local-procedural-sfx`: honest procedural audio (numpy), not a model.

No music or sound-effect weights can be had offline, so these synthesise deterministic audio from
sha256(seed, prompt): the same request gives the same samples. Music is a small arrangement (pad
chords, a bass line, a pentatonic melody, kick and hi-hat) at a tempo and key drawn from the hash;
sound effects pick a recipe from the prompt's words (rain, wind, explosion, whoosh, beep, …) or the
hash. Both return 16-bit mono PCM of exactly the asked length, for ffmpeg to encode.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 44100
MAX_SECONDS = 600
Samples = npt.NDArray[np.float64]
# Minor pentatonic degrees (semitones above the root) and a few progressions (scale degrees).
PENTATONIC = (0, 3, 5, 7, 10)
PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 4), (0, 4, 5, 3), (5, 3, 0, 4))
MAJOR_TRIADS = {0: (0, 4, 7), 3: (5, 9, 12), 4: (7, 11, 14), 5: (9, 12, 16)}
SFX_WORDS = ("rain", "wind", "explosion", "whoosh", "beep", "laser", "thunder", "ocean", "click")


@dataclass(frozen=True, slots=True)
class AudioSpec:
    prompt: str
    seconds: float
    seed: int = 0
    sample_rate: int = SAMPLE_RATE


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _hz(midi: float) -> float:
    return float(440.0 * 2 ** ((midi - 69) / 12))


def _tone(freq: float, length: int, sr: int, *, harmonics: int = 3, decay: float = 0.0) -> Samples:
    t = np.arange(length) / sr
    wave = np.zeros(length)
    for h in range(1, harmonics + 1):
        wave += np.sin(2 * np.pi * freq * h * t) / (h * h)
    if decay > 0:
        wave *= np.exp(-t * decay)
    attack = min(length, int(sr * 0.01))
    if attack:
        wave[:attack] *= np.linspace(0.0, 1.0, attack)
    return wave


def _add(track: Samples, start: int, sound: Samples) -> None:
    end = min(len(track), start + len(sound))
    if end > start:
        track[start:end] += sound[: end - start]


def _to_pcm(track: Samples) -> bytes:
    peak = float(np.max(np.abs(track))) if len(track) else 0.0
    if peak > 0:
        track = track / peak * 0.85
    fade = min(len(track), 2048)
    if fade:
        track[-fade:] *= np.linspace(1.0, 0.0, fade)
    return (track * 32767).astype("<i2").tobytes()


def music(spec: AudioSpec) -> bytes:
    """A deterministic loop-based arrangement of exactly `spec.seconds` (16-bit mono PCM)."""
    sr = spec.sample_rate
    rng = _rng("music", spec.seed, spec.prompt)
    length = round(min(spec.seconds, MAX_SECONDS) * sr)
    track = np.zeros(length)
    bpm = rng.randint(78, 132)
    beat = round(sr * 60 / bpm)
    root = rng.randint(45, 57)  # A2..A3
    progression = rng.choice(PROGRESSIONS)
    noise = np.random.default_rng(rng.getrandbits(32))
    kick_t = np.arange(int(sr * 0.25)) / sr
    kick = np.sin(2 * np.pi * (50 + 90 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 12)
    hat = noise.standard_normal(int(sr * 0.04)) * np.exp(-np.arange(int(sr * 0.04)) / (sr * 0.008)) * 0.25
    for index, start in enumerate(range(0, length, beat)):
        bar, step = divmod(index, 4)
        degree = progression[bar % len(progression)]
        if step == 0:  # a pad chord per bar
            chord = MAJOR_TRIADS.get(degree, (0, 4, 7))
            pad = sum(_tone(_hz(root + 12 + n), beat * 4, sr, harmonics=2) for n in chord)
            _add(track, start, np.asarray(pad) * 0.12)
        _add(track, start, _tone(_hz(root + degree - 12 + 12), beat, sr, harmonics=4, decay=4.0) * 0.35)
        if rng.random() < 0.8:
            note = root + 24 + rng.choice(PENTATONIC) + 12 * rng.randint(0, 1)
            _add(track, start, _tone(_hz(note), beat, sr, harmonics=3, decay=6.0) * 0.22)
        _add(track, start, kick * (0.8 if step % 2 == 0 else 0.0))
        _add(track, start + beat // 2, hat)
    return _to_pcm(track)


def sound_effect(spec: AudioSpec) -> bytes:
    """A deterministic effect chosen by the prompt's words (or the hash), exactly `spec.seconds` long."""
    sr = spec.sample_rate
    rng = _rng("sfx", spec.seed, spec.prompt)
    length = round(min(spec.seconds, MAX_SECONDS) * sr)
    t = np.arange(length) / sr
    noise = np.random.default_rng(rng.getrandbits(32)).standard_normal(length)
    words = spec.prompt.lower()
    kind = next((w for w in SFX_WORDS if w in words), rng.choice(SFX_WORDS))
    duration = max(spec.seconds, 1e-3)
    if kind in ("rain", "ocean", "wind"):
        smooth = 2 if kind == "rain" else 60
        kernel = np.ones(smooth) / smooth
        track = np.convolve(noise, kernel, mode="same")
        if kind != "rain":  # slow swells
            track *= 0.6 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(2.0, 6.0))
    elif kind in ("explosion", "thunder"):
        kernel = np.ones(40) / 40
        track = np.convolve(noise, kernel, mode="same") * np.exp(-t * (3.0 if kind == "explosion" else 1.2))
    elif kind in ("whoosh", "laser"):
        start, end = (200.0, 2000.0) if kind == "whoosh" else (2400.0, 300.0)
        freq = start + (end - start) * t / duration
        track = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.sin(np.pi * t / duration)
        if kind == "whoosh":
            track = track * 0.3 + np.convolve(noise, np.ones(8) / 8, mode="same") * np.sin(
                np.pi * t / duration
            )
    else:  # beep, click: pulses
        period = rng.uniform(0.25, 0.6)
        gate = ((t % period) < (0.12 if kind == "beep" else 0.01)).astype(float)
        track = np.sin(2 * np.pi * rng.choice((660.0, 880.0, 1320.0)) * t) * gate
    return _to_pcm(np.asarray(track, dtype=np.float64))
