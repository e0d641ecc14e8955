# SPDX-License-Identifier: GPL-3.0-or-later
"""Time stretching against the file's own clock, time source by time source (no render).

One scene holds every time source the stretch accepts (particle systems are refused: exact
here, but not in renders, see docs/time_stretching.md); it is evaluated frame by frame twice: as
saved (the reference, at integer and fractional times t), and after ``timing.stretch`` (frame F,
which must show time F/m). Simulations are stepped frame by frame from the scene start in both.
Renders of the same sources (with depth, normals, flow) are in tests/test_corpus.py.
"""

from __future__ import annotations

import json

import pytest
from conftest import extra_pythons, run_bpy

pytestmark = [pytest.mark.render, pytest.mark.smoke]

BUILD = r'''
import bpy, json, math, os, sys
from dataset_forge.render_passes import compat, scene_setup, timing

def build():
    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    sc.frame_start, sc.frame_end = START, 30
    sc.render.fps, sc.render.fps_base = 24, 1.0
    coll = sc.collection
    def empty(name):
        o = bpy.data.objects.new(name, None); coll.objects.link(o); return o
    k = empty("K")                                   # keyframes (Bezier)
    for f, x in ((1, 0.0), (11, 2.0), (31, 3.0)):
        k.location.x = x; k.keyframe_insert("location", index=0, frame=f)
    n = empty("N")                                   # NLA strip at 5, scale 2
    for f, x in ((1, 0.0), (11, 1.0)):
        n.location.x = x; n.keyframe_insert("location", index=0, frame=f)
    st = n.animation_data.nla_tracks.new().strips.new("S", 5, n.animation_data.action)
    st.scale = 2.0
    n.animation_data.action = None
    d = empty("D")                                   # driver on frame
    d.driver_add("location", 0).driver.expression = "frame*0.1"
    cu = bpy.data.curves.new("Path", "CURVE"); cu.dimensions = "3D"   # Follow Path
    sp = cu.splines.new("POLY"); sp.points.add(1)
    sp.points[0].co = (0, 0, 0, 1); sp.points[1].co = (10, 0, 0, 1)
    cu.use_path = True; cu.path_duration = 40
    po = bpy.data.objects.new("Path", cu); coll.objects.link(po)
    for f, v in ((1, 0.0), (41, 40.0)):
        cu.eval_time = v; cu.keyframe_insert("eval_time", frame=f)
    fp = empty("FP"); fp.constraints.new("FOLLOW_PATH").target = po
    t = empty("T"); t.location = (0, 5, 0)          # Track To
    t.constraints.new("TRACK_TO").target = k
    def gn(name, build_links):
        me = bpy.data.meshes.new(name); me.from_pydata([(0, 0, 0)], [], [])
        ob = bpy.data.objects.new(name, me); coll.objects.link(ob)
        g = bpy.data.node_groups.new(name, "GeometryNodeTree")
        g.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        g.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
        gi, go = g.nodes.new("NodeGroupInput"), g.nodes.new("NodeGroupOutput")
        build_links(g, gi, go)
        ob.modifiers.new("GN", "NODES").node_group = g
    def sim(g, gi, go):                              # simulation zone: +x by delta time
        si, so = g.nodes.new("GeometryNodeSimulationInput"), g.nodes.new("GeometryNodeSimulationOutput")
        si.pair_with_output(so)
        sp, cx = g.nodes.new("GeometryNodeSetPosition"), g.nodes.new("ShaderNodeCombineXYZ")
        for x, y in ((gi.outputs[0], si.inputs["Geometry"]), (si.outputs["Geometry"], sp.inputs["Geometry"]),
                     (si.outputs["Delta Time"], cx.inputs["X"]), (cx.outputs[0], sp.inputs["Offset"]),
                     (sp.outputs[0], so.inputs["Geometry"]), (so.outputs["Geometry"], go.inputs[0])):
            g.links.new(x, y)
    def scene_time(g, gi, go):                       # Scene Time node
        tn, sp, cx = (g.nodes.new(t) for t in ("GeometryNodeInputSceneTime", "GeometryNodeSetPosition",
                                                "ShaderNodeCombineXYZ"))
        g.links.new(gi.outputs[0], sp.inputs["Geometry"]); g.links.new(tn.outputs["Frame"], cx.inputs["X"])
        g.links.new(cx.outputs[0], sp.inputs["Offset"]); g.links.new(sp.outputs[0], go.inputs[0])
    if compat.SIMULATION_FOLLOWS_REMAPPED_CLOCK:  # refused on 4.2 and 4.5 (test_corpus.py)
        gn("Sim", sim)
    gn("SceneTime", scene_time)
    bpy.ops.mesh.primitive_plane_add(location=(40, 0, 0)); wv = bpy.context.active_object
    wv.name = "Wave"; w = wv.modifiers.new("W", "WAVE"); w.speed = 0.05; w.start_position_x = 3.0
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=11, y_subdivisions=11, location=(60, 0, 0))
    bd = bpy.context.active_object; bd.name = "Build"
    b = bd.modifiers.new("B", "BUILD"); b.frame_start = 1; b.frame_duration = 30
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam")); coll.objects.link(cam); sc.camera = cam

def sample():
    dg = bpy.context.evaluated_depsgraph_get()
    ob = bpy.data.objects
    ev = lambda n: ob[n].evaluated_get(dg)
    out = {} if "Sim" not in ob else {"gn_simulation": ev("Sim").data.vertices[0].co.x}
    return {**out, "keyframes": ob["K"].matrix_world.translation.x,
            "nla": ob["N"].matrix_world.translation.x,
            "driver": ob["D"].matrix_world.translation.x,
            "follow_path": ob["FP"].matrix_world.translation.x,
            "track_to": ob["T"].matrix_world.to_euler()[2],
            "gn_scene_time": ev("SceneTime").data.vertices[0].co.x,
            "wave": max(v.co.z for v in ev("Wave").data.vertices),
            "build": float(len(ev("Build").data.polygons))}

M = MULT
path = os.path.join(TMP, "sources.blend")
build()
bpy.ops.wm.save_as_mainfile(filepath=path)
sc = bpy.context.scene
ref = {}
for f in range(sc.frame_start, sc.frame_end + 1):   # simulations step frame by frame
    sc.frame_set(f); ref[float(f)] = sample()
a, b = sc.frame_start, sc.frame_end
for F in range(round(a * M), round(b * M) + 1):     # fractional times of the file's clock
    t = F / M
    if not t.is_integer():
        sc.frame_set(int(math.floor(t)), subframe=t - math.floor(t)); ref[t] = sample()
bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
sc = bpy.context.scene
timing.stretch(sc, M, "sources.blend")
got = {}
for F in range(sc.frame_start, sc.frame_end + 1):
    sc.frame_set(F); got[F / M] = sample()
err = {}
for key in got[next(iter(got))]:
    err[key] = max(abs(v[key] - ref[t][key]) for t, v in got.items() if t in ref)
moved = {key: max(v[key] for v in ref.values()) - min(v[key] for v in ref.values()) for key in err}
print("RESULT" + json.dumps({"err": err, "moved": moved, "range": [sc.frame_start, sc.frame_end],
                             "fps": scene_setup.frame_rate(sc), "map": [sc.render.frame_map_old,
                                                                        sc.render.frame_map_new]}))
'''


