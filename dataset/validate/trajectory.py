# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``trajectory`` check: a generated camera (``camera`` = orbit / flythrough) kept its
clearance and coverage, and the poses in ``transforms.json`` are the path the worker checked.

The worker records what it measured in ``info.json`` ``camera_rig`` (``clearance``: the
setting; ``min_clearance``: the smallest distance to a surface found at every frame and between
frames; ``min_coverage`` / ``coverage``: the share of coarse pixel rays that must hit / hit at
worst; ``speed``: scene units per second). This check compares those numbers, and the distance
the camera moves between consecutive frames (chords of a path travelled at constant speed are
never longer than ``speed / fps``) with the poses. Sequences of a scene camera are "not checked".
"""

from __future__ import annotations

import numpy as np

from ..documents import info as info_doc
from ..documents.base import JSONObject
from ..layout import INFO
from .thresholds import check, num

STEP_TOL = 1e-3  # relative slack of the per-frame step (keyframes store float32 poses)


def trajectory(seq) -> JSONObject:
    """The ``trajectory`` check of one loaded sequence (:class:`dataset.loader.Sequence`)."""
    try:
        info = info_doc.read(seq.path)
    except (OSError, ValueError):
        info = None
    if info is None:
        return check(None, f"no readable {INFO}: the camera path cannot be checked")
    if info.camera_rig is None:
        return check(None, "not needed: the scene's own camera (no generated path)")
    return judge(info.camera_rig, np.asarray(seq.poses, float), float(info.frame_rate or 0.0))


def judge(rig: JSONObject, poses: np.ndarray, fps: float) -> JSONObject:
    """Judge recorded ``rig`` numbers against the camera-to-world ``poses`` (n, 4, 4) of frames
    ``fps`` apart."""
    try:
        need = float(rig["clearance"])
        got = float(rig["min_clearance"])
        want_cov = float(rig["min_coverage"])
        cov = float(rig["coverage"])
        speed = float(rig["speed"])
    except (KeyError, TypeError, ValueError) as exc:
        return check(False, f"{INFO} camera_rig lacks a number ({exc}): rerender the sequence")
    problems = []
    if got < need:
        problems.append(f"the camera came within {got:.4g} of a surface, closer than its "
                        f"clearance {need:g}")
    if cov < want_cov:
        problems.append(f"a frame sees a surface in {cov:.0%} of its rays, below "
                        f"min_coverage {want_cov:.0%}")
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=-1) if len(poses) > 1 else \
        np.zeros(0)
    limit = speed / fps * (1 + STEP_TOL) + 1e-6 if fps > 0 else np.inf
    worst = float(steps.max()) if steps.size else 0.0
    if worst > limit:
        problems.append(f"the camera moves {worst:.4g} units between two frames, more than its "
                        f"speed allows ({speed:g} units/s at {fps:g} fps): the poses are not the "
                        "checked path")
    return check(not problems, "; ".join(problems) or
                 f"{rig.get('mode', 'generated')} camera kept {got:.3g} >= {need:g} from every "
                 f"surface and saw surfaces in >= {cov:.0%} of each frame",
                 min_clearance=num(got), clearance=num(need), coverage=num(cov),
                 max_step=num(worst))
