# SPDX-License-Identifier: GPL-3.0-or-later
"""A folder of scenes to a whole dataset, for real: every entry point, broken scenes, killed
workers and killed runs, recycling, the silent-worker timeout. Renders are tiny (32x24 px, 1
sample; 64x48 px at 32 samples where a run must last long enough to be killed)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from conftest import REPO, bpy_env, build_scenes
from dataset_forge import cli, create_datasets
from dataset_forge.dataset.layout import JOURNAL as JOURNAL_NAME
from PIL import Image

pytestmark = pytest.mark.render

GOOD = ["basic", "orbit", "portrait_vertical"]
TUTORIAL = ("create-datasets --scenes-dir={scenes} --datasets-dir={datasets} --sequences-per-scene=1 "
            "--render-config.width=800 --render-config.height=800 --render-config.depths "
            "--render-config.normals --render-config.flows --render-config.segmentations "
            "--render-config.keyframe-multiplier=2.0 --render-config.jobs=5")
# Appended to the tutorial's line: 2 sequences of 3 frames, tiny frames, two workers.
TINY = ["--sequences-per-scene", "2", "--num-frames", "3", "--width", "32", "--height", "24",
        "--max-samples", "1", "--no-use-denoising", "--threads", "1", "--jobs", "2"]
# 1..24 stretched by 2 is 2..48 (47 frames): starts 23 frames apart.
TUTORIAL_SEQS = {"002-00002-00005": (2, 4), "002-00025-00028": (25, 27)}
GT_KEYS = ("depth_file_path", "normal_file_path", "flow_file_path", "segmentation_file_path")


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory) -> Path:
    return build_scenes(tmp_path_factory.mktemp("good"), GOOD)


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory, good_dir) -> Path:
    out = tmp_path_factory.mktemp("mixed")
    subprocess.run([sys.executable, str(REPO / "tests" / "broken_scenes.py"), str(out)], check=True,
                   env=bpy_env(), capture_output=True, timeout=300)
    for name in ("basic", "orbit"):
        shutil.copy(good_dir / f"{name}.blend", out / f"{name}.blend")
    return out


def _tutorial_argv(scenes: Path, datasets: Path) -> list[str]:
    return shlex.split(TUTORIAL.format(scenes=scenes, datasets=datasets)) + TINY


def _journal_counts(seq_dir: Path) -> Counter:
    lines = (seq_dir / JOURNAL_NAME).read_text().splitlines()
    return Counter(json.loads(line)["frame"] for line in lines)


def _read_exr(path: Path) -> dict[str, np.ndarray]:
    with OpenEXR.File(str(path)) as f:
        return {k: np.array(c.pixels) for k, c in f.channels().items()}


def check_sequence(seq: Path, frames: range, size: tuple[int, int], gt: bool = True,
                   max_lines: int = 1) -> dict:
    """Every frame listed once, every file opens at the right size, one journal line per frame
    (``max_lines``: up to that many for frames rendered again on purpose)."""
    t = json.loads((seq / "transforms.json").read_text())
    assert [f["frame"] for f in t["frames"]] == list(frames)
    assert (t["w"], t["h"]) == size
    for fr in t["frames"]:
        with Image.open(seq / fr["file_path"]) as im:
            im.load()
            assert im.size == size
        for key in GT_KEYS if gt else ():
            chans = _read_exr(seq / fr[key])
            assert all(c.shape[:2] == (size[1], size[0]) for c in chans.values()), key
            assert all(np.isfinite(c).all() for c in chans.values()), key
    counts = _journal_counts(seq)
    assert sorted(counts) == list(frames) and set(counts.values()) <= set(range(1, max_lines + 1))
    assert sum(counts.values()) <= len(frames) + (max_lines - 1), counts
    return t


def check_tutorial_dataset(ds: Path, journal_lines: int = 1) -> None:
    for scene in GOOD:
        for sid, (a, b) in TUTORIAL_SEQS.items():
            seq = ds / "renders" / scene / sid
            t = check_sequence(seq, range(a, b + 1), (32, 24), max_lines=journal_lines)
            assert t["frame_rate"] == 48.0 and t["keyframe_multiplier"] == 2.0
            info = json.loads((seq / "info.json").read_text())
            assert (info["frame_rate"], info["num_frames"]) == (48.0, 3)
            if scene == "orbit":
                # The camera moves 0.05 m per original frame, 0.025 m per stretched frame: 0.05 m
                # from the first to the third frame, in 2/48 s: 1.2 m/s (as 0.05 m x 24 fps).
                assert info["distance_traveled"] == pytest.approx(0.05, abs=1e-5)
                assert info["elapsed_time"] == pytest.approx(2 / 48)
                assert info["average_velocity"] == pytest.approx(1.2, rel=1e-4)
            elif scene == "basic":
                assert info["distance_traveled"] == pytest.approx(0.0, abs=1e-9)
                # Planar depth at the pixel right of the centre (x = +0.1 m) from the static
                # camera 10 m up: the ground (10 m) while the cube is far left, the cube's top
                # (9 m) once it has slid under it (stretched frame 25 = original frame 12.5:
                # cube centre at x = 0.15 m, 1 m wide).
                depth = _read_exr(seq / t["frames"][0]["depth_file_path"])
                expect = 10.0 if a == 2 else 9.0
                assert next(iter(depth.values()))[12, 16] == pytest.approx(expect, abs=1e-3)
    manifest = json.loads((ds / "manifest.json").read_text())
    assert manifest["totals"] == {"scenes": 3, "scenes_complete": 3, "sequences": 6,
                                  "sequences_complete": 6, "frames": 18, "frames_complete": 18}
    assert [s["name"] for s in manifest["scenes"]] == GOOD
    assert {q["id"] for s in manifest["scenes"] for q in s["sequences"]} == set(TUTORIAL_SEQS)
    plan = json.loads((ds / "plan.json").read_text())
    assert plan["settings"]["keyframe_multiplier"] == 2.0 and plan["settings"]["jobs"] == 2
    assert [j["scene"] for j in plan["jobs"]] == GOOD
    assert [(s["frame_start"], s["frame_end"], s["fps"]) for s in plan["scenes"]] == [(1, 24, 24.0)] * 3


def test_tutorial_command_through_cli_main_then_resume_skips_everything(good_dir, tmp_path, capsys):
    ds = tmp_path / "datasets"
    t0 = time.monotonic()
    assert cli.main(_tutorial_argv(good_dir, ds) + ["--json"]) == 0
    first = time.monotonic() - t0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] and summary["done"] == GOOD and summary["failed"] == {}
    assert json.loads((Path(summary["logs"]) / "summary.json").read_text()) == summary
    assert (summary["frames_rendered"], summary["frames_skipped"]) == (18, 0)
    assert {s["attempts"] for s in summary["scenes"].values()} == {1}
    check_tutorial_dataset(ds)
    sizes = {p: p.stat().st_mtime_ns for p in ds.rglob("*.png")}
    # The same command again: every frame is complete, nothing renders, the result is the same.
    assert cli.main(_tutorial_argv(good_dir, ds) + ["--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["skipped"] == GOOD and again["done"] == []
    assert (again["frames_rendered"], again["frames_skipped"]) == (0, 18)
    assert {p: p.stat().st_mtime_ns for p in ds.rglob("*.png")} == sizes
    check_tutorial_dataset(ds)
    # A truncated EXR and a deleted frame are not complete: exactly those two frames render again.
    depth = ds / "renders" / "basic" / "002-00002-00005" / "depths" / "depth_000003.exr"
    depth.write_bytes(depth.read_bytes()[:100])
    png = ds / "renders" / "orbit" / "002-00025-00028" / "frames" / "frame_000026.png"
    png.unlink()
    assert cli.main(_tutorial_argv(good_dir, ds) + ["--json"]) == 0
    third = json.loads(capsys.readouterr().out)
    assert (third["frames_rendered"], third["frames_skipped"]) == (2, 16)
    assert third["done"] == ["basic", "orbit"] and third["skipped"] == ["portrait_vertical"]
    rendered = {(n, q["id"]): q["rendered"] for n, sc in third["scenes"].items()
                for q in sc["sequences"] if q["rendered"]}
    assert rendered == {("basic", "002-00002-00005"): 1, ("orbit", "002-00025-00028"): 1}
    changed = {p.relative_to(ds / "renders").as_posix() for p, t in sizes.items()
               if p.stat().st_mtime_ns != t}
    # Only the two frames' files (RGB and previews) were written again.
    assert {"basic/002-00002-00005/frames/frame_000003.png",
            "orbit/002-00025-00028/frames/frame_000026.png"} <= changed
    assert all(c.startswith("basic/002-00002-00005/") and c.endswith("_000003.png") or
               c.startswith("orbit/002-00025-00028/") and c.endswith("_000026.png") for c in changed)
    check_tutorial_dataset(ds, journal_lines=2)
    print(f"3 scenes x 2 sequences x 3 frames, all ground truth, --jobs 2: {first:.1f} s")


def test_tutorial_command_through_blender_command(good_dir, tmp_path):
    ds = tmp_path / "datasets"
    cmd = [str(REPO / "tools" / "blender"), "--background", "--command", "dataset",
           *_tutorial_argv(good_dir, ds)]
    p = subprocess.run(cmd, env=bpy_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[0].startswith("3 scene(s) done, 0 skipped (already complete), "
                                               "0 failed; 18 frame(s) rendered")
    check_tutorial_dataset(ds)


def test_python_expr_api(good_dir, tmp_path):
    ds = tmp_path / "datasets"
    expr = ("import sys, bl_ext.user_default.dataset_forge as df; "
            f"s = df.create_datasets({str(good_dir)!r}, {str(ds)!r}, sequences_per_scene=2, "
            "num_frames=3, width=32, height=24, max_samples=1, use_denoising=False, threads=1, "
            "jobs=2, keyframe_multiplier=2.0, depths=True, normals=True, flows=True, "
            "segmentations=True); print('OK', s['ok'], s['frames_rendered']); "
            "sys.exit(s['exit_code'])")
    cmd = [str(REPO / "tools" / "blender"), "--background", "--python-exit-code", "1",
           "--python-expr", expr]
    p = subprocess.run(cmd, env=bpy_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OK True 18" in p.stdout
    check_tutorial_dataset(ds)


@pytest.mark.smoke
def test_broken_scenes_each_get_their_reason_good_ones_complete(mixed_dir, tmp_path):
    ds = tmp_path / "datasets"
    # Workers recycled every 2 frames too: 3 processes per good scene, each exiting cleanly.
    cmd = [sys.executable, "-m", "dataset_forge", "create-datasets", "--scenes-dir", str(mixed_dir),
           "--datasets-dir", str(ds), "--flows", "--json", "--recycle-frames", "2", *TINY]
    p = subprocess.run(cmd, env=bpy_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    s = json.loads(p.stdout)
    assert sorted(s["done"]) == ["basic", "orbit"]
    failed = s["failed"]
    assert sorted(failed) == ["motion_blur", "no_camera", "short_range", "truncated"]
    assert failed["truncated"].startswith("truncated.blend: cannot be opened by Blender")
    assert "damaged or not a .blend" in failed["truncated"]
    assert failed["no_camera"] == ("no_camera.blend: scene 'basic' has no active camera; set one in "
                                   "Scene Properties > Camera and save the file")
    assert failed["short_range"].startswith("scene 'short_range' (short_range.blend, frames 1..2, "
                                            "keyframe_multiplier 1): 2 sequences of 3 frames do not fit "
                                            "in 2 frames (1..2)")
    assert "the largest valid num_frames is 1" in failed["short_range"]
    assert failed["motion_blur"].startswith("motion_blur.blend: motion blur is on and flows were "
                                            "requested")
    assert "--disable-motion-blur" in failed["motion_blur"]
    # The .blend1 backups the builder left beside the scenes were not taken for scenes.
    assert sorted(mixed_dir.glob("*.blend1")) and len(s["scenes"]) == 6
    for scene in ("basic", "orbit"):
        for sid in ("001-00001-00004", "001-00013-00016"):
            a = int(sid.split("-")[1])
            check_sequence(ds / "renders" / scene / sid, range(a, a + 3), (32, 24), gt=False)
    manifest = json.loads((ds / "manifest.json").read_text())
    status = {m["name"]: (m["status"], m["reason"]) for m in manifest["scenes"]}
    assert status["basic"] == ("complete", None)
    assert status["no_camera"] == ("failed", failed["no_camera"])
    # The text summary (stdout without --json) names every failure on its own line.
    p2 = subprocess.run([a for a in cmd if a != "--json"], env=bpy_env(), capture_output=True,
                        text=True, timeout=300)
    assert p2.returncode == 1
    lines = p2.stdout.splitlines()
    assert lines[0].startswith("0 scene(s) done, 2 skipped (already complete), 4 failed")
    assert sum(line.startswith("  FAILED  ") for line in lines) == 4


def test_dry_run_prints_the_plan_and_renders_nothing(mixed_dir, tmp_path, capsys):
    ds = tmp_path / "datasets"
    assert cli.main(["create-datasets", "--scenes-dir", str(mixed_dir), "--datasets-dir", str(ds),
                     "--sequences-per-scene", "2", "--num-frames", "5", "--strategy", "random",
                     "--seed", "7", "--min-gap", "2", "--keyframe-multiplier", "1.5",
                     "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert not ds.exists()
    assert plan["seed"] == 7 and plan["settings"]["strategy"] == "random"
    scenes = {s["name"]: s for s in plan["scenes"]}
    assert sorted(scenes) == ["basic", "motion_blur", "no_camera", "orbit", "short_range",
                              "truncated"]
    # Read from the files: 1..24 at 24 fps (short_range: 1..2), stretched by 1.5 to 2..36.
    assert (scenes["basic"]["frame_start"], scenes["basic"]["frame_end"]) == (1, 24)
    assert scenes["basic"]["fps"] == 24.0 and scenes["basic"]["camera"] == "Camera"
    assert scenes["basic"]["stretched_range"] == [2, 36]
    assert (scenes["short_range"]["frame_start"], scenes["short_range"]["frame_end"]) == (1, 2)
    assert scenes["no_camera"]["camera"] is None and "no active camera" in scenes["no_camera"]["error"]
    assert scenes["truncated"]["frame_start"] is None and scenes["truncated"]["error"]
    # Flows are off: motion blur is no problem for this request.
    assert scenes["motion_blur"]["error"] is None
    jobs = {j["scene"]: j["sequences"] for j in plan["jobs"]}
    assert sorted(jobs) == ["basic", "motion_blur", "orbit"]
    for seqs in jobs.values():
        (a, b), (c, d) = [(q["frame_start"], q["frame_end"]) for q in seqs]
        assert 2 <= a and b - a == 4 and c - b - 1 >= 2 and d - c == 4 and d <= 36
        assert seqs[0]["id"] == f"1p5-{a:05d}-{a + 5:05d}"
    assert jobs["basic"] != jobs["orbit"]  # random windows differ per scene for one seed


def test_a_file_that_kills_blender_while_loading_is_pinned_and_the_rest_is_read(good_dir, tmp_path):
    from dataset_forge.engine.discovery import discover
    from dataset_forge.settings import Settings

    folder = tmp_path / "scenes"
    folder.mkdir()
    subprocess.run([sys.executable, str(REPO / "tests" / "broken_scenes.py"), str(folder),
                    "crash_on_open"], check=True, env=bpy_env(), capture_output=True, timeout=300)
    for name in ("basic", "orbit"):
        shutil.copy(good_dir / f"{name}.blend", folder / f"{name}.blend")
    found = {s.name: s for s in discover(folder, Settings(autoexec=True))}
    assert found["crash_on_open"].error == (
        "crash_on_open.blend: opening it crashed Blender (SIGKILL); its embedded scripts ran "
        "(autoexec is on): open it without autoexec, or fix the file's scripts")
    # The probe went on in a fresh process: the files after the crash were read too.
    assert [(s.frame_start, s.frame_end, s.error) for n, s in sorted(found.items())
            if n != "crash_on_open"] == [(1, 24, None), (1, 24, None)]
    # Without autoexec the script never runs: the file is read like any other.
    safe = {s.name: s for s in discover(folder)}
    assert (safe["crash_on_open"].frame_end, safe["crash_on_open"].error) == (24, None)
    # Spread over two reader processes, the crash is still pinned on its file.
    from dataset_forge.engine.discovery import probe

    two = probe(sorted(folder.glob("*.blend")), Settings(autoexec=True), parallel=2)
    assert {Path(b).stem: bool(r["error"]) for b, r in two.items()} == {
        "basic": False, "crash_on_open": True, "orbit": False}


def test_a_scene_that_always_crashes_is_retried_then_reported_others_finish(good_dir, tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    subprocess.run([sys.executable, str(REPO / "tests" / "broken_scenes.py"), str(folder),
                    "crash_on_render"], check=True, env=bpy_env(), capture_output=True, timeout=300)
    shutil.copy(good_dir / "basic.blend", folder / "basic.blend")
    events: list[dict] = []
    s = create_datasets(folder, tmp_path / "ds", sequences_per_scene=1, num_frames=2, width=32,
                        height=24, max_samples=1, use_denoising=False, threads=1, jobs=2,
                        autoexec=True, retries=2, on_progress=events.append)
    assert s["exit_code"] == 1 and s["done"] == ["basic"]
    assert s["scenes"]["crash_on_render"]["attempts"] == 3  # the first try and 2 retries
    assert s["failed"]["crash_on_render"].startswith("worker was killed by SIGKILL")
    assert Counter(e["event"] for e in events)["retry"] == 2
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    status = {m["name"]: m["status"] for m in manifest["scenes"]}
    assert status == {"basic": "complete", "crash_on_render": "failed"}


def _worker_pids(ds: Path) -> list[int]:
    pids = []
    for log in sorted(ds.glob(".dataset_forge/logs/*/worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if '"worker_started"' in line:
                pids.append(json.loads(line.split(" ", 1)[1])["pid"])
    return pids


def _events(ds: Path, kind: str) -> list[dict]:
    out = []
    for log in sorted(ds.glob(".dataset_forge/logs/*/worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("@dataset_forge ") and f'"event": "{kind}"' in line:
                out.append(json.loads(line.split(" ", 1)[1]))
    return out


def _journal_total(ds: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in ds.glob(f"renders/*/*/{JOURNAL_NAME}"))


def _wait_for(cond, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.02)


SLOW = ["--width", "64", "--height", "48", "--max-samples", "32", "--no-use-denoising",
        "--threads", "1", "--depths", "--flows", "--no-debug"]
SLOW_OPTIONS = dict(width=64, height=48, max_samples=32, use_denoising=False, threads=1,
                    depths=True, flows=True, debug=False)


def _frames_done(ds: Path) -> int:
    """``frame_done`` events the workers of the runs into ``ds`` printed so far (their logs)."""
    return len(_events(ds, "frame_done"))


def test_sigkill_a_worker_mid_sequence_retry_renders_only_the_rest(good_dir, tmp_path, caplog):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    shutil.copy(good_dir / "basic.blend", scenes / "basic.blend")
    ds = tmp_path / "datasets"
    pids: dict[int, int] = {}
    at_kill: list[int] = []

    def kill_at_third_frame(e):
        if e["event"] == "worker_started":
            pids[e["slot"]] = e["pid"]
        if e["event"] == "frame_done" and e["frame"] == 3 and not at_kill:
            os.kill(pids[e["slot"]], signal.SIGKILL)
            _wait_for(lambda: not _alive(pids[e["slot"]]), timeout=10)
            at_kill.append(_journal_total(ds))

    s = create_datasets(scenes, ds, num_frames=12, retries=1, on_progress=kill_at_third_frame,
                        **SLOW_OPTIONS)
    assert s["ok"], s["failed"]
    done_at_kill = at_kill[0]
    assert 3 <= done_at_kill < 12
    seq = ds / "renders" / "basic" / "001-00001-00013"
    check_sequence(seq, range(1, 13), (64, 48), gt=False)  # one journal line per frame
    assert s["scenes"]["basic"]["attempts"] == 2
    assert any(r.levelname == "WARNING" and "worker was killed by SIGKILL" in r.getMessage()
               for r in caplog.records if r.name == "dataset_forge")
    # The retry skipped what the killed worker had finished and rendered only the rest; over the
    # whole run every frame was rendered once.
    started = _events(ds, "job_started")
    assert [e["todo"] for e in started] == [12, 12 - done_at_kill]
    assert len(_events_frames_after(ds)) == 12 - done_at_kill
    assert not set(_events_frames_after(ds)) & {e["frame"] for e in _events(ds, "frame_skipped")}
    rendered = Counter(e["frame"] for e in _events(ds, "frame_done"))
    assert set(rendered.values()) == {1} and set(rendered) <= set(range(1, 13))
    # Over the run each frame was rendered once; one frame may count as skipped if the kill fell
    # between its journal line and its event.
    assert s["frames_rendered"] + s["frames_skipped"] == 12 and s["frames_skipped"] <= 1


def _events_frames_after(ds: Path) -> list[int]:
    """Frames rendered by the second worker process."""
    logs = sorted(ds.glob(".dataset_forge/logs/*/worker-*.log"))
    return [json.loads(line.split(" ", 1)[1])["frame"] for line in logs[-1].read_text().splitlines()
            if line.startswith("@dataset_forge ") and '"event": "frame_done"' in line]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


@pytest.mark.smoke
def test_kill_the_whole_run_then_rerun_resumes_frame_by_frame(good_dir, tmp_path):
    ds = tmp_path / "datasets"
    cmd = [sys.executable, "-m", "dataset_forge", "create-datasets", "--scenes-dir", str(good_dir),
           "--datasets-dir", str(ds), "--num-frames", "6", "--jobs", "2", "--json", *SLOW]
    proc = subprocess.Popen(cmd, env=bpy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: _frames_done(ds) >= 3)
    proc.kill()  # SIGKILL: no cleanup at all in the runner
    proc.wait()
    workers = _worker_pids(ds)
    assert workers
    # The workers are the Blender of this interpreter (the smoke run repeats this on 4.5 and 4.2).
    assert {e["blender"].split()[0] for e in _events(ds, "worker_started")} == {version("bpy")}
    # The workers notice that their runner is gone and stop (they must not keep writing into
    # folders the next run renders into).
    _wait_for(lambda: not any(_alive(p) for p in workers), timeout=10)
    done_before = _journal_total(ds)
    assert 3 <= done_before < 18
    assert not (ds / "manifest.json").exists()
    # The plan was written before anything rendered.
    assert [j["scene"] for j in json.loads((ds / "plan.json").read_text())["jobs"]] == GOOD
    p = subprocess.run(cmd, env=bpy_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    # Exactly the journaled frames were skipped; the rest were rendered once.
    assert (s["frames_skipped"], s["frames_rendered"]) == (done_before, 18 - done_before)
    for scene in GOOD:
        check_sequence(ds / "renders" / scene / "001-00001-00007", range(1, 7), (64, 48), gt=False)
        t = json.loads((ds / "renders" / scene / "001-00001-00007" / "transforms.json").read_text())
        for fr in t["frames"]:
            for key in ("depth_file_path", "flow_file_path"):
                assert _read_exr(ds / "renders" / scene / "001-00001-00007" / fr[key])
    assert json.loads((ds / "manifest.json").read_text())["totals"]["frames_complete"] == 18


def test_ctrl_c_stops_workers_and_writes_the_manifest(good_dir, tmp_path):
    ds = tmp_path / "datasets"
    cmd = [sys.executable, "-m", "dataset_forge", "create-datasets", "--scenes-dir", str(good_dir),
           "--datasets-dir", str(ds), "--num-frames", "6", "--jobs", "2", *SLOW]
    proc = subprocess.Popen(cmd, env=bpy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(lambda: _frames_done(ds) >= 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("dataset: interrupted; finished frames are kept, rerun the same "
                                 "command to resume")
    assert not any(_alive(p) for p in _worker_pids(ds))
    manifest = json.loads((ds / "manifest.json").read_text())
    assert manifest["totals"]["frames_complete"] == _journal_total(ds)
    assert 2 <= manifest["totals"]["frames_complete"] < 18


def test_workers_are_recycled_after_their_frame_budget(good_dir, tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    shutil.copy(good_dir / "orbit.blend", scenes / "orbit.blend")
    events: list[dict] = []
    # Workers started as a Blender binary would be (the stand-in): Blender's own command line.
    s = create_datasets(scenes, tmp_path / "ds", sequences_per_scene=1, num_frames=5, width=32,
                        height=24, max_samples=1, use_denoising=False, threads=1,
                        recycle_frames=2, executable=str(REPO / "tools" / "blender"),
                        on_progress=events.append)
    assert s["ok"]
    kinds = Counter(e["event"] for e in events)
    assert kinds["worker_recycled"] == 2 and kinds["worker_started"] == 3
    assert kinds["frame_done"] == 5
    assert (s["frames_rendered"], s["frames_skipped"]) == (5, 0)
    started = [e for e in events if e["event"] == "job_started"]
    assert [e["todo"] for e in started] == [5, 3, 1]
    check_sequence(tmp_path / "ds" / "renders" / "orbit" / "001-00001-00006", range(1, 6), (32, 24),
                   gt=False)


def test_gpu_pinning_reaches_the_workers(good_dir, tmp_path):
    """--gpus 1,0 with two workers: slot 0 sees only GPU 1, slot 1 only GPU 0, both select device
    0 of what they see (this machine has no GPU, so both fall back to the CPU and say so)."""
    events: list[dict] = []
    s = create_datasets(good_dir, tmp_path / "ds", sequences_per_scene=1, num_frames=1, width=32,
                        height=24, max_samples=1, use_denoising=False, threads=1, jobs=2,
                        gpus="1,0", on_progress=events.append)
    assert s["ok"]
    dev = [e for e in events if e["event"] == "device"]
    assert len(dev) == 3
    assert {(e["slot"], e["cuda_visible_devices"], e["gpu_index"]) for e in dev} <= {
        (0, "1", 0), (1, "0", 0)}
    assert {e["slot"] for e in dev} == {0, 1}
    assert all(e["gpu"] is False and "rendering on the CPU" in e["device"] for e in dev)


def test_frozen_worker_is_killed_and_retried_slow_frames_are_not(good_dir, tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    shutil.copy(good_dir / "basic.blend", scenes / "basic.blend")
    events: list[dict] = []
    pids: dict[int, int] = {}
    frozen: list[int] = []

    def freeze_first_worker(e):
        events.append(e)
        if e["event"] == "worker_started":
            pids[e["slot"]] = e["pid"]
        if e["event"] == "job_started" and not frozen:
            frozen.append(pids[e["slot"]])
            os.kill(pids[e["slot"]], signal.SIGSTOP)  # a hung process: alive, silent

    # Frames of about 0.3 s here, so that the worker is still rendering when it is frozen.
    s = create_datasets(scenes, tmp_path / "ds", sequences_per_scene=1, num_frames=6, width=64,
                        height=48, max_samples=32, use_denoising=False, threads=1, timeout=3.0,
                        retries=1, on_progress=freeze_first_worker)
    assert s["ok"] and s["scenes"]["basic"]["attempts"] == 2
    kinds = Counter(e["event"] for e in events)
    assert (kinds["worker_timeout"], kinds["retry"], kinds["worker_started"]) == (1, 1, 2)
    timeout = next(e for e in events if e["event"] == "worker_timeout")
    assert timeout["seconds"] >= 3
    # The retry skipped what was journaled before the freeze and rendered the rest, once.
    started = [e for e in events if e["event"] == "job_started"]
    first = sum(1 for e in events if e["event"] == "frame_done" and e["slot"] == started[0]["slot"]
                and events.index(e) < events.index(started[1]))
    assert started[0]["todo"] == 6 and started[1]["todo"] in (6 - first, 5 - first)
    check_sequence(tmp_path / "ds" / "renders" / "basic" / "001-00001-00007", range(1, 7), (64, 48),
                   gt=False)

    # One frame that renders for longer than the timeout is not silence: Cycles' progress
    # keeps the worker alive (about 4 s at 96x96 px, 200 samples, one thread; timeout 1.5 s).
    events.clear()
    s = create_datasets(scenes, tmp_path / "ds2", sequences_per_scene=1, num_frames=1, width=96,
                        height=96, max_samples=200, adaptive_threshold=0.0, use_denoising=False,
                        threads=1, timeout=1.5, retries=0, on_progress=events.append)
    frame = next(e for e in events if e["event"] == "frame_done")
    assert s["ok"] and frame["seconds"] > 1.5, frame
    assert not any(e["event"] == "worker_timeout" for e in events)


def test_unwritable_output_folder_is_one_clear_line(good_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["create-datasets", "--scenes-dir", str(good_dir), "--datasets-dir",
                     str(blocker / "datasets")]) == 1
    err = capsys.readouterr().err
    assert err == (f"dataset: error: cannot write to the output folder {blocker / 'datasets'} (Not a "
                   "directory); choose a folder you can write to, or fix its permissions\n")
    assert cli.main(["render-animation", str(good_dir / "basic.blend"), str(blocker / "seq")]) == 1
    assert capsys.readouterr().err.startswith("dataset: error: cannot write to the output folder")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert cli.main(["create-datasets", "--scenes-dir", str(good_dir), "--datasets-dir",
                         str(ro)]) == 1
        assert "(Permission denied)" in capsys.readouterr().err


def test_a_second_run_on_the_same_folder_is_refused(good_dir, tmp_path, capsys):
    from dataset_forge.engine.session import RunLock

    ds = tmp_path / "datasets"
    lock = RunLock(ds).acquire()  # as a run in progress holds it
    argv = ["create-datasets", "--scenes-dir", str(good_dir), "--datasets-dir", str(ds),
            "--num-frames", "1", "--width", "32", "--height", "24", "--max-samples", "1"]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == (
        f"dataset: error: another Dataset Forge run (pid {os.getpid()}) is writing into {ds}; wait "
        "for it to finish or stop it, then rerun to resume\n")
    assert not (ds / "renders").exists()
    lock.release()
    assert cli.main(argv) == 0
    assert len(list(ds.glob("renders/*/*/frames/*.png"))) == 3


def test_render_animation_command(good_dir, tmp_path):
    out = tmp_path / "seq"
    p = subprocess.run([sys.executable, "-m", "dataset_forge", "render-animation",
                        str(good_dir / "basic.blend"), str(out), "--frame-start", "3",
                        "--frame-end", "5", "--width", "32", "--height", "24", "--max-samples", "1",
                        "--threads", "1"], env=bpy_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"3 frame(s) rendered, 0 already complete, into {out}"
    check_sequence(out, range(3, 6), (32, 24), gt=False)


def test_sigterm_stops_like_ctrl_c_and_the_rerun_resumes_exactly(good_dir, tmp_path):
    """SIGTERM (and SIGHUP) mid-run, sent on the workers' second ``frame_done``: workers stopped,
    manifest written, one message, exit code 128 + 15; the same command then renders exactly the
    frames that were not journaled."""
    ds = tmp_path / "datasets"
    cmd = [sys.executable, "-m", "dataset_forge", "create-datasets", "--scenes-dir", str(good_dir),
           "--datasets-dir", str(ds), "--num-frames", "6", "--jobs", "2", "--json", *SLOW]
    proc = subprocess.Popen(cmd, env=bpy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(lambda: _frames_done(ds) >= 2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM == 143, err
    assert out == ""  # no summary: the run did not finish
    message = ("dataset: terminated by SIGTERM; finished frames are kept, rerun the same command "
               "to resume")
    assert err.rstrip().endswith(message) and err.count(message) == 1
    assert not any(_alive(p) for p in _worker_pids(ds))
    journaled = _journal_total(ds)
    manifest = json.loads((ds / "manifest.json").read_text())
    assert manifest["totals"]["frames_complete"] == journaled and 2 <= journaled < 18
    p = subprocess.run(cmd, env=bpy_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert (s["frames_skipped"], s["frames_rendered"]) == (journaled, 18 - journaled)
    for scene in GOOD:
        check_sequence(ds / "renders" / scene / "001-00001-00007", range(1, 7), (64, 48), gt=False)


def test_sighup_ends_a_render_animation_like_ctrl_c(good_dir, tmp_path):
    out = tmp_path / "seq"
    cmd = [sys.executable, "-m", "dataset_forge", "render-animation", str(good_dir / "basic.blend"),
           str(out), "--frame-start", "1", "--frame-end", "12", *SLOW]
    proc = subprocess.Popen(cmd, env=bpy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(lambda: _frames_done(out) >= 1)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGHUP, err
    assert err.rstrip().endswith("dataset: terminated by SIGHUP; finished frames are kept, rerun "
                                 "the same command to resume")
    assert not any(_alive(p) for p in _worker_pids(out))
    summary = json.loads(next(out.glob(".dataset_forge/logs/*/summary.json")).read_text())
    assert summary["cancelled"] and summary["exit_code"] == 1


def test_two_render_animations_on_one_folder_the_second_is_refused(good_dir, tmp_path, capsys):
    out = tmp_path / "seq"
    first = subprocess.Popen([sys.executable, "-m", "dataset_forge", "render-animation",
                              str(good_dir / "basic.blend"), str(out), "--frame-start", "1",
                              "--frame-end", "12", *SLOW], env=bpy_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _frames_done(out) >= 1)  # the first one renders
        rc = cli.main(["render-animation", str(good_dir / "basic.blend"), str(out),
                       "--frame-start", "1", "--frame-end", "12", *SLOW])
        assert rc == 1
        assert capsys.readouterr().err == (
            f"dataset: error: another Dataset Forge run (pid {first.pid}) is writing into {out}; "
            "wait for it to finish or stop it, then rerun to resume\n")
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    # Only the first run's worker ever rendered (one log folder, one journal line per frame).
    assert len(list(out.glob(".dataset_forge/logs/*"))) == 1
    counts = _journal_counts(out)
    assert set(counts.values()) == {1}


def test_python_api_progress_callback_gets_typed_frame_events(good_dir, tmp_path, caplog):
    from dataset_forge import render_animation
    from dataset_forge.wire.protocol import SUMMARY_KEYS, Ev

    caplog.set_level("INFO", logger="dataset_forge")
    events: list[dict] = []
    out = tmp_path / "seq"
    s = render_animation(good_dir / "basic.blend", out, frame_start=2, frame_end=4, width=32,
                         height=24, max_samples=1, threads=1, on_progress=events.append)
    assert s["ok"] and tuple(s) == SUMMARY_KEYS
    frames = [e for e in events if e["event"] == Ev.FRAME_DONE]
    assert [(e["scene"], e["job"], e["frame"]) for e in frames] == [
        ("basic", "001-00002-00005", f) for f in (2, 3, 4)]
    assert all(e["seconds"] > 0 and e["slot"] == 0 for e in frames)
    prog = [e for e in events if e["event"] == Ev.PROGRESS]
    assert [p["frames_done"] for p in prog] == sorted(p["frames_done"] for p in prog)
    assert prog[-1]["done"] and prog[-1]["fraction"] == 1.0 and prog[-1]["frames_total"] == 3
    # The messages went to the standard logger, not to print().
    assert [r.getMessage() for r in caplog.records if r.name == "dataset_forge"][-1] == "done basic"
    # The same keys as create_datasets, with no plan or manifest for one sequence.
    assert (s["done"], s["failed"], s["plan"], s["manifest"], s["executor"]) == (
        ["basic"], {}, None, None, "local")
    assert json.loads((Path(s["logs"]) / "summary.json").read_text()) == s


def test_closed_standard_streams_do_not_end_a_run(good_dir, tmp_path):
    """``2>&- >&-``: Python has no sys.stderr / sys.stdout; the run renders and exits 0."""
    out = tmp_path / "seq"
    cmd = [sys.executable, "-m", "dataset_forge", "render-animation", str(good_dir / "basic.blend"),
           str(out), "--frame-start", "1", "--frame-end", "2", "--width", "32", "--height", "24",
           "--max-samples", "1", "--threads", "1"]
    p = subprocess.run(["bash", "-c", 'exec "$@" >&- 2>&-', "bash", *cmd], env=bpy_env(),
                       timeout=300)
    assert p.returncode == 0
    check_sequence(out, range(1, 3), (32, 24), gt=False)
    # A failing run still says so through its exit code.
    p = subprocess.run(["bash", "-c", 'exec "$@" >&- 2>&-', "bash", *cmd[:4],
                        str(tmp_path / "missing.blend"), str(tmp_path / "seq2")], env=bpy_env(),
                       timeout=300)
    assert p.returncode == 1
