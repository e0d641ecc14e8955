# SPDX-License-Identifier: GPL-3.0-or-later
"""Never silently wrong, for real renders: a resume reuses only frames made from the same file
with the same settings, a write failure stops the scene with one line and a resume repairs exactly
the incomplete frames, and a scene's own File Output nodes write nothing outside its sequence.
Renders are tiny (32x24 px or the scenes' own 64x48, 1 sample)."""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, bpy_env, build_scenes, run_bpy
from dataset_forge import create_datasets
from dataset_forge.dataset import layout
from dataset_forge.dataset.exr import read_single
from dataset_forge.dataset.journal import Journal
from dataset_forge.settings import Settings, SettingsError
from scenes import SPECS

TINY = dict(sequences_per_scene=1, num_frames=2, width=32, height=24, max_samples=1,
            use_denoising=False, threads=1, debug=False)
SEQ = "001-00001-00003"  # frames 1..2


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    return build_scenes(tmp_path_factory.mktemp("trust_scenes"), ["basic", "orbit",
                                                                   "portrait_vertical"])


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _seq(ds: Path, scene: str) -> Path:
    return ds / "renders" / scene / SEQ


def _rendered(summary: dict, scene: str) -> int:
    return sum(q["rendered"] for q in summary["scenes"][scene]["sequences"])


def _manifest_status(ds: Path) -> dict[str, str]:
    man = json.loads((ds / "manifest.json").read_text())
    return {sc["name"]: sc["sequences"][0]["status"] for sc in man["scenes"] if sc["sequences"]}


def _camera_positions(seq: Path) -> list[list[float]]:
    t = json.loads((seq / layout.TRANSFORMS).read_text())
    return [[round(r[3], 4) for r in f["transform_matrix"][:3]] for f in t["frames"]]


@pytest.mark.render
def test_each_changed_setting_is_refused_by_name_then_rerendered_from_scratch(scenes, tmp_path):
    src = _copy(scenes / "basic.blend", tmp_path / "scenes" / "basic.blend").parent
    ds = tmp_path / "ds"
    seq = _seq(ds, "basic")
    opts = dict(TINY, depths=True, normals=True)
    assert create_datasets(src, ds, **opts)["exit_code"] == 0
    steps = [({"width": 40}, "width 32 -> 40"),
             ({"depth_type": "distance"}, "depth_type 'planar' -> 'distance'"),
             ({"normal_frame": "world"}, "normal_frame 'camera' -> 'world'"),
             ({"max_samples": 2}, "max_samples 1 -> 2"),
             ({"file_format": "JPEG"}, "file_format 'PNG' -> 'JPEG'")]
    planar = read_single(seq / layout.gt_file("depth", 1))
    for change, named in steps:
        new = {**opts, **change}
        s = create_datasets(src, ds, **new)
        reason = s["failed"]["basic"]
        assert s["exit_code"] == 1 and named in reason and "--on-change rerender" in reason
        assert "\n" not in reason and s["frames_rendered"] == 0
        assert _manifest_status(ds) == {"basic": "incomplete"}  # never "complete" over it
        events: list[dict] = []
        s = create_datasets(src, ds, **new, on_change="rerender", on_event=events.append)
        assert s["exit_code"] == 0 and _rendered(s, "basic") == 2 and s["frames_skipped"] == 0
        said = [e["message"] for e in events if e["event"] == "notice"]
        assert len(said) == 1 and said[0].startswith(f"basic: re-rendering sequence {SEQ} from "
                                                     f"scratch, changed: {named}")
        assert _manifest_status(ds) == {"basic": "complete"}
        assert sorted(Journal(seq).done_frames) == [1, 2]
        assert len((seq / layout.JOURNAL).read_text().splitlines()) == 2  # from scratch
        t = json.loads((seq / layout.TRANSFORMS).read_text())
        assert (t["w"], t["h"]) == (new["width"], new["height"])
        assert t["conventions"]["depth"]["type"] == new.get("depth_type", "planar")
        assert t["conventions"]["normal"]["frame"] == new.get("normal_frame", "camera")
        opts = new
    # The frames really are the new ones: no PNG left beside the JPEGs, 40 px wide depth that
    # holds ray lengths (longer than the planar depth off the image centre).
    assert sorted(p.name for p in (seq / "frames").iterdir()) == ["frame_000001.jpg",
                                                                  "frame_000002.jpg"]
    dist = read_single(seq / layout.gt_file("depth", 1))
    assert planar.shape == (24, 32) and dist.shape == (24, 40)
    K = np.array(json.loads((seq / layout.TRANSFORMS).read_text())["intrinsics"])
    # Corner pixels see the ground plane 10 m below the camera.
    assert planar[0, 0] == pytest.approx(10.0, rel=1e-4)
    assert dist[0, 0] == pytest.approx(10.0 * layout.ray_norm(K, (24, 40))[0, 0], rel=1e-4)
    assert dist[0, 0] > 10.5
    # Resumed with the same settings: everything reused.
    s = create_datasets(src, ds, **opts)
    assert s["exit_code"] == 0 and s["frames_rendered"] == 0 and s["frames_skipped"] == 2


