# SPDX-License-Identifier: GPL-3.0-or-later
"""Loader, validate, occlusion masks and previews on SYNTHETIC sequences with analytic ground truth.

The scene (written with numpy + dataset/exr.py exactly as the ground-truth contract says): a
tilted ground plane (id 1) seen by a camera translating by (0.1, 0.05, 0) per frame, and a
fronto-parallel square (id 2) 3 units in front of the camera's start, moving +0.3 in world x per
frame. Depth, camera-frame normals, forward/backward flow and ids are computed per pixel by ray
casting (independently of dataset/validate/geometry.py's vectorised prediction), so the checks are
proven against geometry, and every planted fault is one known change to those files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_forge.dataset import exr
from dataset_forge.dataset.camera import Intrinsics
from dataset_forge.dataset.loader import Dataset, Sequence, as_torch, load
from dataset_forge.dataset.occlusion import OCCLUDED, OUT_OF_FRAME, VALID, occlusion_mask, write_masks
from dataset_forge.dataset.preview import colorize_flow, preview
from dataset_forge.dataset.transforms import build_transforms, write_json_atomic
from dataset_forge.dataset.validate import Thresholds, validate
from PIL import Image
from validate_scenes import conventions

W, H = 64, 48
K = Intrinsics(fl_x=50.0, fl_y=50.0, cx=32.0, cy=24.0, w=W, h=H)
N = 5
CAM_STEP = np.array([0.1, 0.05, 0.0])  # world units per frame
OBJ_STEP = np.array([0.3, 0.0, 0.0])
PLANE_N = np.array([0.0, 0.35, 1.0]) / np.linalg.norm([0.0, 0.35, 1.0])  # world, Blender axes
PLANE_P = np.array([0.0, 0.0, -5.0])
SQUARE_Z, SQUARE_HALF = -3.0, 0.35
CONVENTIONS = conventions(instance_channel=None)  # these sequences carry object ids only


def cam_pos(k: float) -> np.ndarray:
    return CAM_STEP * k


def square_centre(k: float) -> np.ndarray:
    return np.array([0.0, 0.0, SQUARE_Z]) + OBJ_STEP * k


def pose(k: float) -> np.ndarray:
    """Camera-to-world (Blender axes): identity rotation, looking down world -z."""
    T = np.eye(4)
    T[:3, 3] = cam_pos(k)
    return T


def project(X: np.ndarray, k: float) -> np.ndarray:
    """World points (..., 3) -> pixels (..., 2) seen from frame k's camera."""
    c = X - cam_pos(k)
    x, y, z = c[..., 0], -c[..., 1], -c[..., 2]  # Blender camera -> OpenCV
    return np.stack([K.fl_x * x / z + K.cx, K.fl_y * y / z + K.cy], axis=-1)


def render_frame(k: int):
    """Ray-cast frame k: depth, normals (camera frame), ids, forward/backward flow."""
    v, u = np.mgrid[0:H, 0:W] + 0.5
    d = np.stack([(u - K.cx) / K.fl_x, -(v - K.cy) / K.fl_y, -np.ones_like(u)], axis=-1)  # world dir
    o = cam_pos(k)
    t_plane = ((PLANE_P - o) @ PLANE_N) / (d @ PLANE_N)
    t_sq = (SQUARE_Z - o[2]) / d[..., 2]
    hit_sq = t_sq[..., None] * d + o
    c = square_centre(k)
    on_sq = (np.abs(hit_sq[..., 0] - c[0]) <= SQUARE_HALF) & (np.abs(hit_sq[..., 1] - c[1]) <= SQUARE_HALF)
    t = np.where(on_sq, t_sq, t_plane)
    X = t[..., None] * d + o
    depth = t.astype(np.float32)  # d has z = -1: ray parameter = planar depth
    ids = np.where(on_sq, 2, 1).astype(np.float32)
    normals = np.where(on_sq[..., None], np.array([0.0, 0.0, 1.0]), PLANE_N).astype(np.float32)
    px = np.stack([u, v], axis=-1)
    flows = []
    for dk in (1, -1):
        Xn = X + np.where(on_sq[..., None], OBJ_STEP * dk, 0.0)
        flows.append((project(Xn, k + dk) - px).astype(np.float32))
    return depth, normals, ids, flows[0], flows[1]


