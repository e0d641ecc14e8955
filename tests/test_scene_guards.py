# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene settings that would make the ground truth disagree with the RGB frame or with K, each
refused with one line naming the thing and the fix, or changed for the run with a warning.

Every scene is built here by code (``build``, one bpy subprocess for all of them, with the Python
that runs the tests: run this file with ``.venv-4.2.23/bin/python -m pytest`` for Blender 4.2) and
rendered through ``dataset_forge.render_animation`` at 32x24 px, 1 sample. The base scene: the
camera at the origin looking down -z (world = camera frame), a large plane through (0, y0, -D)
tilted 30 degrees about x, so planar depth differs at every pixel row and is known analytically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from conftest import run_bpy
from dataset_forge.dataset.loader import load
from PIL import Image

pytestmark = pytest.mark.render

D, TILT = 6.0, math.radians(30.0)
W, H = 32, 24
FAST = dict(width=W, height=H, max_samples=1, adaptive_threshold=0.0, use_denoising=False,
            debug=False, timeout=240.0, retries=0)

BUILD = r'''
import bpy
import bmesh
IS5 = "compositing_node_group" in bpy.types.Scene.bl_rna.properties

def base():
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene
    s.frame_start, s.frame_end = 1, 3
    s.render.engine = "CYCLES"
    s.render.resolution_x, s.render.resolution_y = 32, 24
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    cam.data.lens, cam.data.sensor_width = 50.0, 36.0
    s.collection.objects.link(cam)
    s.camera = cam
    plane = mesh_plane("Ground", 40.0, s.collection)
    plane.location = (0.0, 0.0, -D)
    plane.rotation_euler = (TILT, 0.0, 0.0)
    return s, cam, plane

def mesh_plane(name, size, collection):
    me = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=size / 2)
    bm.to_mesh(me)
    bm.free()
    ob = bpy.data.objects.new(name, me)
    collection.objects.link(ob)
    return ob

def compositor(s, muted, grouped=False):
    if IS5:
        tree = bpy.data.node_groups.new("Comp", "CompositorNodeTree")
        s.compositing_node_group = tree
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        rl = tree.nodes.new("CompositorNodeRLayers")
        out_node = tree.nodes.new("NodeGroupOutput")
    else:
        s.use_nodes = True
        tree = s.node_tree
        rl = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
        out_node = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
    inner = tree
    if grouped:  # the node inside a node group: Render Layers -> Group "Look" -> output
        inner = bpy.data.node_groups.new("Look", "CompositorNodeTree")
        inner.interface.new_socket("Image", in_out="INPUT", socket_type="NodeSocketColor")
        inner.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        gin, gout = inner.nodes.new("NodeGroupInput"), inner.nodes.new("NodeGroupOutput")
        group = tree.nodes.new("CompositorNodeGroup")
        group.node_tree = inner
        tree.links.new(rl.outputs["Image"], group.inputs[0])
        tree.links.new(group.outputs[0], out_node.inputs[0])
        rl, out_node = gin, gout
    ld = inner.nodes.new("CompositorNodeLensdist")
    ld.name = "Fisheye"
    ld.mute = muted
    inner.links.new(rl.outputs[0], ld.inputs[0])
    inner.links.new(ld.outputs[0], out_node.inputs[0])
    # a warping node that does not feed the frame (a Viewer branch) is no reason to refuse
    tr = tree.nodes.new("CompositorNodeTranslate")
    tree.links.new(tree.nodes.new("CompositorNodeRLayers").outputs["Image"], tr.inputs[0])
    tree.links.new(tr.outputs[0], tree.nodes.new("CompositorNodeViewer").inputs[0])

def save(name):
    bpy.ops.wm.save_as_mainfile(filepath=f"{OUT}/{name}.blend")

s, cam, plane = base()
r = s.render
r.use_border, r.use_crop_to_border = True, True
r.border_min_x, r.border_max_x, r.border_min_y, r.border_max_y = 0.25, 0.75, 0.25, 0.75
save("border")

s, cam, plane = base()
s.render.use_motion_blur = True
for f, y in ((0, -1.0), (1, 0.0), (2, 1.0)):  # 1 unit per frame along y: blur moves the plane
    plane.location.y = y
    plane.keyframe_insert("location", index=1, frame=f)
save("blur")

s, cam, plane = base()
cam.data.dof.use_dof = True
cam.data.dof.focus_distance, cam.data.dof.aperture_fstop = 2.0, 0.05
save("dof")

s, cam, plane = base()
cut = bpy.data.objects.new("CutCam", bpy.data.cameras.new("CutCam"))
s.collection.objects.link(cut)
cut.data.dof.use_dof = True
s.timeline_markers.new("cut", frame=3).camera = cut
save("dof_marker")

s, cam, plane = base()
cam.data.dof.focus_distance, cam.data.dof.aperture_fstop = 2.0, 0.05
for f, on in ((1, False), (2, True)):  # depth of field keyed on at frame 2
    cam.data.dof.use_dof = on
    cam.data.dof.keyframe_insert("use_dof", frame=f)
for f, y in ((0, -1.0), (1, 0.0), (2, 1.0), (3, 2.0)):
    plane.location.y = y
    plane.keyframe_insert("location", index=1, frame=f)
save("keyed_on")  # (Render > Motion Blur cannot be keyframed: Blender refuses)

for name, muted, grouped in (("lens", False, False), ("lens_muted", True, False),
                             ("lens_group", False, True)):
    s, cam, plane = base()
    compositor(s, muted, grouped)
    save(name)

s, cam, plane = base()
backdrop = bpy.data.scenes.new("Backdrop")
mesh_plane("Far", 4.0, backdrop.collection).location = (0.0, 0.0, -3.0)
s.background_set = backdrop
save("bgset")

s, cam, plane = base()
s.view_layers.new("Other")
s.view_layers[0].use = False
save("layer_off")

s, cam, plane = base()
s.view_layers.new("Other")
save("two_layers")

s, cam, plane = base()
blocker = mesh_plane("Blocker", 1.0, s.collection)
blocker.location = (0.0, 0.0, -3.0)
for f, hide in ((1, True), (2, False)):
    blocker.hide_render = hide
    blocker.keyframe_insert("hide_render", frame=f)
save("reveal")
print("BUILT")
'''


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guards")
    code = f"OUT, D, TILT = {str(out)!r}, {D!r}, {TILT!r}\n" + BUILD
    assert "BUILT" in run_bpy(code)
    return out