@pytest.mark.render
def test_scene_folders_stay_with_their_file_and_an_edited_file_rerenders_only_itself(scenes,
                                                                                     tmp_path):
    src = tmp_path / "scenes"
    ds = tmp_path / "ds"
    _copy(scenes / "basic.blend", src / "a_b.blend")
    assert create_datasets(src, ds, **TINY)["exit_code"] == 0
    basic_poses = _camera_positions(_seq(ds, "a_b"))
    assert basic_poses == [list(SPECS["basic"]["cam_loc"])] * 2
    # 0.1.0 named `a b.blend` a_b and took the old file's folder; ':' collides for real.
    _copy(scenes / "orbit.blend", src / "a b.blend")
    _copy(scenes / "portrait_vertical.blend", src / "a:b.blend")
    s = create_datasets(src, ds, **TINY)
    assert s["exit_code"] == 0, s["failed"]
    assert _rendered(s, "a_b") == 0 and _rendered(s, "a b") == 2 and _rendered(s, "a_b-2") == 2
    assert _camera_positions(_seq(ds, "a_b")) == basic_poses
    orbit = _camera_positions(_seq(ds, "a b"))
    assert [p[0] for p in orbit] == [0.0, 0.0] and orbit[1][1] > orbit[0][1]  # moves along +Y
    assert _camera_positions(_seq(ds, "a_b-2"))[0] == list(SPECS["portrait_vertical"]["cam_loc"])
    for name, blend in (("a_b", "a_b.blend"), ("a b", "a b.blend"), ("a_b-2", "a:b.blend")):
        t = json.loads((_seq(ds, name) / layout.TRANSFORMS).read_text())
        assert Path(t["blend_file"]).name == blend
    # Edit one file: only its sequence is concerned; refused, then re-rendered alone.
    _copy(scenes / "orbit.blend", src / "a_b.blend")
    s = create_datasets(src, ds, **TINY)
    assert s["exit_code"] == 1 and list(s["failed"]) == ["a_b"]
    assert "the content of a_b.blend" in s["failed"]["a_b"]
    assert _camera_positions(_seq(ds, "a_b")) == basic_poses
    assert _manifest_status(ds)["a_b"] == "incomplete"  # its old frames are not this file's
    s = create_datasets(src, ds, **TINY, on_change="rerender")
    assert s["exit_code"] == 0
    assert {n: _rendered(s, n) for n in ("a_b", "a b", "a_b-2")} == {"a_b": 2, "a b": 0, "a_b-2": 0}
    assert _camera_positions(_seq(ds, "a_b")) == orbit


def _big_scene(scenes: Path, dst: Path) -> Path:
    """``basic`` at 256x192: its frames outgrow a limit that ``basic``'s 64x48 frames fit."""
    run_bpy(f"""
import bpy
bpy.ops.wm.open_mainfile(filepath={str(scenes / 'basic.blend')!r})
r = bpy.context.scene.render
r.resolution_x, r.resolution_y, r.resolution_percentage = 256, 192, 100
bpy.ops.wm.save_as_mainfile(filepath={str(dst)!r})
""")
    return dst


def _cli(args: list[str], fsize: int | None = None) -> subprocess.CompletedProcess:
    def pre():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

    return subprocess.run([sys.executable, "-m", "dataset_forge", "create-datasets", *args],
                          preexec_fn=pre, capture_output=True, text=True, timeout=600,
                          env=bpy_env(PYTHONPATH=os.environ.get("PYTHONPATH", "")), cwd=REPO)


