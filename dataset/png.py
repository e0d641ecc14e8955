# SPDX-License-Identifier: GPL-3.0-or-later
"""Images written without Pillow (inside Blender and in the exports): PNG bytes of 8- or 16-bit
grey or RGB arrays (:func:`png_bytes`), HSV colours (:func:`hsv`) and the renderer's flow preview
colour map (:func:`flow_preview_rgb`, the same map its compositor draws with). Pure numpy."""

from __future__ import annotations

import struct
import zlib

import numpy as np

# Flow preview: saturation = |flow| / (this fraction of the image width), clamped to 1; a fixed
# scale (not per-frame max) keeps the colours of a video steady.
FLOW_PREVIEW_SCALE = 0.05


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(image: np.ndarray) -> bytes:
    """``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8 or uint16, as a PNG (filter 0 on every row,
    zlib level 6, no ancillary chunks)."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16) or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"png_bytes writes (H, W) or (H, W, 3) uint8/uint16, not "
                         f"{image.shape} {image.dtype}")
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else 3
    depth = 8 * image.dtype.itemsize
    rows = np.zeros((h, 1 + w * c * image.dtype.itemsize), np.uint8)
    rows[:, 1:] = np.ascontiguousarray(image, dtype=f">u{image.dtype.itemsize}").view(
        np.uint8).reshape(h, -1)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, 0 if c == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b""))


def hsv(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV (each ``(...)`` in 0..1) to RGB ``(..., 3)`` float64 in 0..1."""
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(h.shape + (3,))
    for k, (r, g, b) in enumerate(choices):
        m = i == k
        out[m] = np.stack([r[m], g[m], b[m]], axis=-1)
    return out


def flow_preview_rgb(flow: np.ndarray) -> np.ndarray:
    """``(H, W, 2)`` flow (pixels, u right, v down) to uint8 ``(H, W, 3)``: hue = direction
    (``atan2(-v, -u) / 2pi + 0.5``), saturation = ``|flow| / (FLOW_PREVIEW_SCALE * W)`` clamped,
    value 1 (no flow is white)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    scale = 1.0 / max(1.0, FLOW_PREVIEW_SCALE * flow.shape[1])
    sat = np.clip(np.hypot(u, v) * scale, 0.0, 1.0)
    hue = np.mod(np.arctan2(-v, -u) / (2 * np.pi) + 0.5, 1.0)
    return (hsv(hue, sat, np.ones_like(hue)) * 255 + 0.5).astype(np.uint8)
