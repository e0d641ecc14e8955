# SPDX-License-Identifier: GPL-3.0-or-later
"""What validate checks: the sequences below a path and what the datasets folder's manifest says
of each (:func:`plan`). Nothing is judged here and nothing is written."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..completeness import assess
from ..documents.base import JSONObject
from ..layout import MANIFEST, TRANSFORMS
from ..loader import Dataset, DatasetError, Sequence, load, manifest_problem, manifest_sequences


@dataclass
class Target:
    """One sequence folder to judge. ``rel``: its path in the report (relative to the validated
    folder, "." for the folder itself); ``manifest_rel``: its path in the manifest (None: no
    manifest describes it); ``manifest_frames`` / ``manifest_problem``: what the manifest says of it
    (its frame count; why it is not part of the dataset)."""

    path: Path
    rel: str
    manifest_rel: str | None = None
    manifest_frames: int | None = None
    manifest_problem: str | None = None


@dataclass
class ValidationPlan:
    """Everything validate will look at. ``root``: the validated folder, absolute (a relative
    path is taken from the current directory once, here); ``loaded``: the sequence already read
    when ``root`` is a sequence folder (not read twice); ``manifest_root`` / ``manifest``: the
    datasets folder whose ``manifest.json`` describes the targets, if any; ``dataset``: ``root``
    is that datasets folder (the manifest then gets the top-level summary too); ``notes``: lines
    the report prints as they are; ``incomplete``: from :func:`completeness`."""

    root: Path
    targets: list[Target]
    loaded: Sequence | None = None
    manifest_root: Path | None = None
    manifest: JSONObject | None = None
    dataset: bool = False
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # why the dataset is not complete


def plan(path: str | os.PathLike) -> ValidationPlan:
    """The sequences of ``path`` (a sequence folder, its ``transforms.json`` or a datasets
    folder). Raises :class:`DatasetError` (one line naming the path) when ``path`` is neither."""
    root = Path(os.path.abspath(path))
    if root.is_file() and root.name == TRANSFORMS:
        root = root.parent
    try:
        src: Sequence | Dataset | None = load(root)
    except DatasetError:
        if not (root / TRANSFORMS).is_file():
            raise
        src = None  # a sequence folder that does not load: validate_sequence reports why
    if isinstance(src, Dataset):
        p = ValidationPlan(root=root, targets=[], manifest_root=root, manifest=src.manifest, dataset=True)
        # sequences on disk the manifest does not count as complete fail frame_count (the loader
        # skips them); those it promises but that have no transforms.json fail as such
        paths = sorted(list(src.sequence_paths) + list(src.skipped))
    else:
        mroot, manifest = _manifest_above(root)
        p = ValidationPlan(root=root, targets=[], loaded=src, manifest_root=mroot, manifest=manifest)
        paths = [root]
    listed = manifest_sequences(p.manifest)
    if p.dataset:
        paths += [root / q for q in (listed or {}) if (root / q) not in paths]
    p.targets = [_target(q, p, listed) for q in paths]
    completeness(p)
    return p


def _target(path: Path, p: ValidationPlan, listed: dict[str, JSONObject] | None) -> Target:
    rel = path.relative_to(p.root).as_posix() if path != p.root else "."
    if p.manifest_root is None:
        return Target(path, rel)
    mrel = _relative(path, p.manifest_root)
    entry = (listed or {}).get(mrel) or {}
    frames = int(entry["num_frames"]) if "num_frames" in entry else None
    return Target(path, rel, mrel, frames, manifest_problem(listed, mrel))


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, through links if it must be."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.resolve().relative_to(root.resolve()).as_posix()


def completeness(p: ValidationPlan) -> None:
    """Honest completeness (:func:`dataset.completeness.assess`): planned sequences that are not
    on disk become targets (they fail as missing), and ``incomplete`` says why the dataset is not
    complete (missing or unfinished sequences, a run writing it)."""
    gaps = assess(p.root)
    if p.dataset and gaps.root == p.root.resolve():
        known = {t.path for t in p.targets}
        listed = manifest_sequences(p.manifest)
        p.targets += [_target(p.root / q, p, listed) for q in gaps.missing
                      if (p.root / q) not in known]
    p.incomplete = [] if gaps.complete else gaps.lines()


def _manifest_above(seq: Path) -> tuple[Path | None, JSONObject | None]:
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
