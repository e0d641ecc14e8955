# SPDX-License-Identifier: GPL-3.0-or-later
"""Optical flow of meshes whose vertex count changes between frames.

Cycles' Vector pass matches a mesh's vertices across frames t-1, t, t+1 by index; when the
evaluated vertex count differs it writes no deformation motion for the mesh (0 here, as the
object itself does not move) unless the mesh has a ``velocity`` point attribute. Measured here on
a 16 x 16 quad grid moving +0.1 units/frame along x in its own geometry (1.778 px/frame at 64 px
wide, lens 100 mm, 10 units below the camera), frames 2..4:

* controls with the same topology (an animated shape key; geometry nodes Set Position by the
  Scene Time): the flow is exact and valid;
* a Build modifier, or geometry nodes deleting one more grid row per frame: Cycles writes 0, and
  Dataset Forge marks the flow invalid and warns, naming the object and the likely modifier;
* deletions starting only between frames 3 and 4: exactly the flows across that step are
  invalid (frame 3 forward, frame 4 backward and forward), the others valid and exact;
* the deleting setup plus a ``velocity`` attribute (units/s): Cycles uses it, the flow is exact
  and stays valid.

``DF_EXTRA_PYTHONS`` adds the renders on other bpy versions (like test_zoom_flow); the file
also runs as a whole under ``.venv-4.5.15/bin/python`` / ``.venv-4.2.23/bin/python``.
"""

from __future__ import annotations

import json
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from conftest import bpy_pythons
from dataset_forge.dataset import exr

pytestmark = pytest.mark.render  # every test here renders
PYTHONS = bpy_pythons()
FAST = dict(width=64, height=48, max_samples=1, adaptive_threshold=0.0, use_denoising=False,
            timeout=240.0, retries=0, file_format="OPEN_EXR", bit_depth=32, debug=False,
            depths=True, flows=True)
FLOW = ["R", "G", "B", "A"]
STEP = 0.1  # scene units per frame along +x
TRUE_U = STEP * (100.0 / 36.0 * 64) / 10.0  # px/frame: fx = lens / sensor * width, depth 10
NAMES = ["shapekey", "gn_same", "build", "gn_delete", "gn_late", "gn_velocity"]
A, B = 2, 4  # rendered frames (the scenes run 1..6)

