# SPDX-License-Identifier: GPL-3.0-or-later
"""Ground truth against known geometry, rendered through the public API.

Every oracle scene of ``tests/scenes.py`` (GT_SPECS) is rendered once per Blender version with
``dataset_forge.render_animation`` (the real worker process); the tests then compare the EXR
files with analytic values computed from ``transforms.json``'s K and poses. The bpy 5.0 of the
dev venv always runs; ``DF_EXTRA_PYTHONS`` (comma-separated python paths of other bpy venvs,
e.g. ``.venv-4.5.15/bin/python,.venv-4.2.23/bin/python``) adds the same oracle subset there.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import dataset_forge
import numpy as np
import OpenEXR
import pytest
from conftest import REPO, bpy_env, bpy_pythons, build_scenes
from PIL import Image
from scenes import GT_SPECS

pytestmark = pytest.mark.render  # every test here renders

GT_SCENES = list(GT_SPECS)
KINDS = dict(depths=True, normals=True, flows=True, segmentations=True)
FAST = dict(width=64, height=48, max_samples=1, adaptive_threshold=0.0, use_denoising=False,
            timeout=240.0, retries=0)
PYTHONS = bpy_pythons()


# -- helpers --------------------------------------------------------------------------------
def read_exr(path: Path) -> dict[str, np.ndarray]:
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {k: np.array(v.pixels) for k, v in f.channels().items()}


def render(blend: Path, out: Path, a: int, b: int, python: str, **extra) -> Path:
    opts = {**FAST, **KINDS, **{k.rstrip("_"): v for k, v in extra.items()}}
    summary = dataset_forge.render_animation(blend, out, frame_start=a, frame_end=b,
                                             executable=python, **opts)
    assert summary["ok"], json.dumps(summary["scenes"], indent=1)[:3000]
    return out


class Seq:
    """One rendered sequence: transforms.json plus lazily read ground truth per frame."""

    def __init__(self, root: Path):
        self.root = root
        self.tf = json.loads((root / "transforms.json").read_text())
        self.conv = self.tf["conventions"]
        self.frames = {fr["frame"]: fr for fr in self.tf["frames"]}
        t = self.tf
        self.K = np.array(t["intrinsics"], float)
        self.ids = json.loads((root / "segmentation_ids.json").read_text())
        self.id_of = {v["name"]: int(k) for k, v in self.ids["ids"].items()}

    def exr(self, frame: int, kind: str) -> dict[str, np.ndarray]:
        return read_exr(self.root / self.frames[frame][f"{kind}_file_path"])

    def depth(self, f: int) -> np.ndarray:
        return self.exr(f, "depth")[self.conv["depth"]["channel"]]

    def normal(self, f: int) -> np.ndarray:
        ch = self.exr(f, "normal")
        return np.stack([ch[c] for c in self.conv["normal"]["channels"]], -1)

    def flow(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        ch, names = self.exr(f, "flow"), self.conv["flow"]["channels"]
        fw = np.stack([ch[names["forward_u"]], ch[names["forward_v"]]], -1)
        bw = np.stack([ch[names["backward_u"]], ch[names["backward_v"]]], -1)
        return fw, bw

    def seg(self, f: int) -> np.ndarray:
        return self.exr(f, "segmentation")[self.conv["segmentation"]["channel"]]

    def pose(self, f: int) -> np.ndarray:
        """Camera-to-world, Blender camera axes (x right, y up, looking down -z)."""
        return np.array(self.frames[f]["transform_matrix"], float)

    def rays(self) -> np.ndarray:
        """(h, w, 3) camera-frame (Blender axes) ray directions through pixel centres, z = -1."""
        h, w = self.tf["h"], self.tf["w"]
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        x = (u - self.K[0, 2]) / self.K[0, 0]
        y = (v - self.K[1, 2]) / self.K[1, 1]
        return np.stack([x, -y, -np.ones_like(x)], -1)

    def points(self, f: int) -> np.ndarray:
        """World points of every pixel from the planar depth (h, w, 3)."""
        p = self.pose(f)
        cam = self.rays() * self.depth(f)[..., None]
        return cam @ p[:3, :3].T + p[:3, 3]


def interior(mask: np.ndarray, r: int = 1) -> np.ndarray:
    """Pixels of ``mask`` whose (2r+1)^2 neighbourhood is all inside ``mask``."""
    out = mask.copy()
    h, w = mask.shape
    pad = np.pad(mask, r, constant_values=False)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out &= pad[r + dy:r + dy + h, r + dx:r + dx + w]
    return out


def euler_xyz(deg) -> np.ndarray:
    ax, ay, az = (math.radians(a) for a in deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


# -- renders (once per Blender version) ------------------------------------------------------
@pytest.fixture(scope="session", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def gt(request, tmp_path_factory) -> dict[str, Seq]:
    label, python = request.param
    root = tmp_path_factory.mktemp(f"gt-{label}")
    scenes = build_scenes(root / "scenes", GT_SCENES, python=python or None)
    out = {}
    for name, (a, b) in {"gt_planes": (1, 2), "gt_cube": (1, 2), "gt_flow_object": (2, 4),
                         "gt_camera_motion": (2, 4)}.items():
        out[name] = Seq(render(scenes / f"{name}.blend", root / "out" / name, a, b, python))
        want = re.search(r"\d+\.\d+", label)
        if want:  # a label naming a version must get that version
            assert out[name].tf["blender_version"].startswith(want.group()), label
    out["distance"] = Seq(render(scenes / "gt_planes.blend", root / "out" / "dist", 1, 2, python,
                                 depth_type="distance"))
    out["_scenes"] = scenes  # type: ignore[assignment]
    out["_python"] = python  # type: ignore[assignment]
    return out


@pytest.fixture(scope="session")
def gt5(tmp_path_factory) -> dict[str, Seq]:
    """5.0-only extras: two sequences of the cube scene rendered by ONE worker
    (create_datasets), so the rig is torn down and rebuilt in the same process."""
    root = tmp_path_factory.mktemp("gt5")
    scenes = build_scenes(root / "scenes", ["gt_planes", "gt_cube", "gt_flow_object"])
    cube_dir = root / "cube_scenes"
    cube_dir.mkdir()
    (cube_dir / "gt_cube.blend").symlink_to(scenes / "gt_cube.blend")
    summary = dataset_forge.create_datasets(cube_dir, root / "datasets", sequences_per_scene=2,
                                            num_frames=2, **FAST, **KINDS)
    assert summary["ok"], json.dumps(summary)[:3000]
    seqs = sorted((root / "datasets" / "renders" / "gt_cube").iterdir())
    assert len(seqs) == 2
    return {"_scenes": scenes,  # type: ignore[dict-item]
            "cube_a": Seq(seqs[0]), "cube_b": Seq(seqs[1]),
            "cube_8spp": Seq(render(scenes / "gt_cube.blend", root / "spp8", 1, 1, "",
                                    max_samples_=8))}


# -- depth ------------------------------------------------------------------------------------
def _plane_depth(seq: Seq, f: int, tilt_deg: float, d: float) -> tuple[np.ndarray, np.ndarray]:
    """Analytic planar depth and ray length of the gt_planes wall at frame ``f``."""
    n = euler_xyz((tilt_deg, 0, 0)) @ np.array([0.0, 0.0, 1.0])
    p = seq.pose(f)
    rays_w = seq.rays() @ p[:3, :3].T
    s = (n @ (np.array([0.0, 0.0, -d]) - p[:3, 3])) / (rays_w @ n)
    return s, s * np.linalg.norm(seq.rays(), axis=-1)


def test_depth_facing_plane_reads_its_distance(gt):
    seq, d = gt["gt_planes"], GT_SPECS["gt_planes"]["distance"]
    depth = seq.depth(1)
    h, w = depth.shape
    for y, x in [(h // 2, w // 2), (0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]:
        assert abs(depth[y, x] - d) / d < 1e-4, (y, x, depth[y, x])
    assert np.max(np.abs(depth - d)) / d < 1e-4


def test_depth_tilted_plane_matches_analytic_planar_depth(gt):
    seq, spec = gt["gt_planes"], GT_SPECS["gt_planes"]
    planar, _ = _plane_depth(seq, 2, spec["tilt_deg"], spec["distance"])
    depth = seq.depth(2)
    assert np.ptp(depth) > 1.0  # really tilted
    rel = np.abs(depth - planar) / planar
    assert rel.max() < 1e-4, rel.max()


def test_depth_distance_mode_matches_ray_length(gt):
    seq, spec = gt["distance"], GT_SPECS["gt_planes"]
    assert seq.conv["depth"]["type"] == "distance"
    for f, tilt in ((1, 0.0), (2, spec["tilt_deg"])):
        _, ray = _plane_depth(seq, f, tilt, spec["distance"])
        rel = np.abs(seq.depth(f) - ray) / ray
        assert rel.max() < 1e-4, (f, rel.max())
    # corners are farther than the centre by the analytic factor (not planar any more)
    d = seq.depth(1)
    assert d[0, 0] > d[24, 32] * 1.05


def test_background_is_zero_everywhere(gt):
    seq = gt["gt_cube"]
    for f in seq.frames:
        depth, seg, n = seq.depth(f), seq.seg(f), seq.normal(f)
        empty = seg == 0
        assert 20 < empty.sum() < empty.size - 200  # the scene shows sky and objects
        assert np.all(depth[empty] == 0.0) and np.all(depth[~empty] > 0)
        assert np.all(n[empty] == 0.0)
        assert np.max(depth) < 1e3  # never Blender's 1e10


# -- normals ------------------------------------------------------------------------------------
def test_cube_faces_read_camera_frame_normals(gt):
    seq, spec = gt["gt_cube"], GT_SPECS["gt_cube"]
    r_obj = euler_xyz(spec["cube_rot_deg"])
    faces_w = np.concatenate([r_obj.T, -r_obj.T])  # rows: world normals of the 6 faces
    cube = seq.id_of["Cube"]
    rolls = []
    for f in seq.frames:
        rc = seq.pose(f)[:3, :3]
        faces_c = faces_w @ rc  # R^T n for every face
        n = seq.normal(f)
        seg = seq.seg(f)
        inside = interior(seg == cube, 1)
        which = np.argmax(n[inside] @ faces_c.T, -1)
        err = angle_deg(n[inside], faces_c[which])
        counts = np.bincount(which, minlength=6)
        assert (counts >= 15).sum() >= 3, counts  # three faces seen
        assert err.max() < 1.0, err.max()
        ground = interior(seg == seq.id_of["Ground"], 1)
        g_err = angle_deg(n[ground], np.array([0.0, 0.0, 1.0]) @ rc)
        assert ground.sum() > 50 and g_err.max() < 1.0, g_err.max()
        valid = seg > 0
        assert np.abs(np.linalg.norm(n[valid], axis=-1) - 1).max() < 1e-5  # silhouettes too
        rolls.append(rc)
    # the camera rolls between the frames, so the rotation really is applied per frame
    assert angle_deg(rolls[0][:, 0], rolls[1][:, 0]) > 5


def test_many_samples_edges_stay_exact(gt5):
    """With 8 samples Cycles averages normals (and flow) over each pixel: silhouettes are still
    unit length, ids and depth are never blended, and the background stays exactly 0."""
    seq = gt5["cube_8spp"]
    n, seg, depth = seq.normal(1), seq.seg(1), seq.depth(1)
    edge = (seg > 0) & ~interior(seg > 0, 1)
    assert edge.sum() > 30
    assert np.abs(np.linalg.norm(n[seg > 0], axis=-1) - 1).max() < 1e-5
    assert np.all(n[seg == 0] == 0) and np.all(depth[seg == 0] == 0) and np.all(depth[seg > 0] > 0)
    assert set(np.unique(seg)) == {0.0, *map(float, seq.id_of.values())}
    pts = seq.points(1)
    r_obj = euler_xyz(GT_SPECS["gt_cube"]["cube_rot_deg"])
    mine = seg == seq.id_of["Cube"]
    assert np.all(np.abs(pts[mine] @ r_obj).max(-1) < 1.0 + 1e-3)  # edge pixels too


# -- flow ------------------------------------------------------------------------------------
def test_moving_object_forward_and_backward_flow(gt):
    seq, spec = gt["gt_flow_object"], GT_SPECS["gt_flow_object"]
    before, after = np.array(spec["px_before"]), np.array(spec["px_after"])
    expect = {2: (before, -before), 3: (after, -before), 4: (after, -after)}
    quad, back = seq.id_of["Quad"], seq.id_of["Backdrop"]
    for f, (fw_want, bw_want) in expect.items():
        fw, bw = seq.flow(f)
        seg = seq.seg(f)
        inside = interior(seg == quad, 2)
        assert inside.sum() > 200
        assert np.median(np.linalg.norm(fw[inside] - fw_want, axis=-1)) < 0.05, (f, fw[inside][:3])
        assert np.median(np.linalg.norm(bw[inside] - bw_want, axis=-1)) < 0.05, (f, bw[inside][:3])
        static = interior(seg == back, 3)
        assert static.sum() > 300
        assert np.abs(fw[static]).max() < 1e-3 and np.abs(bw[static]).max() < 1e-3


def _warp(seq: Seq, f: int, g: int) -> tuple[np.ndarray, np.ndarray]:
    """Where every valid pixel of frame ``f`` lands in frame ``g`` (depth + K + both poses)."""
    pts = seq.points(f)
    pg = seq.pose(g)
    cam = (pts - pg[:3, 3]) @ pg[:3, :3]  # world -> camera g (Blender axes)
    x, y, z = cam[..., 0], cam[..., 1], -cam[..., 2]
    u = seq.K[0, 0] * x / z + seq.K[0, 2]
    v = seq.K[1, 1] * (-y) / z + seq.K[1, 2]
    h, w = u.shape
    u0, v0 = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return np.stack([u - u0, v - v0], -1), seq.depth(f) > 0


def test_moving_camera_flow_matches_reprojection(gt):
    seq = gt["gt_camera_motion"]
    for f in (2, 3, 4):
        fw, bw = seq.flow(f)
        for g, flow in ((f + 1, fw), (f - 1, bw)):
            if g not in seq.frames:
                continue
            want, valid = _warp(seq, f, g)
            assert valid.sum() > 0.8 * valid.size
            assert np.median(np.abs(want[valid]).sum(-1)) > 0.5  # the camera really moves
            err = np.linalg.norm(flow[valid] - want[valid], axis=-1)
            assert np.median(err) < 0.1, (f, g, np.median(err))


# -- segmentation -------------------------------------------------------------------------------
def test_segmentation_ids_map_and_geometry(gt):
    seq, spec = gt["gt_cube"], GT_SPECS["gt_cube"]
    ids = seq.ids
    assert ids["background"] == 0
    assert {v["name"]: (v["collection"], v["class"]) for v in ids["ids"].values()} == {
        "Cube": ("Props", "box"), "Sphere": ("Props", "Props"), "Ground": ("Ground", "Ground")}
    r_obj = euler_xyz(spec["cube_rot_deg"])
    for f in seq.frames:
        seg = seq.seg(f)
        assert set(np.unique(seg)) <= {0.0, *map(float, seq.id_of.values())}
        assert np.all(seg == np.round(seg))
        pts = seq.points(f)
        on_cube = np.abs(pts @ r_obj).max(-1) < 1.0 + 1e-3
        on_ground = np.abs(pts[..., 2] + 2.0) < 1e-3
        on_sphere = np.abs(np.linalg.norm(pts - np.array([2.2, 1.5, 0.0]), axis=-1) - 0.8) < 0.03
        for name, on in (("Cube", on_cube), ("Ground", on_ground), ("Sphere", on_sphere)):
            mine = seg == seq.id_of[name]
            assert mine.sum() > 20, name
            assert np.all(on[mine]), (name, np.argwhere(mine & ~on)[:5])
            # no other id on this object's surface (apart from where objects touch)
            others = (seg > 0) & ~mine & on
            assert others.sum() == 0 or name == "Ground", (name, others.sum())


def test_same_object_same_id_in_two_sequences(gt, gt5):
    spec = GT_SPECS["gt_cube"]
    r_obj = euler_xyz(spec["cube_rot_deg"])
    faces_w = np.concatenate([r_obj.T, -r_obj.T])
    a, b = gt5["cube_a"], gt5["cube_b"]
    assert a.ids == b.ids == gt["gt_cube"].ids
    assert set(a.frames).isdisjoint(b.frames)
    cube = a.id_of["Cube"]
    for seq in (a, b):  # the second sequence comes from the same worker, after a teardown
        assert seq.id_of["Cube"] == cube
        for f in seq.frames:
            mine = seq.seg(f) == cube
            on_cube = np.abs(seq.points(f) @ r_obj).max(-1) < 1.0 + 1e-3
            assert mine.sum() > 20 and np.all(on_cube[mine])
            inside = interior(mine, 1)
            faces_c = faces_w @ seq.pose(f)[:3, :3]
            n = seq.normal(f)[inside]
            assert angle_deg(n, faces_c[np.argmax(n @ faces_c.T, -1)]).max() < 1.0


# -- files ------------------------------------------------------------------------------------
def test_files_channels_dtypes_and_previews(gt):
    for name in GT_SCENES:
        seq = gt[name]
        c = seq.conv
        want = {"depth": [c["depth"]["channel"]], "normal": c["normal"]["channels"],
                "flow": sorted(c["flow"]["channels"].values()),
                "segmentation": [c["segmentation"]["channel"],
                                 c["segmentation"]["instance_channel"]]}
        assert want == {"depth": ["V"], "normal": ["X", "Y", "Z"], "flow": ["A", "B", "G", "R"],
                        "segmentation": ["V", "instance"]}
        assert c["flow"]["channels"] == {"forward_u": "R", "forward_v": "G", "backward_u": "B",
                                         "backward_v": "A"}
        assert c["normal"]["frame"] == "camera" and c["depth"]["type"] == "planar"
        for fr, meta in seq.frames.items():
            for kind, names in want.items():
                path = seq.root / meta[f"{kind}_file_path"]
                assert meta[f"{kind}_file_path"] == f"{kind}s/{kind}_{fr:06d}.exr"
                with OpenEXR.File(str(path), separate_channels=True) as f:
                    assert sorted(f.channels()) == sorted(names), (path, list(f.channels()))
                for ch, arr in read_exr(path).items():
                    dtype = np.uint32 if ch == "instance" else np.float32  # exact 31-bit ids
                    assert arr.dtype == dtype and arr.shape == (48, 64), (ch, arr.dtype)
                png = seq.root / "previews" / kind / f"{kind}_{fr:06d}.png"
                with Image.open(png) as im:
                    assert im.size == (64, 48) and im.mode in ("RGB", "RGBA")
        assert not list(seq.root.glob("depths/*.png"))  # previews never mix with data


def test_flow_preview_colours_follow_direction(gt):
    """Forward flow to the right and up: a hue between red-ish and green-ish (Middlebury-style
    wheel: hue = atan2(-v, -u) / 2pi + 0.5), saturated; static backdrop white."""
    seq = gt["gt_flow_object"]
    with Image.open(seq.root / "previews" / "flow" / "flow_000002.png") as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    seg = seq.seg(2)
    back = interior(seg == seq.id_of["Backdrop"], 3)
    assert np.all(rgb[back] >= 250)
    quad = interior(seg == seq.id_of["Quad"], 2)
    assert np.median(rgb[quad].max(-1) - rgb[quad].min(-1)) > 60


# -- rig hygiene (in-process, every version) -----------------------------------------------------
HYGIENE = r"""
import json, os, sys
from pathlib import Path
import bpy
import dataset_forge.render_passes.passes as P
from dataset_forge.render_passes import compat
from dataset_forge.settings import Settings
blend, out = sys.argv[1], Path(sys.argv[2])
bpy.ops.wm.open_mainfile(filepath=blend)
sc = bpy.context.scene
sc.render.resolution_x, sc.render.resolution_y, sc.cycles.samples = 32, 24, 1
s = Settings.from_dict(dict(depths=True, normals=True, flows=True, segmentations=True))
res = {}
# hidden from render, in an excluded collection, an empty
hidden = bpy.data.objects.new("Hidden", bpy.data.objects["Cube"].data.copy())
hidden.hide_render = True
sc.collection.objects.link(hidden)
col = bpy.data.collections.new("Excluded")
sc.collection.children.link(col)
col.objects.link(bpy.data.objects.new("InExcluded", bpy.data.objects["Cube"].data.copy()))
bpy.context.view_layer.layer_collection.children["Excluded"].exclude = True
sc.collection.objects.link(bpy.data.objects.new("Empty", None))
def state():
    tree = sc.compositing_node_group if compat.IS5 else sc.node_tree
    return {"use_compositing": sc.render.use_compositing,
            "use_nodes": None if compat.IS5 else sc.use_nodes,
            "nodes": sorted((n.name, n.mute, n.label) for n in tree.nodes) if tree is not None else None}