def make_sequence(root: Path, frames: int = N, tutorial: bool = False) -> Path:
    """Write a synthetic sequence folder following the ground-truth contract (or, with
    ``tutorial``, the tutorial's schema: no conventions, no *_file_path, depth channel R)."""
    root.mkdir(parents=True, exist_ok=True)
    metas = []
    for k in range(1, frames + 1):
        depth, normals, ids, fwd, bwd = render_frame(k)
        tag = f"{k:06d}"
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[ids == 1] = (90, 140, 90)
        rgb[ids == 2] = (200, 60, 40)
        (root / "frames").mkdir(exist_ok=True)
        Image.fromarray(rgb).save(root / "frames" / f"frame_{tag}.png")
        exr.write_channels(root / "depths" / f"depth_{tag}.exr", {"R" if tutorial else "V": depth})
        exr.write_channels(root / "normals" / f"normal_{tag}.exr",
                           {"X": normals[..., 0], "Y": normals[..., 1], "Z": normals[..., 2]})
        exr.write_channels(root / "flows" / f"flow_{tag}.exr",
                           {"R": fwd[..., 0], "G": fwd[..., 1], "B": bwd[..., 0], "A": bwd[..., 1]})
        exr.write_channels(root / "segmentations" / f"segmentation_{tag}.exr", {"V": ids})
        m = {"file_path": f"frames/frame_{tag}.png", "transform_matrix": pose(k).tolist(), "frame": k,
             "time": (k - 1) / 24}
        if not tutorial:
            m.update(depth_file_path=f"depths/depth_{tag}.exr", normal_file_path=f"normals/normal_{tag}.exr",
                     flow_file_path=f"flows/flow_{tag}.exr",
                     segmentation_file_path=f"segmentations/segmentation_{tag}.exr")
        metas.append(m)
    if tutorial:
        doc = {"fl_x": K.fl_x, "fl_y": K.fl_y, "cx": K.cx, "cy": K.cy, "w": W, "h": H, "c": 3,
               "frames": [{"file_path": m["file_path"], "transform_matrix": m["transform_matrix"]}
                          for m in metas]}
    else:
        doc = build_transforms(intrinsics=K, channels=3, frames=metas, frame_rate=24.0,
                               keyframe_multiplier=1.0, frame_start=1, frame_end=frames, scene="synth",
                               blend_file="synth.blend", sequence_id=root.name, blender_version="none",
                               dataset_forge_version="test", camera="Camera", conventions=CONVENTIONS)
        (root / "info.json").write_text(json.dumps({"num_frames": frames}))
    write_json_atomic(root / "transforms.json", doc)
    if not tutorial:
        write_json_atomic(root / "objects.json", objects_doc(frames))
    (root / "segmentation_ids.json").write_text(json.dumps(
        {"background": 0, "ids": {"1": {"name": "Ground", "collection": "Ground", "class": "Ground"},
                                  "2": {"name": "Card", "collection": "Props", "class": "card"}}}))
    return root


def objects_doc(frames: int = N) -> dict:
    """``objects.json`` of the synthetic scene: the ground (static, identity pose) and the card
    (moving by OBJ_STEP); no instance channel, so pixels map to instances by object id."""
    out = []
    for k in range(1, frames + 1):
        _, _, ids, _, _ = render_frame(k)
        insts = []
        for iid, M in ((1, np.eye(4)), (2, np.eye(4))):
            if iid == 2:
                M[:3, 3] = square_centre(k)
            rows, cols = np.nonzero(ids == iid)
            o2c = np.linalg.inv(pose(k) @ np.diag([1.0, -1, -1, 1])) @ M
            insts.append({"instance_id": iid, "object_to_world": M.tolist(), "object_to_camera": o2c.tolist(),
                          "bbox_visib": [int(cols.min()), int(rows.min()), int(np.ptp(cols)) + 1,
                                         int(np.ptp(rows)) + 1], "px_count_visib": int(rows.size)})
        out.append({"frame": k, "camera": "Camera", "instances": insts})
    return {"schema": "dataset_forge.objects/1", "frames": out, "instances": [
        {"instance_id": 1, "object_id": 1, "object": "Ground", "instancer_chain": [], "category": "Ground",
         "deforming": False},
        {"instance_id": 2, "object_id": 2, "object": "Card", "instancer_chain": [], "category": "card",
         "deforming": False}]}


