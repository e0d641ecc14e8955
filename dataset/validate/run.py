# SPDX-License-Identifier: GPL-3.0-or-later
"""Run validate over a sequence or a datasets folder (see the package docstring)."""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..layout import MANIFEST, TRANSFORMS
from ..loader import Dataset, DatasetError, Sequence, load, manifest_problem, manifest_sequences
from ..lock import FolderBusy, FolderLock
from ..verify import journal_digest
from .files import FileCheck, frame_count, schema
from .flow import FlowStats
from .frames import FrameStats
from .report import CHECKS, now, progress_bar, update_manifest_file, verdict, write_report
from .things import ThingMap, load_frame
from .thresholds import Thresholds
from .thresholds import check as _check
from .trajectory import trajectory


def _frames(seq: Sequence, geometry: bool, t: Thresholds, stride: int, progress
            ) -> tuple[dict[str, Any], dict[str, dict[str, Any]], DatasetError | None]:
    """One pass over the frames: the ``files`` check on every frame and, when ``geometry``,
    every geometric check on the EXR channels the files check decoded (each file read once, two
    frames in memory at a time). Returns the files check, the geometric checks and the error
    that stopped them (objects.json malformed or pointing outside), if any."""
    fc = FileCheck(seq)
    n = len(seq)
    has_flow = "flow" in seq.kinds
    err: DatasetError | None = None
    if geometry:
        try:
            things = ThingMap(seq.objects)
            fstats = FrameStats(seq, t, things)
            flow = FlowStats(t, things)
        except DatasetError as exc:
            err = exc
    last = time.monotonic()
    prev = None
    for i in range(n):
        decoded = fc.frame(i)
        if not geometry or err is not None:
            continue
        pair_with_prev = (prev is not None and prev.index == i - 1
                          and seq.frame_numbers[i] == seq.frame_numbers[i - 1] + 1)
        need = i % stride == 0 or (i - 1) % stride == 0
        if not need:
            prev = None
            continue
        try:
            cur = load_frame(seq, i, decoded, things, want_flow=has_flow)
            if i % stride == 0:
                fstats.frame(cur)
            if pair_with_prev and (i - 1) % stride == 0:
                flow.pair(seq, prev, cur)
        except DatasetError as exc:
            err = exc
            continue
        prev = cur
        if progress and time.monotonic() - last > 2.0:
            progress(f"{seq.path.name}: frame {i + 1}/{n}")
            last = time.monotonic()
    out: dict[str, dict[str, Any]] = {}
    if geometry and err is None:
        out = fstats.results()
        out.update(flow.results(has_flow))
    return fc.result()[0], out, err


def validate_sequence(path: str | os.PathLike | Sequence, thresholds: Thresholds | None = None, *,
                      stride: int = 1, manifest_frames: int | None = None,
                      manifest_problem: str | None = None, progress=None) -> dict[str, Any]:
    """Validate one sequence folder (or an already loaded :class:`Sequence`); returns ``{"path",
    "ok", "checks": {name: check}, ...}``. ``stride``: check geometry on every ``stride``-th frame
    (pair) only. ``manifest_frames`` / ``manifest_problem``: what the datasets folder's manifest
    says of it (its frame count; why it is not part of the dataset, which fails ``frame_count``)."""
    t = thresholds or Thresholds()
    t0 = time.monotonic()
    loaded = path if isinstance(path, Sequence) else None
    path = loaded.path if loaded is not None else Path(path)
    # the frames this verdict is about: a render run keeps the manifest's verdict only while the
    # journal is still this one
    rep: dict[str, Any] = {"path": str(path), "ok": False, "checks": {},
                           "journal_sha256": journal_digest(path)}
    try:
        seq = loaded if loaded is not None else Sequence(path)
    except (DatasetError, OSError) as exc:
        rep["checks"]["schema"] = _check(False, str(exc))
        rep["failed"] = ["schema"]
        return rep
    rep["sequence_id"] = seq.id
    rep["frames"] = len(seq)
    rep["kinds"] = list(seq.kinds)
    checks = rep["checks"]
    try:
        checks["schema"] = schema(seq)
    except (DatasetError, ValueError, TypeError) as exc:
        checks["schema"] = _check(False, str(exc))
    checks["frame_count"] = frame_count(seq, manifest_frames, manifest_problem)
    checks["files"], geometric, err = _frames(seq, bool(checks["schema"]["ok"]), t, max(1, stride),
                                              progress)
    if checks["schema"]["ok"]:
        checks.update(geometric)
        checks["trajectory"] = trajectory(seq)
        if err is not None:  # objects.json malformed or pointing outside
            checks["objects"] = _check(False, str(err))
            for name in CHECKS[3:]:
                checks.setdefault(name, _check(None, "skipped: objects.json unusable"))
    else:
        for name in CHECKS[3:]:
            checks[name] = _check(None, "skipped: schema check failed")
    rep["failed"] = [k for k in CHECKS if checks.get(k, {}).get("ok") is False]
    rep["not_checked"] = {k: checks[k]["message"] for k in CHECKS if checks.get(k, {}).get("ok") is None}
    rep["ok"] = not rep["failed"]
    rep["seconds"] = round(time.monotonic() - t0, 3)
    return rep


# --- datasets, reports, manifest ---------------------------------------------------------

def _manifest_frames(listed: dict[str, dict[str, Any]] | None) -> dict[str, int]:
    return {k: int(q["num_frames"]) for k, q in (listed or {}).items() if "num_frames" in q}


