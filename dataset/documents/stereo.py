# SPDX-License-Identifier: GPL-3.0-or-later
"""``SEQ/stereo.json``: the stereo pair a sequence folder holds (``stereo_baseline`` > 0).

The sequence folder is the left view (the reference: every reader of a mono sequence reads it
unchanged); ``right`` names the right view's folder, the same layout with its own
``transforms.json``. The pair is rectified: the right camera is the left one moved by
``baseline`` (scene units; ``baseline_m`` in metres) along the left camera's x axis, with the same
``K`` and orientation. Disparity (``disparity``: file pattern, channel, convention) is
``fx * baseline / planar depth`` in pixels; a left pixel ``(u, v)`` matches right ``(u - d, v)``, a
right pixel ``(u, v)`` matches left ``(u + d, v)``; 0 = no surface (invalid).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, TypedDict

from .. import layout
from .base import (
    JSONObject,
    as_bool,
    as_dict,
    as_float,
    as_str,
    check_schema,
    fail,
    field,
    read_optional,
    write_json,
)

SCHEMA = "dataset_forge.stereo/1"

class DisparityConvention(TypedDict):
    """``stereo.json`` ``disparity`` (and the ``disparity`` entry of the views' conventions)."""

    file: str
    channel: str
    units: str
    definition: str
    left: str
    right: str
    invalid_value: float
    valid_if: str
    occlusion: str
    dtype: str


DISPARITY_CONVENTION: DisparityConvention = {
    "file": layout.pattern(layout.disparity_file(0)),
    "channel": layout.DISPARITY_CHANNEL,
    "units": "pixels",
    "definition": "fx * baseline / planar depth (the depth of the same view)",
    "left": "left pixel (u, v) sees the surface that right pixel (u - d, v) sees",
    "right": "right pixel (u, v) sees the surface that left pixel (u + d, v) sees",
    "invalid_value": 0.0,
    "valid_if": "disparity > 0 (0 where the view has no surface, like depth)",
    "occlusion": "not marked: a pixel whose surface is hidden in the other view keeps its "
                 "disparity; compare with the other view's disparity to find it",
    "dtype": "float32",
}


class StereoDict(TypedDict):
    """``stereo.json`` as written."""

    schema: str
    baseline: float
    baseline_m: float
    unit_scale_m: float
    reference: str
    left: str
    right: str
    rectified: bool
    offset_axis: str
    right_from_left: str
    disparity: JSONObject


@dataclass(frozen=True)
class Stereo:
    """The stereo document of one sequence folder (see the module docstring)."""

    baseline: float
    unit_scale_m: float = 1.0
    reference: str = "left"
    right: str = layout.RIGHT_FOLDER
    rectified: bool = True
    offset_axis: str = "x"
    disparity: JSONObject = dc_field(default_factory=lambda: dict(DISPARITY_CONVENTION))  # convention

    SCHEMA = SCHEMA

    @property
    def baseline_m(self) -> float:
        return self.baseline * self.unit_scale_m

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Stereo:
        d = as_dict(d, where)
        check_schema(d, "schema", (SCHEMA,), where)
        baseline = field(d, "baseline", as_float, where)
        if baseline <= 0:
            raise fail(f"{where}.baseline", f"must be positive, found {baseline}")
        right = field(d, "right", as_str, where)
        if not right or Path(right).is_absolute() or ".." in Path(right).parts:
            raise fail(f"{where}.right", f"{right!r} must be a folder inside the sequence")
        reference = field(d, "reference", as_str, where)
        if reference != "left":
            raise fail(f"{where}.reference", f"'{reference}' is not a reference this version reads "
                       "('left')")
        axis = field(d, "offset_axis", as_str, where, "x")
        if axis != "x":
            raise fail(f"{where}.offset_axis", f"'{axis}' is not 'x'")
        return cls(baseline=baseline, unit_scale_m=field(d, "unit_scale_m", as_float, where, 1.0),
                   reference=reference, right=right,
                   rectified=field(d, "rectified", as_bool, where),
                   offset_axis=axis, disparity=field(d, "disparity", as_dict, where))

    def to_dict(self) -> StereoDict:
        return {"schema": SCHEMA, "baseline": self.baseline, "baseline_m": self.baseline_m,
                "unit_scale_m": self.unit_scale_m, "reference": self.reference,
                "left": ".", "right": self.right, "rectified": self.rectified,
                "offset_axis": self.offset_axis,
                "right_from_left": ("right camera-to-world = left camera-to-world @ translate("
                                    "baseline, 0, 0) (Blender camera axes: x right); same K"),
                "disparity": self.disparity}


def read(seq_dir: str | Path) -> Stereo | None:
    """The stereo document of sequence folder ``seq_dir``; None when it has none (mono). A
    document that is unreadable or not of this schema is a :class:`DocumentError` naming it."""
    return read_optional(Path(seq_dir) / layout.STEREO, Stereo.from_dict)


def write(seq_dir: str | Path, doc: Stereo) -> None:
    write_json(Path(seq_dir) / layout.STEREO, doc.to_dict())