def make_dataset(root: Path, scenes=("synth", "synth2")) -> Path:
    """A datasets folder with one synthetic sequence per scene and a manifest like engine/plan.py's."""
    seqs = []
    for s in scenes:
        make_sequence(root / "renders" / s / "001-00001-00006")
        seqs.append({"name": s, "status": "complete", "custom": 7,
                     "sequences": [{"id": "001-00001-00006", "path": f"renders/{s}/001-00001-00006",
                                    "num_frames": N, "status": "complete"}]})
    write_json_atomic(root / "manifest.json", {"totals": {"scenes": len(scenes)}, "scenes": seqs})
    return root


# --- planted faults (shared with test_dataset_e2e.py) -------------------------------------

def _rewrite_flows(seq: Path, fn) -> None:
    tf = json.loads((seq / "transforms.json").read_text())
    ch = tf["conventions"]["flow"]["channels"]
    for p in sorted((seq / "flows").glob("flow_*.exr")):
        c = exr.read_channels(p)
        exr.write_channels(p, fn(c, ch))


def flip_flow_v(seq: Path) -> None:
    """A writer that kept Blender's y-up: v of forward and backward flow negated."""
    def fn(c, ch):
        return {**c, ch["forward_v"]: -c[ch["forward_v"]], ch["backward_v"]: -c[ch["backward_v"]]}
    _rewrite_flows(seq, fn)


def swap_forward_backward(seq: Path) -> None:
    def fn(c, ch):
        out = dict(c)
        for a, b in (("forward_u", "backward_u"), ("forward_v", "backward_v")):
            out[ch[a]], out[ch[b]] = c[ch[b]], c[ch[a]]
        return out
    _rewrite_flows(seq, fn)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def wrong_fl_y(seq: Path, factor: float = 0.75, consistent: bool = True) -> None:
    """Scale fl_y (and, if ``consistent``, the intrinsics matrix with it: the hard case)."""
    p = seq / "transforms.json"
    tf = json.loads(p.read_text())
    tf["fl_y"] *= factor
    if consistent and "intrinsics" in tf:
        tf["intrinsics"][1][1] *= factor
    p.write_text(json.dumps(tf))


def drop_frame_entry(seq: Path, index: int = 2) -> None:
    p = seq / "transforms.json"
    tf = json.loads(p.read_text())
    del tf["frames"][index]
    p.write_text(json.dumps(tf))


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return make_sequence(tmp_path_factory.mktemp("synth") / "001-00001-00006")


@pytest.fixture
def copy(clean, tmp_path):
    def _copy() -> Path:
        dst = tmp_path / clean.name
        shutil.copytree(clean, dst)
        return dst
    return _copy


def one(report):
    assert len(report["sequences"]) == 1
    return report["sequences"][0]


# --- loader ---------------------------------------------------------------------------------

def test_loader_returns_the_written_arrays_lazily(clean):
    seq = load(clean)
    assert isinstance(seq, Sequence) and len(seq) == N
    assert seq.kinds == ("depth", "normal", "flow", "segmentation")
    f = seq[2]
    assert f._cache == {}
    assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
    assert set(f._cache) == {"image"}  # reading RGB did not read any EXR
    depth, normals, ids, fwd, bwd = render_frame(3)
    np.testing.assert_array_equal(f.depth, depth)
    np.testing.assert_array_equal(f.normals, normals)
    np.testing.assert_array_equal(f.flow_forward, fwd)
    np.testing.assert_array_equal(f.flow_backward, bwd)
    assert f.segmentation.dtype == np.int32 and set(np.unique(f.segmentation)) == {1, 2}
    np.testing.assert_allclose(f.K, [[50, 0, 32], [0, 50, 24], [0, 0, 1]])
    np.testing.assert_allclose(f.pose, pose(3))
    np.testing.assert_allclose(f.pose_opencv[:3, :3], np.diag([1.0, -1.0, -1.0]))
    assert f.number == 3 and seq.ids["ids"]["2"]["class"] == "card"
    assert set(f.to_dict()) == {"rgb", "K", "pose", "depth", "normals", "flow_forward", "flow_backward",
                                "segmentation"}
    assert [fr.number for fr in seq] == [1, 2, 3, 4, 5]
    assert seq[-1].number == N


