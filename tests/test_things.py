# SPDX-License-Identifier: GPL-3.0-or-later
"""Ids and object records of every kind of drawn thing: one instance per drawn thing, its object
id in the segmentation, its pixels inside its visible box and inside the projection of its 3D box.

Blender >= 3.0 evaluates a curve, text, NURBS surface or metaball to a geometry set whose mesh
the depsgraph lists as a second, instanced entry (the object's own entry is not drawn by
Cycles); a mesh whose geometry nodes output points or a volume lists those the same way. The
scene ``things`` (64 x 48 px, camera 10 units above the origin looking down, frames 1..2) holds
one of each kind, built by code:

* ``Bevel``: a 3000-unit poly curve beveled 0.15 along y = 2 (the issue's long beveled curve);
* ``Text`` ("Hi"), ``Surf`` (a NURBS sphere), ``Filled`` (a filled 2D square curve),
  ``GNCurve`` (a curve whose geometry nodes turn it into a tube);
* ``Cloud`` (a point cloud object, geometry nodes Points: one 0.4 point), ``MeshPoints`` (a
  mesh whose geometry nodes output only its vertices as 0.2 points), ``Mixed`` (a cube joined
  with its vertices as 0.15 points);
* ``Hair`` (a hair curves object, geometry nodes Curve Line of radius 0.12), ``MeshCurve`` (a
  mesh whose geometry nodes output curves: listed as a legacy curve instance, not drawn);
* ``Fog`` (a cube turned into a volume by Mesh to Volume: no Object Index);
* ``Meta`` and ``Meta.001`` (one metaball family: Cycles draws the pair as ``Meta``);
* ``Moving``: a beveled curve translating 0.4 units / frame in x.

``things_iter`` adds an empty ``SpareA`` instancing the excluded collection ``Spare`` (the
beveled curve ``SpareCurve``) and an emitter whose 2 particles are ``SpareCurve`` (Cycles draws
no particle that is a curve object: no instance): any instancer makes the tracker walk
``depsgraph.object_instances`` (always on 4.2), the path that split a curve into two instances.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from conftest import bpy_pythons, run_bpy
from dataset_forge.dataset import objects as od
from dataset_forge.dataset.loader import load

pytestmark = pytest.mark.render
PYTHONS = bpy_pythons()
FAST = dict(width=64, height=48, max_samples=1, adaptive_threshold=0.0, use_denoising=False,
            timeout=240.0, retries=0, file_format="OPEN_EXR", bit_depth=32, debug=False,
            depths=True, flows=False, segmentations=True)

BUILD = r'''
import bpy, bmesh
args = ARGS

def link(ob, loc, col=None):
    ob.location = loc
    (col or bpy.context.scene.collection).objects.link(ob)
    return ob

def poly(name, pts, bevel=0.0, dims="3D", cyclic=False):
    cu = bpy.data.curves.new(name, "CURVE")
    cu.dimensions = dims
    sp = cu.splines.new("POLY")
    sp.points.add(len(pts) - 1)
    for i, p in enumerate(pts):
        sp.points[i].co = (p[0], p[1], 0.0, 1.0)
    sp.use_cyclic_u = cyclic
    cu.bevel_depth = bevel
    return bpy.data.objects.new(name, cu)

def cube_mesh(name, size):
    me = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=size)
    bm.to_mesh(me)
    bm.free()
    return me

def nodes(ob, name, build):
    ng = bpy.data.node_groups.new(name, "GeometryNodeTree")
    if hasattr(ng, "interface"):
        ng.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        ng.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    gi, go = ng.nodes.new("NodeGroupInput"), ng.nodes.new("NodeGroupOutput")
    build(ng, gi.outputs[0], go.inputs[0])
    ob.modifiers.new("GN", "NODES").node_group = ng

def build(path, with_instancer):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.preferences.edit.keyframe_new_interpolation_type = "LINEAR"
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    world = bpy.data.worlds.new("W"); world.use_nodes = True; scene.world = world
    cam = link(bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam")), (0.0, 0.0, 10.0))
    cam.data.lens, cam.data.sensor_width = 50.0, 36.0
    scene.camera = cam
    sun = link(bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN")), (0, 0, 5))
    link(poly("Bevel", [(-1500.0, 0.0), (1500.0, 0.0)], 0.15), (0.0, 2.0, 0.0))
    t = bpy.data.curves.new("Text", "FONT"); t.body = "Hi"; t.extrude = 0.05
    link(bpy.data.objects.new("Text", t), (-3.2, 0.2, 0.0))
    bpy.ops.surface.primitive_nurbs_surface_sphere_add(radius=0.5, location=(-1.2, 0.6, 0.0))
    bpy.context.active_object.name = "Surf"
    link(poly("Filled", [(-0.4, -0.4), (0.4, -0.4), (0.4, 0.4), (-0.4, 0.4)], dims="2D",
              cyclic=True), (0.3, 0.6, 0.0)).data.fill_mode = "BOTH"
    gc = link(poly("GNCurve", [(-0.5, 0.0), (0.5, 0.3)]), (2.2, 0.6, 0.0))
    def tube(ng, i, o):
        c2m = ng.nodes.new("GeometryNodeCurveToMesh")
        prof = ng.nodes.new("GeometryNodeCurvePrimitiveCircle")
        prof.inputs["Radius"].default_value = 0.2
        ng.links.new(i, c2m.inputs["Curve"]); ng.links.new(prof.outputs[0], c2m.inputs["Profile Curve"])
        ng.links.new(c2m.outputs[0], o)
    nodes(gc, "Tube", tube)
    cloud = link(bpy.data.objects.new("Cloud", bpy.data.pointclouds.new("Cloud")), (-2.6, -1.2, 0.0))
    def points(ng, i, o):
        p = ng.nodes.new("GeometryNodePoints")
        p.inputs["Count"].default_value = 1
        p.inputs["Radius"].default_value = 0.4
        ng.links.new(p.outputs[0], o)
    nodes(cloud, "Points", points)
    def to_points(radius, keep):
        def b(ng, i, o):
            m2p = ng.nodes.new("GeometryNodeMeshToPoints")
            m2p.inputs["Radius"].default_value = radius
            ng.links.new(i, m2p.inputs["Mesh"])
            if keep:
                j = ng.nodes.new("GeometryNodeJoinGeometry")
                ng.links.new(i, j.inputs[0]); ng.links.new(m2p.outputs[0], j.inputs[0])
                ng.links.new(j.outputs[0], o)
            else:
                ng.links.new(m2p.outputs[0], o)
        return b
    nodes(link(bpy.data.objects.new("MeshPoints", cube_mesh("MP", 0.6)), (-1.4, -1.3, 0.0)),
          "ToPoints", to_points(0.2, False))
    nodes(link(bpy.data.objects.new("Mixed", cube_mesh("MX", 0.5)), (0.0, -1.3, 0.0)),
          "Join", to_points(0.15, True))
    fog = link(bpy.data.objects.new("Fog", cube_mesh("Fog", 0.8)), (2.8, -1.4, 0.0))
    def volume(ng, i, o):
        m2v = ng.nodes.new("GeometryNodeMeshToVolume")
        ng.links.new(i, m2v.inputs[0]); ng.links.new(m2v.outputs[0], o)
    nodes(fog, "Fog", volume)
    for k, x in enumerate((1.2, 1.75)):
        mb = bpy.data.metaballs.new(f"MB{k}")
        mb.elements.new().radius = 0.5
        link(bpy.data.objects.new("Meta" if k == 0 else "Meta.001", mb), (x, -0.5, 0.0))
    hair = link(bpy.data.objects.new("Hair", bpy.data.hair_curves.new("Hair")), (-0.6, 1.4, 0.0))
    def line(ng, i, o):
        ln = ng.nodes.new("GeometryNodeCurvePrimitiveLine")
        ln.inputs["Start"].default_value = (-0.4, 0.0, 0.0)
        ln.inputs["End"].default_value = (0.4, 0.0, 0.0)
        r = ng.nodes.new("GeometryNodeSetCurveRadius")
        r.inputs["Radius"].default_value = 0.12
        ng.links.new(ln.outputs[0], r.inputs["Curve"]); ng.links.new(r.outputs[0], o)
    nodes(hair, "Line", line)
    mc = link(bpy.data.objects.new("MeshCurve", cube_mesh("MC", 0.5)), (1.0, 1.3, 0.0))
    def to_curve(ng, i, o):
        m2c = ng.nodes.new("GeometryNodeMeshToCurve")
        r = ng.nodes.new("GeometryNodeSetCurveRadius")
        r.inputs["Radius"].default_value = 0.1
        ng.links.new(i, m2c.inputs["Mesh"]); ng.links.new(m2c.outputs[0], r.inputs["Curve"])
        ng.links.new(r.outputs[0], o)
    nodes(mc, "ToCurve", to_curve)
    mv = link(poly("Moving", [(-0.3, 0.0), (0.3, 0.0)], 0.12), (-0.4, -2.1, 0.0))
    for f in (0, 3):
        mv.location.x = -0.4 + 0.4 * (f - 1)
        mv.keyframe_insert("location", index=0, frame=f)
    if with_instancer:
        spare = bpy.data.collections.new("Spare")
        scene.collection.children.link(spare)
        link(poly("SpareCurve", [(-0.3, 0.0), (0.3, 0.0)], 0.12), (0.0, 0.0, 0.0), spare)
        bpy.context.view_layer.layer_collection.children["Spare"].exclude = True
        e = link(bpy.data.objects.new("SpareA", None), (2.0, -2.2, 0.0))
        e.instance_type, e.instance_collection = "COLLECTION", spare
        me = bpy.data.meshes.new("Emitter")
        me.from_pydata([(-0.3, 0, 0), (0.3, 0, 0), (0.3, 0.2, 0), (-0.3, 0.2, 0)], [], [(0, 1, 2, 3)])
        em = link(bpy.data.objects.new("Emitter", me), (-2.4, 1.2, 0.0))
        ps = em.modifiers.new("Sparks", "PARTICLE_SYSTEM").particle_system
        st = ps.settings
        st.count, st.frame_start, st.frame_end, st.physics_type = 2, -5, -5, "NO"
        st.emit_from, st.use_emit_random, st.render_type = "VERT", False, "OBJECT"
        st.instance_object, st.particle_size = spare.objects[0], 1.0
        em.show_instancer_for_render = False
    bpy.ops.wm.save_as_mainfile(filepath=path)

for name, inst in (("things", False), ("things_iter", True)):
    build(args["out"] + "/" + name + ".blend", inst)
print("BUILT")
'''

# Drawn things with pixels (every one exactly one instance). Meta.001 has none: Cycles draws the
# metaball family as its basis object Meta. Fog (a volume) is one instance without pixels:
# volumes write no Object Index.
SEEN = ("Bevel", "Text", "Surf", "Filled", "GNCurve", "Cloud", "MeshPoints", "Mixed", "Meta",
        "Moving", "Hair")
SEEN_ITER = (*SEEN, "SpareCurve")
# Object-space boxes the records must contain (lo, hi), from the scene's construction:
# the bevel's radius 0.15 around a 3000-unit line; a 0.4 point; a 0.6 cube's corners as 0.2
# points; a 0.5 cube with 0.15 points on its corners; a 0.8 cube's volume; both balls of the
# metaball family (0.55 apart; radius 0.5 at threshold 0.6 draws a ball about 0.25 across); a
# 0.8 line of radius 0.12.
BOXES = {"Bevel": ((-1500, -0.15, -0.15), (1500, 0.15, 0.15)),
         "Cloud": ((-0.4,) * 3, (0.4,) * 3), "MeshPoints": ((-0.5,) * 3, (0.5,) * 3),
         "Mixed": ((-0.4,) * 3, (0.4,) * 3), "Fog": ((-0.4,) * 3, (0.4,) * 3),
         "Meta": ((-0.24,) * 3, (0.55 + 0.24, 0.24, 0.24)),
         "Hair": ((-0.52, -0.12, -0.12), (0.52, 0.12, 0.12))}
PX_TOL = 0.01  # px: ids come from a sample at the pixel centre (docs/ground_truth.md)


def summary(seq_dir: Path) -> dict:
    """Per object name: its instances in the records; pixels with a depth but no object id;
    per frame and instance: the pixels the segmentation gives it, their object ids and whether
    they lie inside its ``bbox_visib`` and ``bbox_obj``."""
    seq = load(seq_dir)
    objs = seq.objects
    out: dict = {"names": {}, "unidentified": 0, "frames": []}
    for i, name in enumerate(objs.names):
        out["names"].setdefault(name, []).append(int(objs.instance_ids[i]))
    for fr in seq:
        ids, inst, fo = fr.segmentation, fr.instances, fr.objects
        out["unidentified"] += int(((ids == 0) & (fr.depth > 0)).sum())  # background depth 0
        per = {}
        for j, iid in enumerate(fo.instance_ids.tolist()):
            ys, xs = np.nonzero(inst == iid)
            cx, cy = xs + 0.5, ys + 0.5
            bv, bo = fo.bbox_visib[j], fo.bbox_obj[j]
            in_v = ((xs >= bv[0]) & (xs < bv[0] + bv[2]) & (ys >= bv[1]) & (ys < bv[1] + bv[3]))
            in_o = ((cx >= bo[0] - PX_TOL) & (cx <= bo[0] + bo[2] + PX_TOL)
                    & (cy >= bo[1] - PX_TOL) & (cy <= bo[1] + bo[3] + PX_TOL))
            per[iid] = {"name": fo.names[j], "px": len(xs), "object_id": int(fo.object_ids[j]),
                        "ids_there": sorted(set(np.unique(ids[ys, xs]).tolist())),
                        "outside_visib": int((~in_v).sum()), "outside_obj": int((~in_o).sum())}
        out["frames"].append({"frame": fr.number, "instances": per})
    return out


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def things(request, tmp_path_factory) -> dict:
    """Both scenes rendered (frames 1..2, every instance recorded) with this Blender."""
    label, python = request.param
    root = tmp_path_factory.mktemp(f"things-{label}")
    assert "BUILT" in run_bpy(f"ARGS = {json.dumps({'out': str(root)})}\n" + BUILD,
                              python=python or None)
    out = {}
    for name in ("things", "things_iter"):
        seq = root / name
        s = dataset_forge.render_animation(root / f"{name}.blend", seq, frame_start=1,
                                           frame_end=2, executable=python, object_records="all",
                                           **FAST)
        assert s["ok"], json.dumps(s["scenes"], indent=1)[:3000]
        out[name] = {"dir": seq, "summary": summary(seq),
                     "info": json.loads((seq / "info.json").read_text()),
                     "version": json.loads((seq / "transforms.json").read_text())["blender_version"]}
    want = re.search(r"\d+\.\d+", label)
    if want:  # a label naming a version must get that version
        assert out["things"]["version"].startswith(want.group()), label
    return out


@pytest.mark.parametrize("name", ["things", "things_iter"])
def test_one_instance_per_drawn_thing(things, name):
    names = things[name]["summary"]["names"]
    seen = SEEN_ITER if name == "things_iter" else SEEN
    assert {n: len(v) for n, v in names.items()} == {n: 1 for n in (*seen, "Fog")}
    # the id of a drawn thing is that of a plain object, whichever path collected it
    for n in seen + ("Fog",):
        chain, pid = (["SpareA"], [0]) if n == "SpareCurve" else ([], [])
        assert names[n] == [od.instance_id(od.instance_key(n, chain, pid))], n
    assert things["things"]["summary"]["names"]["Bevel"] == \
        things["things_iter"]["summary"]["names"]["Bevel"]


@pytest.mark.parametrize("name", ["things", "things_iter"])
def test_ids_in_the_pixels_and_pixels_in_the_boxes(things, name):
    sm = things[name]["summary"]
    assert sm["unidentified"] == 0  # a surface (depth) without an object id
    stats = things[name]["info"]["objects"]["pixels"]
    # one candidate per object id: no pixel needs a geometric pick (before: 938 by surface)
    assert stats["unidentified"] == stats["by_box"] == stats["by_surface"] == 0, stats
    px = {}
    for fr in sm["frames"]:
        for v in fr["instances"].values():
            px[v["name"]] = px.get(v["name"], 0) + v["px"]
            if v["px"]:
                assert v["ids_there"] == [v["object_id"]], (fr["frame"], v)
            assert v["outside_visib"] == 0 and v["outside_obj"] == 0, (fr["frame"], v)
    seen = SEEN_ITER if name == "things_iter" else SEEN
    assert all(px[n] > 0 for n in seen), px
    assert px["Fog"] == 0  # volumes write no Object Index (docs/blender_notes.md)


@pytest.mark.parametrize("name", ["things", "things_iter"])
def test_boxes_contain_what_is_drawn(things, name):
    seq = load(things[name]["dir"])
    for fr in seq:
        fo = fr.objects
        for j, n in enumerate(fo.names):
            if n not in BOXES:
                continue
            lo, hi = (np.array(b, float) for b in BOXES[n])
            tol = 0.02 * np.maximum(hi - lo, 0.05)  # a round bevel's and a volume's voxel steps
            assert (fo.box_lo[j] <= lo + tol).all() and (fo.box_hi[j] >= hi - tol).all(), \
                (n, fo.box_lo[j], fo.box_hi[j])
            assert (fo.box_lo[j] >= lo - 0.2).all() and (fo.box_hi[j] <= hi + 0.2).all(), \
                (n, fo.box_lo[j], fo.box_hi[j])


@pytest.mark.parametrize("name", ["things", "things_iter"])
def test_validate_objects_check_passes(things, name):
    rep = dataset_forge.validate(things[name]["dir"], write=False, update_manifest=False)
    (sq,) = rep["sequences"]
    assert sq["checks"]["objects"]["ok"] is True, sq["checks"]["objects"]
    assert sq["checks"]["objects"]["instances"] == len(things[name]["summary"]["names"])
