# SPDX-License-Identifier: GPL-3.0-or-later
"""Generated cameras (``camera`` = orbit / flythrough) on camera-less, static files
(tests/camera_scenes.py: an asset-only scene, an interior, a terrain), rendered through the real
worker.

Checked independently of the rig (analytic boxes, spheres and heights, not its BVH): no frame
inside geometry or closer than the clearance; every frame sees a surface; K of a 35 mm lens on a
36 mm sensor; depth against analytic ray casts; flow against the reprojection of depth with the
two poses; one seed reproduces RGB bytes and transforms bit for bit, another seed moves
elsewhere; validate passes. The ground truth part also runs on 4.5 and 4.2
(``conftest.bpy_pythons``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from camera_scenes import ROOM, SPECS, mover_center, terrain_height
from conftest import REPO, bpy_env, bpy_pythons, run_bpy
from test_ground_truth import Seq, _warp, interior

pytestmark = pytest.mark.render
FAST = dict(width=48, height=32, max_samples=1, adaptive_threshold=0.0, use_denoising=False,
            depths=True, flows=True, segmentations=True, debug=False, timeout=240.0, retries=0)
CLEARANCE = 0.25
FRAMES = (1, 4)
PYTHONS = bpy_pythons()
# the asset-only scene is looked at by its flythrough (a walk around a few objects looking
# ahead sees mostly nothing)
CASES = {(s, m): ({"camera_target": "box0"} if (s, m) == ("asset", "flythrough") else {})
         for s in SPECS for m in ("orbit", "flythrough")}


def _build(out: Path, python: str) -> Path:
    subprocess.run([python or sys.executable, str(REPO / "tests" / "camera_scenes.py"), str(out)],
                   check=True, env=bpy_env(), capture_output=True, timeout=300)
    return out


def _render(blend: Path, out: Path, python: str, camera: str, **extra) -> Path:
    s = dataset_forge.render_animation(blend, out, frame_start=FRAMES[0], frame_end=FRAMES[1],
                                       executable=python, camera=camera,
                                       camera_clearance=CLEARANCE, **{**FAST, **extra})
    assert s["ok"], json.dumps(s["scenes"], indent=1)[:3000]
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """5.0: every scene with both modes, plus a rerender and another seed of the interior."""
    root = tmp_path_factory.mktemp("gencam")
    scenes = _build(root / "scenes", "")
    out = {k: Seq(_render(scenes / f"{k[0]}.blend", root / f"{k[0]}-{k[1]}", "", k[1], **extra))
           for k, extra in CASES.items()}
    out["again"] = Seq(_render(scenes / "interior.blend", root / "again", "", "flythrough"))
    out["seed1"] = Seq(_render(scenes / "interior.blend", root / "seed1", "", "flythrough",
                               camera_seed=1))
    out["_scenes"] = scenes  # type: ignore[assignment]
    return out


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def versions(request, tmp_path_factory, corpus) -> dict:
    """Ground truth per Blender version: the interior flythrough and the asset orbit."""
    label, python = request.param
    if not python:
        return {"interior": corpus[("interior", "flythrough")], "asset": corpus[("asset", "orbit")]}
    root = tmp_path_factory.mktemp(f"gencam-{label}")
    scenes = _build(root / "scenes", python)
    got = {"interior": Seq(_render(scenes / "interior.blend", root / "i", python, "flythrough")),
           "asset": Seq(_render(scenes / "asset.blend", root / "a", python, "orbit"))}
    for seq in got.values():
        assert seq.tf["blender_version"].startswith(label.split("-")[-1].rsplit(".", 1)[0])
    return got


# -- the geometry the tests know ---------------------------------------------------------------
def _boxes(scene: str) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.array(c, float), np.array(s, float) / 2) for c, s in SPECS[scene].get("boxes", [])]


def _clearance(scene: str, p: np.ndarray, frame: int = 1) -> float:
    """Distance from ``p`` to the nearest surface at ``frame``, negative inside a solid (or under
    the terrain)."""
    if scene == "terrain":
        t = SPECS["terrain"]
        half = np.array([t["size"] / 2, t["size"] / 2, t["amplitude"]])
        box = float(np.linalg.norm(np.maximum(np.abs(p) - half, 0.0)))
        if box > 1.0:  # far from the terrain's box: that distance is a lower bound
            return box
        xs = np.arange(p[0] - 2, p[0] + 2, 0.02)
        ys = np.arange(p[1] - 2, p[1] + 2, 0.02)
        gx, gy = np.meshgrid(xs, ys)
        inside = (np.abs(gx) <= t["size"] / 2) & (np.abs(gy) <= t["size"] / 2)
        gz = np.vectorize(terrain_height)(gx, gy)
        d = np.sqrt((gx - p[0]) ** 2 + (gy - p[1]) ** 2 + (gz - p[2]) ** 2)[inside].min()
        above = abs(p[0]) > t["size"] / 2 or abs(p[1]) > t["size"] / 2 or \
            p[2] > terrain_height(p[0], p[1])
        return d if above else -d
    best = math.inf
    boxes = _boxes(scene)
    if "mover" in SPECS[scene]:
        boxes.append((np.array(mover_center(frame)), np.array(SPECS[scene]["mover"][2]) / 2))
    for c, h in boxes:
        q = np.abs(p - c) - h
        outside = np.linalg.norm(np.maximum(q, 0.0))
        best = min(best, outside if outside > 0 else float(q.max()))
    if "sphere" in SPECS[scene]:
        c, r = SPECS[scene]["sphere"]
        best = min(best, float(np.linalg.norm(p - np.array(c))) - r)
    return best


def _ray_depth(scene: str, o: np.ndarray, d: np.ndarray) -> float:
    """Distance along the unit ray ``o + t d`` to the first box surface (inf: none); NaN where
    the ray meets the sphere, which renders as a UV sphere of 24 x 12 faces, not a sphere."""
    best = math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        for c, h in _boxes(scene):
            t1, t2 = (c - h - o) / d, (c + h - o) / d
            near, far = np.nanmax(np.minimum(t1, t2)), np.nanmin(np.maximum(t1, t2))
            if near <= far and far > 0:
                best = min(best, near if near > 0 else far)
    if "sphere" in SPECS[scene]:
        c, r = SPECS[scene]["sphere"]
        oc = o - np.array(c)
        b = oc @ d
        disc = b * b - (oc @ oc - r * r)
        if disc >= 0 and -b + math.sqrt(disc) > 0:
            return math.nan
    return best


# -- tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES), ids=[f"{s}-{m}" for s, m in CASES])
def test_no_frame_inside_geometry_or_closer_than_the_clearance(corpus, case):
    seq = corpus[case]
    for f in seq.frames:
        eye = seq.pose(f)[:3, 3]
        d = _clearance(case[0], eye, f)
        assert d >= CLEARANCE - 0.01, (case, f, eye.tolist(), d)
    if case[0] in ("interior", "moving"):  # a flythrough stays in the room it starts in
        inside = [np.all(np.abs(seq.pose(f)[:2, 3]) < np.array(ROOM[:2]) / 2) for f in seq.frames]
        assert case[1] == "orbit" or all(inside)
    info = json.loads((seq.root / "info.json").read_text())["camera_rig"]
    assert info["mode"] == case[1] and info["min_clearance"] >= CLEARANCE


@pytest.mark.parametrize("case", list(CASES), ids=[f"{s}-{m}" for s, m in CASES])
def test_every_frame_sees_a_surface_and_flow_is_valid(corpus, case):
    seq = corpus[case]
    for f, fr in seq.frames.items():
        assert (seq.depth(f) > 0).mean() >= 0.05, (case, f)
        assert fr["flow_forward_valid"] and fr["flow_backward_valid"]
    assert seq.tf["camera"] == "Dataset Forge Camera"


def _png_pixels(path: Path) -> bytes:
    """The header and pixel chunks of a PNG (IHDR, IDAT): its text chunks hold the render's date
    and time, which differ between two renders of the same pixels."""
    import struct

    data, i, out = path.read_bytes(), 8, b""
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        if data[i + 4:i + 8] in (b"IHDR", b"IDAT"):
            out += data[i + 4:i + 8 + n]
        i += 12 + n
    return out


def test_one_seed_reproduces_bit_identical_frames_another_moves_elsewhere(corpus):
    a, b, c = corpus[("interior", "flythrough")], corpus["again"], corpus["seed1"]
    for f in a.frames:
        ra = _png_pixels(a.root / a.frames[f]["file_path"])
        assert len(ra) > 100 and ra == _png_pixels(b.root / b.frames[f]["file_path"])
        assert a.frames[f]["transform_matrix"] == b.frames[f]["transform_matrix"]
        assert not np.allclose(a.pose(f), c.pose(f), atol=1e-3)


def test_validate_passes_with_the_trajectory_check(corpus):
    from dataset_forge.dataset.validate import validate_sequence

    for case in (("interior", "flythrough"), ("terrain", "orbit"), ("moving", "flythrough")):
        rep = validate_sequence(corpus[case].root)
        assert rep["ok"], (case, rep["failed"], {k: rep["checks"][k]["message"]
                                                 for k in rep["failed"]})
        assert rep["checks"]["trajectory"]["ok"] is True
        assert rep["checks"]["flow_rigid"]["ok"] is True


def test_intrinsics_are_the_generated_lens(versions):
    for seq in versions.values():
        f = 35.0 / 36.0 * 48
        assert np.allclose(seq.K, [[f, 0, 24], [0, f, 16], [0, 0, 1]], atol=1e-6)


def test_depth_matches_analytic_ray_casts(versions):
    for name, seq in versions.items():
        checked = 0
        for f in seq.frames:
            depth = seq.depth(f)
            p = seq.pose(f)
            rays = seq.rays()  # camera frame, z = -1
            good = interior(depth > 0, 1)
            rel = np.zeros_like(depth)
            # edges: a neighbour more than 2 % away means the pixel may straddle two surfaces
            pad = np.pad(depth, 1, mode="edge")
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    nb = pad[1 + dy:1 + dy + depth.shape[0], 1 + dx:1 + dx + depth.shape[1]]
                    rel = np.maximum(rel, np.abs(nb - depth) / np.maximum(depth, 1e-9))
            good &= rel < 0.02
            ys, xs = np.nonzero(good)
            for y, x in list(zip(ys, xs))[::2]:
                d_cam = rays[y, x]
                d_world = p[:3, :3] @ d_cam
                t = _ray_depth(name, p[:3, 3], d_world / np.linalg.norm(d_world))
                if math.isnan(t):
                    continue
                want = t / np.linalg.norm(d_cam)  # planar depth: along the viewing axis
                assert abs(depth[y, x] - want) <= 1e-4 * want + 1e-5, (name, f, y, x)
                checked += 1
        assert checked > 30, name


def test_flow_matches_reprojection_with_the_two_poses(versions):
    for name, seq in versions.items():
        for f in seq.frames:
            fw, bw = seq.flow(f)
            for g, flow in ((f + 1, fw), (f - 1, bw)):
                if g not in seq.frames:
                    continue
                want, valid = _warp(seq, f, g)
                valid &= interior(seq.depth(f) > 0, 1)
                assert valid.sum() > 50
                assert np.median(np.abs(want[valid]).sum(-1)) > 0.02  # the camera really moves
                err = np.linalg.norm(flow[valid] - want[valid], axis=-1)
                assert np.median(err) < 0.02 and np.quantile(err, 0.9) < 0.1, (name, f, g)


def test_path_preview_draws_the_rendered_path_and_removes_it(corpus):
    """The panel's Preview Camera Path, through bpy.ops on the registered add-on (no window: the
    viewport drawing itself is not seen here). Its curve runs through the camera positions the
    worker rendered (same scene name, sequence id, settings); a second click removes it; the
    .blend on disk is unchanged."""
    blend = corpus["_scenes"] / "interior.blend"
    out = run_bpy(f"""
