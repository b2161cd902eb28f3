"""Sketches: preprocessing of user drawings and the trainable sketch encoder.

A user sketch (a Gradio sketchpad image, a PNG file, an array) becomes a square
``(1, S, S)`` float tensor with ink = 1 on background = 0: transparent pixels are
composited onto white, light-on-dark drawings are inverted, the drawing is cropped
to its strokes with a margin, centred and resized. The same function prepares the
training sketches, so the encoder sees user drawings exactly as it was trained.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError

SKETCH_SIZE = 128
MAX_SKETCH_PIXELS = 64_000_000  # larger images are refused before decoding
INK_THRESHOLD = 0.25  # ink level (0 white .. 1 black) above which a pixel is a stroke
SKETCH_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def load_sketch_image(path: str | os.PathLike):
    """Open an image file as PIL, with one-line errors for missing/unreadable/huge files.

    The size comes from the image header and is checked before any pixel is
    decoded, so a small file claiming huge dimensions (a decompression bomb)
    costs nothing.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such sketch image")
    if path.suffix.lower() not in SKETCH_SUFFIXES:
        raise InputError(f"{path}: unsupported sketch format '{path.suffix}' (use {', '.join(SKETCH_SUFFIXES)})")
    too_large = f"{path}: {{}} is too large for a sketch (at most {MAX_SKETCH_PIXELS:,} pixels)"
    try:
        with warnings.catch_warnings():
            # PIL warns (and later raises) on its own, higher, limit: ours is checked first.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_SKETCH_PIXELS:
                    raise InputError(too_large.format(f"{im.width}x{im.height}"))
                im.load()
                return im.copy()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        raise InputError(too_large.format(f"an image of {int(pixels[1]):,} pixels" if pixels else "the image")) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: not a readable image ({type(e).__name__})") from None


def _to_ink(image) -> np.ndarray:
    """(H, W) float32 ink in [0, 1] (1 = black stroke) from PIL / array input."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        image = load_sketch_image(image)
    if isinstance(image, dict):  # gradio ImageEditor value
        image = image.get("composite") if image.get("composite") is not None else image.get("background")
        if image is None:
            raise InputError("the sketch is empty: draw something first")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise InputError(f"a sketch must be an HxW, HxWx3 or HxWx4 image, got shape {arr.shape}")
        if arr.shape[0] * arr.shape[1] > MAX_SKETCH_PIXELS:
            raise InputError(f"a {arr.shape[1]}x{arr.shape[0]} sketch is too large")
        if arr.dtype != np.uint8:
            a = np.nan_to_num(arr.astype(np.float64))
            arr = (np.clip(a, 0, 1) * 255 if a.max() <= 1.0 else np.clip(a, 0, 255)).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        image = Image.fromarray(arr)
    if not isinstance(image, Image.Image):
        raise InputError(f"a sketch must be an image, got {type(image).__name__}")
    if image.width * image.height > MAX_SKETCH_PIXELS:
        raise InputError(f"a {image.width}x{image.height} sketch is too large")
    if max(image.size) > 2048:  # decimate huge drawings early; strokes survive antialiased resize
        image = image.copy()
        image.thumbnail((2048, 2048), Image.Resampling.LANCZOS)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    ink = 1.0 - gray
    border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
    if np.median(border) > 0.5:  # light strokes on a dark background
        ink = 1.0 - ink
    return ink


def square_crop(values: np.ndarray, keep: np.ndarray, margin: float = 0.08) -> np.ndarray:
    """``values`` cropped to the bounding box of ``keep`` (a non-empty bool mask),
    centred on a float32 square with a blank border of ``margin`` of its side."""
    rows = np.flatnonzero(keep.any(1))
    cols = np.flatnonzero(keep.any(0))
    crop = values[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    side = max(crop.shape)
    pad = int(round(side * margin / (1 - 2 * margin))) + 1
    canvas = np.zeros((side + 2 * pad,) * 2, dtype=np.float32)
    r0 = pad + (side - crop.shape[0]) // 2
    c0 = pad + (side - crop.shape[1]) // 2
    canvas[r0:r0 + crop.shape[0], c0:c0 + crop.shape[1]] = crop
    return canvas


def preprocess_sketch(image, size: int = SKETCH_SIZE, margin: float = 0.08) -> torch.Tensor:
    """User or rendered sketch -> (1, size, size) float32 tensor, ink 1 on 0.

    Args:
        image: PIL image, HxW[xC] array (uint8 or float in [0, 1]), a path, or a
            Gradio ImageEditor dict (its ``composite`` is used).
        size: output side in pixels.
        margin: blank border, as a fraction of the side, around the cropped strokes.
    Raises:
        InputError: unreadable, too large, or blank (no strokes) sketches.
    """
    from PIL import Image

    ink = _to_ink(image)
    strokes = ink > INK_THRESHOLD
    if not strokes.any():
        raise InputError("the sketch is blank: draw the shape's outline in dark strokes on a light background")
    canvas = square_crop(ink, strokes, margin)
    scale = canvas.shape[0] / size
    k = int(scale) | 1
    if k >= 3:
        # Thicken strokes before shrinking so a thin pen line does not fade to grey.
        # (torch, not PIL's MaxFilter: that one crashes the process with SIGFPE for size 1.)
        t = torch.from_numpy(canvas)[None, None]
        canvas = torch.nn.functional.max_pool2d(t, k, stride=1, padding=k // 2)[0, 0].numpy()
    img = Image.fromarray((canvas * 255).astype(np.uint8))
    resized = img.resize((size, size), Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.LANCZOS)
    out = np.asarray(resized, dtype=np.float32) / 255.0
    return torch.from_numpy(out)[None]


@dataclass
class SketchEncoderConfig:
    image_size: int = SKETCH_SIZE
    channels: tuple[int, ...] = (32, 64, 128, 192)  # one stride-2 stage each
    out_dim: int = 256

    def to_dict(self) -> dict:
        return asdict(self)


class SketchEncoder(nn.Module):
    """Small CNN: (B, 1, S, S) sketches -> (B, P, out_dim) prefix tokens.

    Each stage halves the resolution; the final (S / 2^n)^2 feature cells, plus a
    learned 2D position embedding, are the prefix tokens (64 tokens at S = 128 with
    four stages).
    """

    def __init__(self, config: SketchEncoderConfig | None = None):
        super().__init__()
        self.config = config or SketchEncoderConfig()
        c = self.config
        layers, cin = [], 1
        for cout in c.channels:
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                       nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]
            cin = cout
        self.cnn = nn.Sequential(*layers)
        self.grid = c.image_size >> len(c.channels)
        self.proj = nn.Linear(cin, c.out_dim)
        self.pos = nn.Parameter(torch.zeros(self.grid * self.grid, c.out_dim))
        nn.init.normal_(self.pos, std=0.02)

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def forward(self, sketch_B1SS: torch.Tensor) -> torch.Tensor:
        feat_BCgg = self.cnn(sketch_B1SS)
        tokens_BPC = feat_BCgg.flatten(2).transpose(1, 2)
        return self.proj(tokens_BPC) + self.pos
