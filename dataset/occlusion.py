# SPDX-License-Identifier: GPL-3.0-or-later
"""Where is the forward flow not valid? Occlusion masks from forward/backward consistency. Pure numpy.

A pixel ``p`` of frame ``t`` with forward flow ``f = F_t(p)`` lands at ``q = p + f`` in frame
``t+1``. Its forward flow is **not valid** when

* ``q`` leaves the image (``OUT_OF_FRAME``), or
* the backward flow found at ``q`` does not lead back to ``p``: with ``b = B_{t+1}(q)``
  (bilinear), ``|f + b|^2 > alpha (|f|^2 + |b|^2) + beta`` (``OCCLUDED``; the test of Sundaram,
  Brox and Keutzer, ECCV 2010, defaults ``alpha = 0.01``, ``beta = 0.5`` px^2): ``p`` is hidden in
  ``t+1`` or sits on a motion boundary.

For the last frame of a sequence frame ``t+1`` is not part of it: only ``OUT_OF_FRAME`` is marked.

:func:`write_masks` writes ``flows/occlusion_NNNNNN.png`` next to ``flows/flow_NNNNNN.exr``:
8-bit grey, ``0`` = valid, ``128`` = occluded, ``255`` = leaves the frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .layout import KINDS, pixel_centres

OCCLUSION_STEM = "occlusion"

VALID, OCCLUDED, OUT_OF_FRAME = 0, 128, 255


def sample_bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sample ``img`` ``(H, W[, C])`` at pixel coordinates ``(u, v)`` (pixel centres at +0.5),
    bilinearly, clamped at the borders. Returns ``u.shape + img.shape[2:]`` in ``img``'s dtype
    (float32 in, float32 out)."""
    h, w = img.shape[:2]
    x = np.clip(u - 0.5, 0.0, w - 1.0)
    y = np.clip(v - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(x.astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(y.astype(np.int64), max(h - 2, 0))
    ax = (x - x0).astype(img.dtype)
    ay = (y - y0).astype(img.dtype)
    dx = 1 if w > 1 else 0
    dy = w if h > 1 else 0
    flat = img.reshape(h * w, *img.shape[2:])
    i00 = y0 * w + x0
    if img.ndim == 3:
        ax = ax[..., None]
        ay = ay[..., None]
    top = flat[i00] * (1 - ax) + flat[i00 + dx] * ax
    bot = flat[i00 + dy] * (1 - ax) + flat[i00 + dy + dx] * ax
    return top * (1 - ay) + bot * ay


def landing(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel lands: ``(u + flow_u, v + flow_v, inside)`` for ``flow`` ``(H, W, 2)``;
    ``inside`` is True when the landing point is within the image."""
    h, w = flow.shape[:2]
    u, v = pixel_centres(h, w)
    qu = (u + flow[..., 0]).astype(np.float32)
    qv = (v + flow[..., 1]).astype(np.float32)
    inside = (qu >= 0) & (qu <= w) & (qv >= 0) & (qv <= h)
    return qu, qv, inside


def cycle_error(flow_ab: np.ndarray, flow_ba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward/backward cycle: ``|F(p) + B(p + F(p))|`` in pixels ``(H, W)`` for ``flow_ab`` of
    frame a and ``flow_ba`` of frame b (e.g. forward flow of t and backward flow of t+1), and the
    ``inside`` mask of landing points within frame b."""
    qu, qv, inside = landing(flow_ab)
    back = sample_bilinear(flow_ba.astype(np.float32), qu, qv)
    err = np.linalg.norm(flow_ab + back, axis=-1)
    return err, inside


def occlusion_mask(flow_forward: np.ndarray, flow_backward_next: np.ndarray | None,
                   alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """``(H, W)`` uint8 mask of frame t: ``VALID`` (0), ``OCCLUDED`` (128), ``OUT_OF_FRAME`` (255).

    ``flow_forward``: forward flow of frame t ``(H, W, 2)``; ``flow_backward_next``: backward flow
    of frame t+1, or None (last frame: only ``OUT_OF_FRAME`` is tested)."""
    qu, qv, inside = landing(flow_forward)
    mask = np.full(flow_forward.shape[:2], VALID, np.uint8)
    if flow_backward_next is not None:
        f = flow_forward.astype(np.float64)
        b = sample_bilinear(flow_backward_next.astype(np.float64), qu, qv)
        lhs = np.sum((f + b) ** 2, axis=-1)
        rhs = alpha * (np.sum(f ** 2, axis=-1) + np.sum(b ** 2, axis=-1)) + beta
        mask[lhs > rhs] = OCCLUDED
    mask[~inside] = OUT_OF_FRAME
    return mask


def sequence_masks(sequence, alpha: float = 0.01, beta: float = 0.5):
    """Yield ``(frame, mask)`` for every frame of a :class:`dataset.loader.Sequence` with flows."""
    n = len(sequence)
    for i in range(n):
        fr = sequence[i]
        nxt = None
        if i + 1 < n and sequence.frame_numbers[i + 1] == sequence.frame_numbers[i] + 1:
            nxt = sequence[i + 1].flow_backward
        yield fr, occlusion_mask(fr.flow_forward, nxt, alpha, beta)


def mask_path(flow_path: str | os.PathLike) -> Path:
    """``flows/flow_000001.exr`` -> ``flows/occlusion_000001.png``."""
    p = Path(flow_path)
    stem = KINDS["flow"].stem
    stem = p.stem.replace(stem, OCCLUSION_STEM, 1) if stem in p.stem else f"{OCCLUSION_STEM}_{p.stem}"
    return p.with_name(stem + ".png")


def write_masks(path, alpha: float = 0.01, beta: float = 0.5) -> list[Path]:
    """Write ``occlusion_NNNNNN.png`` next to every flow file of a sequence (or of every sequence
    of a dataset); returns the files written."""
    from PIL import Image

    from .loader import Dataset, load

    src = load(path) if not hasattr(path, "frames_meta") else path
    seqs = list(src) if isinstance(src, Dataset) else [src]
    out = []
    for seq in seqs:
        if "flow" not in seq.kinds:
            continue
        for fr, mask in sequence_masks(seq, alpha, beta):
            p = mask_path(fr.path("flow"))
            Image.fromarray(mask).save(p)
            out.append(p)
    return out
