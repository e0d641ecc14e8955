# SPDX-License-Identifier: GPL-3.0-or-later
"""keyframe_multiplier stretches time for every keyframe (objects, camera, shape keys, materials)
and for drivers on ``frame``, and scales the frame range and the frame rate, in memory only (see
docs/time_stretching.md; tests/test_time_stretch.py covers the other time sources)."""

from __future__ import annotations

import json

import pytest
from conftest import extra_pythons, run_bpy

pytestmark = [pytest.mark.render, pytest.mark.smoke]

SCRIPT = r'''
import json, bpy
from dataset_forge.render_passes import scene_setup, timing

bpy.ops.wm.read_homefile(use_empty=True)
sc = bpy.context.scene
sc.frame_start, sc.frame_end = 1, 50
sc.render.fps, sc.render.fps_base = 50, 1.0
bpy.ops.mesh.primitive_cube_add()
ob = bpy.context.active_object
for f, x in ((1, 0.0), (11, 2.0), (50, 3.0)):
    ob.location.x = x
    ob.keyframe_insert("location", index=0, frame=f)
ob.shape_key_add(name="Basis")
key = ob.shape_key_add(name="Key 1")
for f, v in ((1, 0.0), (21, 1.0)):
    key.value = v
    key.keyframe_insert("value", frame=f)
mat = bpy.data.materials.new("M")
mat.use_nodes = True
ob.data.materials.append(mat)
rough = mat.node_tree.nodes["Principled BSDF"].inputs["Roughness"]
for f, v in ((1, 0.1), (31, 0.9)):
    rough.default_value = v
    rough.keyframe_insert("default_value", frame=f)
drv = bpy.data.objects.new("Drv", None)
sc.collection.objects.link(drv)
drv.driver_add("location", 1).driver.expression = "frame*0.1"
cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
sc.collection.objects.link(cam)
for f, v in ((1, 20.0), (41, 80.0)):
    cam.data.lens = v
    cam.data.keyframe_insert("lens", frame=f)

def sample(frames):
    out = []
    for f in frames:
        sc.frame_set(f)
        out.append([ob.location.x, key.value, rough.default_value, cam.data.lens,
                    drv.matrix_world.translation.y])
    return out

frames = [1, 6, 11, 16, 21, 31, 41, 50]
before = sample(frames)
timing.stretch(sc, MULT)
after = sample([round(f * MULT) for f in frames])
print("RESULT" + json.dumps({"before": before, "after": after, "range": [sc.frame_start, sc.frame_end],
                             "fps": scene_setup.frame_rate(sc),
                             "own_fps": sc.render.fps / sc.render.fps_base}))
'''


def _run(mult: float, python: str | None = None) -> dict:
    out = run_bpy(SCRIPT.replace("MULT", repr(mult)), python=python)
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.mark.parametrize("python", [None, *extra_pythons()], ids=lambda p: p or "bpy-default")
def test_every_keyframe_kind_is_stretched(python):
    r = _run(2.0, python)
    # Object location, shape key, material node input, camera lens and a driver on 'frame' at
    # frame 2f equal their values at f before stretching: the motion per frame is halved.
    for b, a in zip(r["before"], r["after"]):
        assert a == pytest.approx(b, abs=1e-5)
    assert r["range"] == [2, 100]
    assert r["fps"] == pytest.approx(100.0)
    assert r["own_fps"] == pytest.approx(50.0)  # simulations keep stepping in the file's seconds


def test_fractional_multiplier_scales_fps_exactly():
    r = _run(1.5)
    assert r["fps"] == pytest.approx(75.0)
    assert r["range"] == [2, 75]  # round(1 * 1.5) = 2 (half up), 50 * 1.5 = 75
    # Frames 6, 11, ... map to 9, 16.5 -> 17 ...: compare only the exact ones (1 -> 1.5 is not).
    exact = [(b, a) for f, b, a in zip([1, 6, 11, 16, 21, 31, 41, 50], r["before"], r["after"])
             if float(f * 1.5).is_integer()]
    assert exact
    for b, a in exact:
        assert a == pytest.approx(b, abs=1e-5)
