# SPDX-License-Identifier: GPL-3.0-or-later
"""Object and instance ids, ``objects.json`` poses/boxes and deformation flags, against Blender's
own evaluation (depsgraph instances, ``world_to_camera_view``, ``scene.ray_cast``).

The scene (``tests/instance_scenes.py``, ``gt_instances``) has two empties instancing one
collection (one moving), a nested collection instance, a geometry-nodes scatter of 4 cubes on a
turning object, a particle system of 5 object instances, a shape-key mesh, an armature-deformed
mesh and a camera cut. It is rendered four times per Blender version: frames 1-4 twice (two
runs), frames 2-4 (another sequence) and frames 1-4 without segmentations (RGB identity).
``DF_EXTRA_PYTHONS`` adds the same checks on other bpy versions (like test_ground_truth).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from conftest import REPO, bpy_env, bpy_pythons, run_bpy
from dataset_forge.dataset import exr
from dataset_forge.dataset import objects as od
from dataset_forge.dataset.documents.objects import SCHEMA
from dataset_forge.dataset.documents.objects_files import ObjectsSource
from instance_scenes import SPECS

pytestmark = pytest.mark.render  # 4.5/4.2 through DF_EXTRA_PYTHONS, from the 5.0 run

SPEC = SPECS["gt_instances"]
FAST = dict(width=64, height=48, max_samples=4, adaptive_threshold=0.0, use_denoising=False,
            timeout=240.0, retries=0, file_format="OPEN_EXR", bit_depth=32, debug=False, depths=True,
            flows=True)
PYTHONS = bpy_pythons()
# Sub-pixel ray offsets: a 5x5 grid over the reach of Cycles' 1.5 px pixel filter.
OFFSETS = [(dx, dy) for dy in np.linspace(-0.75, 0.75, 5) for dx in np.linspace(-0.75, 0.75, 5)]


def build(out: Path, python: str | None) -> Path:
    subprocess.run([python or sys.executable, str(REPO / "tests" / "instance_scenes.py"),
                    str(out)], check=True, env=bpy_env(), capture_output=True, timeout=300)
    return out / "gt_instances.blend"


def render(blend: Path, out: Path, a: int, b: int, python: str, **extra) -> Path:
    summary = dataset_forge.render_animation(blend, out, frame_start=a, frame_end=b,
                                             executable=python,
                                             **{**FAST, "segmentations": True, **extra})
    assert summary["ok"], json.dumps(summary["scenes"], indent=1)[:3000]
    return out


def load(root: Path) -> dict:
    tf = json.loads((root / "transforms.json").read_text())
    return {"root": root, "tf": tf, "frames": {fr["frame"]: fr for fr in tf["frames"]},
            "objects": objects_as_entries(root, tf) if (root / "objects.json").exists() else None,
            "ids": json.loads((root / "segmentation_ids.json").read_text())
            if (root / "segmentation_ids.json").exists() else None}


def objects_as_entries(root: Path, tf: dict) -> dict:
    """``objects.json`` (schema 2) and the frames' records as one dict of per-frame entries
    (``object_to_camera`` and ``bbox_3d`` derived from the record and the frame's pose)."""
    src = ObjectsSource(root, root / "objects.json")
    assert src.schema == SCHEMA
    poses = {fr["frame"]: np.array(fr["transform_matrix"]) for fr in tf["frames"]}
    frames = []
    for f in src.doc.frames:
        rec = src.record(f)
        o2c, corners = rec.object_to_camera(poses[f]), rec.bbox_3d()
        frames.append({"frame": f, "camera": rec.camera, "instances": [
            {"instance_id": int(rec.instance_id[j]), "object_to_world": rec.object_to_world[j].tolist(),
             "object_to_camera": o2c[j].tolist(), "bbox_3d": corners[j].tolist(),
             "bbox_obj": rec.bbox_obj[j].tolist(), "bbox_visib": rec.bbox_visib[j].tolist(),
             "px_count_visib": int(rec.px_count_visib[j])} for j in range(len(rec))]})
    return {"records": src.doc.records, "instances": [r.to_dict() for r in src.rows],
            "frames": frames}


def visible_only(objects: dict) -> dict:
    """What the default ``object_records="visible"`` keeps of an ``"all"`` objects dict."""
    frames = [{**fr, "instances": [e for e in fr["instances"] if e["px_count_visib"] > 0]}
              for fr in objects["frames"]]
    seen = {e["instance_id"] for fr in frames for e in fr["instances"]}
    return {"records": "visible", "instances": [i for i in objects["instances"]
                                                if i["instance_id"] in seen], "frames": frames}


ORACLE = r'''
import json, sys
import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
args = ARGS
bpy.ops.wm.open_mainfile(filepath=args["blend"])
scene = bpy.context.scene
out = {}
w, h = args["w"], args["h"]
for f, cam in args["frames"].items():
    scene.frame_set(int(f))
    dg = bpy.context.evaluated_depsgraph_get()
    insts = []
    for inst in dg.object_instances:
        ob = inst.object
        if ob.type != "MESH" or not len(ob.data.vertices):
            continue
        name = ob.original.name
        orig = ob.original
        if not inst.is_instance and (orig.hide_render or any(
                c.hide_render for c in orig.users_collection) or (
                orig.particle_systems and not orig.show_instancer_for_render)):
            continue
        mw = inst.matrix_world.copy()
        co = [mw @ v.co for v in ob.data.vertices]
        uv = [world_to_camera_view(scene, scene.camera, c) for c in co]
        us = [p.x * w for p in uv]
        vs = [(1.0 - p.y) * h for p in uv]
        box = [max(min(us), 0.0), max(min(vs), 0.0), min(max(us), w), min(max(vs), h)]
        insts.append({"name": name, "instance": inst.is_instance,
                      "matrix": [list(r) for r in mw], "box": box})
    pose = np.array(cam["pose"])
    K = np.array(cam["K"])
    origin = Vector(pose[:3, 3])
    hits = np.full((len(OFFSETS), h, w), -1, np.int32)
    mats = [np.array(i["matrix"]) for i in insts]
    cache = {}
    unmatched = []
    hidden = {o.name for o in bpy.data.objects if o.particle_systems
              and not o.show_instancer_for_render}
    for k, (dx, dy) in enumerate(OFFSETS):
        for r in range(h):
            for c in range(w):
                x = (c + 0.5 + dx - K[0, 2]) / K[0, 0]
                y = (r + 0.5 + dy - K[1, 2]) / K[1, 1]
                d = pose[:3, :3] @ np.array([x, -y, -1.0])
                start = origin
                for _ in range(4):  # pass through things the render does not draw (the emitter)
                    ok, loc, nrm, idx, ob, m = scene.ray_cast(dg, start, Vector(d))
                    if not ok or ob.original.name not in hidden:
                        break
                    start = loc + Vector(d) * 1e-4
                if not ok:
                    continue
                key = (ob.original.name, tuple(round(v, 4) for row in m for v in row))
                if key not in cache:
                    mm = np.array([list(row) for row in m])
                    cand = [j for j, i in enumerate(insts) if i["name"] == ob.original.name
                            and np.allclose(mats[j], mm, atol=1e-5)]
                    cache[key] = cand[0] if len(cand) == 1 else -2
                    if len(cand) != 1:
                        unmatched.append([ob.original.name, len(cand), [list(row) for row in m]])
                hits[k, r, c] = cache[key]
    out[f] = {"camera": scene.camera.name, "instances": insts, "hits": hits.tolist(),
              "unmatched": unmatched}
print("ORACLE" + json.dumps(out))
'''


def oracle(blend: Path, seq: dict, python: str) -> dict:
    tf = seq["tf"]
    frames = {str(f): {"pose": fr["transform_matrix"], "K": fr.get("intrinsics", tf["intrinsics"])}
              for f, fr in seq["frames"].items()}
    args = {"blend": str(blend), "w": tf["w"], "h": tf["h"], "frames": frames}
    code = f"ARGS = {json.dumps(args)}\nOFFSETS = {json.dumps(OFFSETS)}\n" + ORACLE
    text = run_bpy(code, python=python or None, timeout=600)
    res = json.loads(text.split("ORACLE", 1)[1].strip().splitlines()[0])
    return {int(f): v for f, v in res.items()}


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def inst(request, tmp_path_factory) -> dict:
    label, python = request.param
    root = tmp_path_factory.mktemp(f"inst-{label}")
    blend = build(root / "scenes", python)
    out = {"blend": blend, "python": python}
    out["a"] = load(render(blend, root / "a", 1, 4, python, object_records="all"))
    want = re.search(r"\d+\.\d+", label)
    if want:  # a label naming a version must get that version
        assert out["a"]["tf"]["blender_version"].startswith(want.group()), label
    out["a2"] = load(render(blend, root / "a2", 1, 4, python))
    a2_doc = (root / "a2" / "objects.json").read_text()
    render(blend, root / "a2", 1, 4, python)  # a resumed run: every frame is skipped
    assert (root / "a2" / "objects.json").read_text() == a2_doc != ""
    out["resumed"] = load(root / "a2")
    out["b"] = load(render(blend, root / "b", 2, 4, python))
    # workers recycled every frame: each process renders one frame and skips the done ones
    out["recycled"] = load(render(blend, root / "rec", 1, 4, python, recycle_frames=1))
    out["off"] = load(render(blend, root / "off", 1, 4, python, segmentations=False))
    out["seg_only"] = load(render(blend, root / "so", 1, 4, python, depths=False, normals=False,
                                  flows=False))
    out["oracle"] = oracle(blend, out["a"], python)
    return out


def _entries(seq: dict, frame: int) -> dict[int, dict]:
    fr = next(f for f in seq["objects"]["frames"] if f["frame"] == frame)
    return {e["instance_id"]: e for e in fr["instances"]}


def _match(seq: dict, frame: int, name: str, matrix, listed: bool = True) -> int:
    """Instance id of the objects.json entry of ``name`` at ``matrix`` (exactly one; with
    ``listed`` False, 0 when there is none: a frame lists the instances it shows)."""
    infos = {i["instance_id"]: i for i in seq["objects"]["instances"]}
    found = [iid for iid, e in _entries(seq, frame).items() if infos[iid]["object"] == name
             and np.allclose(e["object_to_world"], matrix, atol=1e-5)]
    if not found and not listed:
        return 0
    assert len(found) == 1, (frame, name, found)
    return found[0]


def test_every_instance_has_ids(inst):
    seq = inst["a"]
    infos = {i["instance_id"]: i for i in seq["objects"]["instances"]}
    by_obj: dict[str, list] = {}
    for i in infos.values():
        assert i["object_id"] > 0 and 0 < i["instance_id"] <= od.MAX_INSTANCE_ID
        by_obj.setdefault(i["object"], []).append(i)
    # 3 rocks (RockA, RockB, nested PileA > Inner), 4 scattered cubes, 5 particles, 3 bolts.
    assert len(by_obj["Rock"]) == 3 and len(by_obj["Turntable"]) == 4
    assert len(by_obj["Pebble"]) == 5
    assert sorted(tuple(i["instancer_chain"]) for i in by_obj["Rock"]) == [
        ("PileA", "Inner"), ("RockA",), ("RockB",)]
    assert all(i["instancer_chain"] == ["Emitter"] for i in by_obj["Pebble"])
    # geometry nodes instancing a real object: the object's own id and class
    assert len(by_obj["Bolt"]) == 3 and all(i["instancer_chain"] == ["Stand"] and
                                            i["category"] == "bolt" for i in by_obj["Bolt"])
    assert by_obj["Rock"][0]["category"] == "rock"
    ids = seq["ids"]
    assert set(ids["instances"]) == {str(i) for i in infos}
    for v in ids["instances"].values():
        assert ids["ids"][str(v["object_id"])]["name"] == v["object"]
    # every instance is drawn and seen in the image in some frame
    for iid in infos:
        assert max(_entries(seq, f).get(iid, {"px_count_visib": 0})["px_count_visib"]
                   for f in range(1, 5)) > 0, infos[iid]


def test_stable_across_sequences_and_runs(inst):
    """Also: the default (visible) records are the all-instances records' visible rows."""
    a, a2, b = inst["a"], inst["a2"], inst["b"]
    assert a["objects"]["records"] == "all" and a2["objects"]["records"] == "visible"
    assert visible_only(a["objects"]) == a2["objects"]
    assert a["objects"]["instances"] == a2["objects"]["instances"]
    assert a["ids"] == a2["ids"]
    assert [i["instance_id"] for i in a["objects"]["instances"]] == \
           [i["instance_id"] for i in b["objects"]["instances"]]
    assert a["ids"]["ids"] == b["ids"]["ids"] and a["ids"]["instances"] == b["ids"]["instances"]
    for f in (2, 3, 4):
        for other in (a2, b):
            o1, i1 = od.read_ids(a["root"] / a["frames"][f]["segmentation_file_path"])
            o2, i2 = od.read_ids(other["root"] / other["frames"][f]["segmentation_file_path"])
            assert np.array_equal(o1, o2) and np.array_equal(i1, i2), f
        assert {i: e for i, e in _entries(a, f).items() if e["px_count_visib"]} == _entries(b, f)


def test_metadata_comes_from_the_render_depsgraph(inst):
    info = json.loads((inst["a"]["root"] / "info.json").read_text())["objects"]
    assert info["sources"] == {"render_depsgraph": 4, "viewport_depsgraph": 0}
    assert info["pixels"]["unidentified"] == 0
    # every pixel whose Random AOV was written names a candidate within its box's tolerance
    print("pixels by rule:", info["pixels"])
    assert info["pixels"]["aov_mismatch"] == 0 and info["pixels"]["by_aov"] > 0, info["pixels"]


def test_ids_alone_name_instances_by_the_data_render(inst):
    """Segmentations without normals or flow: the scene draws instances, so the frame still has
    its 1-sample data render and the Random AOV names each pixel's instance (no geometric
    picking), giving the id images and records of the run with every ground truth."""
    so, a = inst["seg_only"], inst["a"]
    info = json.loads((so["root"] / "info.json").read_text())["objects"]
    assert info["pixels"]["by_aov"] > 0 and info["pixels"]["by_surface"] == 0, info["pixels"]
    assert info["pixels"]["aov_mismatch"] == 0, info["pixels"]
    for f, fr in so["frames"].items():
        got = od.read_ids(so["root"] / fr["segmentation_file_path"])
        want = od.read_ids(a["root"] / a["frames"][f]["segmentation_file_path"])
        assert all(np.array_equal(g, w) for g, w in zip(got, want)), f
    assert so["objects"] == visible_only(a["objects"])


def test_resumed_run_writes_the_same_metadata(inst):
    """Frames skipped on a resumed run take their metadata from the viewport depsgraph and the
    existing id files: the result equals the rendering run's."""
    assert inst["resumed"]["objects"] == inst["a2"]["objects"] == visible_only(inst["a"]["objects"])
    assert inst["resumed"]["ids"] == inst["a2"]["ids"]


def test_recycled_workers_write_the_same_metadata(inst):
    assert inst["recycled"]["objects"] == visible_only(inst["a"]["objects"])
    assert inst["recycled"]["ids"] == inst["a"]["ids"]


def test_pixels_carry_their_instance(inst):
    """Interior pixels (all 25 sub-pixel rays hit one instance) carry that instance's ids;
    no pixel carries an instance that none of its rays hits."""
    seq, orc = inst["a"], inst["oracle"]
    infos = {i["instance_id"]: i for i in seq["objects"]["instances"]}
    checked = wrong = foreign = 0
    for f, o in orc.items():
        obj, ins = od.read_ids(seq["root"] / seq["frames"][f]["segmentation_file_path"])
        iids = [_match(seq, f, i["name"], i["matrix"], listed=False) for i in o["instances"]]
        hits = np.array(o["hits"])
        assert (hits != -2).all(), o["unmatched"]
        lut = np.array(iids + [0], np.int64)  # index -1 (miss) -> 0
        hit_ids = lut[hits]
        interior = (hit_ids == hit_ids[0]).all(0) & (hit_ids[0] > 0)
        checked += int(interior.sum())
        wrong += int((ins[interior] != hit_ids[0][interior]).sum())
        want_obj = np.vectorize(lambda i: infos[i]["object_id"] if i else 0)(hit_ids[0])
        wrong += int((obj[interior] != want_obj[interior]).sum())
        foreign += int(((ins > 0) & ~(hit_ids == ins[None].astype(np.int64)).any(0)).sum())
        # background (no ray hits anything) never occurs here: the ground fills the view
        assert (ins > 0).all() and (obj > 0).all()
    print(f"instance-id purity: {checked} interior pixels checked, {wrong} wrong, "
          f"{foreign} foreign")
    assert checked > 3000 and wrong == 0 and foreign == 0


def test_poses_and_boxes_match_blender(inst):
    seq, orc = inst["a"], inst["oracle"]
    worst_box = worst_pose = 0.0
    for f, o in orc.items():
        fr = seq["frames"][f]
        assert o["camera"] == fr["camera"]
        pose_cv = np.array(fr["transform_matrix"]) @ np.diag([1.0, -1.0, -1.0, 1.0])
        ents = _entries(seq, f)
        # a frame lists the instances it shows (object_records "visible"), each one drawn
        matched = [_match(seq, f, i["name"], i["matrix"], listed=False) for i in o["instances"]]
        assert set(ents) == set(matched) - {0} and len(ents) > 10
        for i, iid in zip(o["instances"], matched):
            if not iid:
                continue
            e = ents[iid]
            m = np.array(e["object_to_world"])
            worst_pose = max(worst_pose, float(np.abs(m - np.array(i["matrix"])).max()))
            o2c = np.linalg.inv(pose_cv) @ m
            assert np.allclose(e["object_to_camera"], o2c, atol=1e-6)
            x0, y0, x1, y1 = i["box"]
            want = [x0, y0, x1 - x0, y1 - y0]
            worst_box = max(worst_box, float(np.abs(np.array(e["bbox_obj"]) - want).max()))
            corners = np.array(e["bbox_3d"])
            assert corners.shape == (8, 3)
            if e["px_count_visib"]:
                bx, by, bw, bh = e["bbox_visib"]
                ax, ay, aw, ah = e["bbox_obj"]
                # visible pixels lie within the amodal box, grown by the pixel filter's reach
                assert bx >= ax - 1.5 and by >= ay - 1.5
                assert bx + bw <= ax + aw + 1.5 and by + bh <= ay + ah + 1.5
    print(f"pose error {worst_pose:.2e}, amodal box error {worst_box:.2e} px")
    assert worst_pose < 1e-5 and worst_box < 0.01


def test_visible_counts_match_the_id_image(inst):
    seq = inst["a"]
    for f in range(1, 5):
        _, ins = od.read_ids(seq["root"] / seq["frames"][f]["segmentation_file_path"])
        assert set(_entries(seq, f)) == set(np.unique(ins).tolist()) - {0}
        for iid, e in _entries(seq, f).items():
            mask = ins == iid
            assert e["px_count_visib"] == int(mask.sum())
            if mask.any():
                rows, cols = np.nonzero(mask)
                assert e["bbox_visib"] == [int(cols.min()), int(rows.min()),
                                           int(cols.max() - cols.min() + 1),
                                           int(rows.max() - rows.min() + 1)]


def test_deformation_flags(inst):
    infos = inst["a"]["objects"]["instances"]
    deforming = {i["object"] for i in infos if i["deforming"]}
    assert deforming == set(SPEC["deforming"])


def test_rgb_identical_with_ids_on_and_off(inst):
    on, off = inst["a"], inst["off"]
    assert not (off["root"] / "objects.json").exists()
    for f in range(1, 5):
        a = exr.read_channels(on["root"] / on["frames"][f]["file_path"])
        b = exr.read_channels(off["root"] / off["frames"][f]["file_path"])
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), (f, k)


