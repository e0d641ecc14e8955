# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-frame checks: ``normals`` (stored vs depth-derived), ``intrinsics`` (fl_x, fl_y, cx, cy
fitted from depth + normals: no camera motion needed), ``objects`` (``objects.json`` against
the images and poses), ``segmentation_ids`` and ``coverage``."""

from __future__ import annotations

import numpy as np

from ..documents.base import JSONObject
from ..layout import FRAME_CAMERA_KEY, pixel_rays
from ..objects import CV_FROM_GL as FLIP  # Blender camera axes <-> OpenCV camera axes
from .files import present
from .geometry import (
    GATE_DEG,
    depth_normals_at,
    dot,
    fit_intrinsics,
    intrinsics_rows,
    norm,
    normals_to_opencv_camera,
    regular_sample,
    surface_mask,
)
from .things import FrameData, ThingMap
from .thresholds import Thresholds, check, num

_ROWS_PER_FRAME = 60000  # intrinsics equations kept per frame (a regular subsample on big frames)
_ANGLES_PER_FRAME = 20000
_BOX_SAMPLES = 20000  # depth points per thing and frame tested against its 3D box
_MIN_FLAT = 64  # flat-patch pixels over a sequence needed to judge the normals' direction
_NORMAL_TABLE_PX = 4 * (_ANGLES_PER_FRAME + _ROWS_PER_FRAME // 2)  # about the pixels read per frame


# A pixel is on a flat patch when the stored normals 2 px around it (8 pixels: the corners and
# edge centres of its 5x5 square) are within FLAT_DEG of its own. Measured on correct renders:
# 0.009-0.025 deg between neighbours on flat faces; 2.7-4.3 deg (median) on smooth-shaded
# low-poly meshes at 96x72, a variation that shrinks with the resolution but doubles over 2 px.
FLAT_DEG = 0.05
_FLAT_RING = [(dr, dc) for dr in (-2, 0, 2) for dc in (-2, 0, 2) if dr or dc]


def _flat(normal_at, n: np.ndarray, rows: np.ndarray, cols: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``(M,)`` True where the pixels 2 px around (rows, cols) are covered and their stored
    normals are within :data:`FLAT_DEG` of ``n`` (the pixel's, OpenCV camera frame, unit): a flat
    patch, where shading and geometric normals, filtered or not, all equal the facet's normal
    that the depth shows."""
    h, w = cov.shape
    out = (rows >= 2) & (rows < h - 2) & (cols >= 2) & (cols < w - 2)
    r, c, m = rows[out], cols[out], n[out]
    keep = np.ones(r.size, bool)
    lim = np.cos(np.radians(FLAT_DEG))
    for dr, dc in _FLAT_RING:
        keep &= cov[r + dr, c + dc]
        keep &= dot(normal_at(r + dr, c + dc), m) >= lim
    out[out] = keep
    return out


def normal_kind(conventions: JSONObject) -> tuple[str, bool]:
    """``(kind, filtered)`` of the stored normals: ``kind`` "shading" (interpolated, what a
    smooth-shaded mesh shows) or "geometric" (the facet's), ``filtered`` averaged over the pixel
    filter. Read from ``conventions`` ``normal_kind`` / ``filtered_passes`` (top level or in the
    ``normal`` entry); a sequence without them has filtered shading normals."""
    sub = conventions.get("normal") if isinstance(conventions.get("normal"), dict) else {}
    kind = conventions.get("normal_kind", sub.get("normal_kind", "shading"))
    filt = conventions.get("filtered_passes", sub.get("filtered_passes", True))
    if isinstance(filt, (list, tuple)):
        filt = "normal" in filt
    return str(kind), bool(filt)



