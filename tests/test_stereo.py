# SPDX-License-Identifier: GPL-3.0-or-later
"""Stereo pairs (``stereo_baseline``): the disparity math and its checks on analytic maps (pure),
and rendered pairs of a scene of known geometry (marked ``render``; the ground truth also on 4.5
and 4.2 through ``conftest.bpy_pythons``): the right view's depth against the analytic plane seen
from the offset camera, the same K, the right pose, disparity = fx * B / depth, left/right
consistency passing on the render and failing when the baseline's sign or value is wrong, the
KITTI stereo export read back by a reader written from the devkit's format, resume and reset."""

from __future__ import annotations

import json
import math
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import bpy_pythons, run_bpy
from dataset_forge.dataset import layout
from dataset_forge.dataset import stereo as sm
from dataset_forge.dataset.documents import stereo as sdoc
from dataset_forge.dataset.documents.base import DocumentError
from dataset_forge.dataset.exports.stereo import kitti_disparity_u16, png_grey16_bytes
from dataset_forge.settings import Settings, SettingsError

# -- the scene (metres): camera at the origin looking down -Z, moving +Y; a 6 m wall through
# (0.5, 0, -8) turned 30 deg about Y (its depth changes along u); a 1 m cube at (0.3, 0, -5) in front
FX = 64 * 50.0 / 36.0
W, H = 64, 48
BASELINE = 0.5
WALL_P, WALL_DEG = np.array([0.5, 0.0, -8.0]), 30.0
CAM_Y = {1: 0.0, 3: 0.2}  # linear keys

SCENE = f"""
import math, bpy, bmesh
bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
scene.name = "stereo"
scene.frame_start, scene.frame_end = 1, 3
scene.render.engine = "CYCLES"
scene.render.resolution_x, scene.render.resolution_y = {W}, {H}
scene.render.resolution_percentage = 100
scene.world = bpy.data.worlds.new("World")
sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
sun.rotation_euler = (0.6, 0.2, 0.3)
scene.collection.objects.link(sun)
cd = bpy.data.cameras.new("Camera")
cd.lens, cd.sensor_width, cd.sensor_fit = 50.0, 36.0, "HORIZONTAL"
cam = bpy.data.objects.new("Camera", cd)
scene.collection.objects.link(cam)
scene.camera = cam
for f, y in {CAM_Y}.items():
    cam.location = (0.0, y, 0.0)
    cam.keyframe_insert("location", frame=f)
act = cam.animation_data.action
curves = list(act.fcurves) if hasattr(act, "fcurves") else [
    c for ly in act.layers for st in ly.strips for bag in st.channelbags for c in bag.fcurves]
for fc in curves:
    for kp in fc.keyframe_points:
        kp.interpolation = "LINEAR"
def mesh(name, kind, loc, size):
    me = bpy.data.meshes.new(name)
    bm = bmesh.new()
    if kind == "cube":
        bmesh.ops.create_cube(bm, size=size)
    else:
        bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=size / 2)
    bm.to_mesh(me)
    bm.free()
    ob = bpy.data.objects.new(name, me)
    ob.location = loc
    scene.collection.objects.link(ob)
    return ob
wall = mesh("Wall", "plane", {tuple(WALL_P)}, 6.0)
wall.rotation_euler = (0.0, math.radians({WALL_DEG}), 0.0)
mesh("Box", "cube", (0.3, 0.0, -5.0), 1.0)
bpy.ops.wm.save_as_mainfile(filepath=OUT, compress=False)
print("built")
"""
FAST = dict(width=W, height=H, max_samples=1, adaptive_threshold=0.0, use_denoising=False,
            timeout=240.0, retries=0, depths=True, normals=True, flows=True, segmentations=True)


# -- analytic maps (numpy ray casting) --------------------------------------------------------------
def wall_normal() -> np.ndarray:
    a = math.radians(WALL_DEG)
    return np.array([math.sin(a), 0.0, math.cos(a)])  # R_y(a) @ (0, 0, 1)


