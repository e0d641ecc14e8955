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

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..dataset import layout
from ..dataset.journal import Journal
from ..dataset.provenance import settings_match
from ..dataset.transforms import write_json_atomic
from ..dataset.verify import journal_digest
from ..errors import DatasetForgeError
from ..sampling import SamplingError, sample_sequences, stretched_range
from ..sampling.trajectory import generated_timeline
from ..settings import Settings
from ..version import __version__
from ..wire.protocol import PlanDoc, PlanJob, PlanScene, Summary
from .discovery import SceneInfo, bind_scene_names, discover

PLAN_VERSION = 1
PLAN_NAME = "plan.json"
MANIFEST_NAME = layout.MANIFEST


class PlanError(DatasetForgeError, RuntimeError):
    """The run cannot start (folder missing, not writable ...); one sentence with the fix."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_plan(scenes_dir: str | os.PathLike, datasets_dir: str | os.PathLike,
               settings: Settings, *, scenes: list[SceneInfo] | None = None) -> PlanDoc:
    """The plan of a ``create_datasets`` run (a JSON-able dict; written by :func:`run_plan`).

    ``scenes`` reuses an earlier :func:`discovery.discover` result (the panel's Scan). Keys:
    ``version``, ``dataset_forge_version``, ``created``, ``scenes_dir``, ``datasets_dir``,
    ``seed``, ``settings``, ``scenes`` (name, blend, frame_start/frame_end as in the file, fps,
    camera, stretched range, error) and ``jobs`` (one per renderable scene: ``scene``, ``blend``,
    ``sequences`` with ``id``, ``out_dir``, ``frame_start``, ``frame_end``: inclusive, on the
    timeline stretched by the keyframe multiplier).
    """
    datasets = Path(datasets_dir).expanduser().resolve()
    infos = scenes if scenes is not None else discover(scenes_dir, settings)
    infos = bind_scene_names(infos, scenes_dir, datasets)  # a scene folder stays with its .blend
    m = settings.keyframe_multiplier
    plan_scenes: list[PlanScene] = []
    jobs: list[PlanJob] = []
    for info in infos:
        entry = info.to_dict()
        entry["stretched_range"] = None
        if info.error is None:
            try:
                first, last = info.frame_start, info.frame_end
                if settings.camera != "scene":  # a generated camera's time is the timeline
                    first, last = generated_timeline(first, last, settings.sequences_per_scene,
                                                     settings.num_frames, m, settings.min_gap)
                a, b = stretched_range(first, last, m)
                entry["stretched_range"] = [a, b]
                seqs = sample_sequences(first, last,
                                        settings.sequences_per_scene, settings.num_frames or None,
                                        multiplier=m, strategy=settings.strategy,
                                        seed=settings.seed, min_gap=settings.min_gap,
                                        key=info.name)
            except SamplingError as exc:
                entry["error"] = (f"scene '{info.name}' ({Path(info.blend).name}, frames "
                                  f"{info.frame_start}..{info.frame_end}, keyframe_multiplier "
                                  f"{m:g}): {exc}")
            else:
                jobs.append({"scene": info.name, "blend": info.blend, "sequences": [
                    {"id": q.id, "out_dir": str(datasets / layout.RENDERS / info.name / q.id),
                     "frame_start": q.start, "frame_end": q.end} for q in seqs]})
        plan_scenes.append(entry)
    return {"version": PLAN_VERSION, "dataset_forge_version": __version__, "created": _now(),
            "scenes_dir": str(Path(scenes_dir).expanduser().resolve()),
            "datasets_dir": str(datasets), "seed": settings.seed,
            "settings": settings.to_dict(), "scenes": plan_scenes, "jobs": jobs}


def sequence_state(out_dir: str | os.PathLike, frame_start: int, frame_end: int,
                   settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What is on disk for one sequence: frames whose journal entry and files are intact, and
    whether ``transforms.json`` exists. With ``settings``, frames recorded with other settings
    (``provenance.json``) count as not complete."""
    out = Path(out_dir)
    journal = Journal(out)
    complete = sum(1 for f in range(frame_start, frame_end + 1) if journal.is_done(f))
    if settings is not None and complete and not settings_match(out, settings):
        complete = 0
    n = frame_end - frame_start + 1
    has_transforms = (out / layout.TRANSFORMS).is_file()
    return {"frames": n, "frames_complete": complete, "transforms": has_transforms,
            "complete": complete == n and has_transforms}


def frames_on_disk(plan: PlanDoc) -> tuple[int, int]:
    """(complete frames, planned frames) of ``plan``, read from the sequences' journals: what a
    rerun will skip."""
    done = total = 0
    for job in plan["jobs"]:
        for q in job["sequences"]:
            st = sequence_state(q["out_dir"], q["frame_start"], q["frame_end"])
            done += st["frames_complete"]
            total += st["frames"]
    return done, total


def write_manifest(plan: PlanDoc, summary: Summary | None = None) -> Path:
    """Rewrite ``DATASETS/manifest.json`` atomically from the plan and the files on disk: every
    scene with its status (and reason), every sequence with its frame counts and status. A
    sequence this run's ``summary`` reports failed (refused because its ``.blend``, Blender or
    scene changed, say) is never called complete, whatever its old frames look like: it gets
    its reason instead."""
    datasets = Path(plan["datasets_dir"])
    run = (summary or {}).get("scenes", {})
    failed_now = {q.get("out_dir"): (q.get("reason") or "failed in the last run").splitlines()[0]
                  for sc in run.values() for q in sc.get("sequences", []) if q.get("status") == "failed"}
    jobs = {j["scene"]: j for j in plan["jobs"]}
    previous = _previous_validations(datasets / MANIFEST_NAME)
    scenes = []
    totals = {"scenes": 0, "scenes_complete": 0, "sequences": 0, "sequences_complete": 0,
              "frames": 0, "frames_complete": 0}
    for sc in plan["scenes"]:
        job = jobs.get(sc["name"])
        seqs = []
        for q in (job or {}).get("sequences", []):
            st = sequence_state(q["out_dir"], q["frame_start"], q["frame_end"], plan["settings"])
            failed = failed_now.get(q["out_dir"])
            done = st["complete"] and failed is None
            seqs.append({"id": q["id"], "path": Path(q["out_dir"]).relative_to(datasets).as_posix(),
                         "frame_start": q["frame_start"], "frame_end": q["frame_end"],
                         "num_frames": st["frames"], "frames_complete": st["frames_complete"],
                         "status": "complete" if done else "incomplete"})
            if failed is not None:
                seqs[-1]["reason"] = failed
            kept = previous.get(seqs[-1]["path"])
            if kept is not None and failed is None and _unchanged_since(q["out_dir"], *kept):
                seqs[-1]["validation"] = kept[0]
            totals["sequences"] += 1
            totals["sequences_complete"] += done
            totals["frames"] += st["frames"]
            totals["frames_complete"] += st["frames_complete"]
        complete = job is not None and all(q["status"] == "complete" for q in seqs)
        reason = sc.get("error") or "; ".join(run.get(sc["name"], {}).get("errors", [])) or None
        status = "complete" if complete else ("failed" if reason else "incomplete")
        scenes.append({"name": sc["name"], "blend": sc["blend"], "status": status,
                       "reason": None if complete else reason,
                       "frame_start": sc.get("frame_start"), "frame_end": sc.get("frame_end"),
                       "fps": sc.get("fps"), "camera": sc.get("camera"), "sequences": seqs})
        totals["scenes"] += 1
        totals["scenes_complete"] += complete
    doc = {"dataset_forge_version": __version__, "updated": _now(), "plan": PLAN_NAME,
           "settings": plan["settings"], "seed": plan["seed"], "totals": totals, "scenes": scenes}
    path = datasets / MANIFEST_NAME
    write_json_atomic(path, doc)
    return path


def _previous_validations(manifest: Path) -> dict[str, tuple[dict[str, Any], float]]:
    """``{sequence path: (validation entry, manifest mtime)}`` from the manifest being replaced,
    so that a rerun keeps the validate results of sequences it did not touch."""
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        mtime = manifest.stat().st_mtime
    except (OSError, ValueError):
        return {}
    return {q["path"]: (q["validation"], mtime) for sc in doc.get("scenes", [])
            for q in sc.get("sequences", []) if "validation" in q and "path" in q}


def _unchanged_since(seq_dir: str, validation: dict[str, Any], when: float) -> bool:
    """The sequence's frames are still the ones ``validation`` judged (a validated sequence that
    was re-rendered since must be validated again): its journal is byte for byte the one validate
    read (``journal_sha256``); for an entry without it, no frame was journaled after ``when``
    (the manifest's mtime, as coarse as the file system's clock)."""
    digest = validation.get("journal_sha256") if isinstance(validation, dict) else None
    if digest is not None:
        return journal_digest(seq_dir) == digest
    try:
        return (Path(seq_dir) / layout.JOURNAL).stat().st_mtime <= when
    except OSError:
        return False


def format_summary(summary: Summary) -> str:
    """The end-of-run text: one line per scene (done / skipped / failed with its reason)."""
    lines = []
    for name, sc in summary.get("scenes", {}).items():
        st = sc["status"]
        seqs = sc.get("sequences", [])
        if st == "failed":
            reason = summary.get("failed", {}).get(name) or "; ".join(sc.get("errors", []))
            lines.append(f"  FAILED  {name}: {reason}")
        else:
            r = sum(q["rendered"] for q in seqs)
            k = sum(q["skipped"] for q in seqs)
            lines.append(f"  {st.upper():7s} {name}: {len(seqs)} sequence(s), {r} frame(s) rendered, "
                         f"{k} already complete")
    head = (f"{len(summary.get('done', []))} scene(s) done, {len(summary.get('skipped', []))} "
            f"skipped (already complete), {len(summary.get('failed', {}))} failed; "
            f"{summary.get('frames_rendered', 0)} frame(s) rendered, "
            f"{summary.get('frames_skipped', 0)} already complete, in {summary.get('seconds', 0):.1f} s")
    if summary.get("cancelled"):
        head += " (cancelled: rerun the same command to resume)"
    tail = [f"manifest: {summary['manifest']}"] if summary.get("manifest") else []
    return "\n".join([head, *lines, *tail])
