# SPDX-License-Identifier: GPL-3.0-or-later
"""One surface per pixel, on the files people have: meshes saved in Edit Mode keep their ids,
and normals and flow describe the pixel centre's surface point (the one depth and ids describe)
whatever the sample count.

Scenes are built by code in a bpy subprocess. ``surfaces`` (64 x 48 px, camera 10 units above,
looking down, frames 1..3): a flat-shaded icosphere rotating 12 deg/frame about its vertical
axis (faceted, a rotating part), a smooth-shaded 12 x 6 UV sphere (shading normal != facet
normal), a plane whose object-space Normal Map tilts the shading normal by
``atan(0.5 sin(3 x))`` about y (normal-mapped), four icospheres 0.06 units across (about 1 px:
small), a plane seen from its back (both normal kinds face the camera there), a flat cube
without a material (geometric kind: warned by name, shading normal = facet), and a plane whose
Normal Map reads a missing image (renders pink; warned by name). The
oracle casts the ray of each pixel centre (K and pose from transforms.json) with
``scene.ray_cast`` and computes, at the hit: the facet normal, the smooth (interpolated corner)
normal, the normal map's analytic normal, and the rotating part's flow (the hit rotated by
+-12 deg, projected). Renders at 1, 2 and 64 samples, shading and geometric normal kinds (at 1
sample the RGB render writes the ground truth itself: no second render).

``factory_edit``: Blender's factory cube saved while in Edit Mode (evaluates to 0 vertices until
it leaves Edit Mode), rendered with segmentations and flows, Persistent Data on and off.
"""

from __future__ import annotations

import json
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from conftest import bpy_pythons
from dataset_forge.dataset import exr, objects
from dataset_forge.dataset.loader import load

pytestmark = pytest.mark.render
PYTHONS = bpy_pythons()
FAST = dict(width=64, height=48, adaptive_threshold=0.0, use_denoising=False, timeout=240.0,
            retries=0, file_format="OPEN_EXR", bit_depth=32, debug=False)
OMEGA = 12.0  # deg per frame, the rotating icosphere
FX = 50.0 / 36.0 * 64  # px per unit of planar depth
A, B = 1, 3