def test_loader_opens_datasets_and_the_tutorial_schema(tmp_path):
    ds = load(make_dataset(tmp_path / "ds"))
    assert isinstance(ds, Dataset) and len(ds) == 2
    assert ds["renders/synth2/001-00001-00006"].path.parent.name == "synth2"
    assert sum(1 for _ in ds.frames()) == 2 * N
    tut = load(make_sequence(tmp_path / "tut", tutorial=True))
    assert tut.schema == "tutorial" and tut.kinds == ("depth", "normal", "flow", "segmentation")
    assert tut.channels["depth"] == "R" and any("depth channel 'R'" in a for a in tut.assumed)
    np.testing.assert_array_equal(tut[1].depth, render_frame(2)[0])
    np.testing.assert_array_equal(tut[1].flow_backward, render_frame(2)[4])
    rep = validate(tut.path, write=False)
    assert one(rep)["ok"], one(rep)


def test_as_torch_needs_torch_only_when_called(clean):
    import pickle

    from dataset_forge.dataset.loader import TorchFrames

    frames = pickle.loads(pickle.dumps(TorchFrames(load(clean))))  # DataLoader workers pickle it
    assert len(frames) == N and frames.index[3][1] == 3
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install torch"):
            as_torch(clean)
    else:
        ds = as_torch(clean)
        item = ds[1]
        assert len(ds) == N and tuple(item["depth"].shape) == (H, W)
        np.testing.assert_array_equal(item["depth"].numpy(), render_frame(2)[0])


def test_exr_errors_name_the_file(tmp_path):
    p = tmp_path / "a.exr"
    exr.write_channels(p, {"V": np.ones((4, 5), np.float32)})
    assert exr.pixel_types(p) == {"V": "FLOAT"}
    with pytest.raises(exr.ExrError, match="missing channel"):
        exr.read_channels(p, ["R"])
    big = tmp_path / "b.exr"
    exr.write_channels(big, {"V": np.random.default_rng(0).random((64, 64)).astype(np.float32)})
    truncate(big)
    with pytest.raises(exr.ExrError, match="b.exr: truncated or corrupt"):
        exr.read_channels(big)


# --- validate ---------------------------------------------------------------------------------

def test_clean_sequence_passes_with_tiny_residuals(clean):
    rep = validate(clean, write=False)
    s = one(rep)
    assert rep["ok"] and s["ok"], s
    c = s["checks"]
    assert all(c[k]["ok"] for k in ("schema", "frame_count", "files", "objects", "camera_cuts", "flow_rigid",
                                    "normals", "segmentation_ids", "coverage"))
    r = c["flow_rigid"]
    assert r["worst_px"] < 1e-3 and set(r["things"]) == {"Ground#1", "Card#2"}  # the moving card too
    assert r["not_checked"] == {} and r["unassigned_pixels"] == 0
    assert c["flow_cycle"]["ok"] is None  # every thing is rigid: judged against its predicted motion
    # one plane tilted about x and a fronto-parallel card: the depth of one plane fits a family of
    # (fl_y, cy) and nothing is slanted in x, so the intrinsics are "not checked", with the reason
    assert c["intrinsics"]["ok"] is None and "not checked: fl_x, fl_y, cx, cy" in c["intrinsics"]["message"]
    assert s["not_checked"]["intrinsics"] == c["intrinsics"]["message"]
    assert c["normals"]["median_deg"] < 0.01 and c["normals"]["unit_error"] < 1e-5
    assert c["files"]["files_read"] == 5 * N