def validate(path: str | os.PathLike, *, jobs: int = 1, thresholds: Thresholds | None = None,
             stride: int = 1, write: bool = True, update_manifest: bool = True,
             progress: bool | Any = False, **limits: float) -> dict[str, Any]:
    """Validate a sequence folder or every sequence of a datasets folder.

    ``jobs``: sequences checked in parallel (processes). Threshold overrides can be passed as
    keywords (``flow_px=0.1``) or as a :class:`Thresholds`. ``write``: also write
    ``validation.json`` / ``validation.txt`` into ``path``. ``update_manifest``: record each
    sequence's result in ``path/manifest.json`` (when it exists). ``progress``: True prints to
    stderr, or a callable taking one line. Returns ``{"ok", "path", "thresholds", "sequences": [...],
    "failed": [...]}`` (``failed``: relative paths of failing sequences).
    """
    t = thresholds or Thresholds()
    if limits:
        names = {f.name for f in fields(Thresholds)}
        unknown = set(limits) - names
        if unknown:
            raise TypeError(f"unknown threshold(s) {', '.join(sorted(unknown))}; "
                            f"use {', '.join(sorted(names))}")
        t = Thresholds(**{**asdict(t), **limits})
    say = (lambda line: print(f"validate: {line}", file=sys.stderr, flush=True)) if progress is True \
        else (progress or None)
    root = Path(path)
    if root.is_file() and root.name == TRANSFORMS:
        root = root.parent
    try:
        src: Sequence | Dataset | None = load(root)
    except DatasetError:
        if not (root / TRANSFORMS).is_file():
            raise
        src = None  # a sequence folder that does not load: validate_sequence reports why
    if isinstance(src, Dataset):
        seq_paths, manifest_root, manifest = list(src.sequence_paths), root, src.manifest
    else:
        seq_paths, (manifest_root, manifest) = [root], _manifest_above(root)
    listed_seqs = manifest_sequences(manifest)
    listed = _manifest_frames(listed_seqs)
    if isinstance(src, Dataset):
        # sequences on disk the manifest does not count as complete fail frame_count (the loader
        # skips them); those it promises but that have no transforms.json fail as such
        seq_paths = sorted(seq_paths + list(src.skipped))
        seq_paths += [root / q for q in listed if (root / q) not in seq_paths]
    rel = {p: (p.relative_to(root).as_posix() if p != root else ".") for p in seq_paths}
    mrel = {p: p.relative_to(manifest_root).as_posix() for p in seq_paths} if manifest_root else {}
    mframes = {p: listed.get(mrel.get(p, ""), None) for p in seq_paths}
    mprob = {p: manifest_problem(listed_seqs, mrel[p]) if p in mrel else None for p in seq_paths}
    results: dict[Path, dict[str, Any]] = {}
    t0 = time.monotonic()
    if jobs > 1 and len(seq_paths) > 1:
        # Inside Blender forking the bpy process is unsafe: threads there (numpy releases the GIL).
        pool = ThreadPoolExecutor if "bpy" in sys.modules else ProcessPoolExecutor
        with pool(max_workers=jobs) as ex:
            futs = {ex.submit(validate_sequence, p, t, stride=stride, manifest_frames=mframes[p],
                              manifest_problem=mprob[p]): p for p in seq_paths}
            for fut in as_completed(futs):
                p = futs[fut]
                results[p] = fut.result()
                if say:
                    say(progress_bar(len(results), len(seq_paths), t0, verdict(rel[p], results[p])))
    else:
        for p in seq_paths:
            # a sequence folder was loaded above already: validate that Sequence, not a second read
            results[p] = validate_sequence(src if isinstance(src, Sequence) else p, t, stride=stride,
                                           manifest_frames=mframes[p],
                                           manifest_problem=mprob[p], progress=say)
            if say:
                say(progress_bar(len(results), len(seq_paths), t0, verdict(rel[p], results[p])))
    seqs = []
    for p in seq_paths:
        r = results[p]
        r["path"] = rel[p]
        seqs.append(r)
    report = {"ok": all(r["ok"] for r in seqs), "path": str(root), "checked": now(),
              "seconds": round(time.monotonic() - t0, 3), "thresholds": asdict(t),
              "sequences": seqs, "failed": [r["path"] for r in seqs if not r["ok"]]}
    if update_manifest and manifest is not None:
        try:  # the manifest's owner is the run that holds the folder: never overwrite its manifest
            with FolderLock(manifest_root):
                update_manifest_file(manifest_root / MANIFEST, report, {rel[p]: mrel[p] for p in seq_paths},
                                     summary=isinstance(src, Dataset))
        except FolderBusy as exc:
            report["manifest_not_updated"] = (f"{manifest_root / MANIFEST} not updated: {exc}; "
                                              "validate again once it finishes")
            if say:
                say(report["manifest_not_updated"])
    if write:
        write_report(report, root)
    return report


def _manifest_above(seq: Path) -> tuple[Path | None, dict[str, Any] | None]:
    """The datasets folder above sequence folder ``seq`` (renders/SCENE/SEQ) whose Dataset Forge
    manifest.json describes it (listed or not: an unlisted folder is not part of the dataset),
    and that manifest; ``(None, None)`` when there is none."""
    for up in list(seq.resolve().parents)[:3]:
        m = up / MANIFEST
        if m.is_file():
            try:
                doc = json.loads(m.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None, None
            return (up, doc) if manifest_sequences(doc) is not None else (None, None)
    return None, None