BUILD = r'''
import bpy, bmesh, math
args = ARGS

def diffuse(name, color=(0.7, 0.7, 0.7)):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nt = mat.node_tree
    for n in list(nt.nodes):
        nt.nodes.remove(n)
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    bsdf = nt.nodes.new("ShaderNodeBsdfDiffuse")
    bsdf.inputs["Color"].default_value = (*color, 1.0)
    nt.links.new(bsdf.outputs[0], out.inputs["Surface"])
    return mat, nt, bsdf

def mesh(name, build, loc, smooth, mat, scene):
    me = bpy.data.meshes.new(name)
    bm = bmesh.new()
    build(bm)
    for f in bm.faces:
        f.smooth = smooth
    bm.to_mesh(me)
    bm.free()
    ob = bpy.data.objects.new(name, me)
    ob.location = loc
    me.materials.append(mat)
    scene.collection.objects.link(ob)
    return ob

def surfaces(path):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.preferences.edit.keyframe_new_interpolation_type = "LINEAR"
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.frame_start, scene.frame_end = 1, 3
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    world = bpy.data.worlds.new("W"); world.use_nodes = True; scene.world = world
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    cam.data.lens, cam.data.sensor_width = 50.0, 36.0
    cam.location = (0.0, 0.0, 10.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (0.4, 0.3, 0.0)
    scene.collection.objects.link(sun)
    mat, _, _ = diffuse("Grey")
    ico = mesh("Facets", lambda bm: bmesh.ops.create_icosphere(bm, subdivisions=1, radius=1.0),
               (-1.3, 0.4, 0.0), False, mat, scene)
    ico.rotation_euler = (0.3, 0.2, 0.0)
    ico.rotation_mode = "ZXY"  # z (the animated spin about world z) applied last
    for f in (0, 4):  # linear over 0..4: the motion steps of frames 1 and 3 included
        ico.rotation_euler[2] = math.radians(args["omega"]) * (f - 1)
        ico.keyframe_insert("rotation_euler", index=2, frame=f)
    mesh("Smooth", lambda bm: bmesh.ops.create_uvsphere(bm, u_segments=12, v_segments=6,
         radius=1.0), (1.3, 0.6, 0.0), True, mat, scene)
    for i, (x, y) in enumerate([(-2.6, -1.6), (-2.2, -1.65), (2.4, -1.5), (2.8, 1.9)]):
        mesh(f"Tiny{i}", lambda bm: bmesh.ops.create_icosphere(bm, subdivisions=1, radius=0.03),
             (x, y, 0.5), False, mat, scene)
    # normal-mapped plane: object-space normal (0.5 sin(3 x), 0, 1) from the position
    bm_mat, nt, bsdf = diffuse("Bumps", (0.5, 0.6, 0.7))
    geo = nt.nodes.new("ShaderNodeNewGeometry")
    sep = nt.nodes.new("ShaderNodeSeparateXYZ")
    nt.links.new(geo.outputs["Position"], sep.inputs[0])
    k = nt.nodes.new("ShaderNodeMath"); k.operation = "MULTIPLY"; k.inputs[1].default_value = 3.0
    nt.links.new(sep.outputs["X"], k.inputs[0])
    sn = nt.nodes.new("ShaderNodeMath"); sn.operation = "SINE"
    nt.links.new(k.outputs[0], sn.inputs[0])
    col = nt.nodes.new("ShaderNodeCombineXYZ")
    col.inputs["Z"].default_value = 1.0
    nt.links.new(sn.outputs[0], col.inputs["X"])
    # normalise, then to colour c = n / 2 + 1 / 2
    nrm = nt.nodes.new("ShaderNodeVectorMath"); nrm.operation = "NORMALIZE"
    sc = nt.nodes.new("ShaderNodeVectorMath"); sc.operation = "MULTIPLY"
    sc.inputs[1].default_value = (0.5, 1.0, 1.0)
    nt.links.new(col.outputs[0], sc.inputs[0])
    nt.links.new(sc.outputs[0], nrm.inputs[0])
    to_c = nt.nodes.new("ShaderNodeVectorMath"); to_c.operation = "MULTIPLY_ADD"
    to_c.inputs[1].default_value = (0.5, 0.5, 0.5); to_c.inputs[2].default_value = (0.5, 0.5, 0.5)
    nt.links.new(nrm.outputs[0], to_c.inputs[0])
    nm = nt.nodes.new("ShaderNodeNormalMap"); nm.space = "OBJECT"
    nt.links.new(to_c.outputs[0], nm.inputs["Color"])
    nt.links.new(nm.outputs[0], bsdf.inputs["Normal"])
    mesh("Bumpy", lambda bm: bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=1.0),
         (0.0, -1.0, -0.5), False, bm_mat, scene)
    bare = mesh("Bare", lambda bm: bmesh.ops.create_cube(bm, size=0.4), (-2.8, 1.7, 0.0), False,
                mat, scene)
    bare.data.materials.clear()  # no material: no True Normal AOV (flat: shading = facet)
    back = mesh("Backface", lambda bm: bmesh.ops.create_grid(bm, x_segments=1, y_segments=1,
                size=0.3), (0.0, 1.6, 0.0), False, mat, scene)
    back.rotation_euler = (math.pi, 0.0, 0.0)  # its normal points away from the camera
    # a normal map whose image file is missing
    pink, nt, bsdf = diffuse("Pinkish")
    img = bpy.data.images.new("lost_normal", 4, 4)
    img.filepath = "//textures/lost_normal.png"
    img.source = "FILE"
    tex = nt.nodes.new("ShaderNodeTexImage"); tex.image = img
    nm = nt.nodes.new("ShaderNodeNormalMap")
    nt.links.new(tex.outputs["Color"], nm.inputs["Color"])
    nt.links.new(nm.outputs[0], bsdf.inputs["Normal"])
    mesh("Pinked", lambda bm: bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=0.5),
         (2.6, -0.3, 0.0), False, pink, scene)
    bpy.ops.wm.save_as_mainfile(filepath=path)

def factory_edit(path):
    bpy.ops.wm.read_homefile()  # factory startup: Cube, Light, Camera
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 3
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    assert cube.mode == "EDIT"
    bpy.ops.wm.save_as_mainfile(filepath=path)

surfaces(args["out"] + "/surfaces.blend")
factory_edit(args["out"] + "/factory_edit.blend")
print("BUILT")
'''