import bpy, hashlib, json
p = {str(blend)!r}
h0 = hashlib.sha256(open(p, "rb").read()).hexdigest()
bpy.ops.wm.open_mainfile(filepath=p, load_ui=False)
import dataset_forge
dataset_forge.register()
pg = bpy.context.scene.dataset_forge
res = {{"poll_scene": bpy.ops.dataset_forge.camera_path_preview.poll()}}
pg.camera, pg.num_frames, pg.width, pg.height = "flythrough", {FRAMES[1] - FRAMES[0] + 1}, 48, 32
bpy.context.scene.frame_set(7)
res["first"] = list(bpy.ops.dataset_forge.camera_path_preview())
coll = bpy.data.collections.get("Dataset Forge Path Preview")
res["hide_render"] = [coll.hide_render] + [o.hide_render for o in coll.objects]
res["curves"] = {{o.name: [list(pt.co)[:3] for pt in o.data.splines[0].points] for o in coll.objects}}
res["frame"] = bpy.context.scene.frame_current
res["second"] = list(bpy.ops.dataset_forge.camera_path_preview())
res["left"] = [bpy.data.collections.get("Dataset Forge Path Preview") is None, len(bpy.data.curves)]
res["unchanged"] = h0 == hashlib.sha256(open(p, "rb").read()).hexdigest()
print("RESULT" + json.dumps(res))
""")
    res = json.loads(out.split("RESULT", 1)[1])
    assert res["poll_scene"] is False
    assert res["first"] == ["FINISHED"] and res["second"] == ["FINISHED"]
    assert all(res["hide_render"]) and res["frame"] == 7
    assert res["left"] == [True, 0] and res["unchanged"]
    seq = corpus[("interior", "flythrough")]
    (name, pts), = res["curves"].items()
    assert name == f"Camera Path {seq.tf['sequence_id']}"
    pts = np.array(pts)  # frames a - 1 .. b + 1
    assert len(pts) == len(seq.frames) + 2
    rendered = np.array([seq.pose(f)[:3, 3] for f in sorted(seq.frames)])
    assert np.allclose(pts[1:-1], rendered, atol=1e-4)


def test_refusals_name_the_file_and_the_fix(corpus):
    """A target that names nothing, and a clearance no path can keep while seeing the room (50
    units: only far away from it, where it fills too few of the coverage rays), are refused with
    one line each (in the worker a SceneError fails that sequence only)."""
    blend = corpus["_scenes"] / "interior.blend"
    out = run_bpy(f"""
