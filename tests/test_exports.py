# SPDX-License-Identifier: GPL-3.0-or-later
"""Exports (dataset/exports): a rendered sequence written as sintel, kitti-flow, coco, colmap and
visionsim-npy, read back the way the real readers do, and compared with ``dataset_forge.load``.

The sequence is ``gt_cube`` of tests/scenes.py (a cube of class ``box``, a sphere and a ground
plane, the camera rolling each frame; the sky around the ground is background, depth 0), rendered
at 64x48 with every ground truth. A second copy flags one frame's forward flow invalid in
transforms.json. Readers: the Middlebury ``.flo`` and KITTI 16-bit PNG decoders below follow
torchvision's ``_read_flo`` / ``_read_16bits_png_with_flow_and_valid_mask`` (the PNG decoded by
pillow); pycocotools' ``COCO`` and ``mask.decode``; pycolmap's ``Reconstruction``; visionsim's
``Dataset.from_path`` and torchvision's datasets where installed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from glob import glob
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, bpy_env, build_scenes
from dataset_forge.dataset.exports import ExportError, export
from dataset_forge.dataset.exports.colmap import rotmat_to_qvec
from dataset_forge.dataset.exports.flowio import KITTI_MAX, kitti_flow_rgb16, png16_bytes
from dataset_forge.dataset.loader import load, read_image

FORMATS = ("sintel", "kitti-flow", "coco", "colmap", "visionsim-npy")
FLAGGED = 1  # index of the frame whose forward flow the second copy marks invalid


# -- readers written after torchvision's ------------------------------------------------------

def read_flo(path) -> np.ndarray:
    """Middlebury .flo as ``(2, H, W)`` float32 (torchvision's ``_read_flo``)."""
    with open(path, "rb") as f:
        if np.fromfile(f, "c", count=4).tobytes() != b"PIEH":
            raise ValueError("Magic number incorrect. Invalid .flo file")
        w = int(np.fromfile(f, "<i4", count=1)[0])
        h = int(np.fromfile(f, "<i4", count=1)[0])
        data = np.fromfile(f, "<f4", count=2 * w * h)
    return data.reshape(h, w, 2).transpose(2, 0, 1)


def read_kitti_flow(path) -> tuple[np.ndarray, np.ndarray]:
    """KITTI flow PNG as ``(2, H, W)`` float32 flow and ``(H, W)`` bool valid mask
    (torchvision's ``_read_16bits_png_with_flow_and_valid_mask``; 16-bit decode by pillow)."""
    img = read_image(path)
    assert img.dtype == np.uint16 and img.shape[-1] == 3
    fv = img.transpose(2, 0, 1).astype(np.float32)
    return (fv[:2] - 2 ** 15) / 64, fv[2].astype(bool)


def read_dpt(path) -> np.ndarray:
    """Sintel .dpt depth (the Sintel SDK's ``depth_read``)."""
    with open(path, "rb") as f:
        assert np.fromfile(f, np.float32, count=1)[0] == np.float32(202021.25)
        w = int(np.fromfile(f, np.int32, count=1)[0])
        h = int(np.fromfile(f, np.int32, count=1)[0])
        return np.fromfile(f, np.float32, count=-1).reshape(h, w)


def png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    import dataset_forge

    scenes = build_scenes(tmp_path_factory.mktemp("exp_scenes"), ["gt_cube"])
    out = tmp_path_factory.mktemp("exp") / "gt_cube"
    summary = dataset_forge.render_animation(
        scenes / "gt_cube.blend", out, frame_start=1, frame_end=4, width=64, height=48,
        max_samples=1, use_denoising=False, depths=True, normals=False, flows=True,
        segmentations=True, debug=False)
    assert summary["exit_code"] == 0, summary
    return out


@pytest.fixture(scope="module")
def dataset_dir(rendered, tmp_path_factory) -> Path:
    """``renders/gt_cube/a`` (as rendered) and ``renders/gt_cube/b`` (frame FLAGGED's forward
    flow marked invalid in transforms.json)."""
    root = tmp_path_factory.mktemp("exp_ds")
    a = root / "renders" / "gt_cube" / "a"
    b = root / "renders" / "gt_cube" / "b"
    shutil.copytree(rendered, a)
    shutil.copytree(rendered, b)
    tf = json.loads((b / "transforms.json").read_text())
    tf["frames"][FLAGGED]["flow_forward_valid"] = False
    (b / "transforms.json").write_text(json.dumps(tf))
    return root


@pytest.fixture(scope="module")
def instanced(tmp_path_factory) -> Path:
    """``gt_instances`` of tests/instance_scenes.py (instanced rocks, particles, geometry-nodes
    cubes; a camera cut between frames 2 and 3, so frame 2's forward flow is flagged invalid)."""
    import dataset_forge

    root = tmp_path_factory.mktemp("exp_inst")
    subprocess.run([sys.executable, str(REPO / "tests" / "instance_scenes.py"), str(root)], check=True,
                   env=bpy_env(), capture_output=True, timeout=300)
    out = root / "gt_instances"
    summary = dataset_forge.render_animation(
        root / "gt_instances.blend", out, frame_start=1, frame_end=4, width=64, height=48,
        max_samples=1, use_denoising=False, depths=True, flows=True, segmentations=True, debug=False)
    assert summary["ok"], summary
    return out


# -- pure codecs ----------------------------------------------------------------------------------

def test_kitti_png_encoder_round_trips_through_pillow(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.uniform(-600, 600, (7, 9, 2)).astype(np.float32)
    valid = rng.random((7, 9)) > 0.3
    enc, clipped = kitti_flow_rgb16(flow, valid)
    p = tmp_path / "f.png"
    p.write_bytes(png16_bytes(enc))
    back, ok = read_kitti_flow(p)
    big = (np.abs(flow) > KITTI_MAX).any(-1)
    assert clipped == int((valid & big).sum()) > 0
    np.testing.assert_array_equal(ok, valid & ~big)  # out-of-range flow is marked, never clipped
    assert np.abs(back.transpose(1, 2, 0)[ok] - flow[ok]).max() <= 1 / 128 + 1e-6


def test_colmap_quaternion_is_the_rotation():
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, z = q
        R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        got = rotmat_to_qvec(R)
        np.testing.assert_allclose(got, q if w >= 0 else -q, atol=1e-12)


# -- formats read back ----------------------------------------------------------------------------

@pytest.mark.render
def test_sintel_reads_back_like_torchvision(rendered, tmp_path):
    seq = load(rendered)
    dst = tmp_path / "sintel"
    export("sintel", rendered, dst)
    root = dst / "Sintel" / "training"
    scenes = sorted(p.name for p in (root / "clean").iterdir())
    assert scenes == ["gt_cube"]
    images = sorted(glob(str(root / "clean" / "gt_cube" / "*.png")))
    flows = sorted(glob(str(root / "flow" / "gt_cube" / "*.flo")))
    assert len(images) == len(seq) and len(flows) == len(seq) - 1  # one flow per image pair
    background = 0
    for i in range(len(seq)):
        fr = seq[i]
        np.testing.assert_array_equal(png(images[i]), fr.rgb)
        np.testing.assert_array_equal(read_dpt(root / "depth" / "gt_cube" / Path(images[i]).with_suffix(
            ".dpt").name), fr.planar_depth)
        if i == len(seq) - 1:
            continue
        flow = read_flo(flows[i]).transpose(1, 2, 0)
        surface = fr.depth > 0
        background += int((~surface).sum())
        np.testing.assert_array_equal(flow[surface], fr.flow_forward[surface])  # float32 exact
        assert (flow[~surface] == np.float32(1e10)).all()
        inv = png(root / "invalid" / "gt_cube" / Path(flows[i]).with_suffix(".png").name)[..., 0]
        np.testing.assert_array_equal(inv == 255, ~surface)
    assert background > 0  # the sky is in view: invalid flow was exercised


@pytest.mark.render
def test_kitti_flow_reads_back_to_its_quantisation(rendered, tmp_path):
    seq = load(rendered)
    dst = tmp_path / "kitti"
    export("kitti-flow", rendered, dst)
    root = dst / "KittiFlow" / "training"
    images1 = sorted(glob(str(root / "image_2" / "*_10.png")))
    images2 = sorted(glob(str(root / "image_2" / "*_11.png")))
    flows = sorted(glob(str(root / "flow_occ" / "*_10.png")))
    assert len(images1) == len(images2) == len(flows) == len(seq) - 1
    pairs = json.loads((root / "pairs.json").read_text())
    for k, (a, b, f) in enumerate(zip(images1, images2, flows)):
        assert (pairs[k]["frame_10"], pairs[k]["frame_11"]) == tuple(seq.frame_numbers[k:k + 2])
        np.testing.assert_array_equal(png(a), seq[k].rgb)
        np.testing.assert_array_equal(png(b), seq[k + 1].rgb)
        flow, valid = read_kitti_flow(f)
        surface = seq[k].depth > 0
        np.testing.assert_array_equal(valid, surface)
        err = np.abs(flow.transpose(1, 2, 0)[valid] - seq[k].flow_forward[valid])
        assert err.max() <= 1 / 128 + 1e-5, err.max()


@pytest.mark.render
def test_torchvision_flow_datasets_read_the_exports(rendered, tmp_path):
    """The same values through torchvision itself, where it is installed (the two tests above
    cover them with torchvision's decoding logic when it is not)."""
    tv = pytest.importorskip("torchvision.datasets")
    seq = load(rendered)
    export("sintel", rendered, tmp_path / "s")
    export("kitti-flow", rendered, tmp_path / "k")
    sintel = tv.Sintel(tmp_path / "s")
    kitti = tv.KittiFlow(tmp_path / "k")
    assert len(sintel) == len(kitti) == len(seq) - 1
    surface = seq[0].depth > 0
    img1, img2, flow = sintel[0]
    np.testing.assert_array_equal(np.asarray(img1), seq[0].rgb)
    np.testing.assert_array_equal(flow.transpose(1, 2, 0)[surface], seq[0].flow_forward[surface])
    _, _, kflow, valid = kitti[0]
    np.testing.assert_array_equal(valid, surface)
    assert np.abs(kflow.transpose(1, 2, 0)[valid] - seq[0].flow_forward[valid]).max() <= 1 / 128 + 1e-5


@pytest.mark.render
def test_flagged_flow_is_invalid_in_both_flow_formats(dataset_dir, tmp_path):
    ds = load(dataset_dir)
    b = ds["renders/gt_cube/b"]
    export("sintel", dataset_dir, tmp_path / "s")
    root = tmp_path / "s" / "Sintel" / "training"
    assert sorted(p.name for p in (root / "flow").iterdir()) == ["renders__gt_cube__a", "renders__gt_cube__b"]
    flows_b = sorted(glob(str(root / "flow" / "renders__gt_cube__b" / "*.flo")))
    flows_a = sorted(glob(str(root / "flow" / "renders__gt_cube__a" / "*.flo")))
    assert (read_flo(flows_b[FLAGGED]) == np.float32(1e10)).all()
    assert (read_flo(flows_a[FLAGGED]) != np.float32(1e10)).any()
    np.testing.assert_array_equal(read_flo(flows_a[0]), read_flo(flows_b[0]))
    res = export("kitti-flow", dataset_dir, tmp_path / "k")
    pairs = json.loads((tmp_path / "k" / "KittiFlow" / "training" / "pairs.json").read_text())
    n = len(b) - 1
    assert [p["sequence"] for p in pairs] == ["renders/gt_cube/a"] * n + ["renders/gt_cube/b"] * (n - 1)
    assert b.frame_numbers[FLAGGED] not in [p["frame_10"] for p in pairs if p["sequence"].endswith("b")]
    assert any("marked invalid in transforms.json" in note for note in res["notes"])


@pytest.mark.render
@pytest.mark.parametrize("layer", ["instances", "objects only"])
def test_coco_masks_are_the_segmentation(rendered, tmp_path, layer):
    """One object per instance here; "objects only" drops the instance table (a sequence rendered
    before per-instance ids): annotations then fall back to the object ids."""
    pytest.importorskip("pycocotools", reason="pip install -r requirements-exports.txt")
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO

    src = rendered
    if layer == "objects only":
        src = tmp_path / "src"
        shutil.copytree(rendered, src)
        doc = json.loads((src / "segmentation_ids.json").read_text())
        doc.pop("instances", None)
        (src / "segmentation_ids.json").write_text(json.dumps(doc))
    seq = load(src)
    dst = tmp_path / "coco"
    export("coco", src, dst)
    coco = COCO(str(dst / "annotations.json"))
    source = "instance ids" if layer == "instances" else "object ids"
    assert coco.dataset["info"]["id_source"].startswith(source)
    ids = seq.ids["ids"]
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == sorted(
        {v["class"] for v in ids.values()}) == ["Ground", "Props", "box"]
    assert coco.dataset["videos"] == [{"id": 1, "name": src.name}]
    assert len(coco.getImgIds()) == len(seq)
    for i, fr in enumerate(seq):
        img = coco.loadImgs(i + 1)[0]
        assert (img["frame_id"], img["frame_number"], img["video_id"]) == (i, seq.frame_numbers[i], 1)
        np.testing.assert_array_equal(png(dst / img["file_name"]), fr.rgb)
        seg = fr.segmentation
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        assert sorted(a["object_id"] for a in anns) == sorted(set(np.unique(seg)) - {0})
        for a in anns:
            if layer == "objects only":
                assert a["instance_id"] == a["object_id"]
            m = mask_util.decode(a["segmentation"]).astype(bool)
            want = seg == a["object_id"]
            np.testing.assert_array_equal(m, want)  # pixel-exact
            np.testing.assert_array_equal(coco.annToMask(a).astype(bool), want)
            rows, cols = np.nonzero(want)
            x0, y0 = cols.min(), rows.min()
            assert a["bbox"] == [x0, y0, cols.max() + 1 - x0, rows.max() + 1 - y0]
            assert a["area"] == want.sum() and a["iscrowd"] == 0
            assert coco.loadCats(a["category_id"])[0]["name"] == ids[str(a["object_id"])]["class"]


@pytest.mark.render
def test_coco_annotates_every_instance(instanced, tmp_path):
    pytest.importorskip("pycocotools", reason="pip install -r requirements-exports.txt")
    from dataset_forge.dataset.objects import read_ids
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO

    seq = load(instanced)
    table = seq.ids["instances"]
    export("coco", instanced, tmp_path / "c")
    coco = COCO(str(tmp_path / "c" / "annotations.json"))
    assert coco.dataset["info"]["id_source"].startswith("instance ids")
    classes = sorted({v["class"] for v in table.values()})
    assert sorted(c["name"] for c in coco.dataset["categories"]) == classes
    several = 0
    for i, fr in enumerate(seq):
        obj, ins = read_ids(fr.path("segmentation"))
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[i + 1]))
        assert sorted(a["instance_id"] for a in anns) == sorted(int(x) for x in np.unique(ins) if x)
        for a in anns:
            want = ins == a["instance_id"]
            np.testing.assert_array_equal(mask_util.decode(a["segmentation"]).astype(bool), want)
            entry = table[str(a["instance_id"])]
            assert (obj[want] == a["object_id"]).all() and a["object_id"] == entry["object_id"]
            assert coco.loadCats(a["category_id"])[0]["name"] == entry["class"]
        per_object = {}
        for a in anns:
            per_object.setdefault(a["object_id"], []).append(a["instance_id"])
        several = max(several, max(len(v) for v in per_object.values()))
    assert several > 1  # copies of one object are separate annotations


