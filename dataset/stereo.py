# SPDX-License-Identifier: GPL-3.0-or-later
"""Stereo geometry of a rectified pair. Pure Python + numpy.

The right camera is the left camera moved by the baseline ``B`` (scene units) along its own x axis:
same ``K``, same orientation, so a surface point at planar depth ``Z`` (the same in both views)
seen at left pixel ``(u, v)`` appears at right pixel ``(u - d, v)`` with the disparity
``d = fx * B / Z`` (pixels, positive). The left disparity map holds ``d`` at left pixels, the right
map ``d`` at right pixels (right pixel ``(u, v)`` matches left ``(u + d, v)``). Where a view has no
surface (depth 0) its disparity is 0: invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import ray_norm

INVALID = 0.0  # disparity where the view has no surface


def disparity_from_depth(planar_depth: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """``(H, W)`` float32 disparity ``fx * baseline / depth`` (pixels) from planar depth (scene
    units); :data:`INVALID` where the depth is not a finite positive number."""
    z = np.asarray(planar_depth, np.float64)
    ok = np.isfinite(z) & (z > 0)
    out = np.zeros(z.shape, np.float64)
    out[ok] = float(fx) * float(baseline) / z[ok]
    return out.astype(np.float32)


def planar_depth(depth: np.ndarray, K: np.ndarray, depth_type: str) -> np.ndarray:
    """Planar depth from a stored depth map (``planar`` as is; ``distance`` divided by the ray
    length per unit planar depth of each pixel centre)."""
    if depth_type != "distance":
        return np.asarray(depth)
    return (np.asarray(depth, np.float64) / ray_norm(np.asarray(K, np.float64), depth.shape))


def right_pose(left_pose: np.ndarray, baseline: float) -> np.ndarray:
    """4x4 camera-to-world of the right camera: the left pose (Blender camera axes, x right)
    moved by ``baseline`` along its own x axis."""
    t = np.eye(4)
    t[0, 3] = float(baseline)
    return np.asarray(left_pose, np.float64) @ t


@dataclass(frozen=True)
class Warp:
    """Result of :func:`warp_check` over the valid pixels of the source view (pixel counts).

    ``consistent``: the other view's disparity at the matching position agrees; ``occluded``: it
    is larger there (the other view sees a closer surface, which hides this one) and this view
    sees that occluder where it must; ``bad``: anything else (the other view sees something
    farther, or nothing, where this surface must appear, or an occluder this view lacks:
    impossible for a correct pair); ``outside``: the
    match falls outside the other image. ``worst_px``: the largest error among consistent
    pixels."""

    valid: int
    consistent: int
    occluded: int
    bad: int
    outside: int
    worst_px: float

    @property
    def judged(self) -> int:
        return self.consistent + self.occluded + self.bad

    @property
    def bad_frac(self) -> float:
        return self.bad / self.judged if self.judged else 0.0


def warp_check(src: np.ndarray, dst: np.ndarray, sign: int, tol_px: float = 0.05,
               tol_rel: float = 1e-3) -> tuple[Warp, np.ndarray]:
    """Warp disparity map ``src`` by itself into the other view and compare with that view's map
    ``dst`` (both ``(H, W)``, pixels, 0 = invalid). ``sign`` -1: ``src`` is the left view (match at
    ``u - d``), +1: the right view (match at ``u + d``).

    The match falls between two pixel centres of ``dst``; a pixel is consistent when the linear
    sample of the two (exact on planes: disparity is affine in ``u`` there) or either of them
    agrees within ``tol_px + tol_rel * d`` (a crease or edge between them); occluded when either
    is larger beyond it (disparity ``d_o``) and this view sees that occluder ``d_o - d`` px from
    the pixel towards the other camera (within a pixel: edges fall between pixel centres); bad
    otherwise. Returns the counts and an ``(H, W)`` int8
    map: 0 invalid or outside, 1 consistent, 2 occluded, 3 bad."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    h, w = src.shape
    valid = np.isfinite(src) & (src > 0)
    d = np.where(valid, src, 0.0)
    j = np.arange(w, dtype=np.float64)[None, :] + sign * d   # column of the match (centre: +0.5)
    inside = valid & (j >= 0.0) & (j <= w - 1)
    j0 = np.clip(np.floor(j), 0, w - 1).astype(np.int64)
    j1 = np.minimum(j0 + 1, w - 1)
    t = np.clip(j - j0, 0.0, 1.0)
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    d0, d1 = dst[rows, j0], dst[rows, j1]
    ok0, ok1 = np.isfinite(d0) & (d0 > 0), np.isfinite(d1) & (d1 > 0)
    tol = tol_px + tol_rel * d
    lin = np.where(ok0 & ok1, d0 * (1 - t) + d1 * t, np.nan)
    errs = np.stack([np.abs(lin - d), np.where(ok0, np.abs(d0 - d), np.inf),
                     np.where(ok1, np.abs(d1 - d), np.inf)])
    err = np.nanmin(errs, axis=0)
    cons = inside & (err <= tol)
    hidden = inside & ~cons & ((ok0 & (d0 > d + tol)) | (ok1 & (d1 > d + tol)))
    # a real occluder (disparity d_o) is seen by this view too, d_o - d px beyond the pixel
    # towards the other camera: there this view's disparity is d_o (or larger: closer still)
    d_o = np.maximum(np.where(ok0, d0, 0.0), np.where(ok1, d1, 0.0))
    # (within a pixel either side: the occluder's edge falls between pixel centres)
    k = np.floor(np.arange(w, dtype=np.float64)[None, :] - sign * (d_o - d)).astype(np.int64)
    near_k = np.max([src[rows, np.clip(k + o, 0, w - 1)] for o in (-1, 0, 1, 2)], axis=0)
    seen = (near_k >= d_o - tol) & (k >= -1) & (k <= w - 1)
    occl = hidden & seen
    bad = inside & ~cons & ~occl
    cls = np.zeros((h, w), np.int8)
    cls[cons], cls[occl], cls[bad] = 1, 2, 3
    return Warp(valid=int(valid.sum()), consistent=int(cons.sum()), occluded=int(occl.sum()),
                bad=int(bad.sum()), outside=int((valid & ~inside).sum()),
                worst_px=float(err[cons].max()) if cons.any() else 0.0), cls
