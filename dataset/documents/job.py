# SPDX-License-Identifier: GPL-3.0-or-later
"""The job file the engine writes for a worker process (``blender -b -- JOB.json``): one model,
two modes.

* ``render`` (``engine.launchers.write_spec``, ``job-NNNNN.json``): open ``blend`` once, render
  its ``sequences`` (``wire.protocol.SequenceSpec``: ``id``, ``out_dir``, ``frame_start``,
  ``frame_end``) with ``settings`` (``Settings.to_dict()``), at most ``frame_budget`` frames (0:
  no limit) on Cycles device ``gpu_index``; ``gpu`` is the GPU the process alone sees.
* ``probe`` (``engine.discovery``, ``probe-*.json``): open each of ``blends`` and report its
  frame range, frame rate and camera.

The file carries no schema marker (engine and worker are always the same checkout; a file
without ``mode`` is a render job). The JSON is written as it always was: a render job with
``indent=1``, a probe job on one line, neither with a final newline.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from ...settings import SettingsDict
from ...wire.protocol import SequenceSpec
from .base import DocumentError, JSONObject, as_dict, as_int, as_str, list_of, optional, read_json
from .base import field as get

SCHEMA = None
RENDER, PROBE = "render", "probe"

# tests/test_architecture.py: the keys of this document, and those that other documents use too.
KEYS = ("mode", "blend", "blends", "scene_name", "settings", "sequences", "frame_budget",
        "gpu_index", "gpu")
GENERIC = ("mode", "blend", "settings", "sequences", "gpu", "gpu_index")  # event keys too


class JobDict(TypedDict, total=False):
    """The job file as written: ``mode``, ``blends``, ``settings`` (probe) or every key but
    those two (render)."""

    mode: str
    blends: list[str]
    settings: SettingsDict
    blend: str
    scene_name: str
    sequences: list[SequenceSpec]
    frame_budget: int
    gpu_index: int | None
    gpu: int | None


@dataclass
class JobSpec:
    """What one worker process does (see the module docstring); ``sequences`` are the wire's
    ``SequenceSpec`` dicts (the worker fills in a missing ``id``)."""

    mode: str = RENDER
    settings: SettingsDict = field(default_factory=dict)  # type: ignore[assignment]
    blend: str = ""
    scene_name: str = ""
    sequences: list[SequenceSpec] = field(default_factory=list)
    frame_budget: int = 0
    gpu_index: int | None = None
    gpu: int | None = None
    blends: list[str] = field(default_factory=list)

    @classmethod
    def render(cls, blend: str, scene_name: str, settings: SettingsDict,
               sequences: list[SequenceSpec], frame_budget: int = 0, gpu_index: int | None = None,
               gpu: int | None = None) -> JobSpec:
        return cls(RENDER, settings, blend, scene_name, list(sequences), frame_budget, gpu_index, gpu)

    @classmethod
    def probe(cls, blends: list[str], settings: SettingsDict) -> JobSpec:
        return cls(PROBE, settings, blends=list(blends))

    @classmethod
    def from_dict(cls, d: Any, where: str) -> JobSpec:
        d = as_dict(d, where)
        mode = get(d, "mode", as_str, where, RENDER)
        settings = get(d, "settings", optional(as_dict), where, None) or {}
        if mode == PROBE:
            return cls.probe(get(d, "blends", list_of(as_str), where, []), settings)
        if mode != RENDER:
            raise DocumentError(f"{where}.mode: {mode!r} is not a job mode ({RENDER!r}, {PROBE!r})")
        blend = get(d, "blend", as_str, where)
        return cls.render(blend, get(d, "scene_name", as_str, where, Path(blend).stem), settings,
                          get(d, "sequences", list_of(as_dict), where),
                          get(d, "frame_budget", optional(as_int), where, 0) or 0,
                          get(d, "gpu_index", optional(as_int), where, None),
                          get(d, "gpu", optional(as_int), where, None))

    def to_dict(self) -> JobDict:
        if self.mode == PROBE:
            return {"mode": PROBE, "blends": self.blends, "settings": self.settings}
        return {"blend": self.blend, "scene_name": self.scene_name, "settings": self.settings,
                "sequences": self.sequences, "frame_budget": self.frame_budget,
                "gpu_index": self.gpu_index, "gpu": self.gpu}

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=None if self.mode == PROBE else 1)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the job file (not atomic: the engine writes it before it starts the worker). A
        write error (a file-size limit names no path by itself) is a ``WriteError`` naming it."""
        from ..verify import write_error

        p = Path(path)
        try:
            p.write_text(self.dumps(), encoding="utf-8")
        except OSError as exc:
            raise write_error(exc, p) from None
        return p

    @classmethod
    def read(cls, path: str | os.PathLike) -> JobSpec:
        return cls.from_dict(read_json(path), str(path))


def as_job(job: JobSpec | JSONObject, where: str = "job") -> JobSpec:
    """``job`` as a :class:`JobSpec` (a dict is read with :meth:`JobSpec.from_dict`)."""
    return job if isinstance(job, JobSpec) else JobSpec.from_dict(job, where)

__all__ = ["PROBE", "RENDER", "DocumentError", "JobSpec", "as_job"]
