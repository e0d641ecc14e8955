# SPDX-License-Identifier: GPL-3.0-or-later
"""The world voxel grid the pixel resolver (:mod:`.pixel_ids`) buckets candidate boxes into, so
that only (pixel, candidate) pairs of one voxel are measured. Pure numpy."""

from __future__ import annotations

import numpy as np

BIG_VOXELS = 4096  # voxels a box may cover before it is paired with every point instead


class VoxelKey:
    """Voxel index of world points on a grid of cell ``size`` from ``origin``, ``dims`` cells."""

    def __init__(self, origin, size: float, dims):
        self.origin, self.size, self.dims = origin, size, np.asarray(dims, np.int64)
        self.n = int(np.prod(self.dims))

    def cell(self, x) -> np.ndarray:
        return np.clip(np.floor((x - self.origin) / self.size), 0, self.dims - 1).astype(np.int64)

    def __call__(self, x) -> np.ndarray:
        i = self.cell(x)
        return (i[:, 0] * self.dims[1] + i[:, 1]) * self.dims[2] + i[:, 2]


def voxel_buckets(lo: np.ndarray, hi: np.ndarray, matrix: np.ndarray, sel: np.ndarray,
                  p: np.ndarray, w2cv: np.ndarray, foot: float):
    """``((candidates, voxel keys) of the small boxes, big boxes, voxel key function)`` for
    candidates ``sel`` (rows of the object-space boxes ``lo``/``hi`` ``(n, 3)`` and the
    object -> world ``matrix`` ``(n, 4, 4)``) and the points ``p`` ``(P, 3)`` (see
    :func:`.pixel_ids.resolve_pixel_arrays`)."""
    bits = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], float)
    lo, hi, m = lo[sel], hi[sel], matrix[sel]
    corners = lo[:, None] + bits[None] * (hi - lo)[:, None]
    wc = np.einsum("nij,nvj->nvi", m[:, :3, :3], corners) + m[:, None, :3, 3]   # (n, 8, 3)
    z = wc @ w2cv[2, :3] + w2cv[2, 3]
    zmax = z.max(1)
    grow = foot * np.maximum(zmax, 0.0) / max(1.0 - foot, 1e-9) + 1e-6
    wlo, whi = wc.min(1) - grow[:, None], wc.max(1) + grow[:, None]
    plo, phi = p.min(0), p.max(0)
    alive = (zmax > 0) & (whi >= plo).all(1) & (wlo <= phi).all(1)
    span = float((phi - plo).max())
    ext = (np.minimum(whi, phi) - np.maximum(wlo, plo)).max(1)
    size = float(np.median(ext[alive])) if alive.any() else span
    size = max(size, span / 8192.0, 1e-9)
    key = VoxelKey(plo, size, np.floor((phi - plo) / size).astype(np.int64) + 1)
    i0, i1 = key.cell(np.maximum(wlo, plo)), key.cell(np.minimum(whi, phi))
    n3 = i1 - i0 + 1
    cnt = np.where(alive, n3.prod(1), 0)
    isbig = cnt > BIG_VOXELS
    cnt[isbig] = 0
    cand = np.repeat(sel, cnt)
    k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    nx, ny = np.repeat(n3[:, 0], cnt), np.repeat(n3[:, 1], cnt)
    ix = np.repeat(i0[:, 0], cnt) + k % nx
    iy = np.repeat(i0[:, 1], cnt) + (k // nx) % ny
    iz = np.repeat(i0[:, 2], cnt) + k // (nx * ny)
    vk = (ix * key.dims[1] + iy) * key.dims[2] + iz
    return (cand, vk), sel[isbig & alive], key