BUILD = r'''
import bpy
args = ARGS
FPS = 24
STEP = args["step"]  # scene units per frame along +x

def base(name):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.preferences.edit.keyframe_new_interpolation_type = "LINEAR"
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    scene.frame_start, scene.frame_end = 1, 6
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    cam.data.lens, cam.data.sensor_width = 100.0, 36.0  # fx = 177.8 px at 64 px: 17.78 px/unit at z 10
    cam.location = (0.0, 0.0, 10.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    n = 16  # a 16 x 16 quad grid over [-1, 1]^2
    verts = [(-1 + 2 * i / n, -1 + 2 * j / n, 0.0) for j in range(n + 1) for i in range(n + 1)]
    faces = [(j * (n + 1) + i, j * (n + 1) + i + 1, (j + 1) * (n + 1) + i + 1,
              (j + 1) * (n + 1) + i) for j in range(n) for i in range(n)]
    me = bpy.data.meshes.new("Blob")
    me.from_pydata(verts, [], faces)
    ob = bpy.data.objects.new("Blob", me)
    scene.collection.objects.link(ob)
    return scene, ob

def shape_key_motion(ob):
    """x += STEP * (frame - 1), by a shape key keyed (frame - 1) / 5 on frames 1..6."""
    ob.shape_key_add(name="Basis")
    k = ob.shape_key_add(name="Move")
    for v in k.data:
        v.co.x += STEP * 5
    for f in range(1, 7):  # a key on every frame: exact at whole frames whatever the easing
        k.value = (f - 1) / 5
        k.keyframe_insert("value", frame=f)

def gn(ob, delete, velocity, late=False):
    """Geometry nodes: x += STEP * (frame - 1); optionally delete the points with index <
    17 * (frame - 1) (one more row of the grid per frame; ``late``: 17 * (frame - 3), so the
    count first changes between frames 3 and 4) and store a `velocity` (units/s)."""
    ng = bpy.data.node_groups.new("Move", "GeometryNodeTree")
    ng.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    ng.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    N, L = ng.nodes, ng.links
    gi, go = N.new("NodeGroupInput"), N.new("NodeGroupOutput")
    t = N.new("GeometryNodeInputSceneTime")
    fm1 = N.new("ShaderNodeMath"); fm1.operation = "SUBTRACT"; fm1.inputs[1].default_value = 1.0
    L.new(t.outputs["Frame"], fm1.inputs[0])
    dx = N.new("ShaderNodeMath"); dx.operation = "MULTIPLY"; dx.inputs[1].default_value = STEP
    L.new(fm1.outputs[0], dx.inputs[0])
    off = N.new("ShaderNodeCombineXYZ")
    L.new(dx.outputs[0], off.inputs["X"])
    sp = N.new("GeometryNodeSetPosition")
    L.new(gi.outputs[0], sp.inputs["Geometry"])
    L.new(off.outputs[0], sp.inputs["Offset"])
    geo = sp.outputs["Geometry"]
    if delete:
        idx = N.new("GeometryNodeInputIndex")
        fm3 = N.new("ShaderNodeMath"); fm3.operation = "SUBTRACT"
        fm3.inputs[1].default_value = 3.0 if late else 1.0
        L.new(t.outputs["Frame"], fm3.inputs[0])
        lim = N.new("ShaderNodeMath"); lim.operation = "MULTIPLY"; lim.inputs[1].default_value = 17.0
        L.new(fm3.outputs[0], lim.inputs[0])
        lt = N.new("ShaderNodeMath"); lt.operation = "LESS_THAN"
        L.new(idx.outputs[0], lt.inputs[0]); L.new(lim.outputs[0], lt.inputs[1])
        dg = N.new("GeometryNodeDeleteGeometry"); dg.domain = "POINT"
        L.new(geo, dg.inputs["Geometry"]); L.new(lt.outputs[0], dg.inputs["Selection"])
        geo = dg.outputs["Geometry"]
    if velocity:
        st = N.new("GeometryNodeStoreNamedAttribute")
        st.data_type, st.domain = "FLOAT_VECTOR", "POINT"
        st.inputs["Name"].default_value = "velocity"
        vel = N.new("ShaderNodeCombineXYZ"); vel.inputs["X"].default_value = STEP * FPS
        L.new(geo, st.inputs["Geometry"])
        L.new(vel.outputs[0], [s for s in st.inputs if s.name == "Value" and s.type == "VECTOR"][0])
        geo = st.outputs["Geometry"]
    L.new(geo, go.inputs[0])
    m = ob.modifiers.new("Move", "NODES")
    m.node_group = ng

for name in args["names"]:
    scene, ob = base(name)
    if name in ("shapekey", "build"):
        shape_key_motion(ob)
    if name == "build":
        b = ob.modifiers.new("Build", "BUILD")
        b.frame_start, b.frame_duration = 0, 8
    if name.startswith("gn"):
        gn(ob, delete=name != "gn_same", velocity=name == "gn_velocity", late=name == "gn_late")
    bpy.ops.wm.save_as_mainfile(filepath=args["out"] + "/" + name + ".blend")
print("BUILT")
'''


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def rendered(request, tmp_path_factory) -> dict[str, tuple[Path, list[dict], str]]:
    """name -> (sequence folder, events of its run, the python that rendered it)."""
    from conftest import run_bpy

    _, python = request.param
    root = tmp_path_factory.mktemp(f"topology-{request.param[0]}")
    scenes = root / "scenes"
    scenes.mkdir()
    args = {"out": str(scenes), "names": NAMES, "step": STEP}
    assert "BUILT" in run_bpy(BUILD.replace("ARGS", repr(args)), python=python or None)
    out = {}
    for name in NAMES:
        events: list[dict] = []
        seq = root / name
        summary = dataset_forge.render_animation(scenes / f"{name}.blend", seq, frame_start=A,
                                                 frame_end=B, executable=python,
                                                 on_progress=events.append, **FAST)
        assert summary["ok"], json.dumps(summary["scenes"], indent=1)[:3000]
        out[name] = (seq, events, python)
    return out


