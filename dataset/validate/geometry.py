# SPDX-License-Identifier: GPL-3.0-or-later
"""Geometry of the checks: back-projection, normals and an intrinsics fit from depth, grouped
percentiles (rigid flow: :mod:`dataset.rigid_motion`). Pure numpy; every image is ``(H, W)``
row 0 at the top, points and normals in the **OpenCV camera frame** (x right, y down, z
forward) unless said otherwise."""

from __future__ import annotations

import numpy as np

from ..layout import pixel_rays

# The intrinsics fit uses flat patches only: the 4 neighbours' stored normals within PATCH_DEG of
# the pixel's (excludes creases and curved, smooth-shaded surfaces, whose interpolated normals
# are not perpendicular to the facets the depth sees), and the stored normal within GATE_DEG of
# the depth-derived one (a wrong K tilts it by well under a degree; shading does by more).
PATCH_DEG = 0.5
GATE_DEG = 3.0


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of ``(..., k)`` arrays (k = 2 or 3): ``np.sum(a * b, axis=-1)``, the
    same values (its terms added left to right, as numpy adds a short last axis), without a
    reduction over that axis (4x slower on the (M, 3) arrays of the checks)."""
    out = a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]
    for k in range(2, a.shape[-1]):
        out += a[..., k] * b[..., k]
    return out


def norm(a: np.ndarray) -> np.ndarray:
    """Row-wise length of ``(..., k)``: ``np.linalg.norm(a, axis=-1)``, the same values."""
    return np.sqrt(dot(a, a))


def interior(depth: np.ndarray | None, labels: np.ndarray | None, depth_jump: float = 0.05,
             radius: int = 1) -> np.ndarray:
    """``(H, W)`` mask of covered pixels at least ``radius`` pixels (8-connected) inside one thing:
    depth > 0 and every pixel of the ``(2 radius + 1)``-square around on the same thing (same
    label; without labels: covered, no relative depth step over ``depth_jump`` between
    neighbours). Cycles filters each pixel over 1.5 px, so a pixel touching another thing, even
    only at a corner, holds a blend of both motions. Image-border pixels count their missing
    neighbours as equal."""
    ref = labels if labels is not None else depth
    out = np.ones(ref.shape, bool) if depth is None else depth > 0
    pad = np.pad(ref, 1, mode="edge")
    h, w = ref.shape
    centre = pad[1:-1, 1:-1]
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            if dr == dc == 1:
                continue
            nb = pad[dr:dr + h, dc:dc + w]
            if labels is not None:
                out &= nb == centre
            else:
                out &= (nb > 0) & (np.abs(nb - centre) <= depth_jump * centre)
    for _ in range(radius - 1):  # erode: every 8-neighbour already inside
        p = np.pad(out, 1, mode="edge")
        grown = out.copy()
        for dr in (0, 1, 2):
            for dc in (0, 1, 2):
                grown &= p[dr:dr + h, dc:dc + w]
        out = grown
    return out


def surface_mask(depth: np.ndarray, labels: np.ndarray | None, depth_jump: float = 0.05) -> np.ndarray:
    """``(H, W)`` pixels whose 4 neighbours are covered, on the same thing (label) and without a
    relative depth step over ``depth_jump``: where central-difference chords of the
    back-projected surface stay on one surface. Border pixels are False."""
    h, w = depth.shape
    out = np.zeros((h, w), bool)
    if min(h, w) < 3:
        return out
    c = depth[1:-1, 1:-1]
    good = c > 0
    for d in (depth[1:-1, 2:], depth[1:-1, :-2], depth[2:, 1:-1], depth[:-2, 1:-1]):
        good &= (d > 0) & (np.abs(d - c) <= depth_jump * c)
    if labels is not None:
        ci = labels[1:-1, 1:-1]
        for i in (labels[1:-1, 2:], labels[1:-1, :-2], labels[2:, 1:-1], labels[:-2, 1:-1]):
            good &= i == ci
    out[1:-1, 1:-1] = good
    return out


def regular_sample(mask: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of ``mask``'s pixels, every k-th so that at most about ``limit`` remain."""
    idx = np.flatnonzero(mask)
    if limit and idx.size > limit:
        idx = idx[:: idx.size // limit]
    return np.divmod(idx, mask.shape[1])


def depth_normals_at(depth: np.ndarray, K: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``(M, 3)`` unit normals (OpenCV camera frame, facing the camera) of the surface
    back-projected from planar ``depth`` at pixels ``(rows, cols)`` (inside the border, see
    :func:`surface_mask`), from the cross product of the central-difference chords; 0 where
    the chords are degenerate."""
    x, y = pixel_rays(K, depth.shape)

    def P(r, c):
        d = depth[r, c].astype(np.float64)
        return np.stack([x[0, c] * d, y[r, 0] * d, d], axis=-1)
    dx = P(rows, cols + 1) - P(rows, cols - 1)
    dy = P(rows + 1, cols) - P(rows - 1, cols)
    n = np.cross(dy, dx)
    length = norm(n)[:, None]
    n = np.where(length > 0, n / np.where(length > 0, length, 1.0), 0.0)
    n[dot(n, P(rows, cols)) > 0] *= -1
    return n


def normals_to_opencv_camera(normals: np.ndarray, frame: str, pose: np.ndarray) -> np.ndarray:
    """Stored normals ``(..., 3)`` (``camera``: Blender camera axes; ``world``) to the OpenCV
    camera frame."""
    n = normals.astype(np.float64)
    if frame == "world":
        n = n @ pose[:3, :3]  # R^T n for row vectors
    return n * np.array([1.0, -1.0, -1.0])


def intrinsics_rows(depth: np.ndarray, normal_at, K: np.ndarray, rows: np.ndarray, cols: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Linear equations for ``theta = (1/fx, cx/fx, 1/fy, cy/fy)`` at pixels ``(rows, cols)``
    (from :func:`surface_mask`): the chords ``P(u+1) - P(u-1)`` and ``P(v+1) - P(v-1)`` of the
    surface back-projected from depth are perpendicular to the stored normal; ``P = d * ((u - cx)/fx,
    (v - cy)/fy, 1)`` makes that linear in ``theta`` and exact for planar surfaces, so no camera
    motion is needed. ``normal_at(rows, cols) -> (M, 3)`` gives unit stored normals in the OpenCV
    camera frame; pixels whose 4 neighbours' normals are more than ``PATCH_DEG`` from their own
    (a crease) are left out. Returns ``A`` ``(m, 4)`` and ``b`` ``(m,)`` (``A @ theta = b``), each
    row divided by the chord length under ``K`` (residuals read as the sine of the
    normal-to-chord angle)."""
    n = normal_at(rows, cols)
    cos_lim = np.cos(np.radians(PATCH_DEG))
    flat = np.ones(rows.size, bool)
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        flat &= dot(normal_at(rows + dr, cols + dc), n) >= cos_lim
    rows, cols, n = rows[flat], cols[flat], n[flat]
    u = cols + 0.5
    v = rows + 0.5
    d = depth.astype(np.float64)
    A_list, b_list = [], []
    for axis in (0, 1):
        dr, dc = (0, 1) if axis == 0 else (1, 0)
        dp, dm = d[rows + dr, cols + dc], d[rows - dr, cols - dc]
        a_x = dp * (u + dc) - dm * (u - dc)   # coefficient of 1/fx in the chord's x
        a_y = dp * (v + dr) - dm * (v - dr)
        a_c = -(dp - dm)                      # coefficient of cx/fx (and cy/fy)
        A = np.stack([n[:, 0] * a_x, n[:, 0] * a_c, n[:, 1] * a_y, n[:, 1] * a_c], axis=-1)
        b = -n[:, 2] * (dp - dm)
        chord = np.stack([(a_x + a_c * K[0, 2]) / K[0, 0], (a_y + a_c * K[1, 2]) / K[1, 1], dp - dm], -1)
        length = norm(chord)
        keep = length > 0
        A_list.append(A[keep] / length[keep, None])
        b_list.append(b[keep] / length[keep])
    return np.concatenate(A_list), np.concatenate(b_list)


def fit_intrinsics(A: np.ndarray, b: np.ndarray, K: np.ndarray, noise_floor: float = 1e-6
                   ) -> dict[str, np.ndarray] | None:
    """Least-squares ``(fx, fy, cx, cy)`` from :func:`intrinsics_rows` (one trimmed refit drops
    rows off by more than 3x the robust spread) and their standard errors from the residuals (at
    least ``noise_floor``), counting neighbouring rows as correlated (an effective sample 1/9 of
    the rows). An axis the rows do not constrain (``(fx, cx)`` when no surface is slanted in x, say)
    is held at ``K``'s values with an infinite standard error. None when nothing can be fitted."""
    if len(b) < 8:
        return None
    theta0 = np.array([1 / K[0, 0], K[0, 2] / K[0, 0], 1 / K[1, 1], K[1, 2] / K[1, 1]])
    scale = np.abs(theta0) + 1e-12
    As = A * scale  # columns in units of the stored values: conditioning means something
    active = [j for pair in ((0, 1), (2, 3))
              if np.linalg.cond(As[:, pair].T @ As[:, pair]) < 1e10 for j in pair]
    if not active:
        return None
    fixed = [j for j in range(4) if j not in active]
    rhs = b - As[:, fixed] @ np.ones(len(fixed))
    Aa = As[:, active]
    keep = np.ones(len(b), bool)
    x = None
    for _ in range(2):
        # Aa[keep] once: boolean indexing of the column-major Aa is the slow part. The copy keeps
        # the product a general one: numpy computes X.T @ X of one buffer another way (syrk),
        # with other rounding, which would change the reported errors of a degenerate fit.
        Ak = Aa[keep]
        AtA = Ak.T @ Ak.copy()
        if np.linalg.cond(AtA) > 1e12:
            return None
        x = np.linalg.solve(AtA, Ak.T @ rhs[keep])
        r = Aa @ x - rhs
        spread = max(1.4826 * float(np.median(np.abs(r[keep]))), noise_floor / 3)
        keep = np.abs(r) <= 3 * spread
        if keep.sum() < 8:
            return None
    r = (Aa @ x - rhs)[keep]
    sigma = max(float(np.sqrt(np.mean(r ** 2))), noise_floor)
    Ak = Aa[keep]
    AtA = Ak.T @ Ak.copy()
    if np.linalg.cond(AtA) > 1e12:
        return None
    cov_a = np.linalg.inv(AtA) * sigma ** 2 * 9.0
    theta = theta0.copy()
    theta[active] = x * scale[active]
    cov = np.zeros((4, 4))
    cov[np.ix_(active, active)] = cov_a * np.outer(scale[active], scale[active])
    a, acx, bb, bcy = theta
    fx, fy = 1.0 / a, 1.0 / bb
    # first-order error propagation from theta to (fx, fy, cx, cy)
    J = np.array([[-fx ** 2, 0, 0, 0], [0, 0, -fy ** 2, 0],
                  [-acx * fx ** 2, fx, 0, 0], [0, 0, -bcy * fy ** 2, fy]])
    err = np.sqrt(np.maximum(np.diag(J @ cov @ J.T), 0))
    err[[k for k, j in ((0, 0), (2, 0), (1, 2), (3, 2)) if j in fixed]] = np.inf
    return {"value": np.array([fx, fy, acx * fx, bcy * fy]), "stderr": err, "rows": int(keep.sum())}


def group_quantile(values: np.ndarray | list[np.ndarray], labels: np.ndarray, q: float
                   ) -> dict[int, tuple]:
    """``{label: (q-quantile of each values array (nearest rank)..., count)}`` for 1-D
    ``labels`` and one or several 1-D ``values`` arrays of the same length."""
    vals = [values] if isinstance(values, np.ndarray) else list(values)
    if labels.size == 0:
        return {}
    order = np.argsort(labels, kind="stable")  # integer keys: a radix sort
    g = labels[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], g.size]
    sorted_vals = [v[order] for v in vals]
    out = {}
    for a, b in zip(starts, ends):
        k = int(np.floor(q * (b - a - 1)))
        qs = tuple(float(np.partition(v[a:b], k)[k]) for v in sorted_vals)
        out[int(g[a])] = (*qs, int(b - a))
    return out