@pytest.mark.parametrize("fault, check, words", [
    ("flip", "flow_rigid", "stored flow disagrees with depth + K + camera and object poses"),
    ("swap", "flow_rigid", "stored flow disagrees with depth + K + camera and object poses"),
    ("truncate", "files", "depths/depth_000003.exr: truncated or corrupt"),
    ("fl_y", "flow_rigid", "stored flow disagrees with depth + K + camera and object poses"),
    ("fl_y_inconsistent", "schema", "'intrinsics' disagrees with fl_y"),
    ("missing_file", "files", "frames/frame_000004.png: file not found"),
    ("missing_entry", "frame_count", "not consecutive"),
    ("unknown_id", "segmentation_ids", "id(s) 9 not in segmentation_ids.json"),
    ("normal_axes_swapped", "normals", "median angle to depth-derived normals"),
])
def test_planted_faults_are_named(copy, fault, check, words):
    seq = copy()
    if fault == "flip":
        flip_flow_v(seq)
    elif fault == "swap":
        swap_forward_backward(seq)
    elif fault == "truncate":
        truncate(seq / "depths" / "depth_000003.exr")
    elif fault == "fl_y":
        wrong_fl_y(seq)
    elif fault == "fl_y_inconsistent":
        wrong_fl_y(seq, 1.2, consistent=False)
    elif fault == "missing_file":
        (seq / "frames" / "frame_000004.png").unlink()
    elif fault == "missing_entry":
        drop_frame_entry(seq)
    elif fault == "unknown_id":
        p = seq / "segmentations" / "segmentation_000002.exr"
        ids = exr.read_channels(p)["V"]
        ids[:3, :3] = 9
        exr.write_channels(p, {"V": ids})
    elif fault == "normal_axes_swapped":  # normals labelled camera-frame but with y and z swapped
        for p in (seq / "normals").glob("*.exr"):
            c = exr.read_channels(p)
            exr.write_channels(p, {"X": c["X"], "Y": c["Z"], "Z": c["Y"]})
    rep = validate(seq, write=False)
    s = one(rep)
    assert not rep["ok"] and check in s["failed"], s["checks"][check]
    assert words in s["checks"][check]["message"]


def test_report_files_and_manifest_entries(tmp_path):
    root = make_dataset(tmp_path / "ds")
    flip_flow_v(root / "renders" / "synth2" / "001-00001-00006")
    rep = validate(root, jobs=2)
    assert not rep["ok"] and rep["failed"] == ["renders/synth2/001-00001-00006"]
    on_disk = json.loads((root / "validation.json").read_text())
    assert on_disk["failed"] == rep["failed"] and on_disk["thresholds"]["flow_px"] == 0.05
    table = (root / "validation.txt").read_text()
    assert "renders/synth/001-00001-00006" in table
    assert "FAILED renders/synth2/001-00001-00006: flow_rigid" in table
    man = json.loads((root / "manifest.json").read_text())
    assert man["totals"] == {"scenes": 2}  # other keys kept
    assert man["scenes"][0]["custom"] == 7 and man["scenes"][0]["sequences"][0]["status"] == "complete"
    assert man["scenes"][0]["sequences"][0]["validation"]["ok"] is True
    # one tilted plane and a fronto-parallel card do not constrain K: named, neither passed nor failed
    assert man["scenes"][0]["sequences"][0]["validation"]["not_checked"] == ["intrinsics"]
    v = man["scenes"][1]["sequences"][0]["validation"]
    assert v["ok"] is False and v["failed"] == ["flow_rigid"]
    assert man["validation"]["sequences_failed"] == 1


def test_validate_leaves_the_manifest_of_a_running_run_alone(tmp_path):
    """A run owns manifest.json while it holds the folder's lock (it rewrites the manifest when it
    ends): validate still validates and writes its report, says the manifest was not updated, and
    records its results there once the run is over."""
    from dataset_forge.engine.session import RunLock

    root = make_dataset(tmp_path / "ds")
    before = (root / "manifest.json").read_bytes()
    lock = RunLock(root).acquire()  # as a run in progress holds it
    try:
        rep = validate(root)
    finally:
        lock.release()
    # its sequences pass, but a dataset being written is not called good (dataset/completeness.py)
    assert not rep["ok"] and not rep["failed"] and (root / "manifest.json").read_bytes() == before
    assert rep["incomplete"][0].startswith("a run is writing this dataset")
    assert rep["manifest_not_updated"] == (
        f"{root / 'manifest.json'} not updated: another Dataset Forge run (pid {os.getpid()}) is "
        f"writing into {root}; validate again once it finishes")
    assert rep["manifest_not_updated"] in (root / "validation.txt").read_text()
    rep = validate(root)
    assert "manifest_not_updated" not in rep
    man = json.loads((root / "manifest.json").read_text())
    assert man["scenes"][0]["sequences"][0]["validation"]["ok"] is True


