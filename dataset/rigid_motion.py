# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a surface point seen in one frame is seen in another, when the point moves rigidly with
the camera's world and its own object: the optical flow of a frame computed from its planar depth,
the two cameras and the objects' transforms (:func:`surface_flow`), and the same for chosen pixels
(:func:`rigid_flow`, what validate predicts stored flow with). Pure numpy; images are ``(H, W)``
row 0 at the top, pixel centres at ``+0.5`` (:func:`dataset.layout.pixel_rays`), flow in pixels
(u right, v down); poses are camera-to-world in Blender's axes (as ``transform_matrix``)."""

from __future__ import annotations

import numpy as np

from .layout import BACKGROUND_DEPTH, pixel_rays
from .objects import CV_FROM_GL as FLIP  # Blender camera axes <-> OpenCV camera axes


def relative_transform(pose_a: np.ndarray, pose_b: np.ndarray, obj_a: np.ndarray | None = None,
                       obj_b: np.ndarray | None = None) -> np.ndarray:
    """``(4, 4)`` map of a point seen in camera a (OpenCV axes) to where camera b sees it, for
    camera-to-world ``pose_a``/``pose_b`` (Blender axes, as ``transform_matrix``) and, for a thing
    that moves, its object-to-world at a and b (None: a static thing)."""
    ca, cb = pose_a @ FLIP, pose_b @ FLIP
    motion = np.eye(4) if obj_a is None else obj_b @ np.linalg.inv(obj_a)
    return np.linalg.inv(cb) @ motion @ ca


def rigid_flow(depth: np.ndarray, K_a: np.ndarray, K_b: np.ndarray, idx: np.ndarray, lab: np.ndarray,
               transforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted flow of pixels ``idx`` (flat indices into ``depth`` of frame a) whose thing has
    the transform ``transforms[lab]`` (``(L, 4, 4)`` from :func:`relative_transform`): ``(M, 2)``
    float64 pixels, and ``(M,)`` True where the point is in front of camera b."""
    h, w = depth.shape
    x, y = pixel_rays(K_a, depth.shape)
    r, c = np.divmod(idx, w)
    d = depth.reshape(-1)[idx].astype(np.float64)
    X = (x[0, c] * d, y[r, 0] * d, d)
    # gather the 12 used entries one by one: transforms[lab] would copy a (M, 4, 4) array
    Y = [transforms[:, k, 0][lab] * X[0] + transforms[:, k, 1][lab] * X[1]
         + transforms[:, k, 2][lab] * X[2] + transforms[:, k, 3][lab] for k in range(3)]
    front = Y[2] > 1e-9
    z = np.where(front, Y[2], 1.0)
    u_b = K_b[0, 0] * Y[0] / z + K_b[0, 2]
    v_b = K_b[1, 1] * Y[1] / z + K_b[1, 2]
    return np.stack([u_b - (c + 0.5), v_b - (r + 0.5)], axis=-1), front


def surface_flow(z: np.ndarray, K_a: np.ndarray, pose_a: np.ndarray, K_b: np.ndarray,
                 pose_b: np.ndarray, labels: np.ndarray | None = None,
                 objects: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """Flow ``(H, W, 2)`` float32 (pixels) from frame a towards frame b of the surface point each
    pixel centre sees: ``z`` ``(H, W)`` planar depth of frame a (scene units, as Cycles' Depth
    pass: ``>= BACKGROUND_DEPTH`` or ``<= 0`` where there is no surface, whose flow is 0 like
    Cycles' Vector pass); ``K_a``/``K_b`` ``(3, 3)`` and ``pose_a``/``pose_b`` ``(4, 4)`` the two
    cameras; ``labels`` ``(H, W)`` int, ``0`` for a point of the static world, ``i >= 1`` for one
    of ``objects[i - 1]`` = (object-to-world at a, at b), ``(4, 4)`` each. A point that goes
    behind camera b gets a finite but meaningless flow (as in :func:`rigid_flow`)."""
    z = np.asarray(z, np.float32)
    h, w = z.shape
    x, y = pixel_rays(np.asarray(K_a, np.float64), (h, w))
    surface = (z > 0) & (z < BACKGROUND_DEPTH)
    T = relative_transform(np.asarray(pose_a, np.float64), np.asarray(pose_b, np.float64))
    # Y_k = d (T_k0 x + T_k1 y + T_k2) + T_k3: the static world, float32 in place (1920x1080:
    # about 60 ms a direction against 350 ms in float64 temporaries; Cycles' own is float32)
    Y = []
    for k in range(3):
        yk = (T[k, 0] * x + T[k, 2]).astype(np.float32) + (T[k, 1] * y).astype(np.float32)
        yk *= z
        yk += np.float32(T[k, 3])
        Y.append(yk)
    inv = np.divide(1.0, Y[2], out=np.ones_like(Y[2]), where=Y[2] > 1e-9)
    out = np.empty((h, w, 2), np.float32)
    for i, (k_row, centres) in enumerate(((K_b[0], (np.arange(w) + 0.5)[None, :]),
                                          (K_b[1], (np.arange(h) + 0.5)[:, None]))):
        c = Y[i]
        c *= inv
        c *= np.float32(k_row[i])
        c += (k_row[2] - centres).astype(np.float32)
        c[~surface] = 0.0
        out[..., i] = c
    if objects and labels is not None:
        idx = np.flatnonzero(surface.reshape(-1) & (labels.reshape(-1) > 0))
        if idx.size:
            Ts = np.stack([np.eye(4)] + [relative_transform(pose_a, pose_b, oa, ob)
                                         for oa, ob in objects])
            moved, _ = rigid_flow(z, K_a, K_b, idx, labels.reshape(-1)[idx], Ts)
            out.reshape(-1, 2)[idx] = moved
    return out
