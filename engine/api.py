# SPDX-License-Identifier: GPL-3.0-or-later
"""The public entry points behind ``dataset_forge.render_animation`` / ``create_datasets``.

Both build :class:`runner.Job` s and drive the one :class:`runner.Runner`; they never render in
the calling process, so they work the same from a script, the CLI, ``--python-expr`` and tests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..settings import Settings
from .runner import Job, Runner


def render_animation(blend_file: str | os.PathLike, root_path: str | os.PathLike, *,
                     frame_start: int | None = None, frame_end: int | None = None,
                     on_event=None, **options: Any) -> dict[str, Any]:
    """Render ``frame_start..frame_end`` (inclusive, stretched timeline; default: the scene's
    whole range) of one .blend into ``root_path``. Returns the runner's summary."""
    from .plan import ensure_writable

    settings = Settings.from_dict(options)
    blend = str(Path(blend_file).resolve())
    root = ensure_writable(root_path)
    seq = {"id": None, "out_dir": str(root), "frame_start": frame_start, "frame_end": frame_end}
    if frame_start is not None and frame_end is not None:
        from ..sampling import sequence_id

        seq["id"] = sequence_id(settings.keyframe_multiplier, frame_start,
                                frame_end - frame_start + 1)
    job = Job(blend=blend, scene_name=Path(blend).stem, sequences=[seq],
              settings=settings.to_dict())
    runner = Runner.from_settings([job], settings, root / ".dataset_forge" / "logs")
    runner.run(on_event=on_event)
    summary = runner.summary()
    summary["exit_code"] = 0 if summary["ok"] else 1
    return summary


def create_datasets(scenes_dir: str | os.PathLike, datasets_dir: str | os.PathLike, *,
                    sequences_per_scene: int = 1, num_frames: int | None = None,
                    on_event=None, dry_run: bool = False, scenes=None,
                    executor: str = "local", ray_address: str | None = None,
                    ray_num_cpus: float | None = None, ray_num_gpus: float | None = None,
                    **options: Any) -> dict[str, Any]:
    """See :func:`dataset_forge.create_datasets`. ``dry_run``: return the plan, render nothing.
    ``scenes``: a :func:`discovery.discover` result to reuse (else the folder is read now).
    ``executor``: ``local`` or ``ray`` (docs/cluster.md: ``ray_address``, resources per task)."""
    from .plan import build_plan, ensure_writable, run_plan

    settings = Settings.from_dict(options, sequences_per_scene=sequences_per_scene,
                                  num_frames=num_frames or 0)
    if not dry_run:
        ensure_writable(datasets_dir)
    plan = build_plan(scenes_dir, datasets_dir, settings, scenes=scenes)
    if dry_run:
        return plan
    return run_plan(plan, settings, on_event=on_event, executor=executor,
                    ray_options={"address": ray_address, "num_cpus": ray_num_cpus,
                                 "num_gpus": ray_num_gpus} if executor == "ray" else None)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)