@pytest.mark.render
def test_camera_cut_flow_is_invalid_in_both_flow_formats(instanced, tmp_path):
    seq = load(instanced)
    cut = [i for i, m in enumerate(seq.frames_meta) if m.get("flow_forward_valid") is False]
    assert cut == [1]
    export("sintel", instanced, tmp_path / "s")
    flows = sorted(glob(str(tmp_path / "s" / "Sintel" / "training" / "flow" / "gt_instances" / "*.flo")))
    assert len(flows) == len(seq) - 1
    for i, f in enumerate(flows):
        invalid = read_flo(f) == np.float32(1e10)
        assert invalid.all() if i in cut else not invalid.all()
    res = export("kitti-flow", instanced, tmp_path / "k")
    pairs = json.loads((tmp_path / "k" / "KittiFlow" / "training" / "pairs.json").read_text())
    assert [(p["frame_10"], p["frame_11"]) for p in pairs] == [(1, 2), (3, 4)]
    assert len(glob(str(tmp_path / "k" / "KittiFlow" / "training" / "flow_occ" / "*.png"))) == 2
    assert any("frame 2: forward flow marked invalid" in n for n in res["notes"])


@pytest.mark.render
def test_colmap_model_reprojects_back_projected_depth(rendered, tmp_path):
    pycolmap = pytest.importorskip("pycolmap", reason="pip install -r requirements-exports.txt")
    seq = load(rendered)
    dst = tmp_path / "colmap"
    export("colmap", rendered, dst)
    rec = pycolmap.Reconstruction(str(dst / "sparse" / "0"))
    assert len(rec.images) == len(seq) and len(rec.cameras) == 1
    by_name = {im.name: im for im in rec.images.values()}
    h, w = seq.height, seq.width
    v, u = np.mgrid[0:h, 0:w] + 0.5
    worst = 0.0
    for i, fr in enumerate(seq):
        im = by_name[Path(fr.path("rgb")).with_suffix(".png").name]
        cam = rec.cameras[im.camera_id]
        np.testing.assert_array_equal(cam.params, [fr.K[0, 0], fr.K[1, 1], fr.K[0, 2], fr.K[1, 2]])
        np.testing.assert_array_equal(png(dst / "images" / im.name), fr.rgb)
        # Back-project every pixel centre with depth, by hand, in Blender camera axes.
        z = fr.depth.astype(np.float64)
        s = z > 0
        Xc = np.stack([(u - fr.K[0, 2]) / fr.K[0, 0] * z, -(v - fr.K[1, 2]) / fr.K[1, 1] * z, -z], -1)[s]
        Xw = Xc @ fr.pose[:3, :3].T + fr.pose[:3, 3]
        for j, other in enumerate(seq):
            oim = by_name[Path(other.path("rgb")).with_suffix(".png").name]
            T = oim.cam_from_world() if callable(oim.cam_from_world) else oim.cam_from_world
            uv = rec.cameras[oim.camera_id].img_from_cam(T * Xw)
            if j == i:
                worst = max(worst, float(np.abs(uv - np.stack([u[s], v[s]], -1)).max()))
            else:  # the other frames' poses: the hand projection with load()'s pose and K
                c = (Xw - other.pose[:3, 3]) @ other.pose[:3, :3]
                want = np.stack([other.K[0, 0] * c[:, 0] / -c[:, 2] + other.K[0, 2],
                                 other.K[1, 1] * -c[:, 1] / -c[:, 2] + other.K[1, 2]], -1)
                worst = max(worst, float(np.abs(uv - want).max()))
    assert worst < 0.01, worst
    # The model's own points: each projects onto its observation in its image.
    errs = []
    for p in rec.points3D.values():
        el = p.track.elements[0]
        im = rec.images[el.image_id]
        T = im.cam_from_world() if callable(im.cam_from_world) else im.cam_from_world
        uv = rec.cameras[im.camera_id].img_from_cam(T * p.xyz[None])[0]
        errs.append(np.abs(uv - im.points2D[el.point2D_idx].xy).max())
    assert len(errs) == sum(int((f.depth > 0).sum()) for f in seq) and max(errs) < 0.01


