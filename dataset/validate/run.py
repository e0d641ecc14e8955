# SPDX-License-Identifier: GPL-3.0-or-later
"""Run validate over a sequence or a datasets folder (see the package docstring): the plan
(:mod:`.plan`: which sequences), the judging of each (never raising: a sequence validate breaks
on gets the verdict "could not check"), and the report (:mod:`.report`)."""

from __future__ import annotations

import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..documents.base import JSONObject
from ..documents.validation import SequenceVerdictDict, ValidationReportDict
from ..loader import DatasetError, Sequence
from ..verify import journal_digest
from . import stereo
from .files import FileCheck, frame_count, schema
from .flow import FlowStats
from .frames import FrameStats
from .plan import Target, ValidationPlan, plan
from .report import CHECKS, build_report, progress_bar, record_in_manifest, verdict, write_report
from .things import ThingMap, load_frame
from .thresholds import Thresholds
from .thresholds import check as _check
from .trajectory import trajectory


class _Geometry:
    """The geometric checks of one sequence, fed frame by frame (two frames in memory)."""

    def __init__(self, seq: Sequence, t: Thresholds, stride: int):
        self.seq, self.stride = seq, stride
        self.has_flow = "flow" in seq.kinds
        self.err: DatasetError | None = None
        self.prev = None
        try:
            self.things = ThingMap(seq.objects)
            self.fstats = FrameStats(seq, t, self.things)
            self.flow = FlowStats(t, self.things)
        except DatasetError as exc:
            self.err = exc

    def frame(self, i: int, decoded: dict) -> None:
        if self.err is not None:
            return
        seq, stride, prev = self.seq, self.stride, self.prev
        pair_with_prev = (prev is not None and prev.index == i - 1
                          and seq.frame_numbers[i] == seq.frame_numbers[i - 1] + 1)
        if not (i % stride == 0 or (i - 1) % stride == 0):
            self.prev = None
            return
        try:
            cur = load_frame(seq, i, decoded, self.things, want_flow=self.has_flow)
            if i % stride == 0:
                self.fstats.frame(cur)
            if pair_with_prev and (i - 1) % stride == 0:
                self.flow.pair(seq, prev, cur)
        except DatasetError as exc:
            self.err = exc
            return
        self.prev = cur

    def results(self) -> dict[str, JSONObject]:
        if self.err is not None:
            return {}
        out = self.fstats.results()
        out.update(self.flow.results(self.has_flow))
        return out


def _frames(seq: Sequence, geometry: bool, t: Thresholds, stride: int, progress
            ) -> tuple[JSONObject, dict[str, JSONObject], DatasetError | None]:
    """One pass over the frames: the ``files`` check on every frame and, when ``geometry``,
    every geometric check on the EXR channels the files check decoded (each file read once).
    Returns the files check, the geometric checks and the error that stopped them (objects.json
    malformed or pointing outside), if any."""
    fc = FileCheck(seq)
    geo = _Geometry(seq, t, stride) if geometry else None
    last = time.monotonic()
    for i in range(len(seq)):
        decoded = fc.frame(i)
        if geo is not None:
            geo.frame(i, decoded)
        if progress and time.monotonic() - last > 2.0:
            progress(f"{seq.path.name}: frame {i + 1}/{len(seq)}")
            last = time.monotonic()
    if geo is None:
        return fc.result()[0], {}, None
    return fc.result()[0], geo.results(), geo.err


def validate_sequence(path: str | os.PathLike | Sequence, thresholds: Thresholds | None = None, *,
                      stride: int = 1, manifest_frames: int | None = None,
                      manifest_problem: str | None = None, progress=None) -> SequenceVerdictDict:
    """Validate one sequence folder (or an already loaded :class:`Sequence`); returns ``{"path",
    "ok", "checks": {name: check}, ...}``. ``stride``: check geometry on every ``stride``-th frame
    (pair) only. ``manifest_frames`` / ``manifest_problem``: what the datasets folder's manifest
    says of it (its frame count; why it is not part of the dataset, which fails ``frame_count``).
    A bug of validate's raises (:func:`judge` turns it into a verdict)."""
    t = thresholds or Thresholds()
    t0 = time.monotonic()
    loaded = path if isinstance(path, Sequence) else None
    path = loaded.path if loaded is not None else Path(path)
    # the frames this verdict is about: a render run keeps the manifest's verdict only while the
    # journal is still this one
    rep: SequenceVerdictDict = {"path": str(path), "ok": False, "checks": {},
                           "journal_sha256": journal_digest(path)}
    try:
        seq = loaded if loaded is not None else Sequence(path)
    except (DatasetError, OSError) as exc:
        rep["checks"]["schema"] = _check(False, str(exc))
        rep["failed"] = ["schema"]
        return rep
    rep.update(sequence_id=seq.id, frames=len(seq), kinds=list(seq.kinds))
    checks = rep["checks"]
    try:
        checks["schema"] = schema(seq)
    except (DatasetError, ValueError, TypeError) as exc:
        checks["schema"] = _check(False, str(exc))
    checks["frame_count"] = frame_count(seq, manifest_frames, manifest_problem)
    schema_ok = bool(checks["schema"]["ok"])
    checks["files"], geometric, err = _frames(seq, schema_ok, t, max(1, stride), progress)
    checks.update(geometric)
    if schema_ok:
        checks["stereo"] = stereo.check(seq, t, lambda right: validate_sequence(right, t, stride=stride))
        checks["trajectory"] = trajectory(seq)
    if err is not None:  # objects.json malformed or pointing outside
        checks["objects"] = _check(False, str(err))
    skipped = "skipped: schema check failed" if not schema_ok else "skipped: objects.json unusable"
    for name in CHECKS[3:]:
        checks.setdefault(name, _check(None, skipped))
    rep["failed"] = [k for k in CHECKS if checks.get(k, {}).get("ok") is False]
    rep["not_checked"] = {k: checks[k]["message"] for k in CHECKS if checks.get(k, {}).get("ok") is None}
    rep["ok"] = not rep["failed"]
    rep["seconds"] = round(time.monotonic() - t0, 3)
    return rep


