# SPDX-License-Identifier: GPL-3.0-or-later
"""From a folder of scenes to a plan of (scene, sequence) jobs; from the files on disk to the
manifest; from a summary to text. Pure Python.

:func:`build_plan` reads every scene (:mod:`engine.discovery`), samples its sequences
(:mod:`sampling`) and returns a JSON-able plan; nothing is written. A
:class:`session.RunSession` writes it to ``DATASETS/plan.json``, renders its jobs (one job per
scene: a worker opens each ``.blend`` once) and writes ``DATASETS/manifest.json`` with
:func:`write_manifest`. Scenes that cannot be rendered (unreadable file, no camera, a range too
short for the request ...) are recorded with their reason and never reach a worker; the other
scenes render.
"""

from __future__ import annotations

import os
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from ..dataset import layout
from ..dataset.documents import manifest as manifest_doc
from ..dataset.documents.manifest import SequenceEntry, SequenceValidation
from ..dataset.documents.plan import NAME as PLAN_NAME
from ..dataset.documents.plan import VERSION as PLAN_VERSION
from ..dataset.documents.plan import Plan, PlannedJob, PlannedScene, SceneFacts
from ..dataset.journal import Journal
from ..dataset.provenance import settings_match
from ..dataset.verify import journal_digest
from ..errors import DatasetForgeError
from ..sampling import SamplingError, sample_sequences, stretched_range
from ..sampling.trajectory import generated_timeline
from ..settings import Settings, SettingsDict, frame_range_problem
from ..version import __version__
from ..wire.protocol import SequenceSpec, Summary
from .discovery import SceneInfo, bind_scene_names, discover

MANIFEST_NAME = layout.MANIFEST