ORACLE = r'''
import bpy, json, math
import numpy as np
from mathutils import Matrix, Vector
args = ARGS
bpy.ops.wm.open_mainfile(filepath=args["blend"], load_ui=False)
scene = bpy.context.scene
tf = json.load(open(args["transforms"]))
K = np.array(tf["intrinsics"], float)
h, w = tf["h"], tf["w"]
out = {}
for fr in tf["frames"]:
    f = fr["frame"]
    scene.frame_set(f)
    dg = bpy.context.evaluated_depsgraph_get()
    pose = Matrix(fr["transform_matrix"])
    o = pose.translation
    Ki = np.linalg.inv(K)
    names = np.full((h, w), "", object)
    geo = np.zeros((h, w, 3)); smooth = np.zeros((h, w, 3)); pts = np.zeros((h, w, 3))
    edge = np.zeros((h, w))  # distance of the hit from its triangle's nearest edge
    for v in range(h):
        for u in range(w):
            d = Ki @ np.array([u + 0.5, v + 0.5, 1.0])  # OpenCV camera frame
            dw = pose.to_3x3() @ Vector((d[0], -d[1], -d[2]))
            hit, loc, nrm, idx, ob, mat = scene.ray_cast(dg, o, dw.normalized())
            if not hit:
                continue
            names[v, u] = ob.name
            pts[v, u] = loc
            ev = ob.evaluated_get(dg)
            me = ev.data
            mw = ev.matrix_world
            nm3 = mw.to_3x3().inverted().transposed()
            p_obj = mw.inverted() @ loc
            poly = me.polygons[idx]
            ng = (nm3 @ poly.normal).normalized()
            geo[v, u] = ng
            me.calc_loop_triangles()
            best = None
            for lt in me.loop_triangles:
                if lt.polygon_index != idx:
                    continue
                a, b, c = (me.vertices[i].co for i in lt.vertices)
                # barycentric of p_obj in (a, b, c)
                v0, v1, v2 = b - a, c - a, p_obj - a
                d00, d01, d11 = v0.dot(v0), v0.dot(v1), v1.dot(v1)
                d20, d21 = v2.dot(v0), v2.dot(v1)
                den = d00 * d11 - d01 * d01
                bb = (d11 * d20 - d01 * d21) / den
                cc = (d00 * d21 - d01 * d20) / den
                wts = (1 - bb - cc, bb, cc)
                if best is None or min(wts) > min(best[1]):
                    best = (lt, wts)
            lt, wts = best
            tri = [mw @ me.vertices[i].co for i in lt.vertices]
            edge[v, u] = min((loc - (a + (b - a) * max(0.0, min(1.0, (loc - a).dot(b - a)
                                                              / (b - a).length_squared)))).length
                             for a, b in zip(tri, tri[1:] + tri[:1]))
            cn = me.corner_normals if hasattr(me, "corner_normals") else None
            ns = Vector((0, 0, 0))
            for li, wt in zip(lt.loops, wts):
                n = cn[li].vector if cn is not None else me.loops[li].normal
                ns += wt * Vector(n)
            smooth[v, u] = (nm3 @ ns).normalized()
            if ng.dot(dw) > 0:  # a back face: Cycles turns both normals towards the viewer
                geo[v, u], smooth[v, u] = -geo[v, u], -smooth[v, u]
                names[v, u] = ob.name + ":back"
    out[f] = {"names": names.tolist(), "geo": geo.tolist(), "smooth": smooth.tolist(),
              "pts": pts.tolist(), "edge": edge.tolist()}
    rot = {}
    ob = scene.objects["Facets"]
    for g in (f - 1, f + 1):
        scene.frame_set(g)
        rot[g] = [list(r) for r in bpy.context.evaluated_depsgraph_get().objects["Facets"].matrix_world]
    scene.frame_set(f)
    rot[f] = [list(r) for r in dg.objects["Facets"].matrix_world]
    out[f]["facets_mw"] = {str(k): v for k, v in rot.items()}
json.dump(out, open(args["out"], "w"))
print("ORACLE")
'''


