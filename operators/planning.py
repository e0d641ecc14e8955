# SPDX-License-Identifier: GPL-3.0-or-later
"""Glue between the panel and :mod:`engine.plan`. No ``bpy`` here, no planning logic either.

The operators build a plan here and run it with an :class:`engine.session.RunSession`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..dataset.documents.plan import Plan
from ..engine.discovery import SceneInfo
from ..engine.plan import PlanError, build_plan
from ..settings import Settings

__all__ = ["PlanError", "make_plan", "scene_infos"]


def scene_infos(items: Iterable[Any]) -> list[SceneInfo]:
    """SceneInfo objects from the panel's scene list items (``name``, ``path``, ``frame_start``,
    ``frame_end``, ``fps``, ``camera``, ``error``): a Scan's result, reused without re-reading."""
    return [SceneInfo(name=i.name, blend=i.path, frame_start=i.frame_start, frame_end=i.frame_end,
                      fps=i.fps or None, camera=i.camera or None, error=i.error or None)
            for i in items]


def make_plan(scenes_dir: str, datasets_dir: str, settings: Settings,
              scenes: list[SceneInfo] | None = None, exclude: Iterable[str] = ()) -> Plan:
    """``engine.plan.build_plan`` without the scenes the user unticked (they are neither rendered
    nor reported)."""
    plan = build_plan(scenes_dir, datasets_dir, settings, scenes=scenes)
    skip = set(exclude)
    return plan.without(skip) if skip else plan
