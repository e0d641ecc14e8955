# SPDX-License-Identifier: GPL-3.0-or-later
"""Discovery's smaller refusals and warnings, on files built by code:

* a file Blender loads with an ERROR-level report (a sequencer strip in a channel over 128, made
  by patching the channel byte of a saved file) is accepted, with what Blender reported;
* a file saved by a newer Blender (its header's version patched) loads with a warning;
* a camera whose Type is keyed to orthographic is refused in discovery, naming the frame (an
  orthographic camera bound to a marker is refused too);
* a render region that is the full frame renders without a warning.
"""

from __future__ import annotations

from pathlib import Path

import dataset_forge
import pytest
from conftest import run_bpy
from dataset_forge.engine.discovery import probe

pytestmark = pytest.mark.render

BUILD = r'''
import bpy
OUT = __OUT__

def base():
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene
    s.frame_start, s.frame_end = 1, 4
    s.render.engine = "CYCLES"
    s.render.resolution_x, s.render.resolution_y = 32, 24
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    s.collection.objects.link(cam)
    s.camera = cam
    return s, cam

def save(name):
    bpy.ops.wm.save_as_mainfile(filepath=f"{OUT}/{name}.blend", compress=False)

for ch in (5, 77):  # the same file twice, the strip in another channel: the byte that differs
    s, cam = base()
    se = s.sequence_editor_create()
    strips = se.strips if hasattr(se, "strips") else se.sequences
    try:
        strips.new_effect(name="Blue", type="COLOR", channel=ch, frame_start=1, length=4)
    except TypeError:  # 4.2, 4.5
        strips.new_effect(name="Blue", type="COLOR", channel=ch, frame_start=1, frame_end=5)
    save(f"strip{ch}")
s, cam = base()
save("plain")
s, cam = base()
cam.data.keyframe_insert("type", frame=1)
cam.data.type = "ORTHO"
cam.data.keyframe_insert("type", frame=3)
cam.data.type = "PERSP"
save("keyed_ortho")
s, cam = base()
side = bpy.data.objects.new("Side", bpy.data.cameras.new("Side"))
side.data.type = "ORTHO"
s.collection.objects.link(side)
s.timeline_markers.new("F2", frame=2).camera = side
save("marker_ortho")
s, cam = base()
plane = bpy.data.objects.new("Plane", bpy.data.meshes.new("Plane"))
plane.data.from_pydata([(-9, -9, -5), (9, -9, -5), (9, 9, -5), (-9, 9, -5)], [], [(0, 1, 2, 3)])
s.collection.objects.link(plane)
r = s.render
r.use_border = True
r.border_min_x, r.border_max_x, r.border_min_y, r.border_max_y = 0.0, 1.0, 0.0, 1.0
save("full_region")
print("BUILT")
'''


@pytest.fixture(scope="module")
def blends(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe_blends")
    assert "BUILT" in run_bpy(BUILD.replace("__OUT__", repr(str(out))))
    a, b = (out / "strip5.blend").read_bytes(), (out / "strip77.blend").read_bytes()
    (at,) = [i for i in range(min(len(a), len(b))) if a[i] == 5 and b[i] == 77]
    (out / "strip200.blend").write_bytes(a[:at] + bytes([200]) + a[at + 1:])
    plain = (out / "plain.blend").read_bytes()
    head = plain[:24]
    v = head.index(b"v") + 1  # BLENDER-v405 / BLENDER17-01v0500
    digits = len(head[v:v + 4].rstrip(b"RENDB"))
    newer = str(int(head[v:v + digits]) + 9).zfill(digits).encode()
    (out / "newer.blend").write_bytes(plain[:v] + newer + plain[v + digits:])
    return out


@pytest.fixture(scope="module")
def probed(blends) -> dict[str, dict]:
    names = ("strip200", "newer", "keyed_ortho", "marker_ortho", "plain")
    found = probe([blends / f"{n}.blend" for n in names])
    return {Path(k).stem: v for k, v in found.items()}


def test_a_file_loaded_with_error_reports_is_accepted_with_what_blender_said(probed):
    e = probed["strip200"]
    assert e["error"] is None and e["frame_start"] == 1 and e["camera"] == "Cam"
    (w,) = e["warnings"]
    assert w.startswith("strip200.blend: Blender ") and "reported errors while opening it" in w
    assert "channel larger than 128" in w and "but loaded it" in w


def test_a_file_from_a_newer_blender_warns(probed):
    assert probed["plain"]["error"] is None and probed["plain"]["warnings"] == []
    (w,) = probed["newer"]["warnings"]
    assert probed["newer"]["error"] is None
    assert "newer.blend: saved by Blender " in w and "newer than this Blender" in w


def test_a_camera_that_turns_orthographic_is_refused_naming_the_frame(probed):
    assert probed["keyed_ortho"]["error"] == (
        "keyed_ortho.blend: camera 'Cam' is ORTHO at frame 3 (its Type is animated, or a marker binds "
        "it); only perspective cameras have pinhole intrinsics: keep its Type Perspective, or render "
        "frames before 3")
    # a marker's orthographic camera was refused already (scene_setup), before any frame
    assert "camera 'Side' is ORTHO" in probed["marker_ortho"]["error"]


def test_a_full_frame_render_region_gives_no_warning(blends, tmp_path):
    events: list[dict] = []
    s = dataset_forge.render_animation(blends / "full_region.blend", tmp_path / "o", frame_start=1,
                                       frame_end=1, width=32, height=24, max_samples=1,
                                       use_denoising=False, depths=True, debug=False,
                                       on_event=events.append)
    assert s["ok"], s["scenes"]
    assert [e["message"] for e in events if e["event"] == "warning"] == []
