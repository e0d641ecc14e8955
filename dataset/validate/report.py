# SPDX-License-Identifier: GPL-3.0-or-later
"""validate's reports: ``validation.json``, the ``validation.txt`` table, manifest entries and
the progress line, all from the typed model of :mod:`dataset.documents.validation`. A cell reads
``n/c`` where a check could not tell (the message says why); a sequence validate broke on reads
``COULD NOT CHECK`` with the error."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from ...errors import DatasetForgeError
from ...text import bar, eta, format_duration
from ..documents import manifest as manifest_doc
from ..documents.base import DocumentError, JSONObject
from ..documents.validation import (
    NOT_CHECKED,
    SequenceVerdict,
    SequenceVerdictDict,
    ValidationReport,
    ValidationReportDict,
)
from ..layout import MANIFEST
from ..lock import FolderBusy, FolderLock
from ..transforms import write_json_atomic, write_text_atomic

REPORT_JSON = "validation.json"
REPORT_TXT = "validation.txt"
CHECKS = ("schema", "frame_count", "files", "objects", "camera_cuts", "flow_rigid", "flow_cycle",
          "intrinsics", "normals", "segmentation_ids", "coverage", "stereo",
          "trajectory")
HEADS = {"frame_count": "count", "camera_cuts": "cuts", "flow_rigid": "rigid", "flow_cycle": "cycle",
         "segmentation_ids": "ids", "coverage": "cover", "intrinsics": "K",
         "trajectory": "path"}


def verdict(rel: str, r: SequenceVerdictDict) -> str:
    """One line per sequence for the progress output."""
    if r.get("error"):
        return f"{rel}: COULD NOT CHECK ({r['error'].removeprefix('could not check: ')})"
    return f"{rel}: " + ("OK" if r["ok"] else "FAILED " + ", ".join(r["failed"]))


def progress_bar(done: int, total: int, t0: float, label: str = "", width: int = 20) -> str:
    """``[######----] 3/10  0:12 elapsed, ETA 0:28  label`` (``t0``: ``time.monotonic()`` at start)."""
    el = time.monotonic() - t0
    return (f"{bar(done / total if total else 1.0, width)} {done}/{total}  "
            f"{format_duration(el)} elapsed, ETA {format_duration(eta(el, done, total))}  "
            f"{label}").rstrip()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_report(plan, t, results: list[SequenceVerdictDict], seconds: float,
                 allow_incomplete: bool = False) -> ValidationReport:
    """The report of ``plan`` (:class:`~.plan.ValidationPlan`) from the sequences' verdicts (in
    the plan's order) under thresholds ``t``; an incomplete dataset is not ok unless
    ``allow_incomplete``."""
    seqs = [_verdict_model(r) for r in results]
    ok = all(s.ok and not s.error for s in seqs) and (allow_incomplete or not plan.incomplete)
    return ValidationReport(ok=ok, path=str(plan.root), checked=now(), seconds=round(seconds, 3),
                            thresholds=asdict(t), sequences=seqs, notes=list(plan.notes),
                            incomplete=list(plan.incomplete))


def _verdict_model(r: SequenceVerdictDict) -> SequenceVerdict:
    """The typed verdict of ``r``; a verdict validate built wrongly is that sequence's "could not
    check" (never an abort of the whole report)."""
    try:
        return SequenceVerdict.from_dict(r, f"verdict of {r.get('path')}")
    except DocumentError as exc:
        return SequenceVerdict(path=str(r.get("path")), ok=False, error=f"could not check: {exc}")


def write_report(report: ValidationReport | ValidationReportDict, folder: str | os.PathLike
                 ) -> tuple[Path, Path]:
    """Write ``validation.json`` and ``validation.txt`` (the table) into ``folder``."""
    if isinstance(report, dict):
        report = ValidationReport.from_dict(report)
    folder = Path(folder)
    j = folder / REPORT_JSON
    write_json_atomic(j, report.to_dict())
    txt = folder / REPORT_TXT
    write_text_atomic(txt, format_report(report) + "\n")
    return j, txt


def record_in_manifest(plan, report: ValidationReport, say=None) -> None:
    """Record every verdict in the manifest of ``plan``'s datasets folder, under its lock (the
    manifest's owner is the run that holds the folder: never overwrite its manifest; the report
    then says so)."""
    try:
        with FolderLock(plan.manifest_root):
            update_manifest_file(plan.manifest_root / MANIFEST, report,
                                 {q.rel: q.manifest_rel for q in plan.targets if q.manifest_rel},
                                 summary=plan.dataset)
    except FolderBusy as exc:
        report.manifest_not_updated = (f"{plan.manifest_root / MANIFEST} not updated: {exc}; "
                                       "validate again once it finishes")
        if say:
            say(report.manifest_not_updated)


def update_manifest_file(manifest_path: str | os.PathLike, report: ValidationReport | ValidationReportDict,
                         paths: dict[str, str] | None = None, summary: bool = True) -> None:
    """Set ``"validation"`` on every sequence of ``manifest.json`` that the report covers (other
    keys untouched) and, with ``summary``, a top-level ``"validation"``; atomic rewrite.
    ``paths`` maps the report's sequence paths to the manifest's (default: the same). The one
    writer of validate's manifest entries (the manifest's models ``SequenceValidation`` and
    ``ValidationSummary``)."""
    if isinstance(report, dict):
        report = ValidationReport.from_dict(report)
    p = Path(manifest_path)
    try:
        doc = manifest_doc.read(p)
    except (OSError, DatasetForgeError):
        return
    if doc is None:
        return
    paths = paths or {}
    by_path = {paths.get(v.path, v.path): v for v in report.sequences}
    for path, q in doc.sequences().items():
        v = by_path.get(path)
        if v is not None:
            q.validation = v.manifest_entry(report.checked, REPORT_JSON)
    if summary:
        doc.validation = manifest_doc.ValidationSummary(
            ok=report.ok, checked=report.checked, sequences=len(report.sequences),
            sequences_failed=len(report.failed), report=REPORT_JSON,
            sequences_not_checked=len(report.could_not_check) or None)
    doc.write(p)


def _cell(name: str, c: JSONObject | None) -> str:
    if not c or c.get("ok") is None:
        return "n/c"
    mark = "" if c["ok"] else "!"
    if name in ("flow_rigid", "flow_cycle") and c.get("worst_px") is not None:
        return f"{mark}{c['worst_px']:.2g}px"
    if name == "normals" and c.get("median_deg") is not None:
        return f"{mark}{c['median_deg']:.2g}°"
    return "ok" if c["ok"] else "FAIL"


def _row(s: SequenceVerdict) -> list[str]:
    checks = {k: c.to_dict() for k, c in s.checks.items()}
    result = {"passed": "OK", "failed": "FAILED", NOT_CHECKED: "COULD NOT CHECK"}[s.status]
    return [s.path, str(s.frames if s.frames is not None else "?"),
            *[_cell(c, checks.get(c)) for c in CHECKS], result]


def _detail_lines(s: SequenceVerdict) -> list[str]:
    """The ``FAILED`` and ``not checked`` lines of one sequence."""
    if s.error:
        return [f"COULD NOT CHECK {s.path}: {s.error.removeprefix('could not check: ')}"]
    lines = [f"FAILED {s.path}: {k}: {s.checks[k].message}" for k in s.failed]
    if s.failed == ["schema"]:
        return lines
    for k in CHECKS:
        c = s.checks.get(k)
        if c and c.ok is None and c.message and not c.message.startswith("not needed"):
            lines.append(f"not checked {s.path}: {k}: {c.message.removeprefix('not checked: ')}")
    return lines


def format_report(report: ValidationReport | ValidationReportDict) -> str:
    """The report as a fixed-width table (one row per sequence) plus one line per failure."""
    if isinstance(report, dict):
        report = ValidationReport.from_dict(report)
    rows = [["sequence", "frames", *[HEADS.get(c, c) for c in CHECKS], "result"]]
    rows += [_row(s) for s in report.sequences]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    details = [line for s in report.sequences for line in _detail_lines(s)]
    lines += sorted(details, key=lambda line: not line.startswith(("FAILED", "COULD")))
    lines += report.notes
    lines += [f"INCOMPLETE  {line}" for line in report.incomplete]
    if report.manifest_not_updated:
        lines.append(report.manifest_not_updated)
    n, nf, nc = len(report.sequences), len(report.failed), len(report.could_not_check)
    lines.append(f"{n - nf - nc}/{n} sequence(s) passed" + (f", {nf} failed" if nf else "")
                 + (f", {nc} could not be checked" if nc else "") + f" ({report.seconds:.1f} s)")
    return "\n".join(lines)
