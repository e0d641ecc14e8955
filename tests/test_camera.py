# SPDX-License-Identifier: GPL-3.0-or-later
"""dataset/camera.py: exact pinhole intrinsics for every perspective camera a user may have.

Two kinds of proof:

* pure unit tests against an independent reference, Blender's view-plane computation
  (``BKE_camera_params_compute_viewplane``) written out literally, for all sensor fits, portrait
  and landscape, lens shifts, non-square pixels and ``resolution_percentage``;
* end to end: each camera variant scene of tests/scenes.py is rendered through
  ``dataset_forge.render_animation``; the cube's corners projected with the written ``K`` and
  ``transform_matrix`` must land within 0.5 px of where Blender projects them
  (``bpy_extras.object_utils.world_to_camera_view``) and of where the cube appears in the image
  (the centroid of its anti-aliased alpha against the centroid of its projected silhouette).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from conftest import run_bpy
from dataset_forge.dataset.camera import (
    BLENDER_TO_OPENCV,
    CameraModelError,
    CameraParams,
    image_size,
    intrinsics,
    orthonormal_pose,
)

# ---------------------------------------------------------------------------------------------
# Independent reference: Blender's view plane, literally.


def viewplane_project(p: CameraParams, x: float, y: float, z: float) -> tuple[float, float]:
    """Pixel (u right, v down, corner origin) of Blender camera-space point (x, y, z), z < 0,
    computed the way Blender builds its view plane (camera.cc, compute_viewplane)."""
    winx = p.resolution_x * p.resolution_percentage // 100
    winy = p.resolution_y * p.resolution_percentage // 100
    ycor = p.pixel_aspect_y / p.pixel_aspect_x
    sensor_x, sensor_y = p.sensor_width, p.sensor_height
    fit = p.sensor_fit
    if fit == "AUTO":
        sensor_size = sensor_x
        fit = "HORIZONTAL" if p.pixel_aspect_x * winx >= p.pixel_aspect_y * winy else "VERTICAL"
    else:
        sensor_size = sensor_x if fit == "HORIZONTAL" else sensor_y
    pixsize = sensor_size / p.lens  # view plane at distance 1
    viewfac = winx if fit == "HORIZONTAL" else ycor * winy
    pixsize /= viewfac
    xmin, xmax = -0.5 * winx, 0.5 * winx
    ymin, ymax = -0.5 * ycor * winy, 0.5 * ycor * winy
    dx, dy = p.shift_x * viewfac, p.shift_y * viewfac
    xmin, xmax, ymin, ymax = ((xmin + dx) * pixsize, (xmax + dx) * pixsize,
                              (ymin + dy) * pixsize, (ymax + dy) * pixsize)
    X, Y = x / -z, y / -z
    u = (X - xmin) / (xmax - xmin) * winx
    v_up = (Y - ymin) / (ymax - ymin) * winy
    return u, winy - v_up


def k_project(p: CameraParams, x: float, y: float, z: float) -> tuple[float, float]:
    return intrinsics(p).project((x, -y, -z))  # Blender camera frame -> OpenCV


def cam(**kw) -> CameraParams:
    base = dict(lens=50.0, sensor_width=36.0, sensor_height=24.0, sensor_fit="AUTO", shift_x=0.0,
                shift_y=0.0, resolution_x=64, resolution_y=48)
    base.update(kw)
    return CameraParams(**base)


# ---------------------------------------------------------------------------------------------
# Pure unit tests


def test_landscape_auto_fit_hand_values():
    k = intrinsics(cam())
    assert (k.w, k.h) == (64, 48)
    assert k.fl_x == pytest.approx(50 * 64 / 36) and k.fl_y == pytest.approx(50 * 64 / 36)
    assert (k.cx, k.cy) == (32.0, 24.0)
    assert k.K == [[k.fl_x, 0.0, 32.0], [0.0, k.fl_y, 24.0], [0.0, 0.0, 1.0]]


def test_portrait_auto_fit_uses_sensor_width_across_the_height():
    # AUTO fits the sensor *width* to the larger image side, here the height (Blender's rule).
    k = intrinsics(cam(resolution_x=48, resolution_y=64))
    assert k.fl_y == pytest.approx(50 * 64 / 36) and k.fl_x == pytest.approx(k.fl_y)
    assert (k.cx, k.cy) == (24.0, 32.0)


def test_vertical_fit_uses_sensor_height_on_the_height():
    k = intrinsics(cam(sensor_fit="VERTICAL"))
    assert k.fl_y == pytest.approx(50 * 48 / 24) and k.fl_x == pytest.approx(100.0)
    k = intrinsics(cam(sensor_fit="VERTICAL", resolution_x=40, resolution_y=64))
    assert k.fl_y == pytest.approx(50 * 64 / 24)


def test_horizontal_fit_on_a_portrait_image():
    k = intrinsics(cam(sensor_fit="HORIZONTAL", resolution_x=40, resolution_y=64))
    assert k.fl_x == pytest.approx(50 * 40 / 36)


def test_shift_is_scaled_by_the_fitted_side_not_by_each_side():
    # Landscape, horizontal fit: both shifts are fractions of the width (64 px).
    k = intrinsics(cam(shift_x=0.1, shift_y=0.1))
    assert k.cx == pytest.approx(32 - 6.4) and k.cy == pytest.approx(24 + 6.4)
    # Portrait, AUTO: the larger side is the height (64 px): both shifts scale by it.
    k = intrinsics(cam(resolution_x=40, resolution_y=64, shift_x=0.1, shift_y=-0.05))
    assert k.cx == pytest.approx(20 - 6.4) and k.cy == pytest.approx(32 - 3.2)


def test_non_square_pixels_give_different_focal_lengths():
    # pixel_aspect 2:1 -> each pixel is twice as wide as tall: fl_y = 2 fl_x.
    k = intrinsics(cam(pixel_aspect_x=2.0, sensor_fit="HORIZONTAL"))
    assert k.fl_x == pytest.approx(50 * 64 / 36) and k.fl_y == pytest.approx(2 * k.fl_x)
    # AUTO compares the *physical* sizes: 64*1 vs 48*2 -> vertical fit on the sensor width.
    k2 = intrinsics(cam(pixel_aspect_y=2.0))
    assert k2.fl_x == pytest.approx(50 * 2 * 48 / 36)
    assert k2.fl_y == pytest.approx(k2.fl_x / 2)


def test_resolution_percentage_truncates_like_blender():
    assert image_size(cam(resolution_x=128, resolution_y=80, resolution_percentage=50)) == (64, 40)
    assert image_size(cam(resolution_x=100, resolution_y=75, resolution_percentage=33)) == (33, 24)
    full, half = intrinsics(cam(resolution_x=128, resolution_y=96)), intrinsics(
        cam(resolution_x=128, resolution_y=96, resolution_percentage=50))
    assert (half.w, half.h) == (64, 48)
    assert half.fl_x == pytest.approx(full.fl_x / 2) and half.cx == pytest.approx(full.cx / 2)


@pytest.mark.parametrize("seed", range(6))
def test_k_matches_blenders_view_plane_for_random_cameras(seed):
    rng = random.Random(seed)
    for _ in range(200):
        p = cam(lens=rng.uniform(8, 200), sensor_width=rng.uniform(5, 50),
                sensor_height=rng.uniform(5, 50), sensor_fit=rng.choice(["AUTO", "HORIZONTAL", "VERTICAL"]),
                shift_x=rng.uniform(-0.5, 0.5), shift_y=rng.uniform(-0.5, 0.5),
                resolution_x=rng.randint(8, 4000), resolution_y=rng.randint(8, 4000),
                resolution_percentage=rng.choice([100, 50, 25, 33, 75, 150]),
                pixel_aspect_x=rng.choice([1.0, 2.0, 1.5]), pixel_aspect_y=rng.choice([1.0, 3.0, 1.25]))
        if min(image_size(p)) < 1:
            continue
        for _ in range(4):
            pt = (rng.uniform(-3, 3), rng.uniform(-3, 3), -rng.uniform(0.5, 20))
            ref = viewplane_project(p, *pt)
            got = k_project(p, *pt)
            assert got == pytest.approx(ref, rel=1e-9, abs=1e-7), p


@pytest.mark.parametrize("kind", ["ORTHO", "PANO"])
def test_orthographic_and_panoramic_cameras_raise_a_clear_error(kind):
    with pytest.raises(CameraModelError) as info:
        intrinsics(cam(type=kind))
    assert f"camera type {kind} has no pinhole intrinsics" in str(info.value)
    assert "Perspective" in str(info.value)


def test_degenerate_cameras_raise():
    with pytest.raises(CameraModelError, match="focal length"):
        intrinsics(cam(lens=0.0))
    with pytest.raises(CameraModelError, match="empty"):
        intrinsics(cam(resolution_x=1, resolution_percentage=50))
    assert issubclass(CameraModelError, ValueError)


def test_orthonormal_pose_removes_scale_and_keeps_axis_and_position():
    a = 0.3
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rot @ np.diag([2.0, 3.0, 0.5])
    m[:3, 3] = (1.0, -2.0, 5.0)
    out = np.array(orthonormal_pose(m.tolist()))
    assert np.allclose(out[:3, :3], rot, atol=1e-12)
    assert np.allclose(out[:3, 3], (1.0, -2.0, 5.0))
    assert np.allclose(out[3], (0, 0, 0, 1))
    with pytest.raises(CameraModelError):
        orthonormal_pose(np.diag([1.0, 1.0, 0.0, 1.0]).tolist())


def test_blender_to_opencv_flips_y_and_z():
    assert np.array_equal(np.array(BLENDER_TO_OPENCV), np.diag([1.0, -1.0, -1.0, 1.0]))


# ---------------------------------------------------------------------------------------------
# End to end: render the camera variants and compare with Blender.

VARIANTS = ("basic", "orbit", "portrait_vertical", "wide_horizontal_aspect")
FRAMES = (1, 2)
CUBE_SCALE = 0.7
CUBE_ROTATION = (0.35, 0.25, 0.6)
DEPTH = 8.0

# In a bpy subprocess: for every scene, (1) Blender's projection of the original Cube's corners,
# (2) a cube-only copy with a transparent film, the Cube rotated and moved in front of the camera
# (into the middle of the view frame, which Blender computes) so that its whole silhouette is in
# the image, and Blender's projection of *its* corners, (3) orthographic/panoramic copies of basic.
PREP = r"""
import json, bpy
from mathutils import Vector
from bpy_extras.object_utils import world_to_camera_view
SRC, OUT, FRAMES, SCALE, ROT, DEPTH = {src!r}, {out!r}, {frames!r}, {scale!r}, {rot!r}, {depth!r}
def corners(ob):
    return [tuple(ob.matrix_world @ Vector(c)) for c in
            [(x, y, z) for x in (-.5, .5) for y in (-.5, .5) for z in (-.5, .5)]]
