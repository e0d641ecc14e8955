# SPDX-License-Identifier: GPL-3.0-or-later
"""``colmap``: a COLMAP text model per sequence (read by ``pycolmap.Reconstruction``, Gaussian
splatting's and nerfstudio's COLMAP loaders)::

    DST[/SEQ]/images/frame_NNNNNN.png        the frames (8-bit RGB)
    DST[/SEQ]/sparse/0/cameras.txt           PINHOLE W H fx fy cx cy, one camera per distinct K
    DST[/SEQ]/sparse/0/images.txt            IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME
    DST[/SEQ]/sparse/0/points3D.txt          POINT3D_ID X Y Z R G B ERROR TRACK

COLMAP's pixel convention is ours (origin at the top-left image corner, pixel centres at +0.5), so
``K`` is written unchanged. Poses are world-to-camera in COLMAP's (= OpenCV's) camera axes:
``R, t`` of ``inv(pose_opencv)``, the quaternion Hamilton ``w, x, y, z`` with ``w >= 0``. Points
are back-projected from planar depth at pixel centres on a regular grid (every ``s``-th row and
column, ``s`` chosen so that a sequence gives at most :data:`MAX_POINTS` points), coloured by the
frame; each is observed once, by the image it came from (its ``POINTS2D`` entry is the pixel
centre). World units are the scene's (``unit_scale_m`` metres each).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..documents.base import JSONObject
from ..layout import RGB_STEM, frame_digits, pixel_rays
from .common import ExportError, SeqJob, SequenceResult, need, png_bytes, rgb8, write_bytes

MAX_POINTS = 200_000


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` of rotation matrix ``R`` with ``w >= 0``."""
    m = R
    t = np.trace(m)
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def world_to_camera(pose_opencv: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(R, t)`` of the inverse of a camera-to-world pose; refuses poses that are not rigid."""
    Rc = pose_opencv[:3, :3]
    err = float(np.abs(Rc.T @ Rc - np.eye(3)).max())
    if err > 1e-6 or np.linalg.det(Rc) < 0:
        raise ExportError(f"{where}: transform_matrix is not a rotation + translation (scaled or "
                          f"mirrored camera, error {err:.2g}); COLMAP needs rigid poses — remove the "
                          "camera's scale and re-render")
    R = Rc.T
    return R, -R @ pose_opencv[:3, 3]


def _f(x: float) -> str:
    return repr(float(x))


def export_sequence(job: SeqJob, dst: Path, tick, ctx: JSONObject) -> SequenceResult:
    seq = job.sequence
    need(seq, "depth", "colmap")
    out = dst / job.rel if job.rel else dst
    n, h, w = len(seq), seq.height, seq.width
    per_frame = max(1, MAX_POINTS // max(1, n))
    stride = max(1, math.ceil(math.sqrt(h * w / per_frame)))
    cams: dict[tuple[float, ...], int] = {}
    img_lines: list[str] = []
    pt_lines: list[str] = []
    pid = 0
    for i, fr in enumerate(seq):
        K = fr.K
        key = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
        cam_id = cams.setdefault(key, len(cams) + 1)
        R, t = world_to_camera(fr.pose_opencv, f"{seq.path} frame {seq.frame_numbers[i]}")
        q = rotmat_to_qvec(R)
        name = f"{RGB_STEM}_{frame_digits(seq.frame_numbers[i])}.png"
        rgb = rgb8(fr)
        write_bytes(out / "images" / name, png_bytes(rgb))
        z = fr.planar_depth[::stride, ::stride].astype(np.float64)
        x, y = pixel_rays(K, (h, w))
        x, y = x[:, ::stride], y[::stride, :]
        rows, cols = np.nonzero(np.isfinite(z) & (z > 0))
        zz = z[rows, cols]
        X_cam = np.stack([x[0, cols] * zz, y[rows, 0] * zz, zz], axis=-1)
        c2w = fr.pose_opencv
        X = X_cam @ c2w[:3, :3].T + c2w[:3, 3]
        r_px, c_px = rows * stride, cols * stride
        colours = rgb[r_px, c_px]
        obs = []
        for j in range(len(zz)):
            pid += 1
            obs.append(f"{_f(c_px[j] + 0.5)} {_f(r_px[j] + 0.5)} {pid}")
            r, g, b = colours[j]
            pt_lines.append(f"{pid} {_f(X[j, 0])} {_f(X[j, 1])} {_f(X[j, 2])} {r} {g} {b} 0.0 {i + 1} {j}")
        img_lines.append(f"{i + 1} {' '.join(_f(v) for v in q)} {' '.join(_f(v) for v in t)} {cam_id} {name}")
        img_lines.append(" ".join(obs))
        fr.clear()
        tick()
    cam_lines = [f"{cid} PINHOLE {w} {h} {' '.join(_f(v) for v in key)}" for key, cid in cams.items()]
    sparse = out / "sparse" / "0"
    write_bytes(sparse / "cameras.txt", _text(
        ["# Camera list with one line of data per camera:",
         "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]", f"# Number of cameras: {len(cams)}"],
        cam_lines))
    write_bytes(sparse / "images.txt", _text(
        ["# Image list with two lines of data per image:",
         "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
         "#   POINTS2D[] as (X, Y, POINT3D_ID)", f"# Number of images: {n}"], img_lines))
    write_bytes(sparse / "points3D.txt", _text(
        ["# 3D point list with one line of data per point:",
         "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
         f"# Number of points: {pid}"], pt_lines))
    return {"summary": {"images": n, "cameras": len(cams), "points": pid, "stride_px": stride},
            "notes": []}


def _text(header: list[str], lines: list[str]) -> bytes:
    return ("\n".join(header + lines) + "\n").encode("ascii")