def test_user_file_unchanged_after_render(inst, tmp_path):
    """pass_index values, handlers and the compositor come back as they were."""
    code = f'''
import bpy, json
bpy.ops.wm.open_mainfile(filepath={str(inst["blend"])!r})
for ob in bpy.data.objects:
    ob.pass_index = 7
before = {{o.name: o.pass_index for o in bpy.data.objects}}
n_handlers = len(bpy.app.handlers.frame_change_post)
from dataset_forge.render_passes.passes import PassRig
from dataset_forge.settings import Settings
rig = PassRig(bpy.context.scene, Settings(segmentations=True), {str(tmp_path)!r})
changed = any(o.pass_index != 7 for o in bpy.data.objects)
rig.teardown()
after = {{o.name: o.pass_index for o in bpy.data.objects}}
print("RES" + json.dumps([before == after, changed,
                          len(bpy.app.handlers.frame_change_post) == n_handlers]))
'''
    out = run_bpy(code, python=inst["python"] or None)
    assert json.loads(out.split("RES", 1)[1].splitlines()[0]) == [True, True, True]


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def linked(request, tmp_path_factory) -> dict:
    label, python = request.param
    root = tmp_path_factory.mktemp(f"linked-{label}")
    build(root / "scenes", python)
    return load(render(root / "scenes" / "gt_linked.blend", root / "out", 1, 1, python))


