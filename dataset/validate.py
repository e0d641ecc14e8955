# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a rendered sequence or datasets folder: files, schema and geometric consistency.

``validate(path)`` returns a report dict and (``write=True``) writes ``validation.json`` and a
readable ``validation.txt`` next to the data (the sequence folder, or the datasets folder); in a
datasets folder every sequence listed in ``manifest.json`` gets a ``"validation"`` entry.

Checks per sequence (each ``{"ok": True | False | None, ...}``; None = not applicable):

``schema``
    ``transforms.json`` has ``fl_x, fl_y, cx, cy, w, h`` and ``frames`` with ``file_path`` and a
    4x4 ``transform_matrix`` whose rotation is orthonormal (tolerance 1e-4); ``intrinsics``, when
    present, equals ``fl_x, fl_y, cx, cy``; each ground truth listed in the frames has its
    ``conventions`` entry.
``frame_count``
    frame numbers are consecutive, their count equals ``frame_end - frame_start + 1``,
    ``info.json``'s ``num_frames`` and the manifest's; no data folder holds more files than frames.
``files``
    every listed file exists and reads: RGB frame ``w x h`` (and ``c`` channels), each EXR
    ``(h, w)`` float32 with the channels named in ``conventions``. Truncated files are named.
``flow_cycle``
    forward flow of t followed by backward flow of t+1 (bilinear) returns to the start, and
    vice versa. Median of ``|F(p) + B(p + F(p))|`` over interior pixels (covered, 4 neighbours on
    the same object: silhouettes hold sample-averaged flow) landing inside the image
    ``<= cycle_px``, and the median of every object (segmentation id with at least
    ``min_object_pixels`` samples) ``<= cycle_object_px`` (occlusions stay a minority of an object).
``reprojection``
    each interior pixel (depth > 0) is back-projected with its depth, ``K`` and the pose of t and
    projected with the pose of t±1; the difference to the stored forward (backward) flow is the
    residual. **Static objects** are not marked in the data, so they are found per object: an
    object (segmentation id; all covered pixels when there is no segmentation) whose median
    residual is ``<= static_px`` is static, the rest move. Fails when the median residual over
    static pixels ``> reprojection_px``, when the static pixels are fewer than
    ``min_static_fraction`` of the covered ones (a global fault: wrong K, pose, flipped or swapped
    flow makes every object "move"), or, when the camera moves (median predicted flow
    ``>= min_motion_px``), when median residual / median predicted flow ``> reprojection_rel``
    (catches a wrong focal length even when flows are a fraction of a pixel).
``normals``
    stored normals vs normals of the surface back-projected from depth (central differences,
    only where the 3x3 neighbourhood has one segmentation id and no depth jump over
    ``depth_jump``): median angle ``<= normal_deg``; covered normals unit length within
    ``unit_tol``.
``segmentation_ids``
    ids are integers and every id present is in ``segmentation_ids.json``.
``coverage``
    depth > 0, id > 0 and ``|n| > 0`` agree on all but ``coverage_frac`` of the pixels.

Flow faults show up where something moves: with a static camera a flipped axis on a moving
object's flow is self-consistent (cycle and rigid motion agree) and cannot be told from an object
moving the other way without looking at the RGB frames.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import exr
from .loader import FOLDERS, KINDS, TRANSFORMS, Dataset, DatasetError, Sequence, load, read_image
from .occlusion import cycle_error
from .transforms import write_json_atomic

REPORT_JSON = "validation.json"
REPORT_TXT = "validation.txt"
CHECKS = ("schema", "frame_count", "files", "flow_cycle", "reprojection", "normals",
          "segmentation_ids", "coverage")
_SAMPLES_PER_PAIR = 4000  # residuals kept per object and frame pair (bounds memory on long runs)


@dataclass
class Thresholds:
    """Pass/fail limits (pixels unless said otherwise); see the module docstring."""

    cycle_px: float = 0.5
    cycle_object_px: float = 1.0
    reprojection_px: float = 0.1
    reprojection_rel: float = 0.05
    static_px: float = 0.5
    min_static_fraction: float = 0.5
    min_motion_px: float = 0.05
    normal_deg: float = 5.0
    unit_tol: float = 1e-3
    depth_jump: float = 0.05
    coverage_frac: float = 0.01
    min_object_pixels: int = 16

    @classmethod
    def help(cls) -> dict[str, str]:
        return {
            "cycle_px": "max median forward/backward cycle error (px)",
            "cycle_object_px": "max median cycle error of any one object (px)",
            "reprojection_px": "max median flow-vs-reprojection residual over static objects (px)",
            "reprojection_rel": "max median residual / median camera-induced flow when the camera moves",
            "static_px": "an object whose median residual is at most this is static (px)",
            "min_static_fraction": "min share of covered pixels on static objects",
            "min_motion_px": "camera-induced flow below this counts as a still camera (px)",
            "normal_deg": "max median angle between stored and depth-derived normals (degrees)",
            "unit_tol": "max deviation of covered normals from unit length",
            "depth_jump": "relative depth step that marks an edge for the normal check",
            "coverage_frac": "max share of pixels where depth, ids and normals disagree on coverage",
            "min_object_pixels": "objects with fewer samples are left out of per-object checks",
        }


