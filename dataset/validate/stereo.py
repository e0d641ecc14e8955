# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``stereo`` check of a stereo pair's left view (a sequence folder with ``stereo.json``).

* the right view (``stereo.json`` ``right``) has the same frames, the same ``K`` per frame, and
  each right pose is the left pose moved by ``baseline`` along the left camera's x axis
  (``pose_tol``, relative to ``max(1, |translation|)``);
* in both views the disparity is ``fx * baseline / planar depth`` (``disparity_rel``) where the
  depth has a surface, and 0 (invalid) exactly where it has none;
* left/right consistency: the left disparity warped by itself to the right view
  (:func:`dataset.stereo.warp_check`) agrees with the right disparity within ``stereo_px +
  0.001 d``, or is hidden there by an occluder the left view also sees; the same from the right
  view; the share of pixels that do neither must stay <= ``stereo_bad_frac`` in every frame.
  A wrong baseline sign or value fails the pose and disparity parts, a swapped or mis-rendered
  view the consistency part;
* the right view passes every check of a sequence of its own (``validate_right``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..documents.base import DocumentError, JSONObject
from ..documents.validation import SequenceVerdictDict
from ..exr import ExrError
from ..loader import DatasetError, Sequence
from ..stereo import INVALID, disparity_from_depth, planar_depth, right_pose, warp_check
from .thresholds import Thresholds, num
from .thresholds import check as _check


def check(seq: Sequence, t: Thresholds,
          validate_right: Callable[[Sequence], SequenceVerdictDict] | None = None) -> JSONObject:
    """The ``stereo`` check of ``seq`` (see the module docstring); "not needed" for a mono
    sequence. ``validate_right``: validates the right view as a sequence (its report)."""
    try:
        doc = seq.stereo
    except DocumentError as exc:
        return _check(False, str(exc))
    if doc is None:
        return _check(None, "not needed: mono sequence (no stereo.json)")
    try:
        right = seq.right
    except DatasetError as exc:
        return _check(False, f"right view: {exc}")
    if right.frame_numbers != seq.frame_numbers:
        return _check(False, f"right view {right.path}: frames {right.frame_numbers[:5]}... are not "
                             f"the left view's {seq.frame_numbers[:5]}...")
    b = doc.baseline
    worst = {"pose": 0.0, "disparity_rel": 0.0, "bad_frac": 0.0, "consistent_px": 0.0}
    problems: list[str] = []
    for i, n in enumerate(seq.frame_numbers):
        where = f"frame {n}"
        problems += _camera(seq, right, i, b, t, worst, where)
        try:
            disp = [_disparity(label, view, i, b, t, worst, where, problems)
                    for label, view in (("left", seq), ("right", right))]
        except (DatasetError, ExrError) as exc:  # missing, truncated, wrong size
            problems.append(f"{where}: {exc}")
            break
        problems += _consistency(disp[0], disp[1], t, worst, where)
        if len(problems) > 10:
            break
    sub = None
    if validate_right is not None and not problems:
        rep = validate_right(right)
        sub = {"ok": rep["ok"], "failed": rep.get("failed", [])}
        problems += [f"right view: {k}: {rep['checks'][k]['message']}" for k in sub["failed"]]
    return _check(not problems, "; ".join(problems[:10]), baseline=b,
                  worst_pose=num(worst["pose"]), worst_disparity_rel=num(worst["disparity_rel"]),
                  worst_bad_frac=num(worst["bad_frac"]),
                  worst_consistent_px=num(worst["consistent_px"]), right=sub)


def _camera(seq: Sequence, right: Sequence, i: int, b: float, t: Thresholds,
            worst: dict[str, float], where: str) -> list[str]:
    """The right view's K and pose at frame index ``i`` against the left view's."""
    out = []
    if not np.allclose(seq.intrinsics_of(i), right.intrinsics_of(i), rtol=1e-9, atol=1e-9):
        out.append(f"{where}: the right view's K differs from the left's")
    want = right_pose(seq.poses[i], b)
    err = float(np.abs(right.poses[i] - want).max()) / max(1.0, float(np.abs(want[:3, 3]).max()))
    worst["pose"] = max(worst["pose"], err)
    if err > t.pose_tol:
        out.append(f"{where}: the right pose is {err:.3g} off the left pose moved by the baseline "
                   f"{b:g} along its x axis (wrong baseline sign or value?)")
    return out


def _disparity(label: str, view: Sequence, i: int, b: float, t: Thresholds,
               worst: dict[str, float], where: str, problems: list[str]) -> np.ndarray:
    """Frame index ``i``'s disparity of ``view`` (float64), checked against ``fx * b / depth``;
    what is wrong is added to ``problems``."""
    fr = view[i]
    d = fr.disparity.astype(np.float64)
    z = planar_depth(fr.depth, fr.K, view.depth_type)
    if d.shape != z.shape:
        raise DatasetError(f"{fr.path('disparity')}: {d.shape[1]}x{d.shape[0]} px, the depth is "
                           f"{z.shape[1]}x{z.shape[0]}")
    expect = disparity_from_depth(z, fr.K[0, 0], b).astype(np.float64)
    surf = expect != INVALID
    if np.any((d != INVALID) != surf):
        problems.append(f"{where}: {label} view: disparity is not 0 exactly where the depth has no "
                        "surface")
    rel = float(np.max(np.abs(d[surf] - expect[surf]) / expect[surf])) if surf.any() else 0.0
    worst["disparity_rel"] = max(worst["disparity_rel"], rel)
    if rel > t.disparity_rel:
        problems.append(f"{where}: {label} view: disparity is {rel:.3g} relative off fx * {b:g} / "
                        "depth (wrong baseline sign or value?)")
    fr.clear()
    return d


def _consistency(left: np.ndarray, right: np.ndarray, t: Thresholds, worst: dict[str, float],
                 where: str) -> list[str]:
    """Each view's disparity warped to the other (:func:`dataset.stereo.warp_check`)."""
    out = []
    for name, (src, dst, sign) in (("left->right", (left, right, -1)),
                                   ("right->left", (right, left, +1))):
        w, _ = warp_check(src, dst, sign, tol_px=t.stereo_px)
        worst["bad_frac"] = max(worst["bad_frac"], w.bad_frac)
        worst["consistent_px"] = max(worst["consistent_px"], w.worst_px)
        if w.bad_frac > t.stereo_bad_frac:
            out.append(f"{where}: {name}: {w.bad} of {w.judged} pixels ({100 * w.bad_frac:.1f}%) "
                       "match neither the other view's disparity nor an occluder (views swapped, "
                       "or wrong baseline?)")
    return out