def test_linked_library_objects_get_ids(linked):
    """Two instances of a linked object (read-only ``pass_index`` 1) and a local cube: each has a
    non-zero object id, its own instance id, and carries them at the centre of its box; the
    local objects' ids skip the linked object's pass_index."""
    infos = {i["instance_id"]: i for i in linked["objects"]["instances"]}
    libs = [i for i in infos.values() if i["object"].startswith("LibCube")]
    assert len(libs) == 2 and sorted(i["instancer_chain"][0] for i in libs) == ["LinkA", "LinkB"]
    entry = next(v for v in linked["ids"]["ids"].values() if v["name"].startswith("LibCube"))
    assert entry["library"] and libs[0]["object_id"] == libs[1]["object_id"] > 0
    local = next(i for i in infos.values() if i["object"] == "Local")
    assert local["object_id"] not in (0, SPECS["gt_linked"]["linked_pass_index"])
    obj, ins = od.read_ids(linked["root"] / linked["frames"][1]["segmentation_file_path"])
    for e in _entries(linked, 1).values():
        i = infos[e["instance_id"]]
        if i["object"] == "Ground":
            continue
        x, y, w, h = e["bbox_obj"]
        r, c = int(y + h / 2), int(x + w / 2)
        assert ins[r, c] == e["instance_id"] and obj[r, c] == i["object_id"], i
        assert e["px_count_visib"] > 0.5 * w * h