def blender_px(scene, pts):
    r = scene.render
    w, h = r.resolution_x * r.resolution_percentage // 100, r.resolution_y * r.resolution_percentage // 100
    out = []
    for p in pts:
        q = world_to_camera_view(scene, scene.camera, Vector(p))
        out.append((q.x * w, (1.0 - q.y) * h))
    return out
res = {{}}
for name in {names!r}:
    bpy.ops.wm.open_mainfile(filepath=f"{{SRC}}/{{name}}.blend")
    scene = bpy.context.scene
    cube = bpy.data.objects["Cube"]
    info = {{"mesh": sorted(tuple(round(c, 6) for c in v.co) for v in cube.data.vertices),
             "original": {{}}, "variant": {{}}}}
    for f in FRAMES:
        scene.frame_set(f)
        pts = corners(cube)
        info["original"][f] = {{"world": pts, "blender_px": blender_px(scene, pts)}}
    scene.frame_set(FRAMES[0])
    for n in ("Ground", "Sphere"):
        bpy.data.objects.remove(bpy.data.objects[n])
    cube.animation_data_clear()
    frame = scene.camera.data.view_frame(scene=scene)
    centre = sum(frame, Vector()) / 4.0
    cube.location = scene.camera.matrix_world @ (centre * (DEPTH / -centre.z))
    cube.rotation_euler = ROT
    cube.scale = (SCALE, SCALE, SCALE)
    scene.render.film_transparent = True
    bpy.context.view_layer.update()
    for f in FRAMES:
        scene.frame_set(f)
        pts = corners(cube)
        info["variant"][f] = {{"world": pts, "blender_px": blender_px(scene, pts)}}
    bpy.ops.wm.save_as_mainfile(filepath=f"{{OUT}}/{{name}}.blend", copy=True)
    res[name] = info
    if name == "basic":
        for kind in ("ORTHO", "PANO"):
            scene.camera.data.type = kind
            bpy.ops.wm.save_as_mainfile(filepath=f"{{OUT}}/basic_{{kind.lower()}}.blend", copy=True)
        scene.camera.data.type = "PERSP"
