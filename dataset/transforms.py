# SPDX-License-Identifier: GPL-3.0-or-later
"""``transforms.json`` for callers that hold its parts as plain values (tests, tools): a thin user
of :mod:`dataset.documents.transforms`, which owns the document (keys, frame entries,
conventions; see there). Also the atomic JSON and text writers every document uses
(:mod:`dataset.documents.base`). Pure Python."""

from __future__ import annotations

from typing import Any

from .camera import Intrinsics
from .documents.base import JSONObject, write_json_atomic, write_text_atomic
from .documents.transforms import BASE_CONVENTIONS, SCHEMA_VERSION, FrameEntry, Transforms

__all__ = ["BASE_CONVENTIONS", "SCHEMA_VERSION", "build_transforms", "write_json_atomic",
           "write_text_atomic"]


def build_transforms(*, intrinsics: Intrinsics, channels: int, frames: list[JSONObject],
                     frame_rate: float, keyframe_multiplier: float, frame_start: int,
                     frame_end: int, scene: str, blend_file: str, sequence_id: str,
                     blender_version: str, dataset_forge_version: str, camera: str,
                     unit_scale: float = 1.0,
                     conventions: JSONObject | None = None,
                     extra: JSONObject | None = None) -> JSONObject:
    """The ``transforms.json`` dictionary (frames sorted by frame number) from frame entries in
    their JSON form; ``conventions`` are added to :data:`BASE_CONVENTIONS`; ``extra`` keys go
    after the known ones."""
    return transforms_of(intrinsics=intrinsics, channels=channels, frame_rate=frame_rate,
                         keyframe_multiplier=keyframe_multiplier, frame_start=frame_start,
                         frame_end=frame_end, scene=scene, blend_file=blend_file,
                         sequence_id=sequence_id, blender_version=blender_version,
                         dataset_forge_version=dataset_forge_version, camera=camera,
                         unit_scale=unit_scale,
                         conventions={**BASE_CONVENTIONS, **(conventions or {})},
                         frames=[FrameEntry.from_dict(f, f"frames[{i}]") for i, f in enumerate(frames)],
                         extra=extra).to_dict()


def transforms_of(*, intrinsics: Intrinsics, channels: int, frames: list[FrameEntry],
                  conventions: JSONObject, unit_scale: float = 1.0,
                  extra: JSONObject | None = None, **top: Any) -> Transforms:
    """The :class:`Transforms` model; ``top``: its other fields by name (``frame_rate`` ...)."""
    k = intrinsics
    return Transforms(fl_x=k.fl_x, fl_y=k.fl_y, cx=k.cx, cy=k.cy, w=k.w, h=k.h, c=channels,
                      intrinsics=k.K, unit_scale_m=unit_scale, conventions=conventions,
                      frames=frames, extra=dict(extra or {}), **top)