import bpy, json
from dataset_forge.render_passes import camera_rig
from dataset_forge.render_passes.scene_setup import SceneError
from dataset_forge.settings import Settings
res = {{}}
for key, kw in (("target", dict(camera="orbit", camera_target="nothing")),
                ("clearance", dict(camera="flythrough", camera_clearance=50.0))):
    bpy.ops.wm.open_mainfile(filepath={str(blend)!r}, load_ui=False)
    scene = bpy.context.scene
    try:
        camera_rig.install(scene, Settings(**kw), "interior.blend")
        camera_rig.prepare_sequence(scene, Settings(**kw), "interior", "001-00001-00005", 1, 4,
                                    "interior.blend")
        res[key] = None
    except SceneError as exc:
        res[key] = str(exc)
print("RESULT" + json.dumps(res))
""")
    res = json.loads(out.split("RESULT", 1)[1])
    assert res["target"].startswith("interior.blend: camera_target 'nothing' is neither an object")
    assert "leave it empty" in res["target"]
    assert res["clearance"].startswith("interior.blend: sequence 001-00001-00005: no flythrough "
                                       "path of scene 'Scene' keeps 50 units from every surface")
    assert "lower camera_clearance" in res["clearance"] and "\n" not in res["clearance"]


def test_camera_less_static_file_yields_disjoint_sequences_end_to_end(corpus, tmp_path):
    """Discovery accepts the camera-less file only with a generated camera; the plan extends its
    24 frames to fit 2 x 13; both sequences render, with different paths, and validate."""
    from dataset_forge.engine.discovery import discover
    from dataset_forge.settings import Settings

    folder = tmp_path / "scenes"
    folder.mkdir()
    (folder / "terrain.blend").symlink_to(corpus["_scenes"] / "terrain.blend")
    (plain,) = discover(folder)
    assert "has no active camera" in plain.error
    (gen,) = discover(folder, Settings(camera="orbit"))
    assert gen.error is None and gen.camera == "Dataset Forge Camera"
    s = dataset_forge.create_datasets(folder, tmp_path / "out", camera="orbit",
                                      sequences_per_scene=2, num_frames=13,
                                      **{**FAST, "width": 32, "height": 24})
    assert s["ok"], json.dumps(s)[:2000]
    seqs = sorted((tmp_path / "out" / "renders" / "terrain").iterdir())
    assert [p.name for p in seqs] == ["001-00001-00014", "001-00014-00027"]
    a, b = Seq(seqs[0]), Seq(seqs[1])
    assert not np.allclose(a.pose(13), b.pose(14), atol=1e-3)
    from dataset_forge.dataset.validate import validate

    rep = validate(tmp_path / "out", write=False, update_manifest=False)
    assert rep["ok"], rep["failed"]


def test_moving_geometry_gets_a_tree_per_frame_static_one_tree(corpus):
    """The rig's BVH follows the scene: one tree for the static interior, one per frame where the
    cube flies (its nearest surface from a fixed point moves as the analytic cube does)."""
    out = run_bpy(f"""
