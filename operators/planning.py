# SPDX-License-Identifier: GPL-3.0-or-later
"""Glue between the panel and :mod:`engine.plan`. No ``bpy`` here, no planning logic either.

``engine.plan.run_plan`` is blocking; the modal operator needs the same run split in two: build
the :class:`Runner` of a plan without starting it (:func:`make_plan_runner`) and, once it is done,
write the manifest and the summary (:func:`finish_plan`). Both mirror ``run_plan`` line by line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..dataset.transforms import write_json_atomic
from ..engine import plan as engine_plan
from ..engine.discovery import SceneInfo
from ..engine.plan import PlanError, build_plan, ensure_writable
from ..engine.runner import Job, Runner
from ..settings import Settings

__all__ = ["PlanError", "finish_plan", "frames_on_disk", "make_plan", "make_plan_runner",
           "scene_infos"]


def scene_infos(items: Iterable[Any]) -> list[SceneInfo]:
    """SceneInfo objects from the panel's scene list items (``name``, ``path``, ``frame_start``,
    ``frame_end``, ``fps``, ``camera``, ``error``): a Scan's result, reused without re-reading."""
    return [SceneInfo(name=i.name, blend=i.path, frame_start=i.frame_start, frame_end=i.frame_end,
                      fps=i.fps or None, camera=i.camera or None, error=i.error or None)
            for i in items]


def make_plan(scenes_dir: str, datasets_dir: str, settings: Settings,
              scenes: list[SceneInfo] | None = None, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """``engine.plan.build_plan`` without the scenes the user unticked (they are neither rendered
    nor reported)."""
    plan = build_plan(scenes_dir, datasets_dir, settings, scenes=scenes)
    skip = set(exclude)
    if skip:
        plan["scenes"] = [s for s in plan["scenes"] if s["name"] not in skip]
        plan["jobs"] = [j for j in plan["jobs"] if j["scene"] not in skip]
    return plan


def make_plan_runner(plan: dict[str, Any], settings: Settings,
                     env: dict[str, str] | None = None) -> Runner:
    """The Runner ``run_plan`` would drive, not started (writes ``DATASETS/plan.json``)."""
    datasets = ensure_writable(plan["datasets_dir"])
    write_json_atomic(datasets / engine_plan.PLAN_NAME, plan)
    jobs = [Job(blend=j["blend"], scene_name=j["scene"], sequences=[dict(q) for q in j["sequences"]],
                settings=settings.to_dict()) for j in plan["jobs"]]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Runner(jobs, work_dir=datasets / ".dataset_forge" / "logs" / f"{stamp}-{os.getpid()}",
                  parallel=settings.jobs, executable=settings.executable,
                  timeout=settings.timeout, retries=settings.retries,
                  frame_budget=settings.recycle_frames,
                  gpus=settings.gpu_list if settings.device_type != "CPU" else [], env=env)


def finish_plan(plan: dict[str, Any], runner: Runner, seconds: float) -> dict[str, Any]:
    """Write ``DATASETS/manifest.json`` and return ``run_plan``'s summary for a finished (or
    cancelled) runner."""
    rs = runner.summary()
    summary = engine_plan._summarise(plan, rs, seconds)
    summary["manifest"] = str(engine_plan.write_manifest(plan, rs))
    summary["plan"] = str(Path(plan["datasets_dir"]) / engine_plan.PLAN_NAME)
    return summary


def frames_on_disk(plan: dict[str, Any]) -> tuple[int, int]:
    """(complete frames, planned frames) of the plan, read from the sequences' journals: what a
    rerun will skip."""
    done = total = 0
    for job in plan["jobs"]:
        for q in job["sequences"]:
            st = engine_plan.sequence_state(q["out_dir"], q["frame_start"], q["frame_end"])
            done += st["frames_complete"]
            total += st["frames"]
    return done, total
