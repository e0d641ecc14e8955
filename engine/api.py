# SPDX-License-Identifier: GPL-3.0-or-later
"""The public entry points behind ``dataset_forge.render_animation`` / ``create_datasets``.

Both drive one :class:`session.RunSession` (lock, plan, runner, manifest) and return its
:class:`protocol.Summary`; they never render in the calling process, so they work the same from a
script, the CLI, ``--python-expr`` and tests. ``on_progress`` receives every event (dicts keyed
by :class:`protocol.Ev`); messages (failures, retries, finished scenes, the render device) go
to the standard ``logging`` logger ``dataset_forge``; when stderr is a terminal the CLI's
progress line is drawn there too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..settings import Settings
from ..wire.protocol import Event, PlanDoc, Summary
from .progress import console
from .session import RunSession

OnProgress = Callable[[Event], None]


def render_animation(blend_file: str | os.PathLike, root_path: str | os.PathLike, *,
                     frame_start: int | None = None, frame_end: int | None = None,
                     on_progress: OnProgress | None = None, on_event: OnProgress | None = None,
                     progress_bar: bool | None = None, **options: Any) -> Summary:
    """Render ``frame_start..frame_end`` (inclusive, stretched timeline; default: the scene's
    whole range) of one .blend into ``root_path``. ``on_event`` is the older name of
    ``on_progress``; ``progress_bar``: draw the progress line on stderr (None: when it is a
    terminal)."""
    settings = Settings.from_dict(options)
    session = RunSession.for_sequence(blend_file, root_path, settings, frame_start, frame_end)
    with console(on_progress or on_event, bar=progress_bar) as report:
        return session.run(on_event=report)


def create_datasets(scenes_dir: str | os.PathLike, datasets_dir: str | os.PathLike, *,
                    sequences_per_scene: int = 1, num_frames: int | None = None,
                    on_progress: OnProgress | None = None, on_event: OnProgress | None = None,
                    progress_bar: bool | None = None, dry_run: bool = False, scenes=None,
                    executor: str = "local", ray_address: str | None = None,
                    ray_num_cpus: float | None = None, ray_num_gpus: float | None = None,
                    **options: Any) -> Summary | PlanDoc:
    """See :func:`dataset_forge.create_datasets`. ``dry_run``: return the plan, render nothing.
    ``scenes``: a :func:`discovery.discover` result to reuse (else the folder is read now).
    ``executor``: ``local`` or ``ray`` (docs/cluster.md: ``ray_address``, resources per task)."""
    from .plan import build_plan
    from .session import ensure_writable

    settings = Settings.from_dict(options, sequences_per_scene=sequences_per_scene,
                                  num_frames=num_frames or 0)
    if executor == "ray" and not dry_run:
        from .ray_executor import import_ray

        import_ray()  # Ray missing: the install line now, not after reading every scene
    if not dry_run:
        ensure_writable(datasets_dir)  # before reading every scene: fail in a second
    plan = build_plan(scenes_dir, datasets_dir, settings, scenes=scenes)
    if dry_run:
        return plan.to_dict()
    session = RunSession.for_plan(
        plan, settings, executor=executor,
        ray_options={"address": ray_address, "num_cpus": ray_num_cpus,
                     "num_gpus": ray_num_gpus} if executor == "ray" else None)
    with console(on_progress or on_event, bar=progress_bar) as report:
        return session.run(on_event=report)