def plane_depth(cam_pos: np.ndarray, K: np.ndarray, shape=(H, W)) -> np.ndarray:
    """Planar depth of the (unbounded) wall plane at each pixel centre of a camera at ``cam_pos``
    with identity rotation (Blender axes: looking down -z)."""
    x, y = layout.pixel_rays(K, shape)
    d = np.stack(np.broadcast_arrays(x, -y, -np.ones_like(x * y)), -1)  # (H, W, 3), z = -1
    n = wall_normal()
    return (n @ (WALL_P - cam_pos)) / (d @ n)


def synthetic_pair(baseline_render: float, K: np.ndarray, box=(0.3, -5.0, 1.0)
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Planar depth of the left and right views (right camera at +baseline_render on x) of the
    wall and a fronto-parallel square (centre x, z, size) in front of it; no background."""
    out = []
    for cx in (0.0, baseline_render):
        z = plane_depth(np.array([cx, 0.0, 0.0]), K)
        x, y = layout.pixel_rays(K, (H, W))
        bx, bz, s = box
        zf = -bz - s / 2  # the square's front face
        hit = (np.abs(x * zf + cx - bx) <= s / 2) & (np.abs(y * zf) <= s / 2)
        out.append(np.where(hit, zf, z))
    return out[0], out[1]


K0 = np.array([[FX, 0, W / 2], [0, FX, H / 2], [0, 0, 1.0]])


# -- pure: math, document, encodings -----------------------------------------------------------------
def test_disparity_is_fx_baseline_over_planar_depth_and_zero_without_surface():
    z = np.array([[2.0, 4.0], [0.0, np.inf]], np.float32)
    d = sm.disparity_from_depth(z, 100.0, 0.5)
    assert d.dtype == np.float32
    assert np.allclose(d, [[25.0, 12.5], [0.0, 0.0]], rtol=1e-7)
    # distance depth is made planar with the ray length of each pixel centre first
    planar = plane_depth(np.zeros(3), K0)
    dist = planar * layout.ray_norm(K0, (H, W))
    assert np.allclose(sm.planar_depth(dist, K0, "distance"), planar, rtol=1e-12)


def test_right_pose_moves_along_the_left_camera_x_axis():
    a = math.radians(40)
    pose = np.eye(4)
    pose[:3, :3] = [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]
    pose[:3, 3] = [1.0, 2.0, 3.0]
    r = sm.right_pose(pose, 0.5)
    assert np.allclose(r[:3, :3], pose[:3, :3])
    assert np.allclose(r[:3, 3], [1.0 + 0.5 * math.cos(a), 2.0 + 0.5 * math.sin(a), 3.0])


def test_warp_check_passes_a_correct_pair_and_fails_wrong_sign_value_or_swap():
    zl, zr = synthetic_pair(BASELINE, K0)
    dl, dr = (sm.disparity_from_depth(z, FX, BASELINE) for z in (zl, zr))
    fwd, cls = sm.warp_check(dl, dr, -1)
    back, _ = sm.warp_check(dr, dl, +1)
    assert fwd.bad == 0 and back.bad == 0, (fwd, back)
    assert back.occluded > 20 and fwd.consistent > 0.7 * fwd.valid  # the square hides some wall
    assert fwd.worst_px < 0.05  # within the tolerance (a neighbour next to an edge)
    # the left pixel at the centre row sees the wall at u; the right view sees it at u - d
    assert cls[H // 2, W - 4] == 1 and cls[H // 2, 2] == 0  # 0: its match is outside
    for src, dst, sign in ((dl, dr, +1), (dr, dl, -1)):  # wrong sign, views swapped
        w, _ = sm.warp_check(src, dst, sign)
        assert w.bad_frac > 0.5, w
    # the right view rendered at another baseline than the disparity says (value wrong)
    zl2, zr2 = synthetic_pair(2.0 * BASELINE, K0)
    wl, wr = (sm.disparity_from_depth(z, FX, BASELINE) for z in (zl2, zr2))
    assert sm.warp_check(wl, wr, -1)[0].bad_frac + sm.warp_check(wr, wl, +1)[0].bad_frac > 0.05


def test_stereo_document_round_trip_and_refusals(tmp_path):
    doc = sdoc.Stereo(baseline=0.5, unit_scale_m=0.01)
    sdoc.write(tmp_path, doc)
    back = sdoc.read(tmp_path)
    assert back == doc and back.baseline_m == pytest.approx(0.005)
    d = json.loads((tmp_path / layout.STEREO).read_text())
    assert d["disparity"]["invalid_value"] == 0.0 and d["reference"] == "left"
    for key, value, says in (("baseline", -0.5, "must be positive"), ("right", "../x", "inside"),
                             ("schema", "other/1", "schema"), ("reference", "right", "reference")):
        bad = {**d, key: value}
        with pytest.raises(DocumentError, match=says) as exc:
            sdoc.Stereo.from_dict(bad, "stereo.json")
        assert "stereo.json" in str(exc.value)
    assert sdoc.read(tmp_path / "nothing") is None


def test_stereo_needs_depths():
    with pytest.raises(SettingsError, match="stereo_baseline=0.5 needs depths"):
        Settings.from_dict({"stereo_baseline": 0.5})
    assert Settings.from_dict({"stereo_baseline": 0.5, "depths": True}).stereo_baseline == 0.5
    with pytest.raises(SettingsError, match="below its minimum"):
        Settings.from_dict({"stereo_baseline": -1.0, "depths": True})


def read_png16_grey(data: bytes) -> np.ndarray:
    """A 16-bit greyscale PNG decoded from the PNG specification (IHDR, IDAT, filter types 0-4),
    as the KITTI devkit's reader sees it."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if tag == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype = ihdr[:4]
    assert (depth, ctype) == (16, 0)
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 2 * w)
    rows, prev = [], np.zeros(2 * w, np.int64)
    for r in raw:
        f, line = r[0], r[1:].astype(np.int64)
        out = np.zeros_like(line)
        for i in range(len(line)):
            a = out[i - 2] if i >= 2 else 0
            b, c = prev[i], (prev[i - 2] if i >= 2 else 0)
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pred = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]
            out[i] = (line[i] + pred) & 0xFF
        rows.append(out)
        prev = out
    return (np.array(rows).reshape(h, w, 2) @ [256, 1]).astype(np.uint16)


