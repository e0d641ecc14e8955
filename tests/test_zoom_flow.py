# SPDX-License-Identifier: GPL-3.0-or-later
"""Optical flow under an animated lens (focal length, sensor size, lens shift).

Cycles' Vector pass projects the neighbouring frame with the wrong intrinsics (the current
``K`` in 4.2; the neighbour's focal length but the current principal point in 4.5 and 5.0), so
Dataset Forge re-projects each flow file exactly where ``K`` changes
(``dataset/flow_intrinsics.py``). Checked here:

* the pure correction on synthetic geometry (no bpy): stored flow made with either model,
  corrected, equals the projection with the neighbour's own ``K``;
* renders (64x48, 1 sample) of a plane under a static camera whose lens zooms 35 -> 50 mm, or
  whose shift moves: the flow equals the affine map ``K(t±1) K(t)⁻¹ p - p`` within 0.01 px;
* a moving, turning camera zooming and shifting over a tilted ground that leaves background in
  view: the flow equals depth re-projected with each frame's own ``K`` and pose within 0.01 px,
  the background flow stays 0, validate's ``flow_rigid`` passes, the flow is marked valid and no
  scratch mask is left behind.

``DF_EXTRA_PYTHONS`` adds the renders on other bpy versions (like test_ground_truth); the file
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
from dataset_forge.dataset import flow_intrinsics as fk

PYTHONS = bpy_pythons()
FAST = dict(width=64, height=48, max_samples=1, adaptive_threshold=0.0, use_denoising=False,
            timeout=240.0, retries=0, file_format="OPEN_EXR", bit_depth=32, debug=False,
            depths=True, flows=True)
CV = np.diag([1.0, -1.0, -1.0, 1.0])  # Blender camera axes -> OpenCV
FLOW = ["R", "G", "B", "A"]

# Frames 1 and 3 keyed (linear), frame 2 in between; "tilt" turns the 2*size m ground about x.
SCENES = {
    "zoom": dict(size=40.0, tilt=0.0, keys={
        1: dict(lens=35.0, shift=(0.0, 0.0), loc=(0.0, 0.0, 10.0), rot=(0.0, 0.0, 0.0)),
        3: dict(lens=50.0, shift=(0.0, 0.0), loc=(0.0, 0.0, 10.0), rot=(0.0, 0.0, 0.0))}),
    "shift": dict(size=40.0, tilt=0.0, keys={
        1: dict(lens=35.0, shift=(0.0, 0.0), loc=(0.0, 0.0, 10.0), rot=(0.0, 0.0, 0.0)),
        3: dict(lens=35.0, shift=(0.2, -0.1), loc=(0.0, 0.0, 10.0), rot=(0.0, 0.0, 0.0))}),
    "moving": dict(size=3.0, tilt=0.5, keys={
        1: dict(lens=35.0, shift=(0.0, 0.0), loc=(0.0, -2.0, 10.0), rot=(0.0, 0.0, 0.0)),
        3: dict(lens=50.0, shift=(0.1, 0.05), loc=(1.0, -1.5, 9.0), rot=(0.1, 0.05, 0.1))}),
}

BUILD = r'''
import json, bpy
args = ARGS
for name, sp in args["scenes"].items():
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.preferences.edit.keyframe_new_interpolation_type = "LINEAR"
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.frame_start, scene.frame_end = 1, 3
    s = sp["size"]
    mesh = bpy.data.meshes.new("Ground")
    mesh.from_pydata([(-s, -s, 0), (s, -s, 0), (s, s, 0), (-s, s, 0)], [], [(0, 1, 2, 3)])
    ground = bpy.data.objects.new("Ground", mesh)
    ground.rotation_euler = (sp["tilt"], 0.0, 0.0)
    scene.collection.objects.link(ground)
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.sensor_width = 36.0
    for f, k in sp["keys"].items():
        cam.data.lens = k["lens"]
        cam.data.shift_x, cam.data.shift_y = k["shift"]
        cam.location, cam.rotation_euler = k["loc"], k["rot"]
        for attr in ("lens", "shift_x", "shift_y"):
            cam.data.keyframe_insert(attr, frame=int(f))
        cam.keyframe_insert("location", frame=int(f))
        cam.keyframe_insert("rotation_euler", frame=int(f))
    bpy.ops.wm.save_as_mainfile(filepath=args["out"] + "/" + name + ".blend")
print("BUILT")
'''


# -- the pure correction (no bpy) -----------------------------------------------------------------
def _K(fx, fy, cx, cy):
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _project(K, X):
    uvw = X @ K.T
    return uvw[..., :2] / uvw[..., 2:]


@pytest.mark.parametrize("model", list(fk.VectorPassModel))
def test_correction_recovers_the_neighbours_projection(model):
    """Synthetic surface (random depth) seen at t with K_t; at t+1 the camera moved and K
    changed; the stored flow is what Cycles writes under ``model``. Corrected = exact."""
    rng = np.random.default_rng(7)
    h, w = 24, 32
    K_t, K_o = _K(62.2, 62.2, 32.0, 24.0), _K(75.6, 75.6, 25.6, 27.2)
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    p = np.stack([u, v], -1)
    depth = rng.uniform(3.0, 12.0, (h, w))
    X = depth[..., None] * (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K_t).T)
    c, s = np.cos(0.05), np.sin(0.05)
    R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    X_o = X @ R.T + [0.3, -0.1, 0.4]  # the same points in the neighbour's camera frame
    stored = _project(fk.used_intrinsics(K_t, K_o, model), X_o) - p
    true = _project(K_o, X_o) - p
    assert np.abs(stored - true).max() > 1.0  # the pass alone is wrong by pixels
    fixed = fk.correct_flow_for_intrinsics(stored.astype(np.float32), fk.used_intrinsics(
        K_t, K_o, model), K_o)
    assert fixed.dtype == np.float32 and fixed.shape == (h, w, 2)
    assert np.abs(fixed - true).max() < 1e-3


def test_correction_of_a_static_zoom_is_the_affine_map_and_keeps_the_background():
    """Static scene, pure zoom + shift, 4.2 model: the stored flow is 0, the corrected one is
    ``K_o K_t⁻¹ p - p`` (u' = fx'/fx (u - cx) + cx'); masked-out pixels keep their value."""
    h, w = 4, 6
    K_t, K_o = _K(60.0, 60.0, 3.0, 2.0), _K(90.0, 90.0, 2.5, 2.25)
    mask = np.ones((h, w), bool)
    mask[0, 0] = False
    fixed = fk.correct_flow_for_intrinsics(np.zeros((h, w, 2), np.float32), K_t, K_o, mask)
    u, v = 1.5, 2.5  # pixel (col 1, row 2)
    assert fixed[2, 1, 0] == pytest.approx(1.5 * (u - 3.0) + 2.5 - u, abs=1e-6)
    assert fixed[2, 1, 1] == pytest.approx(1.5 * (v - 2.0) + 2.25 - v, abs=1e-6)
    assert fixed[0, 0].tolist() == [0.0, 0.0]


def test_used_intrinsics_and_what_is_correctable():
    K_t, K_o = _K(60.0, 60.0, 32.0, 24.0), _K(80.0, 80.0, 30.0, 20.0)
    assert np.array_equal(fk.used_intrinsics(K_t, K_o, fk.VectorPassModel.CURRENT), K_t)
    assert np.array_equal(fk.used_intrinsics(K_t, K_o, fk.VectorPassModel.NEIGHBOUR_FOCAL),
                          _K(80.0, 80.0, 32.0, 24.0))
    size = (64, 48)
    assert fk.correctable(K_t, K_t, size, size, None)  # nothing changed: always right
    assert not fk.correctable(K_t, K_o, size, size, None)  # unmeasured Blender: invalid
    assert fk.correctable(K_t, K_o, size, size, fk.VectorPassModel.CURRENT)
    assert not fk.correctable(K_t, K_o, size, (64, 40), fk.VectorPassModel.CURRENT)
    assert not fk.correctable(K_t, _K(80.0, 40.0, 30.0, 20.0), size, size,
                              fk.VectorPassModel.NEIGHBOUR_FOCAL)  # pixel aspect changed


# -- renders --------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def zoomed(request, tmp_path_factory) -> dict[str, Path]:
    from conftest import run_bpy

    _, python = request.param
    root = tmp_path_factory.mktemp(f"zoom-{request.param[0]}")
    scenes = root / "scenes"
    scenes.mkdir()
    args = {"out": str(scenes), "scenes": SCENES}
    assert "BUILT" in run_bpy(BUILD.replace("ARGS", repr(json.loads(json.dumps(args)))),
                              python=python or None)
    out = {}
    for name in SCENES:
        seq = root / name
        summary = dataset_forge.render_animation(scenes / f"{name}.blend", seq, frame_start=1,
                                                 frame_end=3, executable=python, **FAST,
                                                 segmentations=name == "moving")
        assert summary["ok"], json.dumps(summary["scenes"], indent=1)[:3000]
        out[name] = seq
    # flows without depths: the surface comes from a scratch mask instead of the depth file
    seq = root / "moving_flows_only"
    summary = dataset_forge.render_animation(scenes / "moving.blend", seq, frame_start=1,
                                             frame_end=3, executable=python,
                                             **{**FAST, "depths": False})
    assert summary["ok"], json.dumps(summary["scenes"], indent=1)[:3000]
    out["moving_flows_only"] = seq
    return out


def _load(seq: Path):
    tf = json.loads((seq / "transforms.json").read_text())
    frames = {fr["frame"]: fr for fr in tf["frames"]}
    top = _K(tf["fl_x"], tf["fl_y"], tf["cx"], tf["cy"])
    Ks = {f: np.array(fr["intrinsics"]) if "intrinsics" in fr else top for f, fr in frames.items()}
    flows = {f: exr.read_stack(seq / fr["flow_file_path"], FLOW).astype(np.float64)
             for f, fr in frames.items()}
    depths = {f: exr.read_single(seq / fr["depth_file_path"]).astype(np.float64)
              for f, fr in frames.items()}
    return frames, Ks, flows, depths


def _pairs(frames):
    """(frame, neighbour, channels) for every flow direction inside the sequence."""
    for f in frames:
        for g, sl in ((f + 1, slice(0, 2)), (f - 1, slice(2, 4))):
            if g in frames:
                yield f, g, sl


@pytest.mark.render
@pytest.mark.smoke
@pytest.mark.parametrize("name", ["zoom", "shift"])
def test_static_camera_flow_is_the_affine_map_of_the_lens_change(zoomed, name):
    frames, Ks, flows, depths = _load(zoomed[name])
    assert len({json.dumps(K.tolist()) for K in Ks.values()}) == 3  # K differs on every frame
    h, w = depths[1].shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    p = np.stack([u, v, np.ones_like(u)], -1)
    worst = 0.0
    for f, g, sl in _pairs(frames):
        assert (depths[f] > 0).all()  # the plane fills the view
        A = Ks[g] @ np.linalg.inv(Ks[f])
        expect = (p @ A.T)[..., :2] - p[..., :2]
        assert np.abs(expect).max() > 3.0  # a change of several pixels
        worst = max(worst, np.abs(flows[f][..., sl] - expect).max())
    assert worst < 0.01, worst
    # Outside the keys (frames 0 and 4) the lens holds: those halves stay 0.
    assert np.abs(flows[1][..., 2:]).max() < 1e-4 and np.abs(flows[3][..., :2]).max() < 1e-4
    assert all(fr["flow_forward_valid"] and fr["flow_backward_valid"] for fr in frames.values())


@pytest.mark.render
@pytest.mark.smoke
def test_moving_camera_with_zoom_and_shift_matches_reprojected_depth(zoomed):
    seq = zoomed["moving"]
    frames, Ks, flows, depths = _load(seq)
    worst = 0.0
    for f, g, sl in _pairs(frames):
        d = depths[f]
        h, w = d.shape
        u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        X = d[..., None] * (np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(Ks[f]).T)
        c2w = np.array(frames[f]["transform_matrix"]) @ CV
        Xw = X @ c2w[:3, :3].T + c2w[:3, 3]
        w2c = np.linalg.inv(np.array(frames[g]["transform_matrix"]) @ CV)
        Xg = Xw @ w2c[:3, :3].T + w2c[:3, 3]
        surface = d > 0
        assert 0.2 < surface.mean() < 0.95  # ground and background both in view
        expect = _project(Ks[g], Xg[surface]) - np.stack([u, v], -1)[surface]
        worst = max(worst, np.abs(flows[f][..., sl][surface] - expect).max())
        assert np.abs(flows[f][..., sl][~surface]).max() == 0.0  # Cycles' background: 0
    assert worst < 0.01, worst
    assert all(fr["flow_forward_valid"] and fr["flow_backward_valid"] for fr in frames.values())
    assert not (seq / "flows" / ".raw").exists()  # no scratch mask: the depth file was used
    # Without depths the scratch mask tells the surface: the same corrected flow, masks removed.
    alone = zoomed["moving_flows_only"]
    tf = json.loads((alone / "transforms.json").read_text())
    for fr in tf["frames"]:
        np.testing.assert_allclose(exr.read_stack(alone / fr["flow_file_path"], FLOW),
                                   flows[fr["frame"]], atol=1e-4)
    assert not (alone / "flows" / ".raw").exists()
    rep = dataset_forge.validate(seq, write=False)["sequences"][0]
    rigid = rep["checks"]["flow_rigid"]
    assert rigid["ok"] is True and rigid["worst_px"] < 0.05, rigid
