# SPDX-License-Identifier: GPL-3.0-or-later
"""Encoders of the flow-benchmark file formats. Pure Python + numpy + zlib.

* Middlebury ``.flo`` (Sintel, FlyingChairs): ``b"PIEH"`` (the float 202021.25), width and height
  as little-endian int32, then ``H * W`` interleaved little-endian float32 ``(u, v)``, rows top to
  bottom. Unknown flow is :data:`FLO_UNKNOWN` (readers treat ``|value| > 1e9`` as unknown).
* Sintel ``.dpt`` depth: the same tag, width, height, then ``H * W`` float32.
* KITTI 2015 flow PNG: 16-bit RGB, ``R = u * 64 + 2**15``, ``G = v * 64 + 2**15``, ``B = 1`` where
  valid and ``(0, 0, 0)`` elsewhere.
"""

from __future__ import annotations

import struct

import numpy as np

from ..png import png_bytes as encode_png

FLO_TAG = b"PIEH"
FLO_UNKNOWN = np.float32(1e10)
KITTI_SCALE = 64.0
KITTI_OFFSET = 2 ** 15
KITTI_MAX = (65535 - KITTI_OFFSET) / KITTI_SCALE  # 511.98 px: larger flow cannot be stored


def flo_bytes(flow: np.ndarray, valid: np.ndarray | None = None) -> bytes:
    """``(H, W, 2)`` flow as a Middlebury ``.flo``; pixels where ``valid`` is false become
    :data:`FLO_UNKNOWN`."""
    h, w = flow.shape[:2]
    f = np.array(flow, dtype="<f4")
    if valid is not None:
        f[~valid] = FLO_UNKNOWN
    return FLO_TAG + struct.pack("<ii", w, h) + f.tobytes()


def dpt_bytes(depth: np.ndarray) -> bytes:
    """``(H, W)`` depth as a Sintel ``.dpt``."""
    h, w = depth.shape
    return FLO_TAG + struct.pack("<ii", w, h) + np.asarray(depth, dtype="<f4").tobytes()


def kitti_flow_rgb16(flow: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, int]:
    """``(H, W, 3)`` uint16 KITTI encoding of ``(H, W, 2)`` flow; also returns how many valid
    pixels had to be marked invalid because their flow exceeds :data:`KITTI_MAX`."""
    too_big = valid & (np.abs(flow) > KITTI_MAX).any(axis=-1)
    ok = valid & ~too_big
    out = np.zeros(flow.shape[:2] + (3,), np.uint16)
    q = np.rint(flow.astype(np.float64) * KITTI_SCALE + KITTI_OFFSET)
    out[..., :2] = np.where(ok[..., None], np.clip(q, 0, 65535), 0).astype(np.uint16)
    out[..., 2] = ok
    return out, int(too_big.sum())


def png16_bytes(image: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint16 as a 16-bit RGB PNG (filter 0 on every row, zlib level 6, no
    ancillary chunks). Pillow cannot write 16-bit RGB, hence this encoder."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("png16_bytes writes RGB only")
    return encode_png(np.asarray(image, np.uint16))