def _frames(seq: Path) -> dict[int, tuple[dict, np.ndarray, np.ndarray]]:
    """frame -> (transforms entry, flow (h, w, 4), interior surface mask (depth > 0, eroded))."""
    tf = json.loads((seq / "transforms.json").read_text())
    out = {}
    for fr in tf["frames"]:
        flow = exr.read_stack(seq / fr["flow_file_path"], FLOW).astype(np.float64)
        m = exr.read_single(seq / fr["depth_file_path"]) > 0
        inner = m.copy()
        inner[1:] &= m[:-1]
        inner[:-1] &= m[1:]
        inner[:, 1:] &= m[:, :-1]
        inner[:, :-1] &= m[:, 1:]
        assert inner.sum() > 100
        out[fr["frame"]] = (fr, flow, inner)
    return out


def _warnings(events: list[dict]) -> list[str]:
    return [e["message"] for e in events if e.get("event") == "warning"]


def _assert_exact(flow: np.ndarray, mask: np.ndarray, forward: bool) -> None:
    sl = slice(0, 2) if forward else slice(2, 4)
    want = np.array([TRUE_U if forward else -TRUE_U, 0.0])
    assert np.abs(flow[..., sl][mask] - want).max() < 0.01


@pytest.mark.render
@pytest.mark.smoke
@pytest.mark.parametrize("name", ["shapekey", "gn_same", "gn_velocity"])
def test_flow_of_moving_geometry_is_exact_and_valid(rendered, name):
    """Same topology (shape key, Set Position), or a changing one with a velocity attribute:
    every surface pixel moves TRUE_U px/frame to the right, both directions valid, no warning."""
    seq, events, _ = rendered[name]
    for f, (fr, flow, mask) in _frames(seq).items():
        assert fr["flow_forward_valid"] and fr["flow_backward_valid"], f
        _assert_exact(flow, mask, True)
        _assert_exact(flow, mask, False)
    assert not [w for w in _warnings(events) if "vertex count" in w]


@pytest.mark.render
@pytest.mark.smoke
@pytest.mark.parametrize("name,cause", [("build", "Build modifier 'Build'"),
                                        ("gn_delete", "Geometry Nodes modifier 'Move'")])
def test_changing_vertex_count_has_no_motion_and_is_marked_invalid(rendered, name, cause):
    """Cycles writes 0 where the true flow is TRUE_U px/frame; every flow of the sequence (also
    towards frames 1 and 5, outside it) is marked invalid and one warning names the object."""
    seq, events, _ = rendered[name]
    for f, (fr, flow, mask) in _frames(seq).items():
        assert np.abs(flow[mask]).max() < 1e-3  # the measured fault: no motion at all
        assert fr["flow_forward_valid"] is False and fr["flow_backward_valid"] is False, f
    topo = [w for w in _warnings(events) if "vertex count" in w]
    assert topo == [f"object 'Blob' changes its vertex count between frames 2 and 3 ({cause}?): "
                    "Cycles has no motion for it; flow marked invalid there; add a velocity "
                    "attribute or turn flows off"]


@pytest.mark.render
@pytest.mark.smoke
def test_only_the_flows_across_the_change_are_invalid(rendered):
    """Vertex count 289 on frames 1..3, 272 on 4, 255 on 5: the flows across 3->4 and 4->5 are
    invalid (and 0), the others valid and exact."""
    seq, events, _ = rendered["gn_late"]
    frames = _frames(seq)
    valid = {f: (fr["flow_forward_valid"], fr["flow_backward_valid"])
             for f, (fr, _, _) in frames.items()}
    assert valid == {2: (True, True), 3: (False, True), 4: (False, False)}
    for f, (_, flow, mask) in frames.items():
        for forward, ok in zip((True, False), valid[f]):
            if ok:
                _assert_exact(flow, mask, forward)
            else:
                sl = slice(0, 2) if forward else slice(2, 4)
                assert np.abs(flow[..., sl][mask]).max() < 1e-3
    assert [w for w in _warnings(events) if "vertex count" in w] == [
        "object 'Blob' changes its vertex count between frames 3 and 4 (Geometry Nodes modifier "
        "'Move'?): Cycles has no motion for it; flow marked invalid there; add a velocity "
        "attribute or turn flows off"]


