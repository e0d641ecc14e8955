# SPDX-License-Identifier: GPL-3.0-or-later
"""``DATASETS/manifest.json``: what a run planned and what is on disk, scene by scene and sequence
by sequence, with the ``validation`` entries ``validate`` writes into it.

Written by ``engine.plan.write_manifest`` (from the plan and the files on disk), patched by
``dataset.validate.report.update_manifest_file`` (the validation entries), read by the loader's
``Dataset`` (which sequences are complete) and by ``write_manifest`` itself (validation entries
carried over to the next run). Every key of the document is spelled here only. Keys this version
does not know are kept (``extra``) and written back after the known ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ...settings import SettingsDict
from .base import (
    DocumentError,
    JSONObject,
    as_any,
    as_bool,
    as_dict,
    as_int,
    as_number,
    as_str,
    dict_of,
    fail,
    list_of,
    optional,
    read_optional,
    write_json,
)
from .base import field as get

# The manifest never carried a schema marker; its writer's version is ``dataset_forge_version``.
SCHEMA = None
COMPLETE, INCOMPLETE, FAILED = "complete", "incomplete", "failed"
REPORT_NAME = "validation.json"  # the report a validation entry points at (``report``)

# Keys that other documents use too (the test of key owners does not look for them elsewhere).
GENERIC = ("ok", "checked", "messages", "failed", "report", "sequences", "scenes", "name", "blend",
           "status", "reason", "frame_start", "frame_end", "fps", "camera", "id", "path", "settings",
           "seed", "plan", "frames", "num_frames", "validation", "dataset_forge_version",
           "journal_sha256", "not_checked", "error")


def _extra(d: JSONObject, known: tuple[str, ...]) -> JSONObject:
    return {k: v for k, v in d.items() if k not in known}


def _shaped(obj: Any, out: JSONObject) -> JSONObject:
    """``out`` (every field of ``obj``) as written: the ``OMIT_NONE`` keys only when they hold
    something. A model read from a file keeps that file's keys in their order (of the keys it
    lacked, only an ``OMIT_NONE`` one set since is added): patching a manifest, say with a
    validation entry, changes nothing else in it."""
    omit = {k for k in getattr(obj, "OMIT_NONE", ()) if out.get(k) is None}
    if obj.read_keys is None:
        return {k: v for k, v in out.items() if k not in omit}
    first = {k: out[k] for k in obj.read_keys if k in out}
    return {**first, **{k: v for k, v in out.items() if k not in first and k not in omit
                        and k in getattr(obj, "OMIT_NONE", ())}}


@dataclass
class SequenceValidation:
    """What ``validate`` found for one sequence (``scenes[].sequences[].validation``)."""

    ok: bool
    failed: list[str]
    messages: dict[str, str]
    not_checked: list[str]
    checked: str                       # ISO time of the validation
    report: str = REPORT_NAME
    journal_sha256: str | None = None  # the journal validate read (a re-render invalidates it)
    error: str | None = None  # why the sequence could not be checked (written only then)
    extra: JSONObject = field(default_factory=dict)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    KEYS = ("ok", "failed", "messages", "not_checked", "checked", "report", "journal_sha256",
            "error")
    OMIT_NONE = ("error",)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> SequenceValidation:
        d = as_dict(d, where)
        return cls(ok=get(d, "ok", as_bool, where), failed=get(d, "failed", list_of(as_str), where, []),
                   messages=get(d, "messages", dict_of(as_any), where, {}),
                   not_checked=get(d, "not_checked", list_of(as_str), where, []),
                   checked=get(d, "checked", as_str, where, ""),
                   report=get(d, "report", as_str, where, REPORT_NAME),
                   journal_sha256=get(d, "journal_sha256", optional(as_str), where, None),
                   error=get(d, "error", optional(as_str), where, None),
                   extra=_extra(d, cls.KEYS), read_keys=tuple(d))

    def to_dict(self) -> JSONObject:
        return _shaped(self, {"ok": self.ok, "failed": self.failed, "messages": self.messages,
                              "not_checked": self.not_checked, "checked": self.checked,
                              "report": self.report, "journal_sha256": self.journal_sha256,
                              "error": self.error, **self.extra})


@dataclass
class ValidationSummary:
    """The top-level ``validation`` of a validated dataset."""

    ok: bool
    checked: str
    sequences: int
    sequences_failed: int
    report: str = REPORT_NAME
    sequences_not_checked: int | None = None  # written only when some could not be checked
    extra: JSONObject = field(default_factory=dict)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    KEYS = ("ok", "checked", "sequences", "sequences_failed", "report", "sequences_not_checked")
    OMIT_NONE = ("sequences_not_checked",)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ValidationSummary:
        d = as_dict(d, where)
        return cls(ok=get(d, "ok", as_bool, where), checked=get(d, "checked", as_str, where, ""),
                   sequences=get(d, "sequences", as_int, where, 0),
                   sequences_failed=get(d, "sequences_failed", as_int, where, 0),
                   report=get(d, "report", as_str, where, REPORT_NAME),
                   sequences_not_checked=get(d, "sequences_not_checked", optional(as_int), where, None),
                   extra=_extra(d, cls.KEYS), read_keys=tuple(d))

    def to_dict(self) -> JSONObject:
        return _shaped(self, {"ok": self.ok, "checked": self.checked, "sequences": self.sequences,
                              "sequences_failed": self.sequences_failed, "report": self.report,
                              "sequences_not_checked": self.sequences_not_checked, **self.extra})


@dataclass
class SequenceEntry:
    """One planned sequence: its folder (``path``, relative to the datasets folder), range,
    frame counts and status (``complete`` / ``incomplete``), the reason of a failure and the
    last validation of these frames."""

    id: str
    path: str
    frame_start: int
    frame_end: int
    num_frames: int
    frames_complete: int
    status: str = INCOMPLETE
    reason: str | None = None          # written only when set
    validation: SequenceValidation | None = None
    extra: JSONObject = field(default_factory=dict)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    KEYS = ("id", "path", "frame_start", "frame_end", "num_frames", "frames_complete", "status",
            "reason", "validation")
    OMIT_NONE = ("reason", "validation")

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    @classmethod
    def from_dict(cls, d: Any, where: str) -> SequenceEntry:
        d = as_dict(d, where)
        return cls(id=get(d, "id", as_str, where), path=get(d, "path", as_str, where),
                   frame_start=get(d, "frame_start", as_int, where, 0),
                   frame_end=get(d, "frame_end", as_int, where, 0),
                   num_frames=get(d, "num_frames", as_int, where, 0),
                   frames_complete=get(d, "frames_complete", as_int, where, 0),
                   status=get(d, "status", as_str, where, COMPLETE),
                   reason=get(d, "reason", optional(as_str), where, None),
                   validation=get(d, "validation", optional(SequenceValidation.from_dict), where, None),
                   extra=_extra(d, cls.KEYS), read_keys=tuple(d))

    def to_dict(self) -> JSONObject:
        return _shaped(self, {
            "id": self.id, "path": self.path, "frame_start": self.frame_start,
            "frame_end": self.frame_end, "num_frames": self.num_frames,
            "frames_complete": self.frames_complete, "status": self.status, "reason": self.reason,
            **self.extra, "validation": None if self.validation is None else self.validation.to_dict()})


@dataclass
class SceneEntry:
    """One scene of the plan: its ``.blend``, status (``complete`` / ``incomplete`` / ``failed``
    with the reason), range and camera as discovery read them, and its sequences."""

    name: str
    blend: str
    status: str
    reason: str | None = None
    frame_start: int | None = None
    frame_end: int | None = None
    fps: float | None = None
    camera: str | None = None
    sequences: list[SequenceEntry] = field(default_factory=list)
    extra: JSONObject = field(default_factory=dict)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    KEYS = ("name", "blend", "status", "reason", "frame_start", "frame_end", "fps", "camera",
            "sequences")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> SceneEntry:
        d = as_dict(d, where)
        return cls(name=get(d, "name", as_str, where), blend=get(d, "blend", as_str, where, ""),
                   status=get(d, "status", as_str, where, INCOMPLETE),
                   reason=get(d, "reason", optional(as_str), where, None),
                   frame_start=get(d, "frame_start", optional(as_int), where, None),
                   frame_end=get(d, "frame_end", optional(as_int), where, None),
                   fps=get(d, "fps", optional(as_number), where, None),
                   camera=get(d, "camera", optional(as_str), where, None),
                   sequences=get(d, "sequences", list_of(SequenceEntry.from_dict), where, []),
                   extra=_extra(d, cls.KEYS), read_keys=tuple(d))

    def to_dict(self) -> JSONObject:
        return _shaped(self, {
            "name": self.name, "blend": self.blend, "status": self.status, "reason": self.reason,
            "frame_start": self.frame_start, "frame_end": self.frame_end, "fps": self.fps,
            "camera": self.camera, "sequences": [q.to_dict() for q in self.sequences], **self.extra})


@dataclass
class Totals:
    """Counts over the whole manifest (``totals``)."""

    scenes: int = 0
    scenes_complete: int = 0
    sequences: int = 0
    sequences_complete: int = 0
    frames: int = 0
    frames_complete: int = 0
    extra: JSONObject = field(default_factory=dict)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    KEYS = ("scenes", "scenes_complete", "sequences", "sequences_complete", "frames", "frames_complete")

    def add_scene(self, scene: SceneEntry) -> None:
        """Count ``scene`` and its sequences."""
        self.scenes += 1
        self.scenes_complete += scene.status == COMPLETE
        for q in scene.sequences:
            self.sequences += 1
            self.sequences_complete += q.complete
            self.frames += q.num_frames
            self.frames_complete += q.frames_complete

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Totals:
        d = as_dict(d, where)
        return cls(**{k: get(d, k, as_int, where, 0) for k in cls.KEYS}, extra=_extra(d, cls.KEYS),
                   read_keys=tuple(d))

    def to_dict(self) -> JSONObject:
        return _shaped(self, {**{k: getattr(self, k) for k in self.KEYS}, **self.extra})


@dataclass
class Manifest:
    """``manifest.json``: the run's settings and seed, :class:`Totals` over ``scenes``, every
    scene and sequence, and the top-level validation summary."""

    dataset_forge_version: str
    updated: str                        # ISO time of the write
    settings: SettingsDict
    seed: int
    totals: Totals
    scenes: list[SceneEntry]
    plan: str = "plan.json"
    validation: ValidationSummary | None = None
    extra: JSONObject = field(default_factory=dict)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    KEYS = ("dataset_forge_version", "updated", "plan", "settings", "seed", "totals", "scenes",
            "validation")
    OMIT_NONE = ("validation",)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Manifest:
        d = as_dict(d, where)
        return cls(dataset_forge_version=get(d, "dataset_forge_version", as_str, where, ""),
                   updated=get(d, "updated", as_str, where, ""),
                   plan=get(d, "plan", as_str, where, "plan.json"),
                   settings=get(d, "settings", as_dict, where, {}),
                   seed=get(d, "seed", as_any, where, 0),
                   totals=get(d, "totals", Totals.from_dict, where, Totals()),
                   scenes=get(d, "scenes", list_of(SceneEntry.from_dict), where),
                   validation=get(d, "validation", optional(ValidationSummary.from_dict), where, None),
                   extra=_extra(d, cls.KEYS), read_keys=tuple(d))

    def to_dict(self) -> JSONObject:
        return _shaped(self, {
            "dataset_forge_version": self.dataset_forge_version, "updated": self.updated,
            "plan": self.plan, "settings": self.settings, "seed": self.seed,
            "totals": self.totals.to_dict(), "scenes": [s.to_dict() for s in self.scenes],
            **self.extra, "validation": None if self.validation is None else self.validation.to_dict()})

    def sequences(self) -> dict[str, SequenceEntry]:
        """``{sequence path relative to the datasets folder: its entry}``."""
        return {q.path: q for sc in self.scenes for q in sc.sequences}

    def write(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())


# Every key this module owns (tests/test_architecture.py looks for them in other modules).
KEYS = tuple(dict.fromkeys((*Manifest.KEYS, *Totals.KEYS, *SceneEntry.KEYS, *SequenceEntry.KEYS,
                            *SequenceValidation.KEYS, *ValidationSummary.KEYS)))


def is_manifest(doc: Any) -> bool:
    """Whether a decoded JSON document is a Dataset Forge manifest (has a ``scenes`` list)."""
    return isinstance(doc, dict) and isinstance(doc.get("scenes"), list)


def parse(doc: Any, path: str | os.PathLike) -> Manifest | None:
    """The model of a decoded ``manifest.json`` at ``path``; None when it is not a Dataset Forge
    manifest (no ``scenes`` list); :class:`DocumentError` naming the file and key when it is one
    but malformed."""
    return Manifest.from_dict(doc, str(path)) if is_manifest(doc) else None


def read(path: str | os.PathLike) -> Manifest | None:
    """:func:`parse` of the file at ``path`` (None when it is missing)."""
    return read_optional(path, parse)


__all__ = ["COMPLETE", "FAILED", "INCOMPLETE", "DocumentError", "Manifest", "SceneEntry",
           "SequenceEntry", "SequenceValidation", "Totals", "ValidationSummary", "fail", "is_manifest",
           "parse", "read"]
