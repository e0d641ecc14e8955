# SPDX-License-Identifier: GPL-3.0-or-later
"""``SEQ/info.json``: what rendering one sequence measured (written by the worker after the
sequence's last frame).

Camera path length ``distance_traveled`` (scene units) and ``average_velocity`` (scene units / s)
over ``elapsed_time`` (s, first to last frame), ``render_seconds`` (wall time of the job),
``device`` (one sentence), versions, the object statistics of the objects pass (``objects``:
``timings`` s, ``pixels`` counts, ``sources`` frame counts) and the generated camera's numbers
(``camera_rig``: clearance, coverage, speed ..., see :mod:`render_passes.camera_rig`). The
document carries no schema marker (it never did); a document without one is version 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import layout
from .base import (
    JSONObject,
    as_dict,
    as_int,
    as_number,
    as_str,
    dict_of,
    field,
    optional,
    read_optional,
    write_json,
)

KEYS = ("frame_rate", "num_frames", "distance_traveled", "average_velocity", "elapsed_time",
        "unit_scale_m", "render_seconds", "device", "blender_version", "keyframe_multiplier",
        "objects", "camera_rig", "timings", "pixels", "sources")
GENERIC = ("frame_rate", "num_frames", "unit_scale_m", "device", "blender_version",
           "keyframe_multiplier", "objects", "pixels", "timings")  # keys of other documents too


@dataclass(frozen=True)
class ObjectStats:
    """The objects pass's statistics: seconds per step, pixel-resolution counts, frames per
    depsgraph source."""

    timings: dict[str, float]
    pixels: dict[str, int]
    sources: dict[str, int]

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ObjectStats:
        d = as_dict(d, where)
        return cls(timings=field(d, "timings", dict_of(as_number), where, {}),
                   pixels=field(d, "pixels", dict_of(as_int), where, {}),
                   sources=field(d, "sources", dict_of(as_int), where, {}))

    def to_dict(self) -> JSONObject:
        return {"timings": self.timings, "pixels": self.pixels, "sources": self.sources}


_MEASURED = ("frame_rate", "distance_traveled", "average_velocity", "elapsed_time", "unit_scale_m",
             "render_seconds")
_TEXT = ("device", "blender_version")


@dataclass(frozen=True)
class Info:
    """The ``info.json`` of one sequence (see the module docstring). Only ``num_frames`` is
    required of a document read: a field it lacks is None (and is not written back)."""

    num_frames: int
    frame_rate: float | None = None
    distance_traveled: float | None = None
    average_velocity: float | None = None
    elapsed_time: float | None = None
    unit_scale_m: float | None = None
    render_seconds: float | None = None
    device: str | None = None
    blender_version: str | None = None
    keyframe_multiplier: float | None = None
    objects: ObjectStats | None = None
    camera_rig: JSONObject | None = None

    SCHEMA = None  # no marker: version 1

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Info:
        d = as_dict(d, where)
        return cls(num_frames=field(d, "num_frames", as_int, where),
                   **{k: field(d, k, optional(as_number), where, None) for k in _MEASURED},
                   **{k: field(d, k, optional(as_str), where, None) for k in _TEXT},
                   keyframe_multiplier=field(d, "keyframe_multiplier", optional(as_number), where,
                                             None),
                   objects=field(d, "objects", optional(ObjectStats.from_dict), where, None),
                   camera_rig=field(d, "camera_rig", optional(as_dict), where, None))

    def to_dict(self) -> JSONObject:
        """The written JSON, in this order; None fields, and an empty ``camera_rig``, left out."""
        d: JSONObject = {
            "frame_rate": self.frame_rate, "num_frames": self.num_frames,
            "distance_traveled": self.distance_traveled, "average_velocity": self.average_velocity,
            "elapsed_time": self.elapsed_time, "unit_scale_m": self.unit_scale_m,
            "render_seconds": self.render_seconds, "device": self.device,
            "blender_version": self.blender_version,
            "keyframe_multiplier": self.keyframe_multiplier,
            "objects": self.objects.to_dict() if self.objects is not None else None,
            "camera_rig": self.camera_rig or None}
        return {k: v for k, v in d.items() if v is not None}


def read(seq_dir: str | Path) -> Info | None:
    """The ``info.json`` of sequence folder ``seq_dir``; None when there is none. A document that
    cannot be decoded or is not of this shape is a :class:`DocumentError` naming it."""
    return read_optional(Path(seq_dir) / layout.INFO, Info.from_dict)


def write(seq_dir: str | Path, doc: Info) -> None:
    write_json(Path(seq_dir) / layout.INFO, doc.to_dict())
