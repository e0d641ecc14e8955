# SPDX-License-Identifier: GPL-3.0-or-later
"""Optical flow under animated intrinsics (focal length, sensor size, lens shift). Pure numpy.

Cycles' Vector pass projects the surface point of pixel ``p`` at the neighbouring frame ``t±1``
with that frame's camera pose but not with that frame's intrinsics (measured, see
docs/blender_notes.md): Blender 4.2 projects with the current frame's ``K``; 4.5 and 5.0 take the
neighbour's focal length but keep the current frame's principal point (lens shift). So the
stored vector is ``f_c = P(K_used, pose_t±1) X - p`` while the true flow is
``P(K_t±1, pose_t±1) X - p``. Both project the same camera-frame point, so

    true = A (p + f_c) - p,      A = K_t±1 · K_used⁻¹

exactly, for every surface point (static or moving). ``K`` has no skew, so ``A`` is affine in
pixel coordinates: ``u' = fx'/fx (u - cx) + cx'`` (``v`` likewise). Pixel centres are at
``+0.5`` (:func:`dataset.layout.pixel_centres`).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from . import layout


class VectorPassModel(StrEnum):
    """Which intrinsics Cycles' Vector pass projects the neighbouring frame with."""

    CURRENT = "current"                    # K of frame t (Blender 4.2)
    NEIGHBOUR_FOCAL = "neighbour_focal"    # fx, fy of t±1, cx, cy of t (Blender 4.5, 5.0)


def used_intrinsics(K_t: np.ndarray, K_other: np.ndarray, model: VectorPassModel) -> np.ndarray:
    """The ``(3, 3)`` matrix Cycles projected frame ``t±1`` with, given the frame's own ``K_t``
    and the neighbour's ``K_other`` (both ``(3, 3)``, pixels)."""
    K_t, K_other = np.asarray(K_t, np.float64), np.asarray(K_other, np.float64)
    if model == VectorPassModel.CURRENT:
        return K_t.copy()
    used = K_other.copy()
    used[:2, 2] = K_t[:2, 2]
    return used


def correctable(K_t: np.ndarray, K_other: np.ndarray, size_t: tuple[int, int],
                size_other: tuple[int, int], model: VectorPassModel | None) -> bool:
    """True where the stored flow from frame ``t`` towards the neighbour is right or can be made
    exactly right: same intrinsics, or a known ``model`` and the same image size ``(w, h)``
    and pixel aspect ``fx/fy`` (what was measured; anything else is not vouched for)."""
    K_t, K_other = np.asarray(K_t, np.float64), np.asarray(K_other, np.float64)
    if np.array_equal(K_t, K_other) and tuple(size_t) == tuple(size_other):
        return True
    if model is None or tuple(size_t) != tuple(size_other):
        return False
    return bool(np.isclose(K_t[0, 0] / K_t[1, 1], K_other[0, 0] / K_other[1, 1], rtol=1e-9))


def correct_flow_for_intrinsics(flow: np.ndarray, K_used: np.ndarray, K_true: np.ndarray,
                                mask: np.ndarray | None = None) -> np.ndarray:
    """Re-project a stored flow made with ``K_used`` onto ``K_true``: ``A (p + flow) - p`` with
    ``A = K_true K_used⁻¹`` and ``p`` the pixel centres.

    ``flow`` ``(H, W, 2)`` (u right, v down, pixels); ``K_used``, ``K_true`` ``(3, 3)``; ``mask``
    ``(H, W)`` bool, pixels to correct (others are returned as they are: Cycles' background
    holds 0 whatever the camera does). Returns float32 ``(H, W, 2)``."""
    flow = np.asarray(flow)
    h, w = flow.shape[:2]
    K_used, K_true = np.asarray(K_used, np.float64), np.asarray(K_true, np.float64)
    A = K_true @ np.linalg.inv(K_used)
    u, v = layout.pixel_centres(h, w)
    qu = u + flow[..., 0].astype(np.float64)
    qv = v + flow[..., 1].astype(np.float64)
    out = np.empty((h, w, 2), np.float64)
    out[..., 0] = A[0, 0] * qu + A[0, 1] * qv + A[0, 2] - u
    out[..., 1] = A[1, 0] * qu + A[1, 1] * qv + A[1, 2] - v
    if mask is not None:
        out[~mask] = flow[~mask]
    return out.astype(np.float32)