DRAWS = r'''
import bpy, json
from dataset_forge.render_passes import segmentation as seg
bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
vl = bpy.context.view_layer

def check(label):
    rows.append([label, seg.draws_instances(seg.rendered_objects(scene, vl))])

def gn_object(name, node):
    bpy.ops.mesh.primitive_plane_add()
    ob = bpy.context.object
    ob.name = name
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    gi, go = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    mid = tree.nodes.new(node)
    tree.links.new(gi.outputs[0], mid.inputs[0])
    tree.links.new(mid.outputs[0], go.inputs[0])
    ob.modifiers.new("GN", "NODES").node_group = tree
    return ob, tree

rows = []
bpy.ops.mesh.primitive_cube_add()
check("cube")
a, _ = gn_object("deform", "GeometryNodeSetPosition")
check("geometry nodes without instancing")
b, inner = gn_object("scatter", "GeometryNodeInstanceOnPoints")
check("instance on points")
bpy.data.objects.remove(b)
outer = bpy.data.node_groups.new("outer", "GeometryNodeTree")
outer.nodes.new("GeometryNodeGroup").node_tree = inner
a.modifiers[0].node_group.nodes.new("GeometryNodeGroup").node_tree = outer
check("instancing in a nested group")
a.modifiers.clear()
check("modifier removed")
e = bpy.data.objects.new("inst", None)
scene.collection.objects.link(e)
e.instance_type = "COLLECTION"
e.instance_collection = bpy.data.collections.new("c")
check("collection instance")
e.instance_type = "NONE"
ob = bpy.data.objects["Cube"]
ps = ob.modifiers.new("P", "PARTICLE_SYSTEM").particle_system
ps.settings.render_type = "PATH"
check("particles drawn as paths")
ps.settings.render_type = "OBJECT"
check("particles drawn as objects")
print("ROWS" + json.dumps(rows))
'''


@pytest.mark.parametrize("python", [p for _, p in PYTHONS], ids=[lbl for lbl, _ in PYTHONS])
def test_which_scenes_draw_instances(python):
    """The scenes whose ids get a data render without normals or flow (their Object Index
    values can be shared): instancing, particles drawn as objects, instancing geometry nodes
    (also inside a nested group), and no others."""
    from conftest import run_bpy

    out = run_bpy(DRAWS, python=python or None)
    rows = dict(json.loads(out.split("ROWS", 1)[1].splitlines()[0]))
    assert rows == {"cube": False, "geometry nodes without instancing": False,
                    "instance on points": True, "instancing in a nested group": True,
                    "modifier removed": False, "collection instance": True,
                    "particles drawn as paths": False, "particles drawn as objects": True}, rows