import bpy, json
from dataset_forge.render_passes import camera_rig
res = {{}}
for name in ("interior", "moving"):
    bpy.ops.wm.open_mainfile(filepath=str({str(corpus["_scenes"])!r}) + f"/{{name}}.blend",
                             load_ui=False)
    geo = camera_rig.scene_geometry(bpy.context.scene, range(0, 6), name)
    near = {{f: camera_rig._clearance(geo.tree(f))((-1.0, 0.0, 1.5)) for f in range(0, 6)}}
    res[name] = {{"trees": len(geo.trees), "near": near,
                 "handlers": len(bpy.app.handlers.frame_change_post)}}
print("RESULT" + json.dumps(res))
""")
    res = json.loads(out.split("RESULT", 1)[1])
    assert res["interior"]["trees"] == 1 and res["moving"]["trees"] == 5  # frames 0 and 1 agree
    assert res["interior"]["handlers"] == res["moving"]["handlers"] == 0
    near = res["moving"]["near"]
    assert near["1"] > near["5"] + 0.5  # the cube closes in on the point
    for f, d in near.items():
        want = _clearance("moving", np.array([-1.0, 0.0, 1.5]), int(f))
        assert abs(d - want) < 1e-4, (f, d, want)


def test_keyframe_multiplier_keeps_the_speed_in_stretched_time(corpus, tmp_path):
    """With keyframe_multiplier 2 the keys sit at the scene clock of each stretched frame: the
    camera moves speed / (2 x 24 fps) per frame, and the flow still matches the poses."""
    seq = Seq(_render(corpus["_scenes"] / "interior.blend", tmp_path / "x2", "", "flythrough",
                      keyframe_multiplier=2.0, camera_speed=2.0))
    eyes = np.array([seq.pose(f)[:3, 3] for f in sorted(seq.frames)])
    rig = json.loads((seq.root / "info.json").read_text())["camera_rig"]
    ring = 2.0 / 48.0  # arc per frame; the chord of a gently curving path is shorter by < 1e-3
    assert np.allclose(np.linalg.norm(np.diff(eyes, axis=0), axis=1), ring, rtol=1e-3), rig
    test_flow_matches_reprojection_with_the_two_poses({"interior": seq})
