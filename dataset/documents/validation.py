# SPDX-License-Identifier: GPL-3.0-or-later
"""The validation report: ``validation.json`` (and the data ``validation.txt`` is drawn from),
and how a verdict becomes the ``"validation"`` entry of its sequence in ``manifest.json`` (whose
shape the manifest model owns: :class:`.manifest.SequenceValidation`).

A sequence's verdict is one of three: **passed** (no check failed), **failed** (a check failed:
``failed`` names them) or **could not check** (``error``: validate itself broke on it, the
message says where; nothing was judged). A check is ``{"ok": True | False | None, "message",
...measured values}``; ``ok: None`` is "not checked" and the message says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from . import manifest as manifest_doc
from .base import (
    JSONObject,
    as_any,
    as_bool,
    as_dict,
    as_float,
    as_int,
    as_str,
    dict_of,
    fail,
    list_of,
    optional,
)
from .base import (
    field as get,
)

SCHEMA = "dataset_forge.validation/1"

# exit codes of ``validate`` (dataset/commands.py)
EXIT_PASSED = 0
EXIT_FAILED = 1  # a check failed on at least one sequence
EXIT_NOT_RUN = 2  # validate could not run, or could not check a sequence (and none failed)

PASSED, FAILED, NOT_CHECKED = "passed", "failed", "could not check"


def _ok(v: Any, where: str) -> bool | None:
    return None if v is None else as_bool(v, where)


@dataclass
class CheckResult:
    """One check of one sequence: ``ok`` True / False / None (not checked), its message and the
    values it measured (free-form, JSON)."""

    ok: bool | None
    message: str = ""
    values: JSONObject = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> CheckResult:
        d = as_dict(d, where)
        return cls(ok=get(d, "ok", _ok, where), message=get(d, "message", as_str, where, ""),
                   values={k: v for k, v in d.items() if k not in ("ok", "message")})

    def to_dict(self) -> JSONObject:
        return {"ok": self.ok, "message": self.message, **self.values}


class SequenceVerdictDict(TypedDict, total=False):
    """A sequence's verdict as written (the last five only when known)."""

    path: str
    ok: bool
    checks: dict[str, JSONObject]  # CheckResult: ok, message and its own values
    failed: list[str]
    not_checked: dict[str, str]
    journal_sha256: str | None
    error: str
    sequence_id: str
    frames: int
    kinds: list[str]
    seconds: float


class ValidationReportDict(TypedDict, total=False):
    """``validation.json`` as written (``manifest_not_updated``, ``notes``, ``incomplete`` only
    when there are some)."""

    schema: str
    ok: bool
    path: str
    checked: str
    seconds: float
    thresholds: dict[str, float]
    sequences: list[SequenceVerdictDict]
    failed: list[str]
    could_not_check: list[str]
    exit_code: int
    manifest_not_updated: str
    notes: list[str]
    incomplete: list[str]