def _check(ok: bool | None, message: str = "", **values: Any) -> dict[str, Any]:
    return {"ok": ok, "message": message, **values}


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, 6)


# --- geometry ----------------------------------------------------------------------------

_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def _rays(shape: tuple[int, int], K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image coordinates of the pixel centres: ``x`` ``(1, W)``, ``y`` ``(H, 1)``."""
    h, w = shape
    x = (np.arange(w) + 0.5 - K[0, 2]) / K[0, 0]
    y = (np.arange(h) + 0.5 - K[1, 2]) / K[1, 1]
    return x[None, :], y[:, None]


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32 points in the OpenCV camera frame from planar ``depth`` ``(H, W)``."""
    x, y = _rays(depth.shape, K)
    d = depth.astype(np.float32)
    return np.stack([x.astype(np.float32) * d, y.astype(np.float32) * d, d], axis=-1)


def predicted_flow(depth: np.ndarray, K_a: np.ndarray, pose_a: np.ndarray, K_b: np.ndarray,
                   pose_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flow ``(H, W, 2)`` a static scene would have from frame a to b, from planar depth of a,
    intrinsics and camera-to-world poses (Blender axes); and the mask where it is defined
    (depth > 0, in front of camera b)."""
    T = np.linalg.inv(pose_b @ _FLIP) @ (pose_a @ _FLIP)
    R, t = T[:3, :3], T[:3, 3]
    x, y = _rays(depth.shape, K_a)
    d = depth.astype(np.float32)
    # Q = d * a + t with a = R [x, y, 1]; the flow is written as differences of small terms
    # (a_x - x a_z ...) so that float32 keeps ~1e-5 px even on wide images.
    a = [(R[k, 0] * x + R[k, 1] * y + R[k, 2]).astype(np.float32) for k in range(3)]
    qz = d * a[2] + np.float32(t[2])
    ok = (depth > 0) & (qz > 1e-9)
    qz = np.where(ok, qz, np.float32(1.0))
    xb = ((np.arange(depth.shape[1]) + 0.5 - K_b[0, 2]) / K_b[0, 0])[None, :]
    yb = ((np.arange(depth.shape[0]) + 0.5 - K_b[1, 2]) / K_b[1, 1])[:, None]
    # pixel u in b minus pixel u in a = fx_b (Qx/Qz - xb) + fx_b xb + cx_b - (u) ; u = fx_b xb + cx_b
    ex = (a[0] - (xb * a[2]).astype(np.float32))
    ey = (a[1] - (yb * a[2]).astype(np.float32))
    fu = np.float32(K_b[0, 0]) * (d * ex + (t[0] - xb * t[2]).astype(np.float32)) / qz
    fv = np.float32(K_b[1, 1]) * (d * ey + (t[1] - yb * t[2]).astype(np.float32)) / qz
    return np.stack([fu, fv], axis=-1), ok


def interior(depth: np.ndarray | None, ids: np.ndarray | None, depth_jump: float = 0.05) -> np.ndarray:
    """``(H, W)`` mask of covered pixels away from silhouettes: depth > 0 and the 4 neighbours on
    the same object (same id; without ids: covered, no relative depth step over ``depth_jump``).
    Image-border pixels count their missing neighbours as equal."""
    ref = ids if ids is not None else depth
    out = np.ones(ref.shape, bool) if depth is None else depth > 0
    pad = np.pad(ref, 1, mode="edge")
    centre = pad[1:-1, 1:-1]
    for nb in (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]):
        if ids is not None:
            out &= nb == centre
        else:
            out &= (nb > 0) & (np.abs(nb - centre) <= depth_jump * centre)
    return out


def depth_normals(depth: np.ndarray, K: np.ndarray, ids: np.ndarray | None = None,
                  depth_jump: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Normals ``(H, W, 3)`` (OpenCV camera frame, facing the camera) of the surface
    back-projected from planar ``depth``, and the mask where they are defined (interior pixels
    whose 4 neighbours are covered, on the same object, without a depth jump)."""
    P = backproject(depth, K)
    n = np.zeros_like(P)
    ok = np.zeros(depth.shape, bool)
    if min(depth.shape) < 3:
        return n, ok
    c = depth[1:-1, 1:-1]
    nb = [depth[1:-1, 2:], depth[1:-1, :-2], depth[2:, 1:-1], depth[:-2, 1:-1]]
    good = c > 0
    for d in nb:
        good &= (d > 0) & (np.abs(d - c) <= depth_jump * c)
    if ids is not None:
        ci = ids[1:-1, 1:-1]
        for i in (ids[1:-1, 2:], ids[1:-1, :-2], ids[2:, 1:-1], ids[:-2, 1:-1]):
            good &= i == ci
    dx = P[1:-1, 2:] - P[1:-1, :-2]
    dy = P[2:, 1:-1] - P[:-2, 1:-1]
    cr = np.cross(dy, dx)
    norm = np.linalg.norm(cr, axis=-1)
    good &= norm > 0
    cr = cr / np.where(norm > 0, norm, 1.0)[..., None]
    facing = np.sum(cr * P[1:-1, 1:-1], axis=-1) > 0
    cr[facing] *= -1
    n[1:-1, 1:-1] = cr
    ok[1:-1, 1:-1] = good
    return n, ok


def normals_to_opencv_camera(normals: np.ndarray, frame: str, pose: np.ndarray) -> np.ndarray:
    """Stored normals (``camera``: Blender camera axes; ``world``) to the OpenCV camera frame."""
    n = normals.astype(np.float64)
    if frame == "world":
        R = pose[:3, :3]
        n = n @ R  # R^T n for row vectors
    return n * np.array([1.0, -1.0, -1.0])


# --- per-sequence validation -------------------------------------------------------------

def _schema(seq: Sequence) -> dict[str, Any]:
    m = seq.meta
    problems = []
    for k in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        v = m.get(k, seq.frames_meta[0].get(k) if seq.frames_meta else None)
        if v is None and seq.schema == "tutorial":
            continue  # derived (camera_angle_x, image centre, first frame's size): see 'assumed'
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            problems.append(f"'{k}' missing or not a number")
    if not seq.frames_meta:
        problems.append("no frames")
    if not problems:
        try:
            K = seq.K
        except DatasetError as exc:
            return _check(False, str(exc), schema=seq.schema, assumed=seq.assumed)
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            problems.append(f"focal lengths must be positive (fl_x={K[0, 0]}, fl_y={K[1, 1]})")
        if "intrinsics" in m:
            try:
                Ki = np.array(m["intrinsics"], dtype=float).reshape(3, 3)
                if not np.allclose(Ki, K, rtol=1e-6, atol=1e-6):
                    bad = [name for name, (r, c) in (("fl_x", (0, 0)), ("fl_y", (1, 1)), ("cx", (0, 2)),
                                                     ("cy", (1, 2))) if not np.isclose(Ki[r, c], K[r, c])]
                    problems.append(f"'intrinsics' disagrees with {', '.join(bad) or 'K'} "
                                    f"({Ki.tolist()} vs {K.tolist()})")
            except (ValueError, TypeError):
                problems.append("'intrinsics' is not a 3x3 matrix")
    for i, f in enumerate(seq.frames_meta):
        if "file_path" not in f:
            problems.append(f"frame {i}: no file_path")
        try:
            T = np.array(f["transform_matrix"], dtype=float).reshape(4, 4)
            R = T[:3, :3]
            if not (np.allclose(R.T @ R, np.eye(3), atol=1e-4) and np.isclose(np.linalg.det(R), 1, atol=1e-4)
                    and np.allclose(T[3], [0, 0, 0, 1])):
                problems.append(f"frame {seq.frame_numbers[i]}: transform_matrix is not a rigid pose")
        except (KeyError, ValueError, TypeError):
            problems.append(f"frame {i}: no 4x4 transform_matrix")
        if len(problems) > 10:
            break
    if seq.schema == "dataset_forge":
        for kind in KINDS:
            if any(f"{kind}_file_path" in f for f in seq.frames_meta) and kind not in seq.conventions:
                problems.append(f"frames list {kind}_file_path but conventions has no '{kind}' entry")
    return _check(not problems, "; ".join(problems[:10]), schema=seq.schema, assumed=seq.assumed)


def _frame_count(seq: Sequence, manifest_frames: int | None) -> dict[str, Any]:
    m = seq.meta
    n = len(seq)
    nums = seq.frame_numbers
    problems = []
    gaps = [f"{a}->{b}" for a, b in zip(nums, nums[1:]) if b != a + 1]
    if gaps:
        problems.append(f"frame numbers not consecutive ({', '.join(gaps[:5])}): a frame is missing "
                        "from transforms.json")
    if "frame_start" in m and "frame_end" in m:
        expect = int(m["frame_end"]) - int(m["frame_start"]) + 1
        if expect != n:
            problems.append(f"{n} frames listed but frame_start..frame_end is {expect}")
    info = seq.path / "info.json"
    if info.is_file():
        try:
            num = json.loads(info.read_text()).get("num_frames")
            if num is not None and int(num) != n:
                problems.append(f"info.json says {num} frames, transforms.json lists {n}")
        except (ValueError, OSError):
            problems.append("info.json unreadable")
    if manifest_frames is not None and manifest_frames != n:
        problems.append(f"manifest.json says {manifest_frames} frames, transforms.json lists {n}")
    for _kind, (folder, prefix) in [("rgb", ("frames", "frame")), *FOLDERS.items()]:
        d = seq.path / folder
        if d.is_dir():
            count = sum(1 for p in d.iterdir() if p.name.startswith(prefix + "_"))
            if count > n:
                problems.append(f"{folder}/ holds {count} files for {n} frames")
    return _check(not problems, "; ".join(problems), frames=n,
                  expected=(int(m["frame_end"]) - int(m["frame_start"]) + 1)
                  if "frame_start" in m and "frame_end" in m else None)


def _files(seq: Sequence) -> tuple[dict[str, Any], dict[str, set[int]]]:
    """Every file of every frame; returns the check and, per kind, the frame indices that read."""
    w, h = seq.width, seq.height
    c = seq.meta.get("c")
    problems: list[str] = []
    good: dict[str, set[int]] = {k: set() for k in ("rgb", *KINDS)}
    wanted = {"depth": lambda: [seq.channels["depth"]], "normal": lambda: list(seq.channels["normal"]),
              "flow": lambda: list(seq.channels["flow"].values()),
              "segmentation": lambda: [seq.channels["segmentation"]]}
    checked = 0
    for i in range(len(seq)):
        p = seq.file("rgb", i)
        try:
            if p is None:
                raise DatasetError("no file_path")
            im = read_image(p)
            checked += 1
            ch = 1 if im.ndim == 2 else im.shape[2]
            if im.shape[:2] != (h, w):
                problems.append(f"{p.relative_to(seq.path)}: {im.shape[1]}x{im.shape[0]} px, "
                                f"expected {w}x{h}")
            elif c is not None and int(c) != ch:
                problems.append(f"{p.relative_to(seq.path)}: {ch} channels, expected {c}")
            else:
                good["rgb"].add(i)
        except (DatasetError, OSError) as exc:
            problems.append(_short(exc, seq.path))
        for kind in seq.kinds:
            p = seq.file(kind, i)
            if p is None:
                problems.append(f"frame {seq.frame_numbers[i]}: no {kind} file listed")
                continue
            try:
                names = wanted[kind]()
                chans, types = exr._read(p, names)
                checked += 1
                shapes = {a.shape for a in chans.values()}
                bad_types = sorted(n for n, t in types.items() if t != "FLOAT")
                if shapes != {(h, w)}:
                    problems.append(f"{p.relative_to(seq.path)}: shape {sorted(shapes)}, expected {(h, w)}")
                elif bad_types:
                    problems.append(f"{p.relative_to(seq.path)}: channel(s) {', '.join(bad_types)} "
                                    "not float32")
                else:
                    good[kind].add(i)
            except (exr.ExrError, OSError) as exc:
                problems.append(_short(exc, seq.path))
    bad = len(problems)
    return _check(not problems, "; ".join(problems[:8]) + (f" (+{bad - 8} more)" if bad > 8 else ""),
                  files_read=checked, problems=bad), good


def _short(exc: BaseException, root: Path) -> str:
    return str(exc).replace(str(root) + os.sep, "")


def _present(ids: np.ndarray) -> set[int]:
    """Distinct values of an integer image (bincount: much faster than np.unique on big frames)."""
    lo = int(ids.min()) if ids.size else 0
    counts = np.bincount((ids.ravel() - lo).astype(np.int64))
    return set((np.flatnonzero(counts) + lo).tolist())


class _Pool:
    """Residual samples per object, bounded per frame pair."""

    def __init__(self):
        self.values: dict[int, list[np.ndarray]] = {}

    def add(self, err: np.ndarray, ids: np.ndarray | None, mask: np.ndarray) -> None:
        e = err[mask]
        g = ids[mask] if ids is not None else np.full(e.shape, -1, np.int64)
        if e.size > 100 * _SAMPLES_PER_PAIR:  # big frames: a regular subsample keeps every object
            step = e.size // (100 * _SAMPLES_PER_PAIR)
            e, g = e[::step], g[::step]
        order = np.argsort(g, kind="stable")
        e, g = e[order], g[order]
        keys, starts = np.unique(g, return_index=True)
        for i, v in zip(keys, np.split(e, starts[1:])):
            if v.size > _SAMPLES_PER_PAIR:
                v = v[:: int(np.ceil(v.size / _SAMPLES_PER_PAIR))]
            self.values.setdefault(int(i), []).append(v.astype(np.float32))

    def per_object(self) -> dict[int, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.values.items()}


def _geometry(seq: Sequence, good: dict[str, set[int]], t: Thresholds, stride: int,
              progress) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    kinds = set(seq.kinds)
    n = len(seq)
    has_seg = "segmentation" in kinds
    has_flow = "flow" in kinds
    has_depth = "depth" in kinds
    pairs = [i for i in range(0, n - 1, stride)
             if seq.frame_numbers[i + 1] == seq.frame_numbers[i] + 1]
    cycle_pool, reproj_pool, pred_pool = _Pool(), _Pool(), _Pool()
    cycle_all: list[np.ndarray] = []

    def ok(kind, i):
        return kind in kinds and i in good[kind]

    def ids_of(fr, i):
        return fr.segmentation if has_seg and ok("segmentation", i) else None

    last = time.monotonic()
    for step, i in enumerate(pairs):
        a, b = seq[i], seq[i + 1]
        if not (ok("flow", i) and ok("flow", i + 1)):
            continue
        for (fa, fb, ia, _ib, flow_a, flow_b) in ((a, b, i, i + 1, a.flow_forward, b.flow_backward),
                                                 (b, a, i + 1, i, b.flow_backward, a.flow_forward)):
            ids = ids_of(fa, ia)
            depth = fa.depth if ok("depth", ia) else None
            # silhouette pixels hold sample-averaged flow (docs/ground_truth.md): interior only
            core = (interior(depth, ids, t.depth_jump) if depth is not None or ids is not None
                    else np.ones(flow_a.shape[:2], bool))
            err, inside = cycle_error(flow_a, flow_b)
            m = core & inside
            cycle_pool.add(err, ids, m)
            cycle_all.append(err[m][:: max(1, int(m.sum() // _SAMPLES_PER_PAIR))].astype(np.float32))
            if has_depth and depth is not None:
                pred, valid = predicted_flow(fa.planar_depth, fa.K, fa.pose, fb.K, fb.pose)
                res = np.linalg.norm(pred - flow_a, axis=-1)
                valid &= core
                reproj_pool.add(res, ids, valid)
                pred_pool.add(np.linalg.norm(pred, axis=-1), ids, valid)
        a.clear()
        if progress and time.monotonic() - last > 2.0:
            progress(f"{seq.path.name}: frame pair {step + 1}/{len(pairs)}")
            last = time.monotonic()
    if not has_flow:
        out["flow_cycle"] = _check(None, "no flow")
        out["reprojection"] = _check(None, "no flow")
    elif not cycle_all:
        out["flow_cycle"] = _check(None, "fewer than two consecutive readable frames")
        out["reprojection"] = _check(None, "fewer than two consecutive readable frames")
    else:
        out["flow_cycle"] = _cycle_check(cycle_all, cycle_pool, t)
        out["reprojection"] = (_reproj_check(reproj_pool, pred_pool, t) if has_depth
                               else _check(None, "no depth"))
    out.update(_per_frame_checks(seq, good, t, stride))
    return out


def _cycle_check(cycle_all, pool: _Pool, t: Thresholds) -> dict[str, Any]:
    allv = np.concatenate(cycle_all)
    med = float(np.median(allv)) if allv.size else 0.0
    objs = {k: v for k, v in pool.per_object().items() if v.size >= t.min_object_pixels}
    per = {str(k): _f(np.median(v)) for k, v in sorted(objs.items())}
    bad = [k for k, v in per.items() if v is not None and v > t.cycle_object_px]
    problems = []
    if med > t.cycle_px:
        problems.append(f"median cycle error {med:.3g} px > {t.cycle_px}")
    if bad:
        problems.append(f"object(s) {', '.join(bad)} have median cycle error "
                        f"{', '.join(f'{per[k]:.3g}' for k in bad)} px > {t.cycle_object_px}: "
                        "forward and backward flow disagree")
    return _check(not problems, "; ".join(problems), median_px=_f(med),
                  p95_px=_f(np.percentile(allv, 95)) if allv.size else None, per_object_median_px=per)


def _reproj_check(res_pool: _Pool, pred_pool: _Pool, t: Thresholds) -> dict[str, Any]:
    res = res_pool.per_object()
    pred = pred_pool.per_object()
    if not res:
        return _check(None, "no covered pixels")
    total = sum(v.size for v in res.values())
    per = {k: float(np.median(v)) for k, v in res.items()}
    static = [k for k, v in per.items() if v <= t.static_px]
    moving = sorted(k for k in per if k not in static)
    static_n = sum(res[k].size for k in static)
    frac = static_n / total if total else 0.0
    problems = []
    med = rel = motion = None
    if static:
        sres = np.concatenate([res[k] for k in static])
        spred = np.concatenate([pred[k] for k in static])
        med = float(np.median(sres))
        motion = float(np.median(spred))
        if med > t.reprojection_px:
            problems.append(f"median residual on static objects {med:.3g} px > {t.reprojection_px}")
        if motion >= t.min_motion_px:
            rel = med / motion
            if rel > t.reprojection_rel:
                problems.append(f"residual is {100 * rel:.3g}% of the camera-induced flow "
                                f"({motion:.3g} px) > {100 * t.reprojection_rel:g}%: wrong K, pose or flow")
    if frac < t.min_static_fraction:
        problems.append(f"only {100 * frac:.3g}% of covered pixels agree with depth + K + pose "
                        f"(< {100 * t.min_static_fraction:g}%): flow, intrinsics or poses are wrong "
                        "(flipped axis, swapped forward/backward, wrong focal length?)")
    return _check(not problems, "; ".join(problems), median_px=_f(med), relative=_f(rel),
                  camera_flow_px=_f(motion), static_fraction=_f(frac),
                  static_objects=sorted(static), moving_objects=moving,
                  per_object_median_px={str(k): _f(v) for k, v in sorted(per.items())})


def _per_frame_checks(seq: Sequence, good: dict[str, set[int]], t: Thresholds,
                      stride: int) -> dict[str, dict[str, Any]]:
    kinds = set(seq.kinds)
    angles: list[np.ndarray] = []
    unit_err = 0.0
    unknown: set[int] = set()
    non_integer = 0
    disagree = 0
    pixels = 0
    known = {int(k) for k in (seq.ids.get("ids") or {})} if seq.ids else set()
    known.add(int(seq.ids.get("background", 0)) if seq.ids else 0)
    for i in range(0, len(seq), stride):
        fr = seq[i]
        d = fr.planar_depth if "depth" in kinds and i in good["depth"] else None
        ids = None
        if "segmentation" in kinds and i in good["segmentation"]:
            raw = exr.read_single(fr.path("segmentation"), seq.channels["segmentation"])
            non_integer += int(np.count_nonzero(raw != np.rint(raw)))
            ids = np.rint(raw).astype(np.int32)
            unknown |= _present(ids) - known
        n = fr.normals if "normal" in kinds and i in good["normal"] else None
        if n is not None:
            length = np.linalg.norm(n, axis=-1)
            cov = length > 0
            if cov.any():
                unit_err = max(unit_err, float(np.abs(length[cov] - 1).max()))
            if d is not None:
                gn, ok = depth_normals(d, fr.K, ids, t.depth_jump)
                sn = normals_to_opencv_camera(n, seq.normal_frame, fr.pose)
                ok &= cov
                if ok.any():
                    s = sn[ok] / np.linalg.norm(sn[ok], axis=-1, keepdims=True)
                    cosang = np.clip(np.sum(s * gn[ok], axis=-1), -1, 1)
                    angles.append(np.degrees(np.arccos(cosang)).astype(np.float32))
        masks = [m for m in (None if d is None else d > 0, None if ids is None else ids > 0,
                             None if n is None else np.linalg.norm(n, axis=-1) > 0) if m is not None]
        if len(masks) >= 2:
            pixels += masks[0].size
            disagree += int(np.count_nonzero(np.any([m != masks[0] for m in masks[1:]], axis=0)))
        fr.clear()
    out = {}
    if "normal" not in kinds:
        out["normals"] = _check(None, "no normals")
    else:
        problems = []
        med = None
        if angles:
            a = np.concatenate(angles)
            med = float(np.median(a))
            if med > t.normal_deg:
                problems.append(f"median angle to depth-derived normals {med:.3g}° > {t.normal_deg}° "
                                f"(normal frame '{seq.normal_frame}')")
        if unit_err > t.unit_tol:
            problems.append(f"normals deviate from unit length by {unit_err:.3g} > {t.unit_tol}")
        out["normals"] = _check(not problems, "; ".join(problems), median_deg=_f(med),
                                p90_deg=_f(np.percentile(np.concatenate(angles), 90)) if angles else None,
                                unit_error=_f(unit_err))
    if "segmentation" not in kinds:
        out["segmentation_ids"] = _check(None, "no segmentation")
    else:
        problems = []
        if not seq.ids:
            problems.append("segmentation_ids.json missing")
        elif unknown:
            problems.append(f"id(s) {', '.join(map(str, sorted(unknown)[:10]))} not in segmentation_ids.json")
        if non_integer:
            problems.append(f"{non_integer} pixel(s) hold non-integer ids (blended edges?)")
        out["segmentation_ids"] = _check(not problems, "; ".join(problems),
                                         unknown_ids=sorted(unknown), non_integer_pixels=non_integer)
    if pixels:
        frac = disagree / pixels
        out["coverage"] = _check(frac <= t.coverage_frac,
                                 "" if frac <= t.coverage_frac else
                                 f"depth > 0, id > 0 and |n| > 0 disagree on {100 * frac:.3g}% of pixels",
                                 disagree_fraction=_f(frac))
    else:
        out["coverage"] = _check(None, "fewer than two of depth, segmentation, normals")
    return out


def validate_sequence(path: str | os.PathLike, thresholds: Thresholds | None = None, *,
                      stride: int = 1, manifest_frames: int | None = None,
                      progress=None) -> dict[str, Any]:
    """Validate one sequence folder; returns ``{"path", "ok", "checks": {name: check}, ...}``.
    ``stride``: check geometry on every ``stride``-th frame (pair) only."""
    t = thresholds or Thresholds()
    t0 = time.monotonic()
    path = Path(path)
    rep: dict[str, Any] = {"path": str(path), "ok": False, "checks": {}}
    try:
        seq = Sequence(path)
    except (DatasetError, OSError) as exc:
        rep["checks"]["schema"] = _check(False, str(exc))
        rep["failed"] = ["schema"]
        return rep
    rep["sequence_id"] = seq.id
    rep["frames"] = len(seq)
    rep["kinds"] = list(seq.kinds)
    checks = rep["checks"]
    try:
        checks["schema"] = _schema(seq)
    except (DatasetError, ValueError, TypeError) as exc:
        checks["schema"] = _check(False, str(exc))
    checks["frame_count"] = _frame_count(seq, manifest_frames)
    checks["files"], good = _files(seq)
    if checks["schema"]["ok"]:
        checks.update(_geometry(seq, good, t, max(1, stride), progress))
    else:
        for name in CHECKS[3:]:
            checks[name] = _check(None, "skipped: schema check failed")
    rep["failed"] = [k for k in CHECKS if checks.get(k, {}).get("ok") is False]
    rep["ok"] = not rep["failed"]
    rep["seconds"] = round(time.monotonic() - t0, 3)
    return rep


# --- datasets, reports, manifest ---------------------------------------------------------

def _manifest_frames(manifest: dict[str, Any] | None) -> dict[str, int]:
    out = {}
    for sc in (manifest or {}).get("scenes", []):
        for q in sc.get("sequences", []):
            if "path" in q and "num_frames" in q:
                out[q["path"]] = int(q["num_frames"])
    return out


def validate(path: str | os.PathLike, *, jobs: int = 1, thresholds: Thresholds | None = None,
             stride: int = 1, write: bool = True, update_manifest: bool = True,
             progress: bool | Any = False, **limits: float) -> dict[str, Any]:
    """Validate a sequence folder or every sequence of a datasets folder.

    ``jobs``: sequences checked in parallel (processes). Threshold overrides can be passed as
    keywords (``reprojection_px=0.05``) or as a :class:`Thresholds`. ``write``: also write
    ``validation.json`` / ``validation.txt`` into ``path``. ``update_manifest``: record each
    sequence's result in ``path/manifest.json`` (when it exists). ``progress``: True prints to
    stderr, or a callable taking one line. Returns ``{"ok", "path", "thresholds", "sequences": [...],
    "failed": [...]}`` (``failed``: relative paths of failing sequences).
    """
    t = thresholds or Thresholds()
    if limits:
        names = {f.name for f in fields(Thresholds)}
        unknown = set(limits) - names
        if unknown:
            raise TypeError(f"unknown threshold(s) {', '.join(sorted(unknown))}; "
                            f"use {', '.join(sorted(names))}")
        t = Thresholds(**{**asdict(t), **limits})
    say = (lambda line: print(f"validate: {line}", file=sys.stderr, flush=True)) if progress is True \
        else (progress or None)
    root = Path(path)
    if root.is_file() and root.name == TRANSFORMS:
        root = root.parent
    src = load(root)
    seq_paths = [src.path] if isinstance(src, Sequence) else list(src.sequence_paths)
    manifest_root = root if isinstance(src, Dataset) else _manifest_above(root)
    manifest = None
    if manifest_root is not None and (manifest_root / "manifest.json").is_file():
        try:
            manifest = json.loads((manifest_root / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
    listed = _manifest_frames(manifest)
    if isinstance(src, Dataset):
        # sequences the manifest promises but that have no transforms.json fail as such
        seq_paths += [root / q for q in listed if (root / q) not in seq_paths]
    rel = {p: (p.relative_to(root).as_posix() if p != root else ".") for p in seq_paths}
    mrel = {p: p.relative_to(manifest_root).as_posix() for p in seq_paths} if manifest_root else {}
    mframes = {p: listed.get(mrel.get(p, ""), None) for p in seq_paths}
    results: dict[Path, dict[str, Any]] = {}
    t0 = time.monotonic()
    if jobs > 1 and len(seq_paths) > 1:
        # Inside Blender forking the bpy process is unsafe: threads there (numpy releases the GIL).
        pool = ThreadPoolExecutor if "bpy" in sys.modules else ProcessPoolExecutor
        with pool(max_workers=jobs) as ex:
            futs = {ex.submit(validate_sequence, p, t, stride=stride,
                              manifest_frames=mframes[p]): p for p in seq_paths}
            for fut in as_completed(futs):
                p = futs[fut]
                results[p] = fut.result()
                if say:
                    say(progress_bar(len(results), len(seq_paths), t0, _verdict(rel[p], results[p])))
    else:
        for p in seq_paths:
            results[p] = validate_sequence(p, t, stride=stride, manifest_frames=mframes[p],
                                           progress=say)
            if say:
                say(progress_bar(len(results), len(seq_paths), t0, _verdict(rel[p], results[p])))
    seqs = []
    for p in seq_paths:
        r = results[p]
        r["path"] = rel[p]
        seqs.append(r)
    report = {"ok": all(r["ok"] for r in seqs), "path": str(root), "checked": _now(),
              "seconds": round(time.monotonic() - t0, 3), "thresholds": asdict(t),
              "sequences": seqs, "failed": [r["path"] for r in seqs if not r["ok"]]}
    if write:
        write_report(report, root)
    if update_manifest and manifest is not None:
        update_manifest_file(manifest_root / "manifest.json", report,
                             {rel[p]: mrel[p] for p in seq_paths}, summary=isinstance(src, Dataset))
    return report


def _manifest_above(seq: Path) -> Path | None:
    """The datasets folder whose manifest.json lists sequence folder ``seq`` (renders/SCENE/SEQ)."""
    for up in list(seq.resolve().parents)[:3]:
        m = up / "manifest.json"
        if m.is_file():
            rel = seq.resolve().relative_to(up).as_posix()
            try:
                doc = json.loads(m.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return up if rel in _manifest_frames(doc) else None
    return None


def _verdict(rel: str, r: dict[str, Any]) -> str:
    return f"{rel}: " + ("OK" if r["ok"] else "FAILED " + ", ".join(r["failed"]))


def progress_bar(done: int, total: int, t0: float, label: str = "", width: int = 20) -> str:
    """``[######----] 3/10  0:12 elapsed, ETA 0:28  label`` (``t0``: ``time.monotonic()`` at start)."""
    el = time.monotonic() - t0
    fill = int(width * done / total) if total else width
    eta = el / done * (total - done) if done else 0.0

    def mmss(x: float) -> str:
        return f"{int(x // 60)}:{int(x % 60):02d}"
    return (f"[{'#' * fill}{'-' * (width - fill)}] {done}/{total}  {mmss(el)} elapsed, "
            f"ETA {mmss(eta)}  {label}").rstrip()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_report(report: dict[str, Any], folder: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``validation.json`` and ``validation.txt`` (the table) into ``folder``."""
    folder = Path(folder)
    j = folder / REPORT_JSON
    write_json_atomic(j, report)
    txt = folder / REPORT_TXT
    tmp = txt.with_name(f".{txt.name}.tmp")
    tmp.write_text(format_report(report) + "\n", encoding="utf-8")
    os.replace(tmp, txt)
    return j, txt


def update_manifest_file(manifest_path: str | os.PathLike, report: dict[str, Any],
                         paths: dict[str, str] | None = None, summary: bool = True) -> None:
    """Set ``"validation"`` on every sequence of ``manifest.json`` that the report covers (other
    keys untouched) and, with ``summary``, a top-level ``"validation"``; atomic rewrite.
    ``paths`` maps the report's sequence paths to the manifest's (default: the same)."""
    p = Path(manifest_path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    paths = paths or {}
    by_path = {paths.get(r["path"], r["path"]): r for r in report["sequences"]}
    for sc in doc.get("scenes", []):
        for q in sc.get("sequences", []):
            r = by_path.get(q.get("path"))
            if r is None:
                continue
            q["validation"] = {"ok": r["ok"], "failed": r["failed"],
                               "messages": {k: r["checks"][k]["message"] for k in r["failed"]},
                               "checked": report["checked"], "report": REPORT_JSON}
    if summary:
        doc["validation"] = {"ok": report["ok"], "checked": report["checked"],
                             "sequences": len(report["sequences"]),
                             "sequences_failed": len(report["failed"]), "report": REPORT_JSON}
    write_json_atomic(p, doc)


def _cell(name: str, c: dict[str, Any] | None) -> str:
    if not c or c.get("ok") is None:
        return "-"
    mark = "" if c["ok"] else "!"
    if name == "flow_cycle" and c.get("median_px") is not None:
        return f"{mark}{c['median_px']:.3g}px"
    if name == "reprojection" and c.get("median_px") is not None:
        return f"{mark}{c['median_px']:.2g}px/{100 * (c.get('static_fraction') or 0):.0f}%"
    if name == "normals" and c.get("median_deg") is not None:
        return f"{mark}{c['median_deg']:.2g}°"
    return "ok" if c["ok"] else "FAIL"


def format_report(report: dict[str, Any]) -> str:
    """The report as a fixed-width table (one row per sequence) plus one line per failure."""
    cols = ["schema", "frame_count", "files", "flow_cycle", "reprojection", "normals",
            "segmentation_ids", "coverage"]
    heads = ["schema", "count", "files", "cycle", "reproj/static", "normals", "ids", "cover"]
    rows = [["sequence", "frames", *heads, "result"]]
    for r in report["sequences"]:
        rows.append([r["path"], str(r.get("frames", "?")),
                     *[_cell(c, r["checks"].get(c)) for c in cols], "OK" if r["ok"] else "FAILED"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in report["sequences"]:
        for k in r.get("failed", []):
            lines.append(f"FAILED {r['path']}: {k}: {r['checks'][k]['message']}")
    n = len(report["sequences"])
    nf = len(report["failed"])
    lines.append(f"{n - nf}/{n} sequence(s) passed" + ("" if report["ok"] else f", {nf} failed")
                 + f" ({report.get('seconds', 0):.1f} s)")
    return "\n".join(lines)
