# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: render a small dataset through ``dataset_forge.create_datasets`` (tests/scenes.py
"orbit": static scene, moving camera; "basic": static camera, a cube sliding +X), validate it
clean, then plant each fault into a copy and see ``validate`` name it. Also the loader, occlusion
masks, previews and ``python -m dataset_forge validate`` on real renders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dataset_forge
import numpy as np
import pytest
from conftest import REPO, build_scenes
from dataset_forge.dataset.occlusion import VALID, sequence_masks
from PIL import Image
from test_dataset_tools import drop_frame_entry, flip_flow_v, swap_forward_backward, truncate, wrong_fl_y

pytestmark = pytest.mark.render  # every test here renders

FRAMES = 5
ORBIT = f"renders/orbit/001-00001-{FRAMES + 1:05d}"
BASIC = f"renders/basic/001-00001-{FRAMES + 1:05d}"
MOTION = f"renders/gt_camera_motion/001-00001-{FRAMES + 1:05d}"  # camera translates and turns


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    scenes = build_scenes(tmp_path_factory.mktemp("e2e_scenes"), ["orbit", "basic", "gt_camera_motion"])
    out = tmp_path_factory.mktemp("e2e") / "datasets"
    summary = dataset_forge.create_datasets(
        scenes, out, sequences_per_scene=1, num_frames=FRAMES, width=64, height=48, max_samples=4,
        use_denoising=False, depths=True, normals=True, flows=True, segmentations=True, debug=False)
    assert summary["exit_code"] == 0, summary
    assert (out / ORBIT / "transforms.json").is_file() and (out / BASIC / "transforms.json").is_file()
    return out


@pytest.fixture(scope="module")
def report(rendered) -> dict:
    return dataset_forge.validate(rendered)


def _seq(rep: dict, rel: str) -> dict:
    return next(s for s in rep["sequences"] if s["path"] == rel)


def test_rendered_dataset_validates_clean(report, rendered):
    assert report["ok"], json.dumps(report["sequences"], indent=1)[:3000]
    for target in (ORBIT, BASIC, MOTION):
        c = _seq(report, target)["checks"]
        r = c["flow_rigid"]
        # every thing, the sliding cube of "basic" included, judged against its own motion
        assert sorted(t.split("#")[0] for t in r["things"]) == ["Cube", "Ground", "Sphere"], r
        assert r["worst_px"] < 0.05 and r["worst_ratio"] < 0.5 and r["not_checked"] == {}
        assert c["flow_cycle"]["ok"] is None  # nothing deforms
        assert c["objects"]["ok"] is True and c["normals"]["median_deg"] < 1.0
    motion = _seq(report, MOTION)["checks"]
    # a camera that turns and translates sees slanted surfaces: K is fitted from one frame's data
    assert motion["intrinsics"]["checked"] == ["fl_x", "fl_y", "cx", "cy"]
    fit = motion["intrinsics"]["fits"][0]
    assert abs(fit["fitted"][0] / fit["stored"][0] - 1) < 1e-3
    assert abs(fit["fitted"][2] - fit["stored"][2]) < 0.05
    man = json.loads((rendered / "manifest.json").read_text())
    assert man["totals"]["sequences"] == 3 and man["settings"]["flows"] is True  # engine's keys kept
    assert all(q["validation"]["ok"] for sc in man["scenes"] for q in sc["sequences"])
    assert "3/3 sequence(s) passed" in (rendered / "validation.txt").read_text()


def test_loader_on_real_renders(rendered):
    ds = dataset_forge.load(rendered)
    seq = ds[ORBIT]
    f = seq[1]
    assert f.rgb.shape == (48, 64, 3) and f.depth.shape == (48, 64) and f.flow_forward.shape == (48, 64, 2)
    assert set(np.unique(f.segmentation)) <= {0, 1, 2, 3}
    # camera moving along +Y (image up) makes the static scene move down the image: v > 0
    assert np.median(f.flow_forward[..., 1]) > 0.3 and np.median(f.flow_backward[..., 1]) < -0.3
    np.testing.assert_allclose(seq.poses[2, :3, 3] - seq.poses[1, :3, 3], [0, 0.05, 0], atol=1e-6)


def test_occlusion_and_preview_on_real_renders(rendered, tmp_path):
    seq = dataset_forge.load(rendered / ORBIT)
    masks = [m for _, m in sequence_masks(seq)]
    assert len(masks) == FRAMES
    assert np.mean(masks[0] == VALID) > 0.95  # static scene, sub-pixel motion: little occlusion
    res = dataset_forge.preview(rendered, tmp_path / "prev", fps=6, size=48)
    assert len(res["animations"]) == 3
    assert Image.open(res["animations"][0]).n_frames == FRAMES


