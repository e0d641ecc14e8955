# SPDX-License-Identifier: GPL-3.0-or-later
"""Is a datasets folder (or a sequence folder) complete: every sequence its plan promised there,
and no run writing it now? Pure Python.

``validate`` and ``export`` ask :func:`assess` before they call a dataset good or complete: a run
killed before its first manifest, or one still rendering, leaves folders that pass every check of
their own while sequences of the plan (``DATASETS/plan.json``, written before anything renders)
are missing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from . import layout
from .documents import plan as plan_doc
from .documents.base import DocumentError
from .journal import Journal
from .lock import holder

PLAN = plan_doc.NAME  # DATASETS/plan.json


class CompletenessDict(TypedDict):
    """What ``--json`` and the reports show of a :class:`Completeness`."""

    complete: bool
    planned: int
    missing: list[str]
    running: str | None
    reasons: list[str]


@dataclass(frozen=True)
class Completeness:
    """What :func:`assess` found. ``planned``: sequences the plan promises (relative paths under
    the datasets folder); ``missing``: those of them not complete on disk (no ``transforms.json``
    or frames not journaled); ``running``: the pid of a run writing the folder now, or None;
    ``problems``: why the plan could not be read, if it could not; ``unfinished``: those of
    ``missing`` that have a ``transforms.json`` but frames the journal does not vouch for."""

    root: Path
    planned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    running: str | None = None
    problems: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # of ``missing``: folder there, frames not

    @property
    def complete(self) -> bool:
        return not self.missing and self.running is None and not self.problems

    def lines(self) -> list[str]:
        """One line per reason the folder is not complete (empty when it is)."""
        out = []
        if self.running is not None:
            out.append(f"a run is writing this dataset ({self.root}, pid {self.running}): its "
                       "sequences are not finished; check again once it ends")
        absent = [q for q in self.missing if q not in self.unfinished]
        for what, seqs in (("missing", absent), ("not finished (frames not journaled)",
                                                   self.unfinished)):
            if seqs:
                out.append(f"{len(seqs)} of {len(self.planned)} planned sequences {what} "
                           f"({', '.join(seqs[:3])}{' ...' if len(seqs) > 3 else ''}; plan: "
                           f"{self.root / PLAN}): rerun create-datasets to render them")
        out += self.problems
        return out

    def to_dict(self) -> CompletenessDict:
        return {"complete": self.complete, "planned": len(self.planned),
                "missing": list(self.missing), "running": self.running,
                "reasons": self.lines()}


def _sequence_state(seq: Path, a: int, b: int) -> str:
    """``complete``, ``missing`` (no ``transforms.json``) or ``unfinished`` (frames ``a..b`` not
    all journaled with their files intact)."""
    if not (seq / layout.TRANSFORMS).is_file():
        return "missing"
    j = Journal(seq)
    return "complete" if all(j.is_done(f) for f in range(a, b + 1)) else "unfinished"


def datasets_root(path: str | os.PathLike) -> Path | None:
    """The datasets folder ``path`` is (it holds ``plan.json``) or lies in (a sequence folder
    ``renders/SCENE/SEQ``), or None."""
    p = Path(path).resolve()
    for up in [p, *list(p.parents)[:3]]:
        if (up / PLAN).is_file():
            return up
    return None


def assess(path: str | os.PathLike) -> Completeness:
    """The completeness of datasets folder or sequence folder ``path`` (see :class:`Completeness`);
    a folder without a plan is judged by its lock alone."""
    p = Path(path).resolve()
    root = datasets_root(p)
    running = holder(p) or (holder(root) if root is not None else None)
    if root is None:
        return Completeness(p, running=running)
    try:
        plan = plan_doc.read(root / PLAN)
        base = Path(plan.datasets_dir)
        specs = [(Path(q["out_dir"]), q["frame_start"], q["frame_end"])
                 for j in plan.jobs for q in j.sequences]
    except DocumentError as exc:
        return Completeness(root, running=running,
                            problems=[f"{root / PLAN} cannot be read ({exc}); rerun create-datasets "
                                      "to write it again"])
    planned, missing, unfinished = [], [], []
    for out, a, b in specs:
        try:
            rel = out.relative_to(base).as_posix()
        except ValueError:
            rel = out.as_posix()
        seq = root / rel
        if p != root and seq.resolve() != p:
            continue  # a sequence folder: only its own plan entry counts
        planned.append(rel)
        state = _sequence_state(seq, a, b)
        if state != "complete":
            missing.append(rel)
        if state == "unfinished":
            unfinished.append(rel)
    return Completeness(root, planned, missing, running, unfinished=unfinished)