def run(tag, frame):
    rig = P.PassRig(sc, s, out / tag)
    tree = sc.compositing_node_group if compat.IS5 else sc.node_tree
    res[tag + "_during"] = sorted((n.name, n.mute) for n in tree.nodes if n.label != "DF")
    sc.frame_set(frame); rig.prepare_frame(frame)
    sc.render.filepath = str(out / tag / "rgb")
    bpy.ops.render.render(write_still=True)
    rig.render_data(frame)  # the worker's data render (normals, flow)
    rig.teardown()
# 1. a file without any compositor: everything we create is gone again
res["fresh_before"] = state(); run("fresh", 1); res["fresh_after"] = state()
# 2. the user's own active compositor graph keeps working beside ours
tree, _ = compat.acquire_compositor(sc)
user_fo = compat.file_output(tree, str(out / "user"), file_format="OPEN_EXR", color_mode="BW",
                             color_depth="32")
user_fo.label = "user"
rl = tree.nodes.new("CompositorNodeRLayers")
tree.links.new(compat.render_layer_output(rl, "Alpha"), compat.file_output_input(user_fo, "a_##", "FLOAT"))
bpy.data.objects["Cube"].pass_index = 7
res["user_before"] = state(); run("user", 1); res["user_after"] = state()
res["pass_index"] = bpy.data.objects["Cube"].pass_index
res["ground"] = bpy.data.objects["Ground"].pass_index
# 3. a user graph that is switched off stays off (muted) while we render
sc.render.use_compositing = False
res["off_before"] = state(); run("off", 2); res["off_after"] = state()
res["files"] = sorted(str(p.relative_to(out)) for p in out.rglob("*.*"))
print("RESULT " + json.dumps(res)); sys.stdout.flush(); os._exit(0)
"""


@pytest.mark.parametrize("python", [p for _, p in PYTHONS], ids=[v for v, _ in PYTHONS])
def test_rig_restores_compositor_and_pass_index(python, tmp_path):
    scenes = build_scenes(tmp_path / "sc", ["gt_cube"], python=python or None)
    script = tmp_path / "hygiene.py"
    script.write_text(HYGIENE)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "dataset_forge").symlink_to(REPO, target_is_directory=True)
    r = subprocess.run([python or sys.executable, str(script), str(scenes / "gt_cube.blend"),
                        str(tmp_path / "o")], env=bpy_env(PYTHONPATH=str(pkg)),
                       capture_output=True, text=True, timeout=180)
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(line[7:])
    fresh = res["fresh_after"]
    if res["fresh_before"]["nodes"] is None and fresh["nodes"] is not None:
        # 4.x keeps the default tree that use_nodes created; it is switched off again
        assert fresh["use_nodes"] is False and not any(n[2] == "DF" for n in fresh["nodes"])
        res["fresh_after"]["nodes"] = None
    for tag in ("fresh", "user", "off"):
        assert res[f"{tag}_after"] == res[f"{tag}_before"], tag
    assert res["fresh_before"]["use_compositing"] is True
    assert res["off_before"]["use_compositing"] is False
    user_nodes = [n for n in res["off_during"] if n[0].startswith("File Output")]
    assert user_nodes and all(mute for _, mute in user_nodes)  # muted while we rendered
    assert not any(n[1] for n in res["off_after"]["nodes"])
    assert res["pass_index"] == 7 and res["ground"] == 0
    ids = json.loads((tmp_path / "o" / "fresh" / "segmentation_ids.json").read_text())
    # every renderable object of the file has an id (hidden ones may still be drawn through
    # collection instances or particles); an empty has none
    assert sorted(v["name"] for v in ids["ids"].values()) == ["Cube", "Ground", "Hidden",
                                                              "InExcluded", "Sphere"]
    files = set(res["files"])
    assert "user/a_01.exr" in files and "user/a_02.exr" not in files
    for tag, f in (("fresh", 1), ("user", 1), ("off", 2)):
        assert {f"{tag}/depths/depth_{f:06d}.exr", f"{tag}/segmentation_ids.json",
                f"{tag}/previews/flow/flow_{f:06d}.png", f"{tag}/rgb.png"} <= files


def test_rgb_frame_is_the_plain_render(gt, tmp_path):
    """Adding our compositor nodes (and, if needed, the compositor itself) leaves the RGB frame
    bit-identical to a render without ground truth."""
    seq = gt["gt_cube"]
    python = gt["_python"]
    plain = dataset_forge.render_animation(gt["_scenes"] / "gt_cube.blend", tmp_path / "plain",
                                           frame_start=1, frame_end=1, executable=python, **FAST)
    assert plain["ok"]
    with Image.open(tmp_path / "plain" / "frames" / "frame_000001.png") as a, \
            Image.open(seq.root / "frames" / "frame_000001.png") as b:
        pa, pb = np.asarray(a), np.asarray(b)
    assert pa.shape == pb.shape and pa.std() > 5  # a real image, not a blank one
    assert np.array_equal(pa, pb)


MOTION_BLUR_ON = (
    "import bpy, os, sys\n"
    "bpy.ops.wm.open_mainfile(filepath=sys.argv[1])\n"
    "bpy.context.scene.render.use_motion_blur = True\n"
    "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])\n"
    "sys.stdout.flush(); os._exit(0)\n")


def test_motion_blur_with_flows_fails_clearly_unless_disabled(gt5, tmp_path):
    blurred = tmp_path / "blur.blend"
    subprocess.run([sys.executable, "-c", MOTION_BLUR_ON, str(gt5["_scenes"] / "gt_flow_object.blend"),
                    str(blurred)], env=bpy_env(), check=True, capture_output=True, timeout=120)
    bad = dataset_forge.render_animation(blurred, tmp_path / "bad", frame_start=2, frame_end=2,
                                         **FAST, **KINDS)
    assert not bad["ok"]
    message = " ".join(bad["scenes"]["blur"]["errors"])
    assert "motion blur" in message and "--disable-motion-blur" in message
    assert not (tmp_path / "bad" / "flows").exists()
    good = Seq(render(blurred, tmp_path / "good", 2, 2, "", disable_motion_blur=True,
                      debug=False))
    assert not (good.root / "previews").exists() and "previews" not in good.conv
    fw, bw = good.flow(2)
    quad = interior(good.seg(2) == good.id_of["Quad"], 2)
    want = np.array(GT_SPECS["gt_flow_object"]["px_before"])
    assert np.median(np.linalg.norm(fw[quad] - want, axis=-1)) < 0.05