class PlanError(DatasetForgeError, RuntimeError):
    """The run cannot start (folder missing, not writable ...); one sentence with the fix."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_plan(scenes_dir: str | os.PathLike, datasets_dir: str | os.PathLike,
               settings: Settings, *, scenes: list[SceneInfo] | None = None) -> Plan:
    """The plan of a ``create_datasets`` run (``plan.json``'s model,
    :class:`dataset.documents.plan.Plan`; nothing is written here).

    ``scenes`` reuses an earlier :func:`discovery.discover` result (the panel's Scan). A scene
    that cannot render gets its reason (``error``); every other one a job of sampled sequences
    (``frame_start``..``frame_end`` inclusive, on the timeline stretched by the keyframe
    multiplier).
    """
    datasets = Path(datasets_dir).expanduser().resolve()
    infos = scenes if scenes is not None else discover(scenes_dir, settings)
    infos = bind_scene_names(infos, scenes_dir, datasets)  # a scene folder stays with its .blend
    m = settings.keyframe_multiplier
    plan_scenes: list[PlannedScene] = []
    jobs: list[PlannedJob] = []
    for info in infos:
        entry = PlannedScene(**{f.name: getattr(info, f.name) for f in fields(SceneFacts)})
        if info.error is None:
            try:
                first, last = info.frame_start, info.frame_end
                if settings.camera != "scene":  # a generated camera's time is the timeline
                    first, last = generated_timeline(first, last, settings.sequences_per_scene,
                                                     settings.num_frames, m, settings.min_gap)
                a, b = stretched_range(first, last, m)
                entry.stretched_range = [a, b]
                if frame_range_problem(a, b):
                    raise SamplingError(f"stretched to {a}..{b}: {frame_range_problem(a, b)}; "
                                        "choose a smaller keyframe_multiplier")
                seqs = sample_sequences(first, last,
                                        settings.sequences_per_scene, settings.num_frames or None,
                                        multiplier=m, strategy=settings.strategy,
                                        seed=settings.seed, min_gap=settings.min_gap,
                                        key=info.name)
            except SamplingError as exc:
                entry.error = (f"scene '{info.name}' ({Path(info.blend).name}, frames "
                                  f"{info.frame_start}..{info.frame_end}, keyframe_multiplier "
                                  f"{m:g}): {exc}")
            else:
                jobs.append(PlannedJob(info.name, info.blend, [SequenceSpec(
                    id=q.id, out_dir=str(datasets / layout.RENDERS / info.name / q.id),
                    frame_start=q.start, frame_end=q.end) for q in seqs]))
        plan_scenes.append(entry)
    return Plan(dataset_forge_version=__version__, created=_now(),
                scenes_dir=str(Path(scenes_dir).expanduser().resolve()),
                datasets_dir=str(datasets), seed=settings.seed, settings=settings.to_dict(),
                scenes=plan_scenes, jobs=jobs, version=PLAN_VERSION)


class SequenceState(NamedTuple):
    """What is on disk for one sequence: ``frames`` planned, ``frames_complete`` (journaled and
    intact), whether ``transforms.json`` exists, and whether all of it is there."""

    frames: int
    frames_complete: int
    transforms: bool
    complete: bool


def sequence_state(out_dir: str | os.PathLike, frame_start: int, frame_end: int,
                   settings: SettingsDict | None = None) -> SequenceState:
    """What is on disk for one sequence: frames whose journal entry and files are intact, and
    whether ``transforms.json`` exists. With ``settings``, frames recorded with other settings
    (``provenance.json``) count as not complete."""
    out = Path(out_dir)
    # a stereo pair (stereo_baseline > 0) is complete when both views are
    views = [out, out / layout.RIGHT_FOLDER] if (settings or {}).get("stereo_baseline") else [out]
    journals = [Journal(v) for v in views]
    complete = sum(1 for f in range(frame_start, frame_end + 1)
                   if all(j.is_done(f) for j in journals))
    if settings is not None and complete and not settings_match(out, settings):
        complete = 0
    n = frame_end - frame_start + 1
    has_transforms = all((v / layout.TRANSFORMS).is_file() for v in views) and (
        len(views) == 1 or (out / layout.STEREO).is_file())
    return SequenceState(n, complete, has_transforms, complete == n and has_transforms)


def frames_on_disk(plan: Plan) -> tuple[int, int]:
    """(complete frames, planned frames) of ``plan``, read from the sequences' journals: what a
    rerun will skip."""
    done = total = 0
    for job in plan.jobs:
        for q in job.sequences:
            st = sequence_state(q["out_dir"], q["frame_start"], q["frame_end"])
            done += st.frames_complete
            total += st.frames
    return done, total


def write_manifest(plan: Plan, summary: Summary | None = None) -> Path:
    """Rewrite ``DATASETS/manifest.json`` atomically from the plan and the files on disk: every
    scene with its status (and reason), every sequence with its frame counts and status. A
    sequence this run's ``summary`` reports failed (refused because its ``.blend``, Blender or
    scene changed, say) is never called complete, whatever its old frames look like: it gets
    its reason instead."""
    datasets = Path(plan.datasets_dir)
    run = (summary or {}).get("scenes", {})
    failed_now = {q.get("out_dir"): (q.get("reason") or "failed in the last run").splitlines()[0]
                  for sc in run.values() for q in sc.get("sequences", []) if q.get("status") == "failed"}
    jobs = {j.scene: j for j in plan.jobs}
    previous = _previous_validations(datasets / MANIFEST_NAME)
    doc = manifest_doc.Manifest(dataset_forge_version=__version__, updated=_now(), plan=PLAN_NAME,
                                settings=plan.settings, seed=plan.seed,
                                totals=manifest_doc.Totals(), scenes=[])
    for sc in plan.scenes:
        job = jobs.get(sc.name)
        seqs = [_sequence_entry(q, datasets, plan.settings, failed_now.get(q["out_dir"]), previous)
                for q in (job.sequences if job is not None else [])]
        complete = job is not None and all(q.complete for q in seqs)
        reason = sc.error or "; ".join(run.get(sc.name, {}).get("errors", [])) or None
        status = manifest_doc.COMPLETE if complete else (manifest_doc.FAILED if reason
                                                         else manifest_doc.INCOMPLETE)
        doc.scenes.append(manifest_doc.SceneEntry(
            name=sc.name, blend=sc.blend, status=status, reason=None if complete else reason,
            frame_start=sc.frame_start, frame_end=sc.frame_end, fps=sc.fps,
            camera=sc.camera, sequences=seqs))
        doc.totals.add_scene(doc.scenes[-1])
    path = datasets / MANIFEST_NAME
    doc.write(path)
    return path


def _sequence_entry(q: SequenceSpec, datasets: Path, settings: SettingsDict, failed: str | None,
                    previous: dict[str, tuple[SequenceValidation, float]]) -> SequenceEntry:
    """The manifest entry of planned sequence ``q`` from its files on disk; ``failed``: this
    run's reason when it failed; ``previous``: the validations of the manifest being replaced
    (kept while the sequence's frames are the ones validated)."""
    st = sequence_state(q["out_dir"], q["frame_start"], q["frame_end"], settings)
    done = st.complete and failed is None
    entry = SequenceEntry(id=q["id"], path=Path(q["out_dir"]).relative_to(datasets).as_posix(),
                          frame_start=q["frame_start"], frame_end=q["frame_end"],
                          num_frames=st.frames, frames_complete=st.frames_complete,
                          status=manifest_doc.COMPLETE if done else manifest_doc.INCOMPLETE,
                          reason=failed)
    kept = previous.get(entry.path)
    if kept is not None and failed is None and _unchanged_since(q["out_dir"], *kept):
        entry.validation = kept[0]
    return entry


def _previous_validations(manifest: Path) -> dict[str, tuple[SequenceValidation, float]]:
    """``{sequence path: (validation entry, manifest mtime)}`` from the manifest being replaced,
    so that a rerun keeps the validate results of sequences it did not touch."""
    try:
        doc = manifest_doc.read(manifest)
        mtime = manifest.stat().st_mtime
    except (OSError, DatasetForgeError):
        return {}
    if doc is None:
        return {}
    return {path: (q.validation, mtime) for path, q in doc.sequences().items()
            if q.validation is not None}


def _unchanged_since(seq_dir: str, validation: SequenceValidation, when: float) -> bool:
    """The sequence's frames are still the ones ``validation`` judged (a validated sequence that
    was re-rendered since must be validated again): its journal is byte for byte the one validate
    read (``journal_sha256``); for an entry without it, no frame was journaled after ``when``
    (the manifest's mtime, as coarse as the file system's clock)."""
    if validation.journal_sha256 is not None:
        return journal_digest(seq_dir) == validation.journal_sha256
    try:
        return (Path(seq_dir) / layout.JOURNAL).stat().st_mtime <= when
    except OSError:
        return False