def test_only_the_sequences_the_manifest_calls_complete_make_the_dataset(tmp_path, caplog):
    """A folder left by an earlier run with other settings (another seed: other sequence ids) and
    a sequence the last run left incomplete are not part of the dataset: the loader skips them
    and says so, validate fails them by name (also when given one of them), exports leave them
    out with a note."""
    from dataset_forge.dataset.exports import export

    root = make_dataset(tmp_path / "ds")
    stray = make_sequence(root / "renders" / "synth" / "001-00003-00007")
    man = json.loads((root / "manifest.json").read_text())
    man["scenes"][1]["sequences"][0].update(status="incomplete", reason="the content of synth2.blend changed")
    write_json_atomic(root / "manifest.json", man)
    with caplog.at_level("WARNING", logger="dataset_forge"):
        ds = load(root)
    assert [p.relative_to(root).as_posix() for p in ds.sequence_paths] == ["renders/synth/001-00001-00006"]
    unlisted = ("not in manifest.json: left by an earlier run with other settings (another seed, "
                "strategy or frame count?); delete the folder, or render it again with those settings")
    incomplete = ("manifest.json calls it incomplete (the content of synth2.blend changed): render it "
                  "again")
    assert {p.relative_to(root).as_posix(): why for p, why in ds.skipped.items()} == {
        "renders/synth/001-00003-00007": unlisted, "renders/synth2/001-00001-00006": incomplete}
    assert "2 sequence folder(s) skipped" in caplog.text
    rep = validate(root, write=False, update_manifest=False)
    assert rep["failed"] == ["renders/synth/001-00003-00007", "renders/synth2/001-00001-00006"]
    by = {r["path"]: r for r in rep["sequences"]}
    assert by["renders/synth/001-00003-00007"]["failed"] == ["frame_count"]
    assert by["renders/synth/001-00003-00007"]["checks"]["frame_count"]["message"] == unlisted
    assert by["renders/synth2/001-00001-00006"]["checks"]["frame_count"]["message"] == incomplete
    assert by["renders/synth/001-00001-00006"]["ok"]
    alone = one(validate(stray, write=False, update_manifest=False))
    assert alone["failed"] == ["frame_count"] and alone["checks"]["frame_count"]["message"] == unlisted
    res = export("visionsim-npy", root, tmp_path / "npy")
    assert [q["sequence"] for q in res["sequences"]] == ["renders/synth/001-00001-00006"]
    assert f"renders/synth/001-00003-00007: not exported: {unlisted}" in res["notes"]
    assert not (tmp_path / "npy" / "renders" / "synth" / "001-00003-00007").exists()


def test_thresholds_are_parameters(clean):
    assert Thresholds().flow_px == 0.05
    rep = validate(clean, write=False, normal_deg=-1.0)
    assert one(rep)["failed"] == ["normals"]
    with pytest.raises(TypeError, match="unknown threshold"):
        validate(clean, write=False, flow_pxx=1)


# --- occlusion ----------------------------------------------------------------------------

def test_occlusion_mask_matches_geometry(clean):
    seq = load(clean)
    k = 2  # frame number; index 1
    depth, _, ids, fwd, _ = render_frame(k)
    _, _, ids_next, _, bwd_next = render_frame(k + 1)
    mask = occlusion_mask(seq[1].flow_forward, seq[2].flow_backward)
    np.testing.assert_array_equal(mask, occlusion_mask(fwd, bwd_next))
    v, u = np.mgrid[0:H, 0:W] + 0.5
    qu, qv = u + fwd[..., 0], v + fwd[..., 1]
    outside = (qu < 0) | (qu > W) | (qv < 0) | (qv > H)
    assert outside.any()
    np.testing.assert_array_equal(mask == OUT_OF_FRAME, outside)
    # plane pixels whose landing point is covered by the card in t+1 (2 px away from its edges)
    qi = np.clip(np.floor(qu).astype(int), 0, W - 1)
    qj = np.clip(np.floor(qv).astype(int), 0, H - 1)
    lands_on_card = ids_next[qj, qi] == 2
    hidden = (ids == 1) & ~outside & lands_on_card
    assert hidden.sum() > 20
    core = _erode(hidden)
    assert core.sum() > 5 and np.all(mask[core] == OCCLUDED)
    # pixels on the same surface in both frames, 2 px away from the card, are valid
    far = ~outside & (ids == 1) & ~_dilate(lands_on_card | (ids == 2), 2)
    assert far.sum() > 1000 and np.all(mask[far] == VALID)
    assert np.all(mask[_erode(ids == 2, 2) & ~outside] == VALID)  # the card itself is tracked