print("RESULT" + json.dumps(res))
"""


@pytest.fixture(scope="module")
def variants(scenes_dir, tmp_path_factory):
    """Prepared scenes, Blender's projections, and the renders of the cube-only variants."""
    out = tmp_path_factory.mktemp("camera_variants")
    code = PREP.format(src=str(scenes_dir), out=str(out), frames=FRAMES, scale=CUBE_SCALE,
                       rot=CUBE_ROTATION, depth=DEPTH, names=VARIANTS)
    stdout = run_bpy(code)
    info = json.loads(stdout.split("RESULT", 1)[1].strip().splitlines()[0])
    renders = {}
    for name in VARIANTS:
        seq = out / "renders" / name
        summary = dataset_forge.render_animation(
            out / f"{name}.blend", seq, frame_start=FRAMES[0], frame_end=FRAMES[-1], width=0,
            height=0, max_samples=64, adaptive_threshold=0.0, use_denoising=False,
            file_format="OPEN_EXR", bit_depth=32, color_mode="RGBA", debug=False)
        assert summary["ok"], summary
        renders[name] = seq
    return {"dir": out, "info": info, "renders": renders}


def project_written(transforms: dict, frame: int, pts) -> np.ndarray:
    """Project world points with the written K and camera-to-world pose (Blender axes)."""
    entry = next(f for f in transforms["frames"] if f["frame"] == frame)
    K = np.array(entry.get("intrinsics", transforms["intrinsics"]))
    c2w = np.array(entry["transform_matrix"]) @ np.diag([1.0, -1.0, -1.0, 1.0])  # -> OpenCV
    w2c = np.linalg.inv(c2w)
    p = np.c_[np.asarray(pts, float), np.ones(len(pts))] @ w2c.T
    uvw = p[:, :3] @ K.T
    assert (p[:, 2] > 0).all()
    return uvw[:, :2] / uvw[:, 2:3]


def hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise in u-right/v-down, Andrew's monotone chain)."""
    pts = sorted(map(tuple, points))

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def polygon_area_centroid(poly: np.ndarray) -> tuple[float, np.ndarray]:
    x, y = poly[:, 0], poly[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cr = x * yn - xn * y
    area = cr.sum() / 2.0
    c = np.array([((x + xn) * cr).sum(), ((y + yn) * cr).sum()]) / (6.0 * area)
    return abs(area), c


def read_alpha(path: Path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return np.asarray(f.channels()["A"].pixels, dtype=np.float64)


@pytest.mark.smoke
@pytest.mark.render
def test_scene_cube_geometry_is_the_documented_one(variants):
    for name in VARIANTS:
        mesh = variants["info"][name]["mesh"]
        assert sorted(map(tuple, mesh)) == sorted(
            (x, y, z) for x in (-.5, .5) for y in (-.5, .5) for z in (-.5, .5))
    # basic: the cube slides +0.1 m per frame (tests/scenes.py SPECS).
    orig = variants["info"]["basic"]["original"]
    first, second = np.array(orig["1"]["world"]), np.array(orig["2"]["world"])
    assert np.allclose(second - first, [0.1, 0.0, 0.0], atol=1e-6)
    assert np.allclose(first.mean(axis=0), [-1.0, 0.0, 0.5], atol=1e-6)


@pytest.mark.smoke
@pytest.mark.render
@pytest.mark.parametrize("name", VARIANTS)
def test_written_camera_matches_blenders_projection(variants, name):
    """Original cube corners (inside or outside the frame) and the variant cube's corners, projected
    with transforms.json, against world_to_camera_view: well under 0.5 px (measured ~1e-4)."""
    tf = json.loads((variants["renders"][name] / "transforms.json").read_text())
    info = variants["info"][name]
    worst = 0.0
    for key in ("original", "variant"):
        for f in FRAMES:
            data = info[key][str(f)]
            ours = project_written(tf, f, data["world"])
            err = np.abs(ours - np.array(data["blender_px"])).max()
            worst = max(worst, err)
    print(f"{name}: max |K,pose projection - world_to_camera_view| = {worst:.2e} px")
    assert worst < 0.5
    assert worst < 1e-3, f"{name}: {worst} px is more than float round-off"


@pytest.mark.smoke
@pytest.mark.render
@pytest.mark.parametrize("name", VARIANTS)
def test_written_camera_matches_the_rendered_image(variants, name):
    """Centroid of the rendered cube (alpha-weighted pixel centres) vs the centroid of the
    silhouette projected with K and pose; area vs alpha sum."""
    seq = variants["renders"][name]
    tf = json.loads((seq / "transforms.json").read_text())
    for f in FRAMES:
        alpha = read_alpha(seq / "frames" / f"frame_{f:06d}.exr")
        h, w = alpha.shape
        assert (w, h) == (tf["w"], tf["h"])
        # The silhouette stays inside the image (the pixel filter would clip otherwise).
        assert alpha[0].max() < 1e-3 and alpha[-1].max() < 1e-3
        assert alpha[:, 0].max() < 1e-3 and alpha[:, -1].max() < 1e-3
        vv, uu = np.mgrid[0:h, 0:w] + 0.5
        mass = alpha.sum()
        measured = np.array([(alpha * uu).sum(), (alpha * vv).sum()]) / mass
        corners = project_written(tf, f, variants["info"][name]["variant"][str(f)]["world"])
        area, centroid = polygon_area_centroid(hull(corners))
        err = np.linalg.norm(measured - centroid)
        print(f"{name} frame {f}: centroid error {err:.3f} px, alpha sum {mass:.2f} vs area {area:.2f}")
        assert err < 0.5, f"{name} frame {f}: image centroid {measured} vs projected {centroid}"
        assert err < 0.15, "measured 0.005-0.02 px at 64 spp"
        assert mass == pytest.approx(area, rel=0.03)
        # A camera off by half a pixel would fail: the check has the resolution to see it.
        assert np.linalg.norm(measured - (centroid + [0.5, 0.0])) > 0.3


@pytest.mark.render
@pytest.mark.parametrize("kind", ["ortho", "pano"])
def test_non_perspective_cameras_fail_with_the_fix(variants, kind, tmp_path):
    summary = dataset_forge.render_animation(
        variants["dir"] / f"basic_{kind}.blend", tmp_path / "out", frame_start=1, frame_end=1,
        width=32, height=24, max_samples=1)
    assert not summary["ok"]
    text = json.dumps(summary)
    assert "only perspective cameras have pinhole intrinsics" in text
    assert "set its Type to Perspective" in text
    assert not list((tmp_path / "out").glob("frames/*"))
    assert not (tmp_path / "out" / "transforms.json").exists()