def _render(blend: Path, seq: Path, python: str, **kw) -> list[dict]:
    events: list[dict] = []
    summary = dataset_forge.render_animation(blend, seq, frame_start=A, frame_end=B,
                                             executable=python, on_progress=events.append,
                                             **{**FAST, **kw})
    assert summary["ok"], json.dumps(summary["scenes"], indent=1)[:3000]
    return events


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def built(request, tmp_path_factory) -> tuple[Path, str, str]:
    from conftest import run_bpy

    label, python = request.param
    root = tmp_path_factory.mktemp(f"surface-{label}")
    args = {"out": str(root), "omega": OMEGA}
    assert "BUILT" in run_bpy(BUILD.replace("ARGS", repr(args)), python=python or None)
    return root, python, label


@pytest.fixture(scope="module")
def surfaces(built) -> dict:
    """(kind, samples) -> (sequence folder, events), plus the oracle per frame."""
    from conftest import run_bpy

    root, python, _ = built
    runs = {}
    for kind in ("shading", "geometric"):
        for spp in (1, 2, 64):  # 1: the RGB render is the data render (no second render)
            seq = root / f"{kind}-{spp}"
            runs[(kind, spp)] = (seq, _render(
                root / "surfaces.blend", seq, python, max_samples=spp, depths=True, normals=True,
                flows=True, segmentations=True, normal_kind=kind))
    seq = root / "filtered-64"  # today's single render: passes averaged over the samples
    runs[("filtered", 64)] = (seq, _render(
        root / "surfaces.blend", seq, python, max_samples=64, depths=True, normals=True,
        flows=True, segmentations=True, filtered_passes=True))
    seq0 = runs[("shading", 2)][0]
    args = {"blend": str(root / "surfaces.blend"), "transforms": str(seq0 / "transforms.json"),
            "out": str(root / "oracle.json")}
    assert "ORACLE" in run_bpy(ORACLE.replace("ARGS", repr(args)), python=python or None)
    oracle = {int(k): v for k, v in json.loads((root / "oracle.json").read_text()).items()}
    return {"runs": runs, "oracle": oracle}


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def _frame(seq: Path, f: int):
    tf = json.loads((seq / "transforms.json").read_text())
    fr = next(x for x in tf["frames"] if x["frame"] == f)
    depth = exr.read_single(seq / fr["depth_file_path"])
    n = exr.read_stack(seq / fr["normal_file_path"], ["X", "Y", "Z"]).astype(np.float64)
    flow = exr.read_stack(seq / fr["flow_file_path"], ["R", "G", "B", "A"]).astype(np.float64)
    ids, _ = objects.read_ids(seq / fr["segmentation_file_path"])
    names = {int(k): v["name"] for k, v in
             json.loads((seq / "segmentation_ids.json").read_text())["ids"].items()}
    R = np.asarray(fr["transform_matrix"], np.float64)[:3, :3]
    return tf, depth, n @ R.T, flow, np.vectorize(lambda i: names.get(int(i), ""))(ids)  # world n


