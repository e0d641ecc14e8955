# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline previews: an animated grid per sequence and a contact sheet. numpy + pillow only.

Per sequence, one animated image (WebP, or GIF) whose frames are rows of tiles
``RGB | depth | normals | forward flow | segmentation`` (the kinds the sequence has), and for the
whole dataset ``contact_sheet.png``: the middle frame's grid of every sequence, labelled.

Colour maps (pure numpy):

* depth: turbo (polynomial fit by Mikhailov, Google 2019), near = red ... far = blue, scaled
  per sequence between the 1st and 99th percentile of covered depths; black = no surface;
* normals: ``(n + 1) / 2`` as RGB; black = no surface;
* flow: the Middlebury colour wheel (Baker et al., IJCV 2011): hue = direction, saturation =
  magnitude / the sequence's 99th-percentile magnitude (one scale per sequence: no flicker);
  white = no motion;
* segmentation: hue = fract(id * 0.618...) (golden-ratio hashing); black = background.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from .loader import Sequence, load
from .modalities import MODALITIES
from .png import hsv
from .validate import progress_bar

GOLDEN = 0.6180339887498949


# --- colour maps -------------------------------------------------------------------------

def turbo(x: np.ndarray) -> np.ndarray:
    """Turbo colour map of ``x`` in [0, 1] -> float RGB in [0, 1], shape ``x.shape + (3,)``."""
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    coef = np.array([[0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
                     [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
                     [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973]])
    r, g, b = (np.polynomial.polynomial.polyval(x, c) for c in coef)
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


def colorize_depth(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``(H, W)`` depth -> uint8 ``(H, W, 3)``: near red, far blue (turbo reversed), 0 = black."""
    cov = depth > 0
    if lo is None or hi is None:
        vals = depth[cov]
        lo, hi = (float(np.percentile(vals, 1)), float(np.percentile(vals, 99))) if vals.size else (0.0, 1.0)
    x = (depth - lo) / max(hi - lo, 1e-9)
    rgb = turbo(0.08 + 0.92 * (1.0 - x))  # skip turbo's near-black end: black means "no surface"
    rgb[~cov] = 0
    return (rgb * 255 + 0.5).astype(np.uint8)


def colorize_normals(n: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` unit normals -> uint8 ``(n + 1) / 2``; zero normals stay black."""
    rgb = (np.clip(n, -1, 1) + 1) / 2
    rgb[np.all(n == 0, axis=-1)] = 0
    return (rgb * 255 + 0.5).astype(np.uint8)


def _wheel() -> np.ndarray:
    ry, yg, gc, cb, bm, mr = 15, 6, 4, 11, 13, 6
    segs = []
    for n, start, end in ((ry, (255, 0, 0), (255, 255, 0)), (yg, (255, 255, 0), (0, 255, 0)),
                          (gc, (0, 255, 0), (0, 255, 255)), (cb, (0, 255, 255), (0, 0, 255)),
                          (bm, (0, 0, 255), (255, 0, 255)), (mr, (255, 0, 255), (255, 0, 0))):
        t = np.arange(n)[:, None] / n
        segs.append(np.array(start) * (1 - t) + np.array(end) * t)
    return np.concatenate(segs) / 255.0


COLORWHEEL = _wheel()
"""The Middlebury colour wheel: 55 RGB colours in [0, 1] (red, yellow, green, cyan, blue, magenta)."""


def colorize_flow(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """``(H, W, 2)`` flow (u right, v down) -> uint8 RGB on the Middlebury colour wheel.
    ``max_flow``: magnitude shown fully saturated (default: this field's maximum)."""
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    mag = np.hypot(u, v)
    scale = max_flow if max_flow else (float(mag.max()) or 1.0)
    rad = mag / scale
    ncols = len(COLORWHEEL)
    a = np.arctan2(-v, -u) / np.pi
    fk = (a + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(int) % ncols
    k1 = (k0 + 1) % ncols
    f = (fk - np.floor(fk))[..., None]
    col = (1 - f) * COLORWHEEL[k0] + f * COLORWHEEL[k1]
    r = rad[..., None]
    col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    return (np.clip(col, 0, 1) * 255 + 0.5).astype(np.uint8)


def colorize_ids(ids: np.ndarray) -> np.ndarray:
    """``(H, W)`` integer ids -> uint8 RGB, hue = fract(id * golden ratio), background black."""
    h = np.mod(ids.astype(np.float64) * GOLDEN, 1.0)
    rgb = hsv(h, np.full_like(h, 0.75), np.full_like(h, 0.95))
    rgb[ids == 0] = 0
    return (rgb * 255 + 0.5).astype(np.uint8)


def _rgb8(im: np.ndarray) -> np.ndarray:
    if im.dtype == np.uint8:
        return im
    if im.dtype == np.uint16:
        return (im >> 8).astype(np.uint8)
    x = np.clip(im.astype(np.float64), 0, 1)  # linear EXR: sRGB transfer for display
    x = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return (x * 255 + 0.5).astype(np.uint8)


# The colour map of each modality's tile (``dataset.modalities.Modality.preview``): ``(array,
# the sequence's scales from _scales) -> uint8 (H, W, 3)``.
COLORMAPS = {
    "depth": lambda a, s: colorize_depth(a, s.get("depth_lo"), s.get("depth_hi")),
    "normals": lambda a, s: colorize_normals(a),
    "flow": lambda a, s: colorize_flow(a, s.get("flow")),
    "ids": lambda a, s: colorize_ids(a),
}


# --- grids ---------------------------------------------------------------------------------

def _scales(seq: Sequence) -> dict[str, float]:
    """One colour scale per sequence (sampled on up to 8 frames) so the animation does not flicker."""
    idx = np.unique(np.linspace(0, len(seq) - 1, min(8, len(seq))).astype(int))
    out: dict[str, float] = {}
    if "depth" in seq.kinds:
        vals = np.concatenate([seq[i].depth[seq[i].depth > 0] for i in idx])
        if vals.size:
            out["depth_lo"], out["depth_hi"] = float(np.percentile(vals, 1)), float(np.percentile(vals, 99))
    if "flow" in seq.kinds:
        mags = np.concatenate([np.hypot(*np.moveaxis(seq[i].flow_forward, -1, 0)).ravel() for i in idx])
        out["flow"] = float(np.percentile(mags, 99)) or 1.0
    return out


def frame_tiles(frame, scales: dict[str, float] | None = None) -> list[tuple[str, np.ndarray]]:
    """``[(label, uint8 (H, W, 3))]`` for one frame: rgb and every ground truth it has."""
    seq = frame.sequence
    s = scales or {}
    tiles = [("rgb", _rgb8(frame.rgb))]
    for m in MODALITIES.values():
        if m.name in seq.kinds:
            label, attr, cmap = m.preview
            tiles.append((label, COLORMAPS[cmap](getattr(frame, attr), s)))
    return tiles


def grid_image(frame, size: int = 128, scales: dict[str, float] | None = None, gap: int = 2):
    """A PIL image: the frame's tiles side by side, each ``size`` pixels high."""
    from PIL import Image

    tiles = frame_tiles(frame, scales)
    h, w = tiles[0][1].shape[:2]
    tw = max(1, round(w * size / h))
    canvas = Image.new("RGB", (len(tiles) * tw + (len(tiles) - 1) * gap, size), (40, 40, 40))
    for k, (_, arr) in enumerate(tiles):
        im = Image.fromarray(np.ascontiguousarray(arr)).resize((tw, size), Image.NEAREST)
        canvas.paste(im, (k * (tw + gap), 0))
    return canvas


def sequence_preview(seq: Sequence | str | os.PathLike, out: str | os.PathLike, *, fps: float = 12.0,
                     size: int = 128, max_frames: int | None = None) -> Path:
    """Write the animated grid of one sequence to ``out`` (``.webp`` or ``.gif``); returns it."""
    if not isinstance(seq, Sequence):
        seq = load(seq)
        if not isinstance(seq, Sequence):
            raise ValueError(f"{out}: expected a sequence folder")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scales = _scales(seq)
    n = len(seq)
    idx = range(n) if not max_frames or n <= max_frames else \
        np.unique(np.linspace(0, n - 1, max_frames).astype(int))
    images = []
    for i in idx:
        fr = seq[int(i)]
        images.append(grid_image(fr, size, scales))
        fr.clear()
    duration = max(20, int(round(1000.0 / fps)))
    kw = {"lossless": False, "quality": 80} if out.suffix.lower() == ".webp" else {}
    if out.suffix.lower() == ".gif":
        from PIL import Image

        images = [im.quantize(colors=255, method=Image.Quantize.FASTOCTREE) for im in images]
    images[0].save(out, save_all=True, append_images=images[1:], duration=duration, loop=0, **kw)
    return out


def contact_sheet(seqs: list[Sequence], out: str | os.PathLike, *, size: int = 96,
                  labels: list[str] | None = None) -> Path:
    """One PNG: the middle frame's grid of every sequence, one row each, labelled."""
    from PIL import Image, ImageDraw

    rows = []
    for k, seq in enumerate(seqs):
        fr = seq[len(seq) // 2]
        rows.append(((labels or [])[k] if labels else seq.id, grid_image(fr, size, _scales(seq))))
    label_h = 14
    width = max(im.width for _, im in rows)
    height = sum(im.height + label_h + 4 for _, im in rows)
    sheet = Image.new("RGB", (width, height), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    y = 0
    for label, im in rows:
        draw.text((2, y + 1), label, fill=(230, 230, 230))
        sheet.paste(im, (0, y + label_h))
        y += im.height + label_h + 4
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def _webp_ok() -> bool:
    try:
        from PIL import features

        return bool(features.check("webp"))
    except Exception:  # noqa: BLE001
        return False


def preview(path: str | os.PathLike, out: str | os.PathLike, *, fps: float = 12.0, size: int = 128,
            fmt: str | None = None, max_frames: int | None = None, progress: bool = False) -> dict:
    """Previews of a sequence or datasets folder into folder ``out``: one animated grid per
    sequence (``<scene>__<sequence>.webp``, or ``.gif`` when pillow lacks WebP or ``fmt="gif"``)
    and ``contact_sheet.png``. ``size``: tile height in pixels; ``fps``: animation speed.
    Returns ``{"animations": [paths], "contact_sheet": path}``."""
    src = load(path)
    root = Path(path)
    seqs = [src] if isinstance(src, Sequence) else list(src)
    ext = (fmt or ("webp" if _webp_ok() else "gif")).lower().lstrip(".")
    if ext not in ("webp", "gif"):
        raise ValueError(f"preview format must be webp or gif, not {fmt!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    anims = []
    labels = []
    t0 = time.monotonic()
    for k, seq in enumerate(seqs):
        rel = seq.path.name if isinstance(src, Sequence) else seq.path.relative_to(root).as_posix()
        parts = rel.split("/")
        name = "__".join(parts[-2:]) if len(parts) >= 2 else parts[-1]
        labels.append(rel)
        anims.append(str(sequence_preview(seq, out / f"{name}.{ext}", fps=fps, size=size,
                                          max_frames=max_frames)))
        if progress:
            print(f"preview: {progress_bar(k + 1, len(seqs), t0, anims[-1])}", file=sys.stderr, flush=True)
    sheet = contact_sheet(seqs, out / "contact_sheet.png", size=max(32, size * 3 // 4), labels=labels)
    return {"animations": anims, "contact_sheet": str(sheet)}