def test_kitti_disparity_encoding_reads_back_by_the_devkit_rule():
    d = np.array([[0.0, 1.0, 12.3456], [255.99, 300.0, 1e-4]], np.float32)
    enc, big = kitti_disparity_u16(d)
    back = read_png16_grey(png_grey16_bytes(enc))
    assert np.array_equal(back, enc) and big == 1
    valid = back > 0  # devkit: disparity = png / 256, valid where png > 0
    assert valid.tolist() == [[False, True, True], [True, False, True]]
    assert np.all(np.abs(back[:1, 1:] / 256.0 - d[:1, 1:]) <= 1 / 512 + 1e-7)
    assert back[1, 0] == round(255.99 * 256) and back[1, 2] == 1  # tiny stays valid: 1/256 px


def read_pfm(data: bytes) -> np.ndarray:
    """A PFM image read as the SceneFlow authors' ``readPFM`` does: ``PF`` (3 channels) or ``Pf``
    (1), ``W H``, a scale whose sign gives the byte order (< 0: little-endian), rows bottom up."""
    head, rest = data.split(b"\n", 1)
    dims, rest = rest.split(b"\n", 1)
    scale, rest = rest.split(b"\n", 1)
    channels = {b"PF": 3, b"Pf": 1}[head.strip()]
    w, h = map(int, dims.split())
    endian = "<" if float(scale) < 0 else ">"
    a = np.frombuffer(rest, endian + "f4").reshape((h, w, channels) if channels == 3 else (h, w))
    return np.flipud(a)