def _bump_normal(pts: np.ndarray) -> np.ndarray:
    """The normal map's world normal at world points (object = world up to a translation)."""
    n = np.stack([0.5 * np.sin(3.0 * pts[..., 0]), np.zeros(pts.shape[:-1]),
                  np.ones(pts.shape[:-1])], -1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


@pytest.mark.smoke
@pytest.mark.parametrize("kind", ["shading", "geometric"])
@pytest.mark.parametrize("spp", [1, 2, 64])
def test_normals_describe_the_pixel_centre_surface(surfaces, kind, spp):
    seq, events = surfaces["runs"][(kind, spp)]
    checked = {}
    for f, orc in surfaces["oracle"].items():
        _, depth, n, _, names = _frame(seq, f)
        want_names = np.asarray(orc["names"], object)
        back = want_names == "Backface:back"
        want_names = np.where(back, "Backface", want_names)
        same = (names == want_names) & (depth > 0)
        assert same.sum() > 0.97 * (want_names != "").sum()  # ids agree with the ray casts
        # a ray this close to a triangle's edge may hit either triangle in float arithmetic
        same &= np.asarray(orc["edge"]) * FX / np.maximum(depth, 1e-9) > 0.01
        geo, smooth = np.asarray(orc["geo"]), np.asarray(orc["smooth"])
        want = geo.copy()
        if kind == "shading":
            want = np.where((want_names == "Smooth")[..., None], smooth, want)
            bumpy = want_names == "Bumpy"
            want[bumpy] = _bump_normal(np.asarray(orc["pts"]))[bumpy]
        assert back.sum() > 20 and (n[back & same][:, 2] > 0.99).all()  # faces the camera
        for obj in ("Facets", "Smooth", "Bumpy", "Tiny0", "Tiny1", "Tiny2", "Tiny3", "Pinked",
                    "Backface", "Bare"):
            m = same & (want_names == obj)
            if obj == "Pinked" and kind == "shading":
                continue  # its missing image tilts the shading normal (warned below)
            if m.any():
                err = _angle(n[m], want[m]).max()
                checked[obj] = max(checked.get(obj, 0.0), err)
                assert err < 0.5, (obj, f, err)
    assert {"Facets", "Smooth", "Bumpy", "Backface", "Bare"} <= set(checked)
    assert any(k.startswith("Tiny") for k in checked)
    tf = json.loads((seq / "transforms.json").read_text())
    conv = tf["conventions"]
    assert conv["normal"]["normal_kind"] == kind
    assert conv["normal"]["filtered_passes"] is False
    assert conv["flow"]["filtered_passes"] is False
    warn = [e["message"] for e in events if e.get("event") == "warning"]
    assert any("'Pinkish'" in w and "lost_normal" in w and "Normal Map" in w for w in warn), warn
    bare = [w for w in warn if "'Bare'" in w and "shading normal" in w]
    assert len(bare) == (1 if kind == "geometric" else 0), warn


@pytest.mark.smoke
@pytest.mark.parametrize("spp", [1, 2, 64])
def test_flow_of_a_rotating_part_at_the_pixel_centre(surfaces, spp):
    seq, _ = surfaces["runs"][("shading", spp)]
    tf = json.loads((seq / "transforms.json").read_text())
    K = np.asarray(tf["intrinsics"], np.float64)
    n_checked = 0
    for f, orc in surfaces["oracle"].items():
        _, depth, _, flow, names = _frame(seq, f)
        fr = next(x for x in tf["frames"] if x["frame"] == f)
        c2w = np.asarray(fr["transform_matrix"], np.float64) @ np.diag([1.0, -1.0, -1.0, 1.0])
        w2c = np.linalg.inv(c2w)
        mask = (names == "Facets") & (np.asarray(orc["names"], object) == "Facets") & (depth > 0)
        pts = np.asarray(orc["pts"])[mask]
        mw = {int(k): np.asarray(v) for k, v in orc["facets_mw"].items()}

        def project(p, w2c=w2c):
            c = (w2c @ np.c_[p, np.ones(len(p))].T).T[:, :3]
            uv = (K @ c.T).T
            return uv[:, :2] / uv[:, 2:]

        p0 = project(pts)
        for g, sl in ((f + 1, slice(0, 2)), (f - 1, slice(2, 4))):
            moved = (mw[g] @ np.linalg.inv(mw[f]) @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]
            want = project(moved) - p0
            err = np.linalg.norm(flow[mask][:, sl] - want, axis=-1)
            mag = np.linalg.norm(want, axis=-1)
            assert mag.max() > 0.5
            assert (err <= 0.01 + 0.01 * mag).all(), (f, g, err.max())
            n_checked += len(err)
    assert n_checked > 300


@pytest.fixture(scope="module")
def edit_mode(built) -> dict:
    root, python, _ = built
    out = {}
    for persistent in (True, False):
        seq = root / f"edit-{persistent}"
        out[persistent] = (seq, _render(root / "factory_edit.blend", seq, python, max_samples=1,
                                        segmentations=True, flows=True, depths=True,
                                        use_persistent_data=persistent))
    return out


@pytest.mark.smoke
@pytest.mark.parametrize("persistent", [True, False])
def test_a_mesh_saved_in_edit_mode_has_its_id_on_every_frame(edit_mode, persistent):
    seq, events = edit_mode[persistent]
    ids = json.loads((seq / "segmentation_ids.json").read_text())["ids"]
    cube = next(int(k) for k, v in ids.items() if v["name"] == "Cube")
    objs = load(seq).objects
    cube_instances = {int(i) for i, n in zip(objs.instance_ids, objs.names) if n == "Cube"}
    tf = json.loads((seq / "transforms.json").read_text())
    for index, fr in enumerate(tf["frames"]):
        obj, _ = objects.read_ids(seq / fr["segmentation_file_path"])
        depth = exr.read_single(seq / fr["depth_file_path"])
        assert (obj == cube).sum() > 100
        assert ((depth > 0) == (obj > 0)).all()  # no drawn pixel without an id
        assert cube_instances & set(objs.frame(index).instance_ids.tolist())  # its record lists it
        assert fr["flow_forward_valid"] and fr["flow_backward_valid"]
    warn = [e["message"] for e in events if e.get("event") == "warning"]
    assert not [w for w in warn if "vertex count" in w or "no object id" in w], warn


@pytest.mark.smoke
def test_rgb_is_bit_identical_to_the_filtered_single_render(surfaces):
    runs = surfaces["runs"]
    ref = runs[("filtered", 64)][0]
    tf = json.loads((ref / "transforms.json").read_text())
    assert tf["conventions"]["normal"]["filtered_passes"] is True
    assert tf["conventions"]["flow"]["filtered_passes"] is True
    for fr in tf["frames"]:
        want = exr.read_stack(ref / fr["file_path"], ["R", "G", "B"])
        assert want.mean() > 0.05
        for kind in ("shading", "geometric"):
            got = exr.read_stack(runs[(kind, 64)][0] / fr["file_path"], ["R", "G", "B"])
            assert np.array_equal(got, want), (kind, fr["frame"])


SAMPLES = r'''
import bpy, json, re
from dataset_forge.render_passes import data_render
bpy.ops.wm.read_homefile()
scene = bpy.context.scene
r, cy, vl = scene.render, scene.cycles, bpy.context.view_layer
r.engine, r.resolution_x, r.resolution_y = "CYCLES", 8, 6
r.use_persistent_data = False
cy.device, cy.use_adaptive_sampling, cy.use_denoising = "CPU", False, False
seen = []
bpy.app.handlers.render_stats.append(lambda s: seen.append(str(s)))
rows = []
for samples, layer, mode, offset in [(1, 0, "USE", 0), (3, 1, "USE", 0), (1, 3, "USE", 0),
                                     (3, 1, "IGNORE", 0), (1, 3, "BOUNDED", 0),
                                     (3, 1, "BOUNDED", 0), (1, 0, "USE", 2)]:
    cy.samples, vl.samples, cy.use_layer_samples, cy.sample_offset = samples, layer, mode, offset
    seen.clear()
    bpy.ops.render.render(write_still=False)
    done = [int(m.group(1)) for s in seen for m in [re.search(r"Sample \d+/(\d+)", s)] if m]
    rows.append({"set": [samples, layer, mode, offset], "cycles": done[-1],
                 "ours": data_render.render_samples(scene),
                 "centre": data_render.rgb_is_centre_sample(scene)})
print("ROWS" + json.dumps(rows))
'''


@pytest.mark.parametrize("python", [p for _, p in PYTHONS], ids=[lbl for lbl, _ in PYTHONS])
def test_the_rgb_render_is_the_data_render_only_at_one_sample_from_sample_0(python):
    """The choice to let a 1-sample RGB render write the ground truth (no data render) reads the
    sample count Cycles really renders (view-layer override, BOUNDED, IGNORE) and refuses a
    sample offset (sample 0 is the pixel-centre one)."""
    from conftest import run_bpy

    out = run_bpy(SAMPLES, python=python or None)
    rows = json.loads(out.split("ROWS", 1)[1].splitlines()[0])
    assert len(rows) == 7
    for row in rows:
        samples, layer, mode, offset = row["set"]
        if offset == 0:
            assert row["ours"] == row["cycles"], row
        assert row["centre"] == (row["ours"] == 1 and offset == 0), row
    assert [r["centre"] for r in rows] == [True, True, False, False, True, True, False]