def _fit_problems(names: tuple[str, ...], stored: np.ndarray, val: np.ndarray, err: np.ndarray,
                  tol: np.ndarray, t: Thresholds, resolved_any: set[str]) -> list[str]:
    """The fitted intrinsics ``val`` (standard errors ``err``) against the ``stored`` ones, per
    parameter of ``names`` that the fit resolves (error within a third of its tolerance ``tol``;
    added to ``resolved_any``): one line for each that differs by more than its tolerance."""
    problems = []
    for k, name in enumerate(names):
        if not err[k] <= tol[k] / 3:
            continue
        resolved_any.add(name)
        if abs(val[k] - stored[k]) > tol[k]:
            if k < 2:
                what, lim = f"{100 * (val[k] / stored[k] - 1):+.3g}%", f"{100 * t.focal_rel:.3g}%"
            else:
                what, lim = f"{val[k] - stored[k]:+.3g} px", f"{t.principal_px} px"
            problems.append(f"{name} = {stored[k]:.6g} but depth + normals say {val[k]:.6g} "
                            f"({what}, tolerance {lim})")
    return problems


def _derived_at(derived: np.ndarray, rows: np.ndarray, cols: np.ndarray, rows2: np.ndarray,
                cols2: np.ndarray, f: FrameData) -> np.ndarray:
    """:func:`depth_normals_at` at ``(rows2, cols2)``: looked up in ``derived``, computed at
    ``(rows, cols)`` (row-major order), when every pixel is among those (a frame small enough not
    to be subsampled: the same values), else computed."""
    w = f.depth.shape[1]
    have, want = rows * w + cols, rows2 * w + cols2
    pos = np.minimum(np.searchsorted(have, want), max(have.size - 1, 0))
    if have.size and np.array_equal(have[pos], want):
        return derived[pos]
    return depth_normals_at(f.depth, f.K, rows2, cols2)


