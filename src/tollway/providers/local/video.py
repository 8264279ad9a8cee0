"""`local-procedural-video`: honest procedural video (Pillow + ffmpeg), not a text-to-video model.

A still from the procedural image engine (or the caller's reference image) is drawn on a larger
canvas; the camera pans and zooms across it while a few shapes drift over it, frame by frame. The
frames are piped raw to ffmpeg (`imageio-ffmpeg`'s binary) and encoded to H.264 in MP4 (yuv420p,
faststart), with an AAC track of procedural music when `audio` is asked. Durations, resolutions
and aspect ratios are real: a 5 s 720p 16:9 request is 120 frames of 1280x720 at 24 fps.
"""

from __future__ import annotations

import io
import math
import subprocess
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from tollway.media_formats import ASPECT_RATIOS, RESOLUTIONS, frame_size
from tollway.providers.base import UpstreamError
from tollway.providers.local import images
from tollway.providers.local.ffmpeg import ffmpeg_exe

FPS = 24
CANVAS_MARGIN = 1.35  # the still is this much larger than a frame: room to pan and zoom
ENCODE_TIMEOUT_SECONDS = 600


@dataclass(frozen=True, slots=True)
class VideoSpec:
    prompt: str
    seconds: int
    resolution: str = "720p"
    aspect_ratio: str = "16:9"
    audio: bool = False
    seed: int = 0
    image: bytes | None = None  # optional reference image (first frame's source)
    fps: int = FPS


def _canvas(spec: VideoSpec, width: int, height: int) -> Image.Image:
    size = (math.ceil(width * CANVAS_MARGIN), math.ceil(height * CANVAS_MARGIN))
    if spec.image is not None:
        source = Image.open(io.BytesIO(spec.image))
        source.load()
        return ImageOps.fit(source.convert("RGB"), size, Image.Resampling.LANCZOS)
    still = images.generate(
        images.Generation(prompt=spec.prompt, width=size[0], height=size[1], seed=spec.seed, steps=30)
    )
    return still.convert("RGB")


def _soundtrack(spec: VideoSpec) -> tuple[bytes, int]:
    """The video's music (PCM) and its sample rate. numpy loads with the first video with sound only."""
    from tollway.providers.local import audio_gen

    return audio_gen.music(audio_gen.AudioSpec(spec.prompt, spec.seconds, spec.seed)), audio_gen.SAMPLE_RATE


def render_mp4(spec: VideoSpec, on_progress: Callable[[float], None] | None = None) -> bytes:
    """Encode the video (blocking: run in a worker thread). Returns the MP4 bytes."""
    if spec.resolution not in RESOLUTIONS or spec.aspect_ratio not in ASPECT_RATIOS:
        raise UpstreamError("unsupported resolution or aspect ratio", retryable=False)
    width, height = frame_size(spec.resolution, spec.aspect_ratio)
    canvas = _canvas(spec, width, height)
    rng = images._rng("video", spec.seed, spec.prompt)
    palette = images._palette(rng)
    sprites = [
        (
            rng.uniform(0, 1),
            rng.uniform(0, 1),
            rng.uniform(-0.15, 0.15),
            rng.uniform(-0.15, 0.15),
            rng.uniform(0.04, 0.12),
            (*rng.choice(palette), 150),
        )
        for _ in range(5)
    ]
    pan_x, pan_y = rng.uniform(-1, 1), rng.uniform(-1, 1)
    total = spec.seconds * spec.fps
    with tempfile.TemporaryDirectory(prefix="tollway-video-") as tmp:
        target = Path(tmp) / "out.mp4"
        args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(spec.fps)]
        args += ["-i", "pipe:0"]
        if spec.audio:
            track = Path(tmp) / "audio.wav"
            pcm, rate = _soundtrack(spec)
            with wave.open(str(track), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(rate)
                wav.writeframes(pcm)
            args += ["-i", str(track), "-c:a", "aac", "-b:a", "96k"]
        args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-pix_fmt", "yuv420p"]
        args += ["-movflags", "+faststart", "-frames:v", str(total)]
        if spec.audio:
            args += ["-t", str(spec.seconds)]
        args.append(str(target))
        process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stdin is not None
        try:
            for index in range(total):
                progress = index / max(total - 1, 1)
                process.stdin.write(_frame(canvas, width, height, progress, sprites, pan_x, pan_y))
                if on_progress is not None and index % spec.fps == 0:
                    on_progress(progress)
            process.stdin.close()
            stderr = process.stderr.read() if process.stderr else b""
            code = process.wait(timeout=ENCODE_TIMEOUT_SECONDS)
        except BaseException:
            process.kill()
            process.wait()
            raise
        if code != 0 or not target.exists():
            raise UpstreamError(f"ffmpeg failed to encode the video ({stderr[-200:]!r})", retryable=False)
        return target.read_bytes()


Sprite = tuple[float, float, float, float, float, tuple[int, int, int, int]]


def _frame(
    canvas: Image.Image,
    width: int,
    height: int,
    progress: float,
    sprites: list[Sprite],
    pan_x: float,
    pan_y: float,
) -> bytes:
    """One frame: a moving, slowly zooming window over the canvas, with drifting shapes."""
    zoom = 1.0 + 0.25 * (1 - progress)  # window shrinks from canvas/1.25 to the frame's own size
    win_w = min(canvas.width, width * zoom)
    win_h = min(canvas.height, height * zoom)
    eased = 0.5 - 0.5 * math.cos(math.pi * progress)
    cx = canvas.width / 2 + pan_x * eased * (canvas.width - win_w) / 2
    cy = canvas.height / 2 + pan_y * eased * (canvas.height - win_h) / 2
    box = (cx - win_w / 2, cy - win_h / 2, cx + win_w / 2, cy + win_h / 2)
    frame = canvas.resize((width, height), Image.Resampling.BILINEAR, box=box)
    draw = ImageDraw.Draw(frame, "RGBA")
    for x, y, dx, dy, radius, colour in sprites:
        px = ((x + dx * progress * 4) % 1.0) * width
        py = ((y + dy * progress * 4) % 1.0) * height
        r = radius * min(width, height) * (1 + 0.2 * math.sin(progress * 2 * math.pi * 3))
        draw.ellipse((px - r, py - r, px + r, py + r), fill=colour)
    return frame.tobytes()
