# SPDX-License-Identifier: GPL-3.0-or-later
"""The user's .blend is never changed on disk, and scripts embedded in it run only on opt-in."""

from __future__ import annotations

import hashlib
import json
import shutil

import dataset_forge
import pytest
from conftest import run_bpy

pytestmark = pytest.mark.render

TINY = dict(width=32, height=24, max_samples=1, use_denoising=False, adaptive_threshold=0.0)

MAKE_SCRIPTED = r'''
import bpy
bpy.ops.wm.read_homefile(use_empty=True)
sc = bpy.context.scene
cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
cam.location = (0, 0, 5)
sc.collection.objects.link(cam)
sc.camera = cam
sc.frame_start, sc.frame_end = 1, 2
txt = bpy.data.texts.new("marker.py")
txt.write("import pathlib\npathlib.Path(MARKER).write_text('ran')\n")
txt.use_module = True
bpy.ops.wm.save_as_mainfile(filepath=BLEND)
print("saved")
'''


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_blend_file_is_not_modified(scenes_dir, tmp_path):
    blend = tmp_path / "basic.blend"
    shutil.copy(scenes_dir / "basic.blend", blend)
    before, mtime = _sha(blend), blend.stat().st_mtime_ns
    summary = dataset_forge.render_animation(blend, tmp_path / "out", frame_start=1, frame_end=2,
                                             keyframe_multiplier=2.0, **TINY)
    assert summary["ok"], summary
    assert _sha(blend) == before and blend.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("basic.blend1"))  # no backup written either
    doc = json.loads((tmp_path / "out" / "transforms.json").read_text())
    assert doc["frame_rate"] == 48.0 and [f["frame"] for f in doc["frames"]] == [1, 2]


def test_embedded_scripts_run_only_on_opt_in(tmp_path):
    blend, marker = tmp_path / "scripted.blend", tmp_path / "marker.txt"
    run_bpy(MAKE_SCRIPTED.replace("MARKER", repr(str(marker))).replace("BLEND", repr(str(blend))))
    assert not marker.exists()
    s = dataset_forge.render_animation(blend, tmp_path / "off", frame_start=1, frame_end=1, **TINY)
    assert s["ok"], s
    assert not marker.exists(), "an embedded script ran without autoexec"
    s = dataset_forge.render_animation(blend, tmp_path / "on", frame_start=1, frame_end=1,
                                       autoexec=True, **TINY)
    assert s["ok"], s
    assert marker.read_text() == "ran"