class _Visible:
    """The visible pixels of a frame grouped by table column: ``labels`` (H, W) holds each
    pixel's column (-1: none); ``idx`` the flat pixel indices sorted by column, ``rr``/``cc``
    their rows and columns, ``counts`` (``n`` columns) and ``starts`` the slice of each column,
    ``row`` the row of each column in the frame's record (-1: not listed; ``columns``)."""

    def __init__(self, labels: np.ndarray, n: int, columns: np.ndarray):
        w = labels.shape[1]
        flat = labels.reshape(-1)
        idx = np.flatnonzero(flat >= 0)
        lab = flat[idx]
        order = np.argsort(lab, kind="stable")
        self.idx, lab = idx[order], lab[order]
        self.counts = np.bincount(lab, minlength=n)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])
        self.row = np.full(n, -1, np.int64)  # table column -> row of the frame's record
        self.row[columns] = np.arange(len(columns))
        self.rr, self.cc = np.divmod(self.idx, w)

    def pixels(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of the visible pixels of table column ``c``."""
        sl = slice(self.starts[c], self.starts[c + 1])
        return self.rr[sl], self.cc[sl]

class FrameStats:
    def __init__(self, seq, t: Thresholds, things: ThingMap):
        self.seq, self.t, self.things = seq, t, things
        self.angles: list[np.ndarray] = []  # on flat patches: judged
        self.curved: list[np.ndarray] = []  # elsewhere on one surface: measured, not judged
        self.unit_err = 0.0
        self.covered_normals = 0
        self.rows: dict[tuple, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.unknown: set[int] = set()
        self.non_integer = 0
        self.disagree = self.pixels = self.no_normal = 0
        self.obj_problems: list[str] = []
        self.obj_frames = 0
        self.box_ratio = 0.0  # worst per-thing quantile of (distance outside the 3D box) / tolerance
        ids = seq.ids
        self.known = {int(k) for k in (ids.get("ids") or {})} if ids else set()
        self.known.add(int(ids.get("background", 0)) if ids else 0)

    def frame(self, f: FrameData) -> None:
        seg_labels = f.labels if f.labels is not None else f.ids
        cov = None
        if f.normals is not None:
            length = np.sqrt(np.einsum("hwc,hwc->hw", f.normals, f.normals))
            cov = length > 0
            self.covered_normals += int(np.count_nonzero(cov))
            if cov.any():
                self.unit_err = max(self.unit_err, float(np.abs(length[cov] - 1).max()))
            if f.depth is not None:
                self._normals(f, seg_labels, cov)
        if f.ids is not None:
            self.non_integer += f.non_integer
            self.unknown |= present(f.ids) - self.known
        self._coverage(f, cov)
        self._objects(f)

    def _normal_at(self, f: FrameData):
        """``normal_at(rows, cols) -> (M, 3)``: the stored normals of those pixels, unit, in the
        OpenCV camera frame (pixels inside the frame). The checks ask up to 15 times per frame,
        at shifted pixels: a frame of at most :data:`_NORMAL_TABLE_PX` pixels is converted once
        (the same values), its rows then taken by flat index (3x faster than 2-D indexing)."""
        frame_name, pose = self.seq.normal_frame, f.pose

        def normal_at(r, c):
            n = normals_to_opencv_camera(f.normals[r, c], frame_name, pose)
            ln = norm(n)[..., None]
            return n / np.where(ln > 0, ln, 1.0)
        if f.normals.shape[0] * f.normals.shape[1] > _NORMAL_TABLE_PX:
            return normal_at
        table = normal_at(slice(None), slice(None))
        flat, w = table.reshape(-1, 3), table.shape[1]
        return lambda r, c: np.take(flat, r * w + c, axis=0)

    def _normals(self, f: FrameData, seg_labels: np.ndarray | None, cov: np.ndarray) -> None:
        """Angles between stored and depth-derived normals, split into flat patches (judged: every
        normal kind is the facet's normal there) and the rest of each surface (smooth shading,
        facet edges, thin objects: measured only); and the intrinsics rows."""
        normal_at = self._normal_at(f)
        surf = surface_mask(f.depth, seg_labels, self.t.depth_jump) & cov
        rows, cols = regular_sample(surf, _ANGLES_PER_FRAME)
        derived = depth_normals_at(f.depth, f.K, rows, cols)
        if rows.size:
            n = normal_at(rows, cols)
            cosang = np.clip(dot(n, derived), -1, 1)
            angles = np.degrees(np.arccos(cosang)).astype(np.float32)
            flat = _flat(normal_at, n, rows, cols, cov)
            self.angles.append(angles[flat])
            self.curved.append(angles[~flat])
        # the crease test of the intrinsics rows reads the 4 neighbours' normals
        surf[1:-1, 1:-1] &= cov[1:-1, 2:] & cov[1:-1, :-2] & cov[2:, 1:-1] & cov[:-2, 1:-1]
        rows2, cols2 = regular_sample(surf, _ROWS_PER_FRAME // 2)
        agree = dot(normal_at(rows2, cols2), _derived_at(derived, rows, cols, rows2, cols2, f))
        keep = agree >= np.cos(np.radians(GATE_DEG))
        A, b = intrinsics_rows(f.depth, normal_at, f.K, rows2[keep], cols2[keep])
        key = tuple(np.round(f.K[[0, 1, 0, 1], [0, 1, 2, 2]], 9))
        self.rows.setdefault(key, []).append((A, b))

    def _coverage(self, f: FrameData, cov: np.ndarray | None) -> None:
        """Depth and ids (both from a pixel's first sample) must agree; a normal only where there
        is depth. Depth without a normal is allowed: a fractional-alpha surface below the Pass
        Alpha Threshold over nothing solid (README, Alpha) has depth and id but no normal."""
        depth = None if f.depth is None else f.depth > 0
        ids = None if f.ids is None else f.ids > 0
        ref = depth if depth is not None else ids
        if ref is None or sum(m is not None for m in (depth, ids, cov)) < 2:
            return
        bad = np.zeros(ref.shape, bool)
        if depth is not None and ids is not None:
            bad |= depth != ids
        if cov is not None:
            bad |= cov & ~ref
            self.no_normal += int(np.count_nonzero(ref & ~cov))
        self.pixels += ref.size
        self.disagree += int(np.count_nonzero(bad))

    def _objects(self, f: FrameData) -> None:
        """The frame's object record against the images and poses: camera name, stored
        ``object_to_camera`` (version-1 files), instance and object ids, visible pixel counts and
        boxes (every instance with visible pixels must be listed, whatever ``records`` says), and
        depth points inside each thing's 3D box."""
        objs = self.things.objs
        if objs is None:
            return
        self.obj_frames += 1
        tag = f"frame {f.number}"
        fo = objs.frame(f.index)
        self._object_poses(f, fo, tag)
        if f.labels is None:
            return
        self._instance_ids(f, tag)
        vis = _Visible(f.labels, len(objs.instance_ids), fo.columns)
        self._visible_counts_and_boxes(fo, vis, tag)
        if f.depth is not None:
            self._depth_inside_boxes(f, fo, vis, tag)

    def _object_poses(self, f: FrameData, fo, tag: str) -> None:
        """The record's camera name against ``transforms.json``, and the stored
        ``object_to_camera`` against the camera pose and ``object_to_world`` (first offender)."""
        p = self.obj_problems
        cam = self.seq.frames_meta[f.index].get(FRAME_CAMERA_KEY)
        if cam is not None and fo.camera is not None and cam != fo.camera:
            p.append(f"{tag}: camera {fo.camera!r} in the object record, {cam!r} in transforms.json")
        cols = fo.columns
        expect = np.linalg.inv(f.pose @ FLIP) @ fo.object_to_world
        scale = 1.0 + np.abs(expect).max(axis=(1, 2)) if len(cols) else np.zeros(0)
        with np.errstate(invalid="ignore"):
            off = np.nanmax(np.abs(fo.object_to_camera - expect), axis=(1, 2)) / scale \
                if len(cols) else np.zeros(0)
        for c, e in zip(cols, off):
            if np.isfinite(e) and e > self.t.pose_tol:
                p.append(f"{tag}: {self.things.name(int(c))}: object_to_camera disagrees with "
                         f"transform_matrix and object_to_world by {e:.3g} (camera pose wrong?)")
                break

    def _instance_ids(self, f: FrameData, tag: str) -> None:
        """Every instance id in the image is listed, and carries its object's id."""
        if f.inst is None:
            return
        objs, lab, p = self.things.objs, f.labels, self.obj_problems
        extra = set(np.unique(f.inst[(lab < 0) & (f.inst != 0)]).tolist())
        if extra:
            listed_not = ", ".join(map(str, sorted(extra)[:5]))
            p.append(f"{tag}: instance id(s) {listed_not} not in objects.json")
        if f.ids is not None and len(objs.object_ids):
            inside = lab >= 0
            wrong = inside & (f.ids != objs.object_ids[np.maximum(lab, 0)])
            if wrong.any():
                c = int(np.bincount(lab[wrong]).argmax())
                got = ", ".join(map(str, np.unique(f.ids[wrong])[:5].tolist()))
                p.append(f"{tag}: {int(wrong.sum())} pixel(s) of {self.things.name(c)} carry object "
                         f"id(s) {got}, objects.json says {int(objs.object_ids[c])}")

    def _visible_counts_and_boxes(self, fo, vis: _Visible, tag: str) -> None:
        """Every instance with visible pixels is in the frame's record, with the pixel count and
        visible box the image shows (first offender of each)."""
        p, counts, row = self.obj_problems, vis.counts, vis.row
        unlisted = np.flatnonzero((counts > 0) & (row < 0) & self.things.mappable)
        if len(unlisted):
            c = int(unlisted[0])
            p.append(f"{tag}: {self.things.name(c)}: {int(counts[c])} visible pixel(s), but the "
                     f"frame's object record does not list it ({len(unlisted)} such)")
        want = np.full(len(row), -1, np.int64)
        want[fo.columns] = fo.px_count_visib
        for c in np.flatnonzero((want >= 0) & (counts != np.maximum(want, 0)) & self.things.mappable):
            p.append(f"{tag}: {self.things.name(int(c))}: {int(counts[c])} visible pixel(s), objects.json "
                     f"says {int(want[c])}")
            break
        for c in np.flatnonzero((counts > 0) & (row >= 0)):
            r, q = vis.pixels(c)
            box = [int(q.min()), int(r.min()), int(q.max() - q.min() + 1), int(r.max() - r.min() + 1)]
            stored = fo.bbox_visib[row[c]]
            if stored[0] >= 0 and box != stored.tolist():
                p.append(f"{tag}: {self.things.name(int(c))}: visible box {box}, objects.json says "
                         f"{stored.tolist()}")
                break

    def _depth_inside_boxes(self, f: FrameData, fo, vis: _Visible, tag: str) -> None:
        """Every depth point of a thing (a regular subsample) lies inside its 3D box, to the
        depth tolerance plus the first sample's lateral offset; the worst ratio is kept."""
        t, counts, row = self.t, vis.counts, vis.row
        cw = f.pose @ FLIP
        lateral = 0.75 / min(f.K[0, 0], f.K[1, 1])  # first-sample depth off the pixel centre
        x, y = pixel_rays(f.K, f.depth.shape)
        dflat = f.depth.reshape(-1)
        for c in np.flatnonzero((counts >= t.min_object_pixels) & (row >= 0)):
            lo, hi = fo.box_lo[row[c]], fo.box_hi[row[c]]
            M = fo.object_to_world[row[c]]
            if not (np.isfinite(lo).all() and np.isfinite(hi).all() and np.isfinite(M).all()):
                continue
            step = max(1, int(counts[c]) // _BOX_SAMPLES)  # a regular subsample: enough for a quantile
            sl = slice(vis.starts[c], vis.starts[c + 1], step)
            d = dflat[vis.idx[sl]].astype(np.float64)
            keep = d > 0
            if not keep.any():
                continue
            d = d[keep]
            Pc = np.stack([x[0, vis.cc[sl][keep]] * d, y[vis.rr[sl][keep], 0] * d, d], axis=-1)
            to_obj = np.linalg.inv(M) @ cw
            Xo = Pc @ to_obj[:3, :3].T + to_obj[:3, 3]
            out = np.maximum(np.maximum(lo - Xo, Xo - hi), 0).max(axis=-1)
            s = float(np.cbrt(abs(np.linalg.det(M[:3, :3])))) or 1.0
            ratio = out * s / (d * (t.depth_rel + lateral))
            qv = float(np.quantile(ratio, t.quantile))
            self.box_ratio = max(self.box_ratio, qv)
            if qv > 1:
                self.obj_problems.append(
                    f"{tag}: {self.things.name(int(c))}: p{100 * t.quantile:g} of its depth points lie "
                    f"{qv:.3g}x the tolerance outside its 3D box (depth type, K or pose wrong?)")
                break

    def results(self) -> dict[str, JSONObject]:
        seq = self.seq
        kinds = set(seq.kinds)
        out: dict[str, JSONObject] = {}
        out["normals"] = self._normals_verdict()
        out["intrinsics"] = self._intrinsics()
        if "segmentation" not in kinds:
            out["segmentation_ids"] = check(None, "no segmentation")
        else:
            problems = []
            if not seq.ids:
                problems.append("segmentation_ids.json missing")
            elif self.unknown:
                problems.append(f"id(s) {', '.join(map(str, sorted(self.unknown)[:10]))} not in "
                                "segmentation_ids.json")
            if self.non_integer:
                problems.append(f"{self.non_integer} pixel(s) hold non-integer ids (blended edges?)")
            out["segmentation_ids"] = check(not problems, "; ".join(problems),
                                            unknown_ids=sorted(self.unknown),
                                            non_integer_pixels=self.non_integer)
        out["coverage"] = self._coverage_verdict()
        if self.things.objs is None:
            out["objects"] = check(None, self.things.reason)
        else:
            p = self.obj_problems
            out["objects"] = check(not p, "; ".join(p[:5]) + (f" (+{len(p) - 5} more)" if len(p) > 5 else ""),
                                   instances=len(self.things.objs.instance_ids), frames=self.obj_frames,
                                   depth_box_ratio=num(self.box_ratio),
                                   instance_image=self.seq.instance_channel is not None)
        return out

    def _normals_verdict(self) -> JSONObject:
        t, seq = self.t, self.seq
        if "normal" not in seq.kinds:
            return check(None, "no normals")
        kind, filtered = normal_kind(seq.conventions)
        flat = np.concatenate(self.angles) if self.angles else np.zeros(0, np.float32)
        curved = np.concatenate(self.curved) if self.curved else np.zeros(0, np.float32)
        values = {"normal_kind": kind, "filtered": filtered, "flat_pixels": int(flat.size),
                  "median_deg": num(np.median(flat)) if flat.size else None,
                  "p90_deg": num(np.percentile(flat, 90)) if flat.size else None,
                  "curved_pixels": int(curved.size),
                  "curved_median_deg": num(np.median(curved)) if curved.size else None,
                  "unit_error": num(self.unit_err)}
        problems = []
        if flat.size >= _MIN_FLAT and values["median_deg"] > t.normal_deg:
            problems.append(f"median angle to depth-derived normals on flat surfaces "
                            f"{values['median_deg']:.3g}° > {t.normal_deg}° (normal frame "
                            f"'{seq.normal_frame}', depth type '{seq.depth_type}')")
        if self.unit_err > t.unit_tol:
            problems.append(f"normals deviate from unit length by {self.unit_err:.3g} > {t.unit_tol}")
        if problems:
            return check(False, "; ".join(problems), **values)
        if not self.covered_normals:
            return check(None, "no surface seen", **values)
        if flat.size < _MIN_FLAT:
            return check(None, f"direction not checked: {flat.size} pixel(s) on flat surfaces (at least "
                         f"{_MIN_FLAT} needed); curved or smooth-shaded {kind} normals are not the facets' "
                         "normals the depth shows (unit length checked)", **values)
        return check(True, "", **values)

    def _coverage_verdict(self) -> JSONObject:
        t = self.t
        if not self.pixels:
            return check(None, "fewer than two of depth, segmentation, normals")
        frac = self.disagree / self.pixels
        ok = frac <= t.coverage_frac
        return check(ok, "" if ok else f"depth > 0 and id > 0 disagree, or a normal lies where depth says no "
                     f"surface, on {100 * frac:.3g}% of pixels", disagree_fraction=num(frac),
                     depth_without_normal=num(self.no_normal / self.pixels))

    def _intrinsics(self) -> JSONObject:
        t = self.t
        if not self.rows:
            return check(None, "needs depth and normals")
        names = ("fl_x", "fl_y", "cx", "cy")
        fits, problems, resolved_any = [], [], set()
        for key, parts in self.rows.items():
            A = np.concatenate([a for a, _ in parts])
            b = np.concatenate([b for _, b in parts])
            fit = fit_intrinsics(A, b, np.array([[key[0], 0, key[2]], [0, key[1], key[3]], [0, 0, 1]]))
            stored = np.array(key)
            if fit is None:
                fits.append({"stored": [num(x) for x in stored], "fitted": None, "rows": len(b)})
                continue
            val, err = fit["value"], fit["stderr"]
            tol = np.array([t.focal_rel * stored[0], t.focal_rel * stored[1], t.principal_px, t.principal_px])
            # a parameter the surfaces do not constrain has no fitted value worth printing
            entry = {"stored": [num(x) for x in stored],
                     "fitted": [num(x) if e <= tol_k else None for x, e, tol_k in zip(val, err, tol)],
                     "stderr": [num(x) for x in err], "rows": fit["rows"]}
            fits.append(entry)
            problems += _fit_problems(names, stored, val, err, tol, t, resolved_any)
        resolved = [n for n in names if n in resolved_any]
        unresolved = [n for n in names if n not in resolved_any]
        note = (f"not checked: {', '.join(unresolved)} (the surfaces seen do not constrain them: too "
                "few differently slanted flat surfaces)") if unresolved else ""
        if problems:
            return check(False, "; ".join(problems) + (f"; {note}" if note else ""), fits=fits,
                         checked=resolved)
        if not resolved:
            return check(None, note or "nothing to fit", fits=fits, checked=[])
        return check(True, note, fits=fits, checked=resolved)