def _dilate(m: np.ndarray, r: int = 1) -> np.ndarray:
    out = m.copy()
    for _ in range(r):
        p = np.pad(out, 1)
        out = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return out


def _erode(m: np.ndarray, r: int = 1) -> np.ndarray:
    return ~_dilate(~m, r)


def test_occlusion_masks_are_written_next_to_the_flows(copy):
    seq = copy()
    written = write_masks(seq)
    assert [p.name for p in written] == [f"occlusion_{k:06d}.png" for k in range(1, N + 1)]
    m = np.asarray(Image.open(seq / "flows" / "occlusion_000002.png"))
    assert m.dtype == np.uint8 and m.shape == (H, W) and set(np.unique(m)) <= {VALID, OCCLUDED, OUT_OF_FRAME}
    assert one(validate(seq, write=False))["ok"]  # masks do not count as extra flow files


# --- previews and colour maps ---------------------------------------------------------------

def test_flow_colour_wheel_directions():
    def col(u, v):
        return colorize_flow(np.array([[[u, v]]], np.float32), max_flow=1.0)[0, 0].astype(int)
    assert col(1, 0).tolist() == [255, 0, 0]  # right: red
    r, g, b = col(-1, 0)
    assert g > 200 and b > 200 and r < 60  # left: cyan
    r, g, b = col(0, 1)
    assert r > 200 and g > 100 and b < 60  # down: orange/yellow
    r, g, b = col(0, -1)
    assert b > 200 and g < 60  # up: blue/violet
    assert col(0, 0).tolist() == [255, 255, 255]


def test_preview_writes_an_animation_per_sequence_and_a_contact_sheet(tmp_path):
    root = make_dataset(tmp_path / "ds")
    res = preview(root, tmp_path / "prev", fps=5, size=48)
    assert [Path(p).name for p in res["animations"]] == ["synth__001-00001-00006.webp",
                                                         "synth2__001-00001-00006.webp"]
    im = Image.open(res["animations"][0])
    assert im.n_frames == N and im.size == (5 * 64 + 4 * 2, 48)
    im.seek(1)
    im.load()
    assert im.info["duration"] == 200  # 5 fps
    sheet = Image.open(res["contact_sheet"])
    assert sheet.width == 5 * 48 + 4 * 2 and sheet.height > 2 * 36
    gif = preview(root / "renders" / "synth" / "001-00001-00006", tmp_path / "g", fmt="gif", size=24)
    assert Image.open(gif["animations"][0]).n_frames == N


# --- command line -----------------------------------------------------------------------------