def test_pfm_and_stereo_exports_refuse_a_mono_sequence(tmp_path):
    from dataset_forge.dataset.exports import ExportError, export
    from dataset_forge.dataset.exports.stereo import pfm_bytes

    img = np.array([[1.5, 0.0, 2.0], [3.25, 4.0, 1e-3]], np.float32)
    assert np.array_equal(read_pfm(pfm_bytes(img)), img)
    (tmp_path / "mono").mkdir()
    (tmp_path / "mono" / layout.TRANSFORMS).write_text('{"frames": []}')
    for fmt in ("kitti-stereo", "sceneflow-stereo"):
        with pytest.raises(ExportError, match="not a stereo pair .* --stereo-baseline"):
            export(fmt, tmp_path / "mono", tmp_path / fmt)


def test_dataset_reads_the_right_view_as_part_of_its_sequence(tmp_path):
    from dataset_forge.dataset.loader import Dataset

    for seq in ("a", "a/right", "b"):
        (tmp_path / seq).mkdir(parents=True)
        (tmp_path / seq / layout.TRANSFORMS).write_text('{"frames": []}')
    assert layout.is_view_folder(tmp_path / "a" / "right") and not layout.is_view_folder(tmp_path / "b")
    assert [p.name for p in Dataset(tmp_path).sequence_paths] == ["a", "b"]


# -- rendered pairs ----------------------------------------------------------------------------------
PYTHONS = bpy_pythons()


def build_scene(path: Path, python: str | None) -> Path:
    out = run_bpy(f"OUT = {str(path)!r}\n" + SCENE, python=python)
    assert "built" in out
    return path


def render(blend: Path, out: Path, python: str | None, **extra):
    import dataset_forge

    summary = dataset_forge.render_animation(blend, out, frame_start=1, frame_end=2,
                                             executable=python or "", **{**FAST, **extra})
    assert summary["ok"], json.dumps(summary["scenes"], indent=1)[:3000]
    return summary


_PAIRS: dict[str, tuple] = {}


def _pair(label: str, python: str, tmp_path_factory):
    """The scene rendered as a stereo pair by ``python`` (once per module run)."""
    if label not in _PAIRS:
        import dataset_forge

        root = tmp_path_factory.mktemp(f"stereo-{label}")
        blend = build_scene(root / "stereo.blend", python or None)
        render(blend, root / "out", python, stereo_baseline=BASELINE)
        _PAIRS[label] = dataset_forge.load(root / "out"), blend, python
    return _PAIRS[label]