def could_not_check(path: Path, exc: BaseException) -> SequenceVerdictDict:
    """The verdict of a sequence validate broke on: nothing judged, the error and where it was
    raised (file:line of validate's code) so that it can be reported."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    first = (str(exc).strip().splitlines() or [""])[0]
    return {"path": str(path), "ok": False, "checks": {}, "failed": [], "not_checked": {},
            "error": f"could not check: {type(exc).__name__}: {first}{where}",
            "journal_sha256": None}


def judge(target: Target, t: Thresholds, stride: int = 1, loaded: Sequence | None = None,
          progress=None) -> SequenceVerdictDict:
    """:func:`validate_sequence` of ``target``, never raising (but on Ctrl-C): an error of
    validate's own becomes the verdict :func:`could_not_check`."""
    try:
        r = validate_sequence(loaded if loaded is not None else target.path, t, stride=stride,
                              manifest_frames=target.manifest_frames,
                              manifest_problem=target.manifest_problem, progress=progress)
    except Exception as exc:  # noqa: BLE001 - one sequence's verdict, the rest go on
        r = could_not_check(target.path, exc)
    r["path"] = target.rel
    return r


def _judge_all(p: ValidationPlan, t: Thresholds, jobs: int, stride: int, say) -> list[SequenceVerdictDict]:
    """Every target's verdict, in the plan's order; ``jobs`` > 1: in parallel (processes; threads
    inside Blender, where forking the bpy process is unsafe and numpy releases the GIL)."""
    results: dict[int, SequenceVerdictDict] = {}
    t0 = time.monotonic()
    n = len(p.targets)

    def done(k: int, r: SequenceVerdictDict) -> None:
        results[k] = r
        if say:
            say(progress_bar(len(results), n, t0, verdict(r["path"], r)))
    if jobs > 1 and n > 1:
        pool = ThreadPoolExecutor if "bpy" in sys.modules else ProcessPoolExecutor
        with pool(max_workers=jobs) as ex:
            futs = {ex.submit(judge, q, t, stride): k for k, q in enumerate(p.targets)}
            for fut in as_completed(futs):
                k = futs[fut]
                try:
                    r = fut.result()
                except Exception as exc:  # noqa: BLE001 - a worker process died (BrokenProcessPool)
                    r = could_not_check(p.targets[k].path, exc)
                    r["path"] = p.targets[k].rel
                done(k, r)
    else:
        for k, q in enumerate(p.targets):
            done(k, judge(q, t, stride, p.loaded if q.path == p.root else None, say))
    return [results[k] for k in range(n)]


def thresholds_with(thresholds: Thresholds | None, limits: dict[str, float]) -> Thresholds:
    """``thresholds`` (default :class:`Thresholds`) with keyword overrides; an unknown name is a
    ``TypeError`` listing the known ones."""
    t = thresholds or Thresholds()
    if not limits:
        return t
    names = {f.name for f in fields(Thresholds)}
    unknown = set(limits) - names
    if unknown:
        raise TypeError(f"unknown threshold(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(names))}")
    return Thresholds(**{**asdict(t), **limits})


def validate(path: str | os.PathLike, *, jobs: int = 1, thresholds: Thresholds | None = None,
             stride: int = 1, write: bool = True, update_manifest: bool = True,
             progress: bool | Any = False, allow_incomplete: bool = False,
             **limits: float) -> ValidationReportDict:
    """Validate a sequence folder or every sequence of a datasets folder.

    ``jobs``: sequences checked in parallel (processes). Threshold overrides can be passed as
    keywords (``flow_px=0.1``) or as a :class:`Thresholds`. ``write``: also write
    ``validation.json`` / ``validation.txt`` into ``path``. ``update_manifest``: record each
    sequence's result in the datasets folder's ``manifest.json`` (when there is one).
    ``progress``: True prints to stderr, or a callable taking one line. Returns the report
    (:class:`~dataset_forge.dataset.documents.validation.ValidationReport` as a dict: ``{"ok",
    "path", "thresholds", "sequences": [...], "failed": [...], "could_not_check": [...],
    "exit_code", "incomplete"}``; ``incomplete``: why the dataset is not complete,
    :mod:`dataset.completeness`, which fails the report unless ``allow_incomplete``). Raises
    :class:`DatasetError` when ``path`` is neither a sequence nor a datasets folder; a sequence
    validate breaks on is reported, never raised.
    """
    t = thresholds_with(thresholds, limits)
    say = (lambda line: print(f"validate: {line}", file=sys.stderr, flush=True)) if progress is True \
        else (progress or None)
    p = plan(path)
    t0 = time.monotonic()
    report = build_report(p, t, _judge_all(p, t, jobs, stride, say), time.monotonic() - t0,
                          allow_incomplete)
    if update_manifest and p.manifest is not None:
        record_in_manifest(p, report, say)
    if write:
        write_report(report, p.root)
    return report.to_dict()