def test_cli_validate_exit_codes_without_bpy(tmp_path, clean):
    bad = tmp_path / "bad"
    shutil.copytree(clean, bad)
    swap_forward_backward(bad)
    code = (
        "import sys; sys.modules['bpy'] = None\n"
        "from dataset_forge.cli import main\n"
        f"a = main(['validate', {str(clean)!r}, '--no-write'])\n"
        f"b = main(['validate', {str(bad)!r}, '--jobs', '2', '--json', {str(tmp_path / 'r.json')!r}])\n"
        f"c = main(['preview', {str(clean)!r}, {str(tmp_path / 'p')!r}, '--fps', '4', '--size', '32'])\n"
        "print('RC', a, b, c, [m for m in sys.modules if m.split('.')[0] == 'bpy' and sys.modules[m]])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert "RC 0 1 0 []" in out.stdout, out.stdout + out.stderr
    assert "FAILED " in out.stdout and "flow_rigid" in out.stdout
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is False
    assert (tmp_path / "p" / "contact_sheet.png").is_file()


def test_sequence_inside_a_dataset_and_sequences_missing_on_disk(tmp_path):
    root = make_dataset(tmp_path / "ds", scenes=("synth", "synth2", "gone"))
    shutil.rmtree(root / "renders" / "gone")
    one_seq = root / "renders" / "synth2" / "001-00001-00006"
    drop_frame_entry(one_seq, 1)
    s = one(validate(one_seq))
    assert s["path"] == "." and s["failed"] == ["frame_count"]
    assert "manifest.json says 5 frames, transforms.json lists 4" in s["checks"]["frame_count"]["message"]
    man = json.loads((root / "manifest.json").read_text())
    assert "validation" not in man["scenes"][0]["sequences"][0]  # only the validated one is marked
    assert man["scenes"][1]["sequences"][0]["validation"]["failed"] == ["frame_count"]
    rep = validate(root)
    assert rep["failed"] == ["renders/synth2/001-00001-00006", "renders/gone/001-00001-00006"]
    gone = rep["sequences"][-1]
    assert gone["failed"] == ["schema"] and "no transforms.json" in gone["checks"]["schema"]["message"]


def test_distance_depth_is_converted_and_a_wrong_label_is_caught(copy):
    seq = copy()
    tf = json.loads((seq / "transforms.json").read_text())
    tf["conventions"]["depth"]["type"] = "distance"
    (seq / "transforms.json").write_text(json.dumps(tf))
    s = one(validate(seq, write=False))
    assert "normals" in s["failed"] and "flow_rigid" in s["failed"]  # planar data read as distance
    v, u = np.mgrid[0:H, 0:W] + 0.5
    ray = np.sqrt(1 + ((u - K.cx) / K.fl_x) ** 2 + ((v - K.cy) / K.fl_y) ** 2)
    for p in (seq / "depths").glob("*.exr"):
        exr.write_channels(p, {"V": exr.read_channels(p)["V"] * ray})
    s = one(validate(seq, write=False))
    assert s["ok"], s
    assert s["checks"]["flow_rigid"]["worst_px"] < 1e-3 and s["checks"]["normals"]["median_deg"] < 0.01
    np.testing.assert_allclose(load(seq)[0].planar_depth, render_frame(1)[0], rtol=1e-6)


def _write_png16(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (pillow cannot write one): filter 0 on every row."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[j].astype(">u2").tobytes() for j in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_16_bit_png_frames_keep_all_16_bits(tmp_path):
    from dataset_forge.dataset.loader import read_image

    rgb = np.random.default_rng(1).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    _write_png16(tmp_path / "f.png", rgb)
    out = read_image(tmp_path / "f.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, rgb)


def test_flow_only_sequence_checks_what_it_can(copy):
    seq = copy()
    tf = json.loads((seq / "transforms.json").read_text())
    for f in tf["frames"]:
        for k in ("depth", "normal", "segmentation"):
            del f[f"{k}_file_path"]
    (seq / "transforms.json").write_text(json.dumps(tf))
    assert load(seq).kinds == ("flow",)
    s = one(validate(seq, write=False))
    c = s["checks"]
    assert s["ok"] and c["flow_cycle"]["ok"] and c["flow_cycle"]["median_px"] < 1e-3
    assert c["flow_rigid"]["ok"] is None and "no depth" not in c["flow_rigid"]["message"]
    assert c["normals"]["ok"] is None and c["coverage"]["ok"] is None and c["intrinsics"]["ok"] is None
    assert set(s["not_checked"]) >= {"flow_rigid", "normals", "coverage", "intrinsics"}


def test_nerf_style_camera_angle_x_is_understood(tmp_path):
    seq = make_sequence(tmp_path / "nerf", tutorial=True)
    tf = json.loads((seq / "transforms.json").read_text())
    for k in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        del tf[k]
    tf["camera_angle_x"] = 2 * np.arctan(0.5 * W / K.fl_x)
    (seq / "transforms.json").write_text(json.dumps(tf))
    s = load(seq)
    np.testing.assert_allclose(s.K, [[50, 0, 32], [0, 50, 24], [0, 0, 1]], atol=1e-9)
    assert {"fl_x from camera_angle_x", "fl_y = fl_x (square pixels)",
            "principal point at the image centre", "image size 64x48 from the first frame"} <= set(s.assumed)
    rep = one(validate(seq, write=False))
    assert rep["ok"], rep
    c = rep["checks"]
    assert c["flow_rigid"]["ok"] is None and "no objects.json" in c["flow_rigid"]["message"]
    assert c["flow_cycle"]["worst_px"] < 1e-3  # per object (ids, no poses): the cycle is what it can judge