@pytest.fixture(scope="module", params=PYTHONS, ids=[p[0] for p in PYTHONS])
def pair(request, tmp_path_factory):
    """The pair rendered with this bpy and each of DF_EXTRA_PYTHONS (ground truth)."""
    return _pair(*request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def pair5(tmp_path_factory):
    """The pair rendered with this bpy only (what does not depend on the Blender version)."""
    return _pair(*PYTHONS[0], tmp_path_factory)


@pytest.mark.render
def test_right_view_ground_truth_is_exact(pair):
    seq, _, _ = pair
    right = seq.right
    assert right is not None and right.frame_numbers == seq.frame_numbers == [1, 2]
    assert seq.kinds == right.kinds == ("depth", "normal", "flow", "segmentation")
    wall = {v["name"]: int(k) for k, v in seq.ids["ids"].items()}["Wall"]
    for i, f in enumerate(seq.frame_numbers):
        L, R = seq[i], right[i]
        assert np.array_equal(L.K, R.K)
        assert np.allclose(R.pose, sm.right_pose(L.pose, BASELINE), atol=1e-6)
        cam = np.array([0.0, CAM_Y[1] + (CAM_Y[3] - CAM_Y[1]) * (f - 1) / 2, 0.0])
        assert np.allclose(L.pose[:3, 3], cam, atol=1e-6)
        for view, pos in ((L, cam), (R, cam + [BASELINE, 0.0, 0.0])):
            on = view.segmentation == wall
            assert on.sum() > 500
            z = plane_depth(pos, view.K)
            rel = np.abs(view.depth[on] - z[on]) / z[on]
            assert rel.max() < 1e-4, (f, rel.max())
        # the cube hides a different part of the wall from each camera
        assert (L.segmentation != R.segmentation).sum() > 30
        # flow of the right view: the camera moves +y (image moves v down... up): rows shift
        if f == 1:
            fw = R.flow_forward[R.segmentation == wall]
            assert np.all(fw[:, 1] > 0.5) and np.abs(fw[:, 0]).max() < 0.5


@pytest.mark.render
def test_disparity_is_fx_b_over_depth_in_both_views(pair):
    seq, _, _ = pair
    assert seq.stereo.baseline == BASELINE and seq.stereo.rectified
    for view in (seq, seq.right):
        assert view.conventions["disparity"]["invalid_value"] == 0.0
        for fr in view:
            d, z = fr.disparity.astype(np.float64), fr.depth.astype(np.float64)
            surf = z > 0
            assert 0 < (~surf).sum() < surf.sum()  # sky left of the wall: invalid disparity
            assert np.all(d[~surf] == 0.0)
            rel = np.abs(d[surf] - fr.K[0, 0] * BASELINE / z[surf]) / d[surf]
            assert rel.max() < 1e-4, rel.max()


def _validate(path: Path):
    from dataset_forge.dataset.validate import validate

    rep = validate(path, write=False, update_manifest=False)
    return rep["sequences"][0]


def _faulty(src: Path, dst: Path, swap: bool = False, baseline: float | None = None) -> Path:
    """A copy of the pair at ``src``: with the views swapped (the right camera on the left: a
    baseline of the wrong sign), or ``stereo.json`` claiming ``baseline``."""
    if swap:
        shutil.copytree(src / layout.RIGHT_FOLDER, dst)
        shutil.copytree(src, dst / layout.RIGHT_FOLDER,
                        ignore=shutil.ignore_patterns(layout.RIGHT_FOLDER, layout.STEREO))
        shutil.copy(src / layout.STEREO, dst / layout.STEREO)
    else:
        shutil.copytree(src, dst)
    if baseline is not None:
        doc = json.loads((dst / layout.STEREO).read_text())
        (dst / layout.STEREO).write_text(json.dumps({**doc, "baseline": baseline}))
    return dst


@pytest.mark.render
def test_validate_passes_the_pair_and_fails_a_wrong_baseline(pair, tmp_path):
    seq, _, _ = pair
    good = _validate(seq.path)
    st = good["checks"]["stereo"]
    assert good["ok"] and st["ok"], json.dumps(good["checks"], indent=1)[:3000]
    assert st["right"] == {"ok": True, "failed": []} and st["worst_bad_frac"] == 0.0
    for name, kw, says in (("value", dict(baseline=1.25 * BASELINE), "relative off fx"),
                           ("sign", dict(swap=True), "match neither"),
                           ("negative", dict(baseline=-BASELINE), "must be positive")):
        bad = _validate(_faulty(seq.path, tmp_path / name, **kw))
        assert bad["failed"] == ["stereo"], (name, bad["failed"])
        assert says in bad["checks"]["stereo"]["message"], (name, bad["checks"]["stereo"]["message"])
    # a truncated disparity file is named, not a traceback
    cut = _faulty(seq.path, tmp_path / "cut") / layout.RIGHT_FOLDER / layout.disparity_file(2)
    cut.write_bytes(cut.read_bytes()[:200])
    msg = _validate(tmp_path / "cut")["checks"]["stereo"]["message"]
    assert "frame 2" in msg and str(cut) in msg and "truncated" in msg, msg


@pytest.mark.render
def test_kitti_stereo_export_reads_back(pair5, tmp_path):
    seq, _, _ = pair5
    from dataset_forge.dataset.exports import export
    from PIL import Image

    export("kitti-stereo", seq.path, tmp_path / "k")
    root = tmp_path / "k" / "KittiStereo" / "training"
    frames = json.loads((root / "frames.json").read_text())
    assert [f["frame"] for f in frames] == seq.frame_numbers
    for i, f in enumerate(frames):
        name = f"{f['index']:06d}_10.png"
        disp = read_png16_grey((root / "disp_occ_0" / name).read_bytes())
        d = seq[i].disparity
        valid = disp > 0
        assert np.array_equal(valid, d > 0)
        assert np.abs(disp[valid] / 256.0 - d[valid]).max() <= 1 / 512 + 1e-6
        assert np.array_equal(np.asarray(Image.open(root / "image_2" / name)), seq[i].rgb)
        assert np.array_equal(np.asarray(Image.open(root / "image_3" / name)), seq.right[i].rgb)
        assert f["fx"] == pytest.approx(seq[i].K[0, 0]) and f["baseline"] == BASELINE


@pytest.mark.render
def test_sceneflow_stereo_export_reads_back_both_views(pair5, tmp_path):
    seq, _, _ = pair5
    from dataset_forge.dataset.exports import export
    from PIL import Image

    export("sceneflow-stereo", seq.path, tmp_path / "sf")
    root = tmp_path / "sf" / "FlyingThings3D"
    frames = json.loads((root / "frames.json").read_text())
    assert [f["frame"] for f in frames] == seq.frame_numbers
    for i, f in enumerate(frames):
        for view, v in (("left", seq), ("right", seq.right)):
            d = read_pfm((root / "disparity" / "TRAIN" / "A" / f"{f['name'].replace('/', f'/{view}/')}.pfm")
                         .read_bytes())
            assert np.array_equal(d, v[i].disparity)  # float32, exact
            png = root / "frames_cleanpass" / "TRAIN" / "A" / f"{f['name'].replace('/', f'/{view}/')}.png"
            assert np.array_equal(np.asarray(Image.open(png)), v[i].rgb)


@pytest.mark.render
def test_resume_renders_only_the_missing_right_frame_and_mono_rerender_drops_the_right_view(
        pair5, tmp_path):
    seq, blend, python = pair5
    out = tmp_path / "out"
    shutil.copytree(seq.path, out)
    lost = out / layout.RIGHT_FOLDER / layout.rgb_file(2, "png")
    kept = out / layout.rgb_file(2, "png")
    before = kept.stat().st_mtime_ns
    lost.unlink()
    s = render(blend, out, python, stereo_baseline=BASELINE)
    assert lost.is_file() and kept.stat().st_mtime_ns == before
    assert s["frames_skipped"] == 2  # the left view was complete
    assert _validate(out)["ok"]
    # the same folder rendered mono (rerender): no stale right view or disparity stays behind
    render(blend, out, python, on_change="rerender")
    assert not (out / layout.RIGHT_FOLDER).exists() and not (out / layout.STEREO).exists()
    assert not (out / layout.DISPARITY.folder).exists()
    import dataset_forge

    mono = dataset_forge.load(out)
    assert mono.right is None and mono.stereo is None


CUT_SCENE = SCENE.replace('bpy.ops.wm.save_as_mainfile', '''
cd2 = bpy.data.cameras.new("Camera2")
cd2.lens, cd2.sensor_width, cd2.sensor_fit = 50.0, 36.0, "HORIZONTAL"
cam2 = bpy.data.objects.new("Camera2", cd2)
scene.collection.objects.link(cam2)
cam2.location = (0.4, 0.0, 1.0)
cam2.rotation_euler = (0.0, 0.1, 0.0)
cam2.scale = (2.0, 2.0, 2.0)  # a scaled camera: its right camera must still be B away
scene.timeline_markers.new("start", frame=1).camera = cam
scene.timeline_markers.new("cut", frame=2).camera = cam2
bpy.ops.wm.save_as_mainfile''', 1)


@pytest.mark.render
def test_camera_cut_and_scaled_camera_keep_the_rectified_pair(tmp_path):
    """A timeline marker switches to a second, scaled camera at frame 2: the right view switches
    to that camera's right camera, B away along its x axis, and marks the same flow invalid."""
    blend = tmp_path / "cut.blend"
    assert "built" in run_bpy(f"OUT = {str(blend)!r}\n" + CUT_SCENE)
    render(blend, tmp_path / "out", "", stereo_baseline=BASELINE)
    import dataset_forge

    seq = dataset_forge.load(tmp_path / "out")
    right = seq.right
    assert [seq.camera_of(i) for i in range(2)] == ["Camera", "Camera2"]
    assert [right.camera_of(i) for i in range(2)] == ["Camera.right", "Camera2.right"]
    for i in range(2):
        assert np.array_equal(seq[i].K, right[i].K)
        assert np.allclose(right[i].pose, sm.right_pose(seq[i].pose, BASELINE), atol=1e-6)
        assert np.linalg.norm(right[i].pose[:3, 3] - seq[i].pose[:3, 3]) == pytest.approx(BASELINE)
        for d in ("forward", "backward"):
            assert right.flow_valid(i, d) == seq.flow_valid(i, d)
    assert not seq.flow_valid(0, "forward") and not seq.flow_valid(1, "backward")
    st = _validate(seq.path)["checks"]["stereo"]
    assert st["ok"], st["message"]
    # the user's file keeps no right camera
    names = run_bpy(f"import bpy\nbpy.ops.wm.open_mainfile(filepath={str(blend)!r})\n"
                    "print(sorted(o.name for o in bpy.data.objects))")
    assert ".right" not in names


@pytest.mark.render
def test_camera_whose_scale_changes_is_refused_by_name(tmp_path):
    """A keyed camera scale would move the right camera off the rectified pose between frames:
    the sequence fails with one line naming the camera and the fix, no stereo.json is written."""
    blend = tmp_path / "scaled.blend"
    scaled = SCENE.replace('bpy.ops.wm.save_as_mainfile', '''
for f, k in ((1, 1.0), (3, 2.0)):
    cam.scale = (k, k, k)
    cam.keyframe_insert("scale", frame=f)
bpy.ops.wm.save_as_mainfile''', 1)
    assert "built" in run_bpy(f"OUT = {str(blend)!r}\n" + scaled)
    import dataset_forge

    s = dataset_forge.render_animation(blend, tmp_path / "out", frame_start=1, frame_end=2,
                                       stereo_baseline=BASELINE, **FAST)
    assert not s["ok"]
    errors = " ".join(e for sc in s["scenes"].values() for e in sc["errors"])
    assert "scaled.blend: frame 1: the right camera of 'Camera'" in errors, errors
    assert "apply the camera's scale" in errors, errors
    assert not (tmp_path / "out" / layout.STEREO).exists()


@pytest.mark.render
def test_recycled_worker_finishes_the_right_view(pair5, tmp_path):
    """A worker whose frame budget runs out inside the right view's pass is replaced, and the new
    process renders only what is missing: the pair is whole and counted once."""
    _, blend, python = pair5
    events: list[str] = []
    s = render(blend, tmp_path / "out", python, stereo_baseline=BASELINE, recycle_frames=3,
               on_progress=lambda e: events.append(e.get("event")))
    assert events.count("worker_recycled") == 1  # after the left view and one right frame
    assert s["frames_rendered"] == 2 and s["frames_skipped"] == 0  # the left view's frames
    assert _validate(tmp_path / "out")["ok"]
    import dataset_forge

    journal = (tmp_path / "out" / layout.RIGHT_FOLDER / layout.JOURNAL).read_text().splitlines()
    assert len(journal) == 2 and dataset_forge.load(tmp_path / "out").right is not None
