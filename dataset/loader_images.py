# SPDX-License-Identifier: GPL-3.0-or-later
"""RGB(A) frames as numpy arrays: PNG/JPEG via pillow, EXR via OpenEXR."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import exr
from .loader_schema import DatasetError


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An RGB(A) frame: PNG/JPEG via pillow (uint8, uint16 for 16-bit PNG), EXR via OpenEXR
    (float32, channels R, G, B[, A])."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: file not found")
    if p.suffix.lower() == ".exr":
        ch = exr.read_channels(p)
        names = [n for n in ("R", "G", "B", "A") if n in ch] or sorted(ch)
        return np.stack([ch[n] for n in names], axis=-1)
    from PIL import Image

    try:
        with Image.open(p) as im:
            wide = _png16(p, im)
            if wide is not None:
                return wide
            im.load()
            if im.mode in ("I;16", "I;16B", "I"):
                return np.asarray(im).astype(np.uint16)
            if im.mode not in ("RGB", "RGBA", "L"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            return np.asarray(im).copy()
    except OSError as exc:
        raise DatasetError(f"{p}: unreadable image ({exc})") from None


def _png16(path: Path, im) -> np.ndarray | None:
    """16-bit RGB(A) PNG as uint16 ``(H, W, C)``, or None for other files (``im``: ``path``
    opened, not loaded; loaded here when it is one). Pillow keeps only the high byte of 16-bit
    colour; decoding the same stream again with the little-endian raw mode yields the low byte,
    and the two make the exact 16-bit values."""
    from PIL import Image

    tile = im.tile[0] if im.format == "PNG" and len(im.tile) == 1 else None
    raw = getattr(tile, "args", None) if tile is not None else None
    if raw not in ("RGB;16B", "RGBA;16B"):
        return None
    im.load()
    hi = np.asarray(im)
    with Image.open(path) as again:
        again.tile = [again.tile[0]._replace(args=raw.replace("16B", "16L"))]
        again.load()
        lo = np.asarray(again)
    return hi.astype(np.uint16) << 8 | lo.astype(np.uint16)