def _run(mult: float, tmp_path, python: str | None = None) -> dict:
    # Start at frame 1: at 1.5 the simulation's start falls between stretched frames.
    code = BUILD.replace("MULT", repr(mult)).replace("TMP", repr(str(tmp_path)))
    code = code.replace("START", "1")
    out = run_bpy(code, python=python)
    return json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT"))[6:])


@pytest.mark.parametrize("python", [None, *extra_pythons()], ids=lambda p: p or "bpy-default")
@pytest.mark.parametrize("mult", [2.0, 1.5])
def test_every_accepted_time_source_follows_the_stretched_clock(tmp_path, mult, python):
    r = _run(mult, tmp_path, python)
    for key, moved in r["moved"].items():
        assert moved > 0.1, (key, moved)  # every source really moves over the range
    # Frame F shows the file's own time F/m, integer and fractional t (Build counts faces).
    bad = {k: e for k, e in r["err"].items() if e > 1e-5}
    assert not bad, bad
    assert r["range"] == [round(1 * mult + 1e-9), round(30 * mult)]
    assert r["fps"] == pytest.approx(24 * mult)
    assert r["map"][1] / r["map"][0] == pytest.approx(mult)


REFUSE = r'''
import bpy, json
from dataset_forge.render_passes import scene_setup, timing
bpy.ops.wm.read_homefile(use_empty=True)
sc = bpy.context.scene
out = {"plain": timing.refusals(sc, 2.0), "odd": timing.refusals(sc, 1.0 / 7.123),
       "ratio": [timing.remap_ratio(2.0), timing.remap_ratio(1.5), timing.remap_ratio(0.5),
                 timing.remap_ratio(1.37), timing.remap_ratio(2.0, 100, 200),
                 timing.remap_ratio(100.0), timing.remap_ratio(0.01)]}
sc.render.frame_map_old, sc.render.frame_map_new = 100, 50    # the file's own remapping
timing.stretch(sc, 2.0)
out["own_map"] = [sc.render.frame_map_old, sc.render.frame_map_new]
print("RESULT" + json.dumps(out))
'''


def test_remap_ratio_and_unrepresentable_multiplier():
    r = json.loads(next(ln for ln in run_bpy(REFUSE).splitlines()
                        if ln.startswith("RESULT"))[6:])
    assert r["plain"] == []
    assert len(r["odd"]) == 1 and "not a ratio of whole numbers up to 900" in r["odd"][0]
    assert r["ratio"] == [[100, 200], [100, 150], [100, 50], [100, 137], [100, 400], [9, 900],
                          [100, 1]]
    # A file that already remaps time keeps its own remapping, slowed down by the multiplier.
    assert r["own_map"][1] / r["own_map"][0] == pytest.approx(1.0)
