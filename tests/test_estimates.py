# SPDX-License-Identifier: GPL-3.0-or-later
"""Inputs that could take the machine down are refused before any work (without Blender): frames
past Blender's limit, a sequence sized by absurd frame numbers;
and probe folders a killed run left are cleaned."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import pytest
from dataset_forge.engine.discovery import SceneInfo, remove_stale_probe_dirs
from dataset_forge.engine.plan import PlanError, build_plan
from dataset_forge.engine.session import RunSession
from dataset_forge.settings import MAX_FRAME, Settings, frame_range_problem


@pytest.mark.parametrize("a,b", [(1, 10**12), (1, MAX_FRAME + 1), (-MAX_FRAME - 1, 3)])
def test_a_range_past_blenders_frames_is_refused_before_anything_is_sized(tmp_path, a, b):
    tracemalloc.start()
    with pytest.raises(PlanError, match=r"is outside Blender's frame range -1048574\.\.1048574"):
        RunSession.for_sequence(tmp_path / "a.blend", tmp_path / "seq", Settings(), a, b)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20  # nothing sized by the frame numbers
    assert frame_range_problem(1, MAX_FRAME) is None and frame_range_problem(-MAX_FRAME, 0) is None


def test_a_scene_stretched_past_blenders_last_frame_is_refused_by_name(tmp_path):
    info = SceneInfo("long", str(tmp_path / "long.blend"), 1, 600000, 24.0, "Camera")
    plan = build_plan(tmp_path, tmp_path / "ds", Settings(keyframe_multiplier=2.0,
                                                          sequences_per_scene=1, num_frames=10),
                      scenes=[info])
    assert plan.jobs == []
    err = plan.scenes[0].error
    assert "stretched to 2..1200000" in err and "outside Blender's frame range" in err
    assert "keyframe_multiplier" in err


def test_the_real_frame_size_is_checked_against_memory():
    s = Settings(width=0, height=0)
    assert s.frame_size_problem(64, 48) is None
    why = s.frame_size_problem(40000, 40000)
    assert why.startswith("40000x40000 needs about") and "GiB of frame buffers" in why


def test_probe_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f"dataset_forge_probe_{dead}_abc"
    live = tmp_path / f"dataset_forge_probe_{os.getpid()}_xyz"
    other = tmp_path / "dataset_forge_probe_oldstyle"
    for d in (stale, live, other):
        d.mkdir()
        (d / "probe-1-0-1.json").write_text("{}")
    assert remove_stale_probe_dirs(tmp_path) == [stale]
    assert not stale.exists() and live.is_dir() and other.is_dir()
