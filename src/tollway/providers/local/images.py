"""`local-procedural`: an honest procedural image engine (Pillow), not a text-to-image model.

No text-to-image weights can be had offline (research/ecosystem.md §2.4), so generation draws
deterministic abstract art: a palette, a gradient and shapes all derived from
sha256(seed, prompt, negative prompt, style), so the same request gives the same pixels. It is for
demos and tests; real image models are upstream routes. Edits, upscales and background removal
are real image operations:

- edit: the prompt's colour words (or a hash-derived colour) tint the image, and the prompt is
  written on a translucent band: a visible, honest "edit", not a semantic one;
- upscale: Lanczos resampling, then a mild unsharp mask when `enhance` is asked;
- background removal: the background colour is the median of the border pixels; every pixel
  within a colour distance of it that is connected to the border (flood fill) becomes transparent.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

COLOUR_WORDS = {
    "red": (220, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 40),
    "gold": (212, 175, 55),
    "green": (40, 170, 70),
    "blue": (40, 90, 220),
    "sky": (120, 180, 240),
    "purple": (140, 60, 190),
    "pink": (240, 120, 180),
    "sunset": (250, 110, 60),
    "sunrise": (255, 170, 90),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
}


@dataclass(frozen=True, slots=True)
class Generation:
    prompt: str
    width: int = 1024
    height: int = 1024
    seed: int = 0
    negative_prompt: str = ""
    style: str | None = None
    steps: int = 20
    cfg_scale: float | None = None


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _palette(rng: random.Random, count: int = 5) -> list[tuple[int, int, int]]:
    base = rng.random()
    colours = []
    for i in range(count):
        hue = (base + i * rng.uniform(0.08, 0.3)) % 1.0
        colours.append(_hsv(hue, rng.uniform(0.45, 0.95), rng.uniform(0.45, 1.0)))
    return colours


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


def generate(request: Generation) -> Image.Image:
    """Deterministic abstract art for a prompt: same request, same pixels."""
    rng = _rng(request.seed, request.prompt, request.negative_prompt, request.style or "")
    palette = _palette(rng)
    # Draw at a bounded working size, then resample: a 4096² request costs what a 1024² one does.
    scale = max(request.width, request.height) / 1024
    work = (max(1, round(request.width / max(scale, 1))), max(1, round(request.height / max(scale, 1))))
    top, bottom = palette[0], palette[1]
    gradient = Image.linear_gradient("L").resize(work)
    if rng.random() < 0.5:
        gradient = gradient.rotate(90, expand=False)
    image = Image.composite(Image.new("RGB", work, bottom), Image.new("RGB", work, top), gradient)
    draw = ImageDraw.Draw(image, "RGBA")
    # More steps, more detail: a visible (and honest) use of the parameter.
    for _ in range(6 + min(request.steps, 50)):
        colour = (*rng.choice(palette[2:] or palette), rng.randint(60, 190))
        x0, y0 = rng.uniform(-0.2, 1.0) * work[0], rng.uniform(-0.2, 1.0) * work[1]
        size = rng.uniform(0.05, 0.45) * min(work)
        box = (x0, y0, x0 + size * rng.uniform(0.5, 2.0), y0 + size * rng.uniform(0.5, 2.0))
        shape = rng.random()
        if shape < 0.4:
            draw.ellipse(box, fill=colour)
        elif shape < 0.75:
            draw.rectangle(box, fill=colour)
        else:
            points = [(rng.uniform(0, work[0]), rng.uniform(0, work[1])) for _ in range(3)]
            draw.polygon(points, fill=colour)
    if request.style in ("Pixel Art", "Lowpoly"):
        small = image.resize((max(1, work[0] // 16), max(1, work[1] // 16)), Image.Resampling.NEAREST)
        image = small.resize(work, Image.Resampling.NEAREST)
    elif request.style in ("Cinematic", "Analog Film", "Photographic"):
        image = image.filter(ImageFilter.GaussianBlur(radius=max(1, min(work) // 200)))
    if work != (request.width, request.height):
        image = image.resize((request.width, request.height), Image.Resampling.LANCZOS)
    return image


def _tint_colour(prompt: str) -> tuple[int, int, int]:
    words = prompt.lower()
    for word, colour in COLOUR_WORDS.items():
        if word in words:
            return colour
    return _palette(_rng("edit", prompt), 1)[0]


def edit(image: Image.Image, prompt: str) -> Image.Image:
    """Tint toward the prompt's colour and caption the prompt: a real, visible, honest edit."""
    rgba = image.convert("RGBA")
    colour = _tint_colour(prompt)
    overlay = Image.new("RGBA", rgba.size, (*colour, 90))
    tinted = Image.alpha_composite(rgba, overlay)
    draw = ImageDraw.Draw(tinted, "RGBA")
    band = max(12, rgba.height // 12)
    draw.rectangle((0, rgba.height - band, rgba.width, rgba.height), fill=(0, 0, 0, 110))
    draw.text((8, rgba.height - band + 4), prompt[:120], fill=(255, 255, 255, 230))
    return tinted if image.mode == "RGBA" else tinted.convert("RGB")


def upscale(image: Image.Image, scale: float, *, enhance: bool = False) -> Image.Image:
    """Lanczos resampling to round(size × scale); `enhance` adds an unsharp mask (the 'enhancer')."""
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    result = image.resize(size, Image.Resampling.LANCZOS) if size != image.size else image.copy()
    if enhance:
        result = result.filter(ImageFilter.UnsharpMask(radius=2, percent=80, threshold=2))
    return result


def remove_background(image: Image.Image, *, tolerance: int = 40) -> Image.Image:
    """Border colour + flood fill to alpha: pixels near the median border colour and connected to the
    border become transparent. Works for product shots on plain backdrops; not a segmentation model."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    border = [rgb.getpixel((x, 0)) for x in range(w)] + [rgb.getpixel((x, h - 1)) for x in range(w)]
    border += [rgb.getpixel((0, y)) for y in range(h)] + [rgb.getpixel((w - 1, y)) for y in range(h)]
    channels = list(zip(*[p for p in border if isinstance(p, tuple)], strict=False))
    background = tuple(sorted(c)[len(c) // 2] for c in channels)
    # Distance to the background colour, thresholded to a mask of "looks like background".
    difference = ImageChops.difference(rgb, Image.new("RGB", rgb.size, background)).convert("L")
    near = difference.point(lambda v: 255 if v <= tolerance else 0)
    # Keep only the near-background regions touching the border: flood from the border pixels.
    marker = near.copy()
    sentinel = 128
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, 0), (w // 2, h - 1), (0, h // 2)):
        if marker.getpixel((x, y)) == 255:
            ImageDraw.floodfill(marker, (x, y), sentinel)
    background_mask = marker.point(lambda v: 255 if v == sentinel else 0)
    alpha = ImageOps.invert(background_mask).filter(ImageFilter.GaussianBlur(1))
    result = rgb.convert("RGBA")
    result.putalpha(alpha)
    return result
