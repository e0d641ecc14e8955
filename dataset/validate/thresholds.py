# SPDX-License-Identifier: GPL-3.0-or-later
"""Pass/fail limits of validate and the small helpers every check module shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..documents.base import JSONObject


@dataclass
class Thresholds:
    """Pass/fail limits (pixels unless said otherwise). Flow limits are per pixel,
    ``abs + rel * |motion|``, judged per thing on the ``quantile`` of ``error / limit`` (a thing
    fails when that quantile exceeds 1). Defaults: measured errors of correct renders with a
    margin (docs/validate.md)."""

    flow_px: float = 0.05
    flow_rel: float = 0.03
    cycle_px: float = 0.1
    cycle_rel: float = 0.06
    quantile: float = 0.95
    focal_rel: float = 0.008
    principal_px: float = 0.4
    normal_deg: float = 2.0
    unit_tol: float = 1e-3
    depth_rel: float = 1e-4
    pose_tol: float = 1e-4
    depth_jump: float = 0.05
    coverage_frac: float = 0.01
    min_object_pixels: int = 16
    disparity_rel: float = 1e-4
    stereo_px: float = 0.05
    stereo_bad_frac: float = 0.01

    @classmethod
    def help(cls) -> dict[str, str]:
        return {
            "flow_px": "absolute part of the flow tolerance vs the rigid-motion prediction (px)",
            "flow_rel": "relative part of the flow tolerance (share of the predicted motion)",
            "cycle_px": "absolute part of the forward/backward cycle tolerance (px)",
            "cycle_rel": "relative part of the cycle tolerance (share of the motion)",
            "quantile": "per-thing quantile of error/tolerance that must stay <= 1 (0.95 = p95)",
            "focal_rel": "max relative error of fl_x / fl_y fitted from depth + normals",
            "principal_px": "max error of cx / cy fitted from depth + normals (px)",
            "normal_deg": "max median angle between stored and depth-derived normals (degrees)",
            "unit_tol": "max deviation of covered normals from unit length",
            "depth_rel": "relative depth tolerance for points inside their object's 3D box",
            "pose_tol": "tolerance of object_to_camera vs transform_matrix and object_to_world",
            "depth_jump": "relative depth step that marks an edge",
            "coverage_frac": "max share of pixels where depth, ids and normals disagree on coverage",
            "min_object_pixels": "things with fewer interior pixels in a frame pair are not judged",
            "disparity_rel": "stereo: max relative error of disparity vs fx * baseline / depth",
            "stereo_px": "stereo: left/right disparity agreement tolerance (px, plus 0.001 d)",
            "stereo_bad_frac": "stereo: max share of pixels matching neither the other view nor "
                               "an occluder",
        }


def check(ok: bool | None, message: str = "", **values: Any) -> JSONObject:
    """One check's result: ``ok`` True (passed), False (failed), None (not checked: ``message``
    says why)."""
    return {"ok": ok, "message": message, **values}


def num(x: Any) -> float | None:
    """A JSON-friendly float rounded to 6 digits (None for None / non-finite)."""
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, 6)
