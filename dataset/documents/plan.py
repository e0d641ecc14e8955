# SPDX-License-Identifier: GPL-3.0-or-later
"""``DATASETS/plan.json``: what a ``create_datasets`` run will render, written before anything
renders (``engine.plan.build_plan`` makes it, ``engine.session.RunSession`` writes it,
``dataset.completeness`` reads it back).

``version`` (1), the tool's version, when it was ``created`` (ISO 8601, UTC), the resolved
``scenes_dir`` and ``datasets_dir``, ``seed``, the run's ``settings`` (``Settings.to_dict()``),
``scenes`` (every scene as discovery read it, its ``stretched_range`` and the reason it cannot
render) and ``jobs`` (one per renderable scene: ``scene``, ``blend`` and its ``sequences``, the
wire's ``SequenceSpec``: ``id``, ``out_dir``, ``frame_start``/``frame_end`` inclusive on the
stretched timeline).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from ...settings import SettingsDict
from ...wire.protocol import PlanDoc, PlanJob, PlanScene, SequenceSpec
from .base import (
    as_dict,
    as_int,
    as_number,
    as_str,
    check_schema,
    field,
    list_of,
    optional,
    read_json,
    write_json,
)

VERSION = 1
NAME = "plan.json"

KEYS = ("version", "dataset_forge_version", "created", "scenes_dir", "datasets_dir", "seed",
        "settings", "scenes", "jobs", "name", "blend", "frame_start", "frame_end", "fps", "camera",
        "error", "blender_scene", "blender_scenes", "warnings", "stretched_range", "scene",
        "sequences", "id", "out_dir")
# keys of other documents, events and properties too ("created": provenance.json's)
GENERIC = ("version", "dataset_forge_version", "created", "scenes_dir", "datasets_dir", "seed",
           "settings", "scenes", "jobs", "name", "blend", "frame_start", "frame_end", "fps",
           "camera", "error", "blender_scene", "blender_scenes", "warnings", "scene", "sequences",
           "id", "out_dir")


def _sequence(d: Any, where: str) -> SequenceSpec:
    d = as_dict(d, where)
    return {"id": field(d, "id", optional(as_str), where),
            "out_dir": field(d, "out_dir", as_str, where),
            "frame_start": field(d, "frame_start", as_int, where),
            "frame_end": field(d, "frame_end", as_int, where)}


@dataclass
class SceneFacts:
    """One scene file as discovery read it. Frames are the file's own (before any keyframe
    multiplier), inclusive, of the Blender scene that renders (``blender_scene``: the settings'
    scene, else the file's active one); ``blender_scenes`` lists every scene of the file.
    ``error`` is None, or one sentence naming the file and the fix. ``warnings``: what the file
    renders with but the user should know (what Blender reported while opening a file it
    loaded, a file saved by a newer Blender); None when there is nothing."""

    name: str
    blend: str
    frame_start: int | None = None
    frame_end: int | None = None
    fps: float | None = None
    camera: str | None = None
    error: str | None = None
    blender_scene: str | None = None
    blender_scenes: list[str] | None = None
    warnings: list[str] | None = None


@dataclass
class PlannedScene(SceneFacts):
    """A scene as discovery read it (frames of the file's own clock, inclusive), the range
    stretched by the keyframe multiplier (None when it cannot render), and the reason it cannot
    render (None when it can)."""

    stretched_range: list[int] | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str) -> PlannedScene:
        d = as_dict(d, where)
        return cls(name=field(d, "name", as_str, where), blend=field(d, "blend", as_str, where),
                   frame_start=field(d, "frame_start", optional(as_int), where, None),
                   frame_end=field(d, "frame_end", optional(as_int), where, None),
                   fps=field(d, "fps", optional(as_number), where, None),
                   camera=field(d, "camera", optional(as_str), where, None),
                   error=field(d, "error", optional(as_str), where, None),
                   blender_scene=field(d, "blender_scene", optional(as_str), where, None),
                   blender_scenes=field(d, "blender_scenes", optional(list_of(as_str)), where, None),
                   warnings=field(d, "warnings", optional(list_of(as_str)), where, None),
                   stretched_range=field(d, "stretched_range", optional(list_of(as_int)), where,
                                         None))

    def to_dict(self) -> PlanScene:
        """The entry as written: ``warnings`` only when there are some."""
        d: PlanScene = {"name": self.name, "blend": self.blend, "frame_start": self.frame_start,
                        "frame_end": self.frame_end, "fps": self.fps, "camera": self.camera,
                        "error": self.error, "blender_scene": self.blender_scene,
                        "blender_scenes": self.blender_scenes}
        if self.warnings:
            d["warnings"] = self.warnings
        d["stretched_range"] = self.stretched_range
        return d


@dataclass
class PlannedJob:
    """One renderable scene: one worker opens ``blend`` once for all its ``sequences``."""

    scene: str
    blend: str
    sequences: list[SequenceSpec]

    @classmethod
    def from_dict(cls, d: Any, where: str) -> PlannedJob:
        d = as_dict(d, where)
        return cls(scene=field(d, "scene", as_str, where), blend=field(d, "blend", as_str, where),
                   sequences=field(d, "sequences", list_of(_sequence), where))

    def to_dict(self) -> PlanJob:
        return {"scene": self.scene, "blend": self.blend, "sequences": self.sequences}

    @property
    def frames(self) -> int:
        """Frames of all its sequences."""
        return sum(q["frame_end"] - q["frame_start"] + 1 for q in self.sequences)


@dataclass
class Plan:
    """``plan.json`` (see the module docstring). What the readers rely on is required of a
    document read (``version``, ``datasets_dir``, ``scenes``, ``jobs``); the record of how the
    plan was made may be absent (read as "", None or {})."""

    dataset_forge_version: str
    created: str
    scenes_dir: str
    datasets_dir: str
    seed: int | None
    settings: SettingsDict
    scenes: list[PlannedScene] = dc_field(default_factory=list)
    jobs: list[PlannedJob] = dc_field(default_factory=list)
    version: int = VERSION

    SCHEMA = VERSION

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Plan:
        d = as_dict(d, where)
        check_schema(d, "version", (VERSION,), where)
        return cls(dataset_forge_version=field(d, "dataset_forge_version", as_str, where, ""),
                   created=field(d, "created", as_str, where, ""),
                   scenes_dir=field(d, "scenes_dir", as_str, where, ""),
                   datasets_dir=field(d, "datasets_dir", as_str, where),
                   seed=field(d, "seed", optional(as_int), where, None),
                   settings=field(d, "settings", as_dict, where, {}),
                   scenes=field(d, "scenes", list_of(PlannedScene.from_dict), where),
                   jobs=field(d, "jobs", list_of(PlannedJob.from_dict), where))

    def to_dict(self) -> PlanDoc:
        return {"version": self.version, "dataset_forge_version": self.dataset_forge_version,
                "created": self.created, "scenes_dir": self.scenes_dir,
                "datasets_dir": self.datasets_dir, "seed": self.seed, "settings": self.settings,
                "scenes": [s.to_dict() for s in self.scenes],
                "jobs": [j.to_dict() for j in self.jobs]}

    def without(self, names: set[str]) -> Plan:
        """The plan without the scenes named (neither rendered nor reported)."""
        return Plan(self.dataset_forge_version, self.created, self.scenes_dir, self.datasets_dir,
                    self.seed, self.settings, [s for s in self.scenes if s.name not in names],
                    [j for j in self.jobs if j.scene not in names], self.version)

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())


def read(path: str | os.PathLike) -> Plan:
    """The plan at ``path``; a :class:`DocumentError` naming it when it cannot be read or is not
    of this version."""
    return Plan.from_dict(read_json(Path(path)), str(path))