@pytest.mark.render
def test_visionsim_npy_holds_frames_depth_and_poses(rendered, tmp_path):
    seq = load(rendered)
    dst = tmp_path / "vs"
    export("visionsim-npy", rendered, dst)
    tf = json.loads((dst / "transforms.json").read_text())
    assert tf["file_path"] == "frames.npy" and tf["depth_file_path"] == "depths.npy" and tf["c"] == 3
    assert (tf["w"], tf["h"]) == (seq.width, seq.height)
    K = seq.K
    assert [tf[k] for k in ("fl_x", "fl_y", "cx", "cy")] == [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
    assert all(set(f) == {"transform_matrix"} for f in tf["frames"])  # NPY schema: no per-frame paths
    frames = np.load(dst / "frames.npy")
    depths = np.load(dst / "depths.npy")
    assert frames.shape == (len(seq), seq.height, seq.width, 3) and frames.dtype == np.uint8
    for i, fr in enumerate(seq):
        np.testing.assert_array_equal(frames[i], fr.rgb)
        np.testing.assert_array_equal(depths[i], fr.planar_depth)
        np.testing.assert_array_equal(np.array(tf["frames"][i]["transform_matrix"]), fr.pose)


@pytest.mark.render
def test_visionsim_reads_the_npy_export(rendered, tmp_path):
    """visionsim's own loader, where installed (the test above checks the same values)."""
    vs = pytest.importorskip("visionsim.dataset")
    seq = load(rendered)
    export("visionsim-npy", rendered, tmp_path / "vs")
    d = vs.Dataset.from_path(tmp_path / "vs")
    assert isinstance(d, vs.NpyDataset) and len(d) == len(seq)
    for i, fr in enumerate(seq):
        idx, img, pose = d[i]
        assert idx == i
        np.testing.assert_array_equal(img, fr.rgb)
        np.testing.assert_array_equal(pose, fr.pose)


# -- determinism, refusals, command line ---------------------------------------------------------

@pytest.mark.render
def test_exports_are_byte_identical_and_never_touch_the_source(dataset_dir, tmp_path):
    pytest.importorskip("pycocotools", reason="pip install -r requirements-exports.txt")
    before = tree(dataset_dir)
    for fmt in FORMATS:
        export(fmt, dataset_dir, tmp_path / fmt / "1")
        export(fmt, dataset_dir, tmp_path / fmt / "2")
        first = tree(tmp_path / fmt / "1")
        assert first == tree(tmp_path / fmt / "2"), fmt
        export(fmt, dataset_dir, tmp_path / fmt / "1", overwrite=True)
        assert tree(tmp_path / fmt / "1") == first, fmt
        assert len(first) > 3
    for fmt, name in (("coco", "annotations.json"), ("colmap", "sparse/0/images.txt"),
                      ("visionsim-npy", "frames.npy")):  # one tree per sequence, at its path
        for s in ("a", "b"):
            assert (tmp_path / fmt / "1" / "renders" / "gt_cube" / s / name).is_file()
    assert tree(dataset_dir) == before


@pytest.mark.render
def test_refusals(rendered, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep")
    with pytest.raises(ExportError, match="not empty"):
        export("sintel", rendered, full)
    with pytest.raises(ExportError, match="not a previous export"):
        export("sintel", rendered, full, overwrite=True)
    assert (full / "mine.txt").read_text() == "keep"
    with pytest.raises(ExportError, match="inside the source"):
        export("sintel", rendered, rendered / "out")
    with pytest.raises(ExportError, match="unknown export format"):
        export("bop", rendered, tmp_path / "x")
    no_flow = tmp_path / "no_flow"
    shutil.copytree(rendered, no_flow)
    tf = json.loads((no_flow / "transforms.json").read_text())
    for f in tf["frames"]:
        f.pop("flow_file_path")
    (no_flow / "transforms.json").write_text(json.dumps(tf))
    with pytest.raises(ExportError, match="no flow files.*--flows"):
        export("kitti-flow", no_flow, tmp_path / "y")
    assert not (rendered / "out").exists()


@pytest.mark.render
def test_missing_optional_dependency_names_the_install_line(rendered, tmp_path):
    code = ("import sys; sys.modules['pycocotools'] = None\n"  # as if not installed
            "from dataset_forge import cli\n"
            f"sys.exit(cli.main(['export', 'coco', {str(rendered)!r}, {str(tmp_path / 'c')!r}]))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(REPO.parent))
    assert p.returncode == 1 and p.stderr.splitlines() == [
        "dataset: error: export coco needs pycocotools, which is not installed: "
        "pip install -r requirements-exports.txt"], p.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.render
def test_command_line_and_blender_command(rendered, tmp_path):
    dst = tmp_path / "k"
    cmd = [sys.executable, "-m", "dataset_forge", "export", "kitti-flow", str(rendered), str(dst)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(REPO.parent))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "export kitti-flow: [" in first.stderr and "1 sequence(s) exported as kitti-flow" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(REPO.parent))
    assert again.returncode == 1 and "not empty" in again.stderr and len(again.stderr.splitlines()) == 1
    code = (
        "import os, sys, bpy\n"
        "from dataset_forge import cli\n"
        "cli.register()\n"
        f"a = cli.execute(['export', 'visionsim-npy', {str(rendered)!r}, {str(tmp_path / 'v')!r}])\n"
        f"b = cli.execute(['export', 'visionsim-npy', {str(rendered)!r}, {str(tmp_path / 'v')!r}])\n"
        "cli.unregister()\n"
        "print('RC', a, b); sys.stdout.flush(); os._exit(0)\n")
    p = subprocess.run([sys.executable, "-c", code], env=bpy_env(), capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert "RC 0 1" in p.stdout, p.stdout + p.stderr
    assert (tmp_path / "v" / "frames.npy").is_file()


# -- an export is finished or says it is not (without Blender: an analytic sequence) ------------

@pytest.fixture(scope="module")
def analytic(tmp_path_factory) -> Path:
    """``camera_cut`` of tests/validate_scenes.py: 4 frames of 80x60 with every ground truth."""
    import validate_scenes as vs

    return vs.write_scene(vs.scenes()["camera_cut"], tmp_path_factory.mktemp("analytic") / "camera_cut")


class _Stop(Exception):
    """Raised from the progress callback: the export stops between two frames."""


def test_an_interrupted_export_is_marked_unfinished_and_replaced_with_overwrite(analytic, tmp_path):
    from dataset_forge.dataset.exports.common import MARKER

    def stop_after_two_frames(e):
        if e["frames_done"] == 2:
            raise _Stop

    dst = tmp_path / "sintel"
    with pytest.raises(_Stop):
        export("sintel", analytic, dst, on_progress=stop_after_two_frames)
    marker = json.loads((dst / MARKER).read_text())
    assert marker["complete"] is False and marker["format"] == "sintel" and "sequences" not in marker
    assert len(glob(str(dst / "**" / "*.flo"), recursive=True)) == 2
    with pytest.raises(ExportError, match=r'unfinished export .*"complete": false.*--overwrite'):
        export("sintel", analytic, dst)
    export("sintel", analytic, dst, overwrite=True)
    assert json.loads((dst / MARKER).read_text())["complete"] is True
    export("sintel", analytic, tmp_path / "fresh")
    assert tree(dst) == tree(tmp_path / "fresh") and not list(dst.rglob(".*.tmp"))


@pytest.mark.parametrize("fmt, torn", [("sintel", ".flo"), ("visionsim-npy", "frames.npy")])
def test_a_failed_write_names_the_file_and_leaves_the_export_unfinished(analytic, tmp_path, fmt, torn):
    """Under a 20 kB file-size limit (a .flo or frames.npy of this sequence is larger): one line
    naming the file, the cause and the fix; no torn file left under its name; marked unfinished."""
    from dataset_forge.dataset.exports.common import MARKER

    dst = tmp_path / "out"
    code = (f"from dataset_forge.dataset.exports import export\n"
            f"from dataset_forge.dataset.verify import WriteError\n"
            f"try:\n    export({fmt!r}, {str(analytic)!r}, {str(dst)!r})\n"
            f"except WriteError as e:\n    print(e)\n")

    from conftest import run_forked

    rc, out, err = run_forked(code, limit=20000)  # a child process: the limit stays there
    assert rc == 0, err
    (line,) = out.strip().splitlines()
    path = line.removeprefix("cannot write ").split(": ", 1)[0]
    assert path.startswith(str(dst)) and path.endswith(torn), line
    assert ": file too large" in line and "export again with --overwrite" in line
    assert not Path(path).exists() and not list(dst.rglob(".*.tmp"))  # no torn file under a name
    assert json.loads((dst / MARKER).read_text())["complete"] is False