def _write_failure_then_resume(scenes: Path, tmp_path: Path, ds: Path, fail, lift,
                               cause: str) -> None:
    src = tmp_path / "scenes"
    _copy(scenes / "basic.blend", src / "basic.blend")
    _big_scene(scenes, src / "big.blend")
    args = ["--scenes-dir", str(src), "--datasets-dir", str(ds), "--num-frames", "3", "--width",
            "0", "--height", "0", "--max-samples", "1", "--no-use-denoising", "--threads", "1",
            "--depths", "--no-debug"]
    proc = fail(args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [ln for ln in proc.stdout.splitlines() if ln.lstrip().startswith("FAILED")]
    big = ds / "renders" / "big" / "001-00001-00004"
    assert len(failed) == 1 and f"cannot write {big}/" in failed[0] and cause in failed[0], \
        proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    man = json.loads((ds / "manifest.json").read_text())
    st = {sc["name"]: (sc["status"], sc["sequences"][0]["frames_complete"]) for sc in man["scenes"]}
    assert st["basic"] == ("complete", 3) and st["big"][0] == "failed" and st["big"][1] < 3
    done_before = Journal(big).done_frames
    lift()
    proc = _cli(args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout
    assert f"{3 - len(done_before)} frame(s) rendered, {3 + len(done_before)} already complete" \
        in summary
    import dataset_forge

    rep = dataset_forge.validate(ds, write=False)
    assert rep["ok"], json.dumps(rep["sequences"], indent=1)[:2000]


@pytest.mark.render
def test_a_file_size_limit_stops_the_scene_with_one_line_and_resume_repairs_it(scenes, tmp_path):
    _write_failure_then_resume(scenes, tmp_path, tmp_path / "ds",
                               lambda args: _cli(args, fsize=40_000), lambda: None,
                               "file-size limit of 40000 bytes")


@pytest.mark.render
def test_a_full_disk_stops_the_scene_with_one_line_and_resume_repairs_it(scenes, tmp_path):
    mnt = tmp_path / "small_disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs",
                                            str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        _write_failure_then_resume(
            scenes, tmp_path, mnt / "ds", lambda args: _cli(args),
            lambda: subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True),
            "no space left on the device")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_numbers_must_be_finite_and_sizes_sane():
    for name in ("timeout", "adaptive_threshold", "keyframe_multiplier"):
        for bad in ("nan", "inf", float("nan"), float("-inf")):
            with pytest.raises(SettingsError, match=f"{name}=.*(not a finite|finite number)"):
                Settings.from_dict({name: bad})
    with pytest.raises(SettingsError, match="width and height .* both 0 .* or both set"):
        Settings(width=0, height=480).replace()
    with pytest.raises(SettingsError, match="width and height"):
        Settings.from_dict({"width": 640, "height": 0})
    Settings.from_dict({"width": 0, "height": 0})
    with pytest.raises(SettingsError) as err:
        Settings.from_dict({"width": 65536, "height": 65536, "depths": True})
    msg = str(err.value)
    assert "65536x65536" in msg and "GiB" in msg and "\n" not in msg
    # 4K with every pass is fine.
    Settings.from_dict({"width": 3840, "height": 2160, "depths": True, "normals": True,
                        "flows": True, "segmentations": True})
    assert math.isfinite(Settings().timeout)


def _hostile_scene(scenes: Path, dst: Path, outside: Path, victim_frames: Path) -> Path:
    """``basic`` with three compositor File Output nodes fed by the render: one writing to an
    absolute folder, one to ``//../`` (beside the scenes folder), one over another dataset's
    frame (its ``frame_######`` PNG)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    run_bpy(f"""
import bpy
from dataset_forge.render_passes import compat
bpy.ops.wm.open_mainfile(filepath={str(scenes / 'basic.blend')!r})
scene = bpy.context.scene
tree, _ = compat.acquire_compositor(scene)
rl = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
for label, folder, stem in (("abs", {str(outside)!r}, "abs_######"),
                            ("up", "//../escaped", "up_######"),
                            ("victim", {str(victim_frames)!r}, "frame_######")):
    fo = compat.file_output(tree, folder, file_format="PNG", color_mode="RGB", color_depth="8")
    fo.name = fo.label = "Evil " + label
    tree.links.new(rl.outputs["Image"], compat.file_output_input(fo, stem, "RGBA"))
bpy.ops.wm.save_as_mainfile(filepath={str(dst)!r})
print("saved")
""")
    return dst


@pytest.mark.render
def test_a_scenes_own_file_outputs_are_muted_and_named_unless_allowed(scenes, tmp_path):
    other = tmp_path / "other_ds"
    src_other = _copy(scenes / "basic.blend", tmp_path / "other_scenes" / "basic.blend").parent
    assert create_datasets(src_other, other, **TINY)["exit_code"] == 0
    victim = _seq(other, "basic") / "frames"
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    outside = tmp_path / "outside"
    src = tmp_path / "box" / "scenes"
    _hostile_scene(scenes, src / "evil.blend", outside, victim)
    events: list[dict] = []
    ds = tmp_path / "box" / "ds"
    s = create_datasets(src, ds, **TINY, on_event=events.append)
    assert s["exit_code"] == 0, s["failed"]
    notices = [e["message"] for e in events if e["event"] == "notice"]
    assert len(notices) == 3, notices
    for name, where in (("Evil abs", str(outside)), ("Evil up", str(tmp_path / "box" / "escaped")),
                        ("Evil victim", str(victim))):
        line = next(n for n in notices if f"'{name}'" in n)
        assert line.startswith("evil: muted the scene's own File Output node") and where in line
        assert "allow_scene_outputs" in line
    # Nothing was written outside the sequence folder.
    assert not outside.exists() and not (tmp_path / "box" / "escaped").exists()
    assert {p.name: p.read_bytes() for p in victim.iterdir()} == before
    inside = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*") if p.is_file()
                    and ".dataset_forge" not in p.parts)
    assert all(p.startswith(f"renders/evil/{SEQ}/") or p in ("plan.json", "manifest.json")
               for p in inside), inside
    # With the opt-in they write where they point (the test above could fail).
    s = create_datasets(src, tmp_path / "box" / "ds2", **TINY, allow_scene_outputs=True)
    assert s["exit_code"] == 0
    assert sorted(p.name for p in outside.iterdir()) == ["abs_000001.png", "abs_000002.png"]
    assert sorted(p.name for p in (tmp_path / "box" / "escaped").iterdir()) == [
        "up_000001.png", "up_000002.png"]
    assert {p.name: p.read_bytes() for p in victim.iterdir()} != before


@pytest.mark.render
def test_the_worker_leaves_no_blender_temp_folder(scenes, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    src = _copy(scenes / "basic.blend", tmp_path / "scenes" / "basic.blend").parent
    proc = subprocess.run([sys.executable, "-m", "dataset_forge", "create-datasets",
                           "--scenes-dir", str(src), "--datasets-dir", str(tmp_path / "ds"),
                           "--num-frames", "1", "--width", "32", "--height", "24",
                           "--max-samples", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env=bpy_env(TMPDIR=str(tmp), PYTHONPATH=os.environ.get("PYTHONPATH", "")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done basic" in proc.stderr  # a probe and a render worker ran with this TMPDIR
    assert [p.name for p in tmp.iterdir()] == []


@pytest.mark.render
def test_a_folder_that_refuses_writes_is_one_line_then_resume_renders_all(scenes, tmp_path):
    src = _copy(scenes / "basic.blend", tmp_path / "scenes" / "basic.blend").parent
    ds = tmp_path / "ds"
    frames = _seq(ds, "basic") / "frames"
    frames.mkdir(parents=True)
    # Immutable: even root gets EPERM (stands in for a folder without write permission).
    if subprocess.run(["chattr", "+i", str(frames)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        s = create_datasets(src, ds, **TINY)
    finally:
        subprocess.run(["chattr", "-i", str(frames)], check=True)
    reason = s["failed"]["basic"]
    assert reason.startswith(f"cannot write {frames / 'frame_000001.png'}: operation not permitted;")
    assert "\n" not in reason and s["scenes"]["basic"]["attempts"] == 1  # no pointless retry
    assert (ds / "manifest.json").is_file()
    s = create_datasets(src, ds, **TINY)
    assert s["exit_code"] == 0 and s["frames_rendered"] == 2