@pytest.mark.render
@pytest.mark.smoke
def test_a_resumed_run_marks_the_same_flows_invalid(rendered):
    """Rendering the finished gn_late sequence again skips every frame (resume): the counts then
    come from the viewport's evaluation of frames 1..5, with the same verdict and warning."""
    seq, events, python = rendered["gn_late"]
    before = {f: (fr["flow_forward_valid"], fr["flow_backward_valid"])
              for f, (fr, _, _) in _frames(seq).items()}
    again: list[dict] = []
    summary = dataset_forge.render_animation(seq.parent / "scenes" / "gn_late.blend", seq,
                                             frame_start=A, frame_end=B, executable=python,
                                             on_progress=again.append, **FAST)
    assert summary["ok"]
    assert [e["frame"] for e in again if e.get("event") == "frame_skipped"] == [2, 3, 4]
    after = {f: (fr["flow_forward_valid"], fr["flow_backward_valid"])
             for f, (fr, _, _) in _frames(seq).items()}
    assert after == before == {2: (True, True), 3: (False, True), 4: (False, False)}
    assert [w for w in _warnings(again) if "vertex count" in w] == [
        w for w in _warnings(events) if "vertex count" in w]


DRAWN = r'''
import gc, json, sys, tracemalloc
sys.path.insert(0, ARGS["tests"])
import bpy
import instance_scenes as I
from dataset_forge.render_passes import compat, geometry, topology
out = {}
path = I.build("gt_instances", ARGS["dir"] + "/gt_instances.blend")
bpy.ops.wm.open_mainfile(filepath=str(path))
bpy.context.scene.frame_set(2)
dg = bpy.context.evaluated_depsgraph_get()
entries = []
for inst in dg.object_instances:
    a, b = geometry.drawn_object(inst), inst.object
    entries.append([b.original.name_full, a.original.name_full, b.type, a.type,
                    b.data.as_pointer() if b.data is not None else 0,
                    a.data.as_pointer() if a.data is not None else 0,
                    inst.is_instance and a != b])
out["entries"] = entries
path = I.build_many(ARGS["dir"] + "/many.blend", meshes=4, instances=2000, frames=3)
bpy.ops.wm.open_mainfile(filepath=str(path))
compat.GEOMETRY_SET = False  # every entry walked
tracemalloc.start()
traced = []
for f in (1, 2, 3, 1, 2):
    bpy.context.scene.frame_set(f)
    n = len(topology._counts(bpy.context.evaluated_depsgraph_get()).single)
    gc.collect()
    traced.append(tracemalloc.get_traced_memory()[0])
out["many"] = {"counted": n, "traced": traced}
print("DRAWN" + json.dumps(out))
'''


@pytest.mark.parametrize("label,python", PYTHONS)
def test_walked_instances_are_counted_without_growing_memory(tmp_path, label, python):
    """The topology watch (and the tracker) read a walked instance of a real mesh object
    (collection, particle, nested and "As Instance" instances of gt_instances) from
    ``instance_object`` (:func:`geometry.drawn_object`): the same
    object, type and evaluated data as the entry's temporary ``object``, which Blender never
    frees once asked for. Walking 2,000 collection instances five times then keeps Python's
    memory flat (asking ``object`` grew it by 56-120 bytes per instance per walk)."""
    from conftest import REPO, run_bpy

    args = {"tests": str(REPO / "tests"), "dir": str(tmp_path)}
    out = run_bpy(DRAWN.replace("ARGS", repr(args)), python or None, timeout=600)
    res = json.loads(out.split("DRAWN", 1)[1].strip().splitlines()[0])
    entries = res["entries"]
    for name, name2, kind, kind2, data, data2, _ in entries:
        assert (name, kind, data) == (name2, kind2, data2)
    swapped = {e[0] for e in entries if e[6]}
    assert {"Rock", "Pebble", "Bolt"} <= swapped  # collection, particle, "As Instance"
    assert "Turntable" not in swapped  # geometry-nodes geometry: only the temporary has it
    many = res["many"]
    assert many["counted"] == 1 + 4 + 1  # ground, tiles, crate (its 2,000 copies: one key)
    growth = max(many["traced"][1:]) - many["traced"][1]
    assert growth < 2000 * 16, many["traced"]  # 2,000 x 56-120 B per walk before