def render(scenes: Path, name: str, out: Path, a: int = 1, b: int = 1, **kinds) -> tuple[dict, list]:
    events: list[dict] = []
    summary = dataset_forge.render_animation(scenes / f"{name}.blend", out, frame_start=a,
                                             frame_end=b, on_event=events.append,
                                             **{**FAST, **kinds})
    return summary, [e["message"] for e in events if e["event"] == "warning"]


def refusal(summary: dict, name: str) -> str:
    assert not summary["ok"]
    (error,) = summary["scenes"][name]["errors"][:1]
    return error


def analytic_depth(K: np.ndarray, y0: float = 0.0) -> np.ndarray:
    """Planar depth of the tilted plane through (0, y0, -D) at every pixel centre (H, W)."""
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    d = np.stack([(u - K[0, 2]) / K[0, 0], -(v - K[1, 2]) / K[1, 1], -np.ones_like(u)], -1)
    n = np.array([0.0, -math.sin(TILT), math.cos(TILT)])
    return (n @ np.array([0.0, y0, -D])) / (d @ n)


def rel_err(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    want = analytic_depth(K)
    return np.abs(depth - want) / want


# -- 1. render region ---------------------------------------------------------------------------
@pytest.mark.smoke
def test_render_region_renders_the_full_frame_with_one_warning(scenes, tmp_path):
    summary, warnings = render(scenes, "border", tmp_path / "o", depths=True)
    assert summary["ok"], summary["scenes"]
    assert len(warnings) == 1 and "render region" in warnings[0], warnings
    assert "Crop to Render Region" in warnings[0] and "the dataset is the full frame" in warnings[0]
    seq = load(tmp_path / "o")
    f = seq[0]
    with Image.open(tmp_path / "o" / "frames" / "frame_000001.png") as im:
        assert im.size == (W, H)
    assert f.depth.shape == (H, W) and (seq.meta["w"], seq.meta["h"]) == (W, H)
    err = rel_err(f.depth, f.K)
    assert err[0, 0] < 1e-4 and err[-1, -1] < 1e-4  # corners lie outside the region
    assert err.max() < 1e-4


# -- 2. motion blur and depth of field ---------------------------------------------------------
@pytest.mark.smoke
@pytest.mark.parametrize("name,kinds,words", [
    ("blur", dict(depths=True), ["motion blur is on", "--disable-motion-blur"]),
    ("blur", dict(segmentations=True), ["motion blur is on", "--disable-motion-blur"]),
    ("dof", dict(normals=True), ["camera 'Cam' has depth of field on", "--disable-dof"]),
    ("dof_marker", dict(depths=True), ["camera 'CutCam' has depth of field on", "--disable-dof"]),
])
def test_motion_blur_and_depth_of_field_are_refused_with_any_ground_truth(scenes, tmp_path, name,
                                                                           kinds, words):
    summary, _ = render(scenes, name, tmp_path / "o", **kinds)
    message = refusal(summary, name)
    assert all(w in message for w in words), message
    assert not (tmp_path / "o" / "frames").exists() or not any((tmp_path / "o" / "frames").iterdir())


@pytest.mark.smoke
@pytest.mark.parametrize("name", ["blur", "dof"])
def test_rgb_only_keeps_motion_blur_and_depth_of_field(scenes, tmp_path, name):
    summary, warnings = render(scenes, name, tmp_path / "o")
    assert summary["ok"], summary["scenes"]
    assert warnings == []


@pytest.mark.smoke
@pytest.mark.parametrize("name,flag", [("blur", "disable_motion_blur"), ("dof", "disable_dof")])
def test_disabled_for_the_run_the_depth_is_the_pinhole_depth(scenes, tmp_path, name, flag):
    summary, _ = render(scenes, name, tmp_path / "o", depths=True, segmentations=True,
                        **{flag: True})
    assert summary["ok"], summary["scenes"]
    f = load(tmp_path / "o")[0]
    assert rel_err(f.depth, f.K).max() < 1e-4
    assert set(np.unique(f.segmentation)) == {1}  # the plane fills the frame


@pytest.mark.smoke
def test_depth_of_field_keyed_on_later_is_refused_or_turned_off_at_that_frame(scenes, tmp_path):
    """Off at frame 1, keyed on at frame 2: checked again at every frame (the check before the
    first frame sees it off). Refused at frame 2 naming it, or, turned off for the run, every
    frame's depth is the pinhole depth (the plane moves 1 unit per frame)."""
    summary, _ = render(scenes, "keyed_on", tmp_path / "o", 1, 2, depths=True)
    message = refusal(summary, "keyed_on")
    assert "frame 2" in message and "keyframed or driven" in message, message
    summary, _ = render(scenes, "keyed_on", tmp_path / "p", 1, 2, depths=True, disable_dof=True)
    assert summary["ok"], summary["scenes"]
    for fr in load(tmp_path / "p"):
        y0 = fr.number - 1.0  # the plane moves 1 unit per frame along y
        want = analytic_depth(fr.K, y0)
        assert (np.abs(fr.depth - want) / want).max() < 1e-4, fr.number


# -- 3. a compositor node that warps the RGB frame -------------------------------------------
@pytest.mark.smoke
def test_a_lens_distortion_node_is_refused_and_renders_when_muted(scenes, tmp_path):
    """Refused in the compositor and inside a node group of it, also for an RGB-only run (K
    describes the frame); a Translate node feeding only a Viewer does not matter."""
    for name in ("lens", "lens_group"):
        summary, _ = render(scenes, name, tmp_path / name)
        message = refusal(summary, name)
        assert "compositor node 'Fisheye' (Lens Distortion)" in message and "mute it" in message
    summary, warnings = render(scenes, "lens_muted", tmp_path / "good", depths=True)
    assert summary["ok"], summary["scenes"]
    f = load(tmp_path / "good")[0]
    assert rel_err(f.depth, f.K).max() < 1e-4


# -- 4. background set ----------------------------------------------------------------------------
@pytest.mark.smoke
def test_a_background_set_is_refused_with_segmentations_only(scenes, tmp_path):
    summary, _ = render(scenes, "bgset", tmp_path / "bad", segmentations=True)
    message = refusal(summary, "bgset")
    assert "background scene 'Backdrop'" in message and "Background Scene" in message
    assert "--no-segmentations" in message
    summary, _ = render(scenes, "bgset", tmp_path / "good", depths=True)
    assert summary["ok"], summary["scenes"]
    depth = load(tmp_path / "good")[0].depth
    assert depth[H // 2, W // 2] == pytest.approx(3.0, rel=1e-4)  # the backdrop's plane is drawn


@pytest.mark.smoke
def test_an_object_shown_later_gets_its_id_from_the_frame_it_appears(scenes, tmp_path):
    """A blocker hidden from render at frame 1 and shown from frame 2 (animated hide_render): the
    object tracker asks which objects the render draws at every frame, so at frame 2 the
    blocker's pixels carry its id and objects.json counts them; every surface pixel has an id,
    so nothing is warned. (Taken once per sequence, they read 0 and were only warned about.)"""
    summary, warnings = render(scenes, "reveal", tmp_path / "o", 1, 2, segmentations=True, depths=True)
    assert summary["ok"], summary["scenes"]
    seq = load(tmp_path / "o")
    blocker = next(int(k) for k, v in seq.ids["ids"].items() if v["name"] == "Blocker")
    assert not (seq[0].segmentation == blocker).any()
    shown = seq[1].segmentation == blocker
    assert shown.sum() > 0 and (seq[1].depth[shown] == pytest.approx(3.0, rel=1e-4))
    for fr in seq:
        assert ((fr.depth > 0) == (fr.segmentation > 0)).all()
    (col,) = [i for i, n in enumerate(seq.objects.names) if n == "Blocker"]
    assert int(seq.objects.px_count_visib[1, col]) == int(shown.sum())
    assert warnings == [], warnings


def test_surface_pixels_without_an_object_id_are_warned_once_per_sequence():
    """The safety net behind the test above (no scene known to trigger it remains): the count of
    info.json's ``pixels.unidentified`` becomes one warning naming the sequence; none at 0."""
    out = run_bpy(
        "from pathlib import Path\n"
        "from dataset_forge.render_passes import commits, sequence\n"
        "from dataset_forge.dataset.documents.info import ObjectStats\n"
        "said = []\n"
        "sq = commits._Sequence(Path('/x'), '001-00001-00002', 'shot', 1, 2)\n"
        "sequence._warn_unidentified(sq, ObjectStats({}, {'unidentified': 0}, {}), said.append)\n"
        "sequence._warn_unidentified(sq, ObjectStats({}, {'unidentified': 17}, {}), said.append)\n"
        "import json\n"
        "print(json.dumps([(str(e['event']), e['message']) for e in said]))\n")
    ((event, message),) = json.loads(out.strip().splitlines()[-1])
    assert event == "warning" and message.startswith(
        "shot: sequence 001-00001-00002: 17 pixels show a surface but have no object id")


# -- 5. view layers -------------------------------------------------------------------------------
@pytest.mark.smoke
def test_a_view_layer_not_used_for_rendering_is_refused(scenes, tmp_path):
    summary, _ = render(scenes, "layer_off", tmp_path / "o", depths=True)
    message = refusal(summary, "layer_off")
    assert "view layer 'ViewLayer'" in message and "Use for Rendering" in message


@pytest.mark.smoke
def test_two_rendered_view_layers_are_named_in_one_warning(scenes, tmp_path):
    summary, warnings = render(scenes, "two_layers", tmp_path / "o", depths=True)
    assert summary["ok"], summary["scenes"]
    assert len(warnings) == 1 and "2 view layers ('ViewLayer', 'Other')" in warnings[0]
    assert "describes only 'ViewLayer'" in warnings[0]
    f = load(tmp_path / "o")[0]
    assert rel_err(f.depth, f.K).max() < 1e-4