@dataclass
class SequenceVerdict:
    """One sequence: ``path`` relative to the validated folder ("." for the folder itself)."""

    path: str
    ok: bool
    checks: dict[str, CheckResult] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # "could not check: ...": validate broke on this sequence
    sequence_id: str | None = None
    frames: int | None = None
    kinds: list[str] | None = None
    seconds: float | None = None
    journal_sha256: str | None = None

    @property
    def status(self) -> str:
        return NOT_CHECKED if self.error else (PASSED if self.ok else FAILED)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> SequenceVerdict:
        d = as_dict(d, where)
        return cls(path=get(d, "path", as_str, where), ok=get(d, "ok", as_bool, where),
                   checks=get(d, "checks", dict_of(CheckResult.from_dict), where, {}),
                   failed=get(d, "failed", list_of(as_str), where, []),
                   not_checked=get(d, "not_checked", dict_of(as_str), where, {}),
                   error=get(d, "error", optional(as_str), where, None),
                   sequence_id=get(d, "sequence_id", optional(as_str), where, None),
                   frames=get(d, "frames", optional(as_int), where, None),
                   kinds=get(d, "kinds", optional(list_of(as_str)), where, None),
                   seconds=get(d, "seconds", optional(as_float), where, None),
                   journal_sha256=get(d, "journal_sha256", optional(as_str), where, None))

    def to_dict(self) -> SequenceVerdictDict:
        out: SequenceVerdictDict = {
            "path": self.path, "ok": self.ok,
            "checks": {k: c.to_dict() for k, c in self.checks.items()},
            "failed": list(self.failed), "not_checked": dict(self.not_checked),
            "journal_sha256": self.journal_sha256}
        for k in ("error", "sequence_id", "frames", "kinds", "seconds"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    def manifest_entry(self, checked: str, report: str) -> manifest_doc.SequenceValidation:
        """The ``"validation"`` entry of this sequence in ``manifest.json`` (a model of the
        manifest's owner)."""
        return manifest_doc.SequenceValidation(
            ok=self.ok, failed=list(self.failed),
            messages={k: self.checks[k].message for k in self.failed if k in self.checks},
            not_checked=sorted(k for k, m in self.not_checked.items() if not m.startswith("not needed")),
            checked=checked, report=report, journal_sha256=self.journal_sha256, error=self.error)


@dataclass
class ValidationReport:
    """``validation.json``: every sequence's verdict, the thresholds used, and the summary."""

    SCHEMA = SCHEMA
    ok: bool
    path: str
    checked: str  # ISO 8601 UTC
    seconds: float
    thresholds: dict[str, float]
    sequences: list[SequenceVerdict]
    manifest_not_updated: str | None = None
    notes: list[str] = field(default_factory=list)  # lines the plan adds
    incomplete: list[str] = field(default_factory=list)  # why the dataset is not complete

    @property
    def failed(self) -> list[str]:
        return [s.path for s in self.sequences if s.status == FAILED]

    @property
    def could_not_check(self) -> list[str]:
        return [s.path for s in self.sequences if s.status == NOT_CHECKED]

    @property
    def exit_code(self) -> int:
        """0: every sequence passed; 1: a check failed; 2: a sequence could not be checked."""
        if self.failed:
            return EXIT_FAILED
        return EXIT_NOT_RUN if self.could_not_check or not self.ok else EXIT_PASSED

    @classmethod
    def from_dict(cls, d: Any, where: str = "validation.json") -> ValidationReport:
        d = as_dict(d, where)
        if d.get("schema", SCHEMA) != SCHEMA:
            raise fail(where, f"schema {d.get('schema')!r} is not {SCHEMA!r}")
        return cls(ok=get(d, "ok", as_bool, where), path=get(d, "path", as_str, where),
                   checked=get(d, "checked", as_str, where), seconds=get(d, "seconds", as_float, where, 0.0),
                   thresholds=get(d, "thresholds", dict_of(as_any), where, {}),
                   sequences=get(d, "sequences", list_of(SequenceVerdict.from_dict), where),
                   manifest_not_updated=get(d, "manifest_not_updated", optional(as_str), where, None),
                   notes=get(d, "notes", list_of(as_str), where, []),
                   incomplete=get(d, "incomplete", list_of(as_str), where, []))

    def to_dict(self) -> ValidationReportDict:
        out: ValidationReportDict = {
            "schema": SCHEMA, "ok": self.ok, "path": self.path, "checked": self.checked,
            "seconds": self.seconds, "thresholds": dict(self.thresholds),
            "sequences": [s.to_dict() for s in self.sequences], "failed": self.failed,
            "could_not_check": self.could_not_check, "exit_code": self.exit_code}
        if self.manifest_not_updated:
            out["manifest_not_updated"] = self.manifest_not_updated
        if self.notes:
            out["notes"] = list(self.notes)
        if self.incomplete:
            out["incomplete"] = list(self.incomplete)
        return out