@pytest.mark.parametrize("target", [ORBIT, MOTION])
@pytest.mark.parametrize("fault, check", [
    ("flip", "flow_rigid"),
    ("swap", "flow_rigid"),
    ("truncate", "files"),
    ("fl_y", "flow_rigid"),
    ("fl_y_only", "schema"),
    ("missing_file", "files"),
    ("missing_entry", "frame_count"),
])
def test_planted_faults_are_named_on_real_renders(rendered, tmp_path, fault, check, target):
    root = tmp_path / "copy"
    shutil.copytree(rendered, root)
    seq = root / target
    if fault == "flip":
        flip_flow_v(seq)
    elif fault == "swap":
        swap_forward_backward(seq)
    elif fault == "truncate":
        truncate(seq / "normals" / "normal_000003.exr")
    elif fault == "fl_y":
        wrong_fl_y(seq, 0.75)
    elif fault == "fl_y_only":
        wrong_fl_y(seq, 1.1, consistent=False)
    elif fault == "missing_file":
        (seq / "depths" / "depth_000002.exr").unlink()
    elif fault == "missing_entry":
        drop_frame_entry(seq, 2)
    rep = dataset_forge.validate(root)
    assert not rep["ok"] and rep["failed"] == [target]
    s = _seq(rep, target)
    assert check in s["failed"], s["checks"]
    assert _seq(rep, BASIC)["ok"]
    man = json.loads((root / "manifest.json").read_text())
    flagged = {q["path"]: q["validation"] for sc in man["scenes"] for q in sc["sequences"]}
    assert flagged[target]["ok"] is False and check in flagged[target]["failed"]
    assert flagged[BASIC]["ok"] is True


def test_cli_validate_in_a_subprocess(rendered, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(rendered, bad)
    flip_flow_v(bad / ORBIT)
    good = subprocess.run([sys.executable, "-m", "dataset_forge", "validate", str(rendered), "--jobs", "2",
                           "--no-write"], capture_output=True, text=True, timeout=120, cwd=str(REPO.parent))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "3/3 sequence(s) passed" in good.stdout and "] 3/3 " in good.stderr and "ETA" in good.stderr
    fail = subprocess.run([sys.executable, "-m", "dataset_forge", "validate", str(bad)],
                          capture_output=True, text=True, timeout=120, cwd=str(REPO.parent))
    assert fail.returncode == 1
    assert f"FAILED {ORBIT}: flow_rigid" in fail.stdout


@pytest.fixture(scope="module")
def world_distance(rendered, tmp_path_factory) -> Path:
    """orbit again through render_animation with world-frame normals and euclidean depth."""
    scenes = build_scenes(tmp_path_factory.mktemp("e2e_scenes2"), ["orbit"])
    out = tmp_path_factory.mktemp("e2e_world") / "orbit"
    summary = dataset_forge.render_animation(
        scenes / "orbit.blend", out, frame_start=1, frame_end=4, width=64, height=48, max_samples=1,
        use_denoising=False, depths=True, normals=True, flows=True, segmentations=True, debug=False,
        normal_frame="world", depth_type="distance")
    assert summary["exit_code"] == 0, summary
    return out


def test_world_normals_and_distance_depth_validate_clean(world_distance):
    s = dataset_forge.validate(world_distance)["sequences"][0]
    assert s["ok"], s["checks"]
    assert s["checks"]["flow_rigid"]["worst_px"] < 0.05 and s["checks"]["normals"]["median_deg"] < 1.0
    tf = json.loads((world_distance / "transforms.json").read_text())
    tf["conventions"]["normal"]["frame"] = "camera"  # world normals mislabelled: the camera is tilted 10°
    (world_distance / "transforms.json").write_text(json.dumps(tf))
    s = dataset_forge.validate(world_distance, write=False)["sequences"][0]
    assert s["failed"] == ["normals"] and s["checks"]["normals"]["median_deg"] > 5


def test_blender_command_dataset_validate(rendered, tmp_path):
    """``blender --command dataset validate ...`` runs cli.execute inside Blender (the bpy wheel)."""
    from conftest import bpy_env

    bad = tmp_path / "bad"
    shutil.copytree(rendered, bad)
    swap_forward_backward(bad / ORBIT)
    code = (
        "import os, sys, bpy\n"
        "from dataset_forge import cli\n"
        "cli.register()\n"
        f"a = cli.execute(['validate', {str(rendered)!r}, '--no-write'])\n"
        f"b = cli.execute(['validate', {str(bad)!r}, '--no-write', '--jobs', '2'])\n"
        "cli.unregister()\n"
        "print('RC', a, b); sys.stdout.flush(); os._exit(0)\n")
    p = subprocess.run([sys.executable, "-c", code], env=bpy_env(), capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert "RC 0 1" in p.stdout, p.stdout + p.stderr


def test_rerun_keeps_validation_of_untouched_sequences_only(report, rendered, tmp_path):
    copy = tmp_path / "datasets"
    shutil.copytree(rendered, copy)
    man = json.loads((copy / "manifest.json").read_text())
    scenes = Path(man["scenes"][0]["blend"]).parent
    opts = dict(sequences_per_scene=1, num_frames=FRAMES, width=64, height=48, max_samples=4,
                use_denoising=False, depths=True, normals=True, flows=True, segmentations=True,
                debug=False)
    s = dataset_forge.create_datasets(scenes, copy, **opts)
    assert s["exit_code"] == 0 and s["frames_rendered"] == 0
    seqs = {q["path"]: q for sc in json.loads((copy / "manifest.json").read_text())["scenes"]
            for q in sc["sequences"]}
    assert all(q["validation"]["ok"] for q in seqs.values())  # nothing re-rendered: kept
    (copy / ORBIT / "frames" / "frame_000002.png").unlink()
    s = dataset_forge.create_datasets(scenes, copy, **opts)
    assert s["exit_code"] == 0 and s["frames_rendered"] == 1
    seqs = {q["path"]: q for sc in json.loads((copy / "manifest.json").read_text())["scenes"]
            for q in sc["sequences"]}
    assert "validation" not in seqs[ORBIT]  # re-rendered since validation: must be re-checked
    assert seqs[BASIC]["validation"]["ok"] and seqs[MOTION]["validation"]["ok"]
