# SPDX-License-Identifier: GPL-3.0-or-later
"""The panel's run controller without Blender: a real plan, session, runner and local launcher,
whose worker is the fake Blender of ``fake_worker.py`` (real PNG frames, the real journal, the
event wire format). What the panel shows while a run goes on (busy slots, messages, status), the
final report of a clean, a failing and an aborted run, the folder lock and the one active run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dataset_forge.dataset import layout
from dataset_forge.engine import controller
from dataset_forge.engine.controller import RunController
from dataset_forge.engine.discovery import SceneInfo
from dataset_forge.engine.plan import PlanError, build_plan
from dataset_forge.engine.session import RunSession
from dataset_forge.settings import Settings
from fake_worker import write_fake_blender

FRAMES = 3


def _controller(tmp_path: Path, names: list[str], frames: int = FRAMES,
                rejected: dict[str, str] | None = None) -> RunController:
    """A controller over a plan of one sequence of ``frames`` frames per scene of ``names`` (the
    fake worker's behaviour is in the name), plus scenes the plan rejects (name: reason)."""
    scenes = tmp_path / "scenes"
    scenes.mkdir(exist_ok=True)
    infos = []
    for n in [*names, *(rejected or {})]:
        blend = scenes / f"{n}.blend"
        blend.write_bytes(b"BLENDER-v405 not a real file")
        infos.append(SceneInfo(name=n, blend=str(blend), frame_start=1, frame_end=frames, fps=24.0,
                               camera="Camera", error=(rejected or {}).get(n)))
    settings = Settings(executable=write_fake_blender(tmp_path), num_frames=frames, jobs=1,
                        retries=1)
    plan = build_plan(scenes, tmp_path / "datasets", settings, scenes=infos)
    return RunController(RunSession.for_plan(plan, settings), output_dir=plan.datasets_dir)


def _step_until(ctl: RunController, done) -> list[tuple[str, int, int]]:
    """Step until ``done(ctl)``; returns every (scene, frames done, frames total) of a busy slot
    seen on the way. The deadline is a safety net: every wait ends on an event."""
    seen = []
    deadline = time.monotonic() + 120
    while not done(ctl):
        assert time.monotonic() < deadline, "the fake worker did not answer"
        ctl.step()
        seen += [(s.scene, s.frames_done, s.frames_total) for s in ctl.active_slots()]
        time.sleep(0.005)
    return seen


def test_a_clean_run_shows_each_busy_worker_and_reports_every_scene(tmp_path):
    ctl = _controller(tmp_path, ["good_a", "good_b"], rejected={
        "nocam": "nocam.blend: the scene has no camera; add one"})
    assert ctl.scene_errors == {"nocam": "nocam.blend: the scene has no camera; add one"}
    assert not ctl.started and ctl.status == f"Render Dataset: 0 / {2 * FRAMES} frames"
    ctl.start()
    seen = _step_until(ctl, lambda c: c.finished)
    # One slot (jobs=1), a scene at a time, counting up to its frames (a worker may also start
    # and end between two steps: which rows were seen is not asserted).
    assert {s for s, _, _ in seen} <= {"good_a", "good_b"}
    assert all(total == FRAMES and 0 <= done <= FRAMES for _, done, total in seen)
    assert ctl.active_slots() == [] and ctl.progress == 1.0
    texts = [m.text for m in ctl.messages]
    assert "good_a: done" in texts and "good_b: done" in texts
    level, text = ctl.final_report()
    out = ctl.output_dir
    assert level == "WARNING" and ctl.status == text
    assert text == (f"2 scene(s) done, 0 skipped (already complete), 1 failed; {2 * FRAMES} frame(s) "
                    f"rendered, 0 already complete, in {out}. nocam: nocam.blend: the scene has "
                    "no camera; add one")
    assert ctl.messages[-1].text == text
    s = ctl.summary()
    assert sorted(s["done"]) == ["good_a", "good_b"] and list(s["failed"]) == ["nocam"]
    assert (Path(out) / layout.MANIFEST).is_file()
    for scene in ("good_a", "good_b"):
        (seq,) = (Path(out) / layout.RENDERS / scene).iterdir()
        assert sorted(p.name for p in (seq / layout.RGB_FOLDER).iterdir()) == [
            Path(layout.rgb_file(f, "png")).name for f in range(1, FRAMES + 1)]

    # The same plan again: every frame is complete, both scenes are skipped.
    again = _controller(tmp_path, ["good_a", "good_b"])
    again.run_blocking(interval=0.005)
    level, text = again.final_report()
    assert level == "INFO"
    assert text == (f"0 scene(s) done, 2 skipped (already complete), 0 failed; 0 frame(s) rendered, "
                    f"{2 * FRAMES} already complete, in {out}")


def test_a_worker_row_shows_its_planned_frames_from_the_moment_the_scene_opens(tmp_path):
    """Between ``scene_opened`` and ``job_started`` (the worker opening the file) the row already
    counts the scene's planned frames: the panel never shows "0/0"."""
    ctl = _controller(tmp_path, ["gate"])
    ctl.start()
    try:
        seen = _step_until(ctl, lambda c: c.active_slots())
        assert seen[0] == ("gate", 0, FRAMES)
        assert ctl.active_slots()[0].progress == 0.0
    finally:  # the worker waits for the gate: open it whatever happened
        (tmp_path / "scenes" / "gate.blend.go").touch()
    seen = _step_until(ctl, lambda c: c.finished)
    assert all(total == FRAMES for _, _, total in seen)
    assert ctl.final_report()[0] == "INFO"


def test_a_scene_that_cannot_render_is_an_error_line_and_the_report_names_it(tmp_path):
    ctl = _controller(tmp_path, ["broken", "good"])
    ctl.run_blocking(interval=0.005)
    errors = [m.text for m in ctl.messages if m.level == "ERROR"]
    # The worker's own line (permanent: no retry), then the scene's failure.
    assert errors == ["broken: broken.blend: the scene has no camera; add one",
                      "broken: failed: broken.blend: the scene has no camera; add one"]
    assert not [m for m in ctl.messages if "retrying" in m.text]
    assert ctl.scene_errors == {"broken": "broken.blend: the scene has no camera; add one"}
    level, text = ctl.final_report()
    assert level == "WARNING" and text.startswith("1 scene(s) done, 0 skipped (already complete), "
                                                  "1 failed;")
    assert text.endswith(". broken: broken.blend: the scene has no camera; add one")


def test_abort_kills_the_worker_and_reports_the_frames_kept(tmp_path):
    ctl = _controller(tmp_path, ["hang"], frames=4)
    controller.set_active(ctl)
    assert controller.active() is ctl and controller.is_running()
    # The folder is locked for as long as the run lasts: a second run is refused at once.
    with pytest.raises(PlanError, match="another Dataset Forge run"):
        _controller(tmp_path, ["good"])
    ctl.start()
    # The fake worker renders frame 1, then waits: abort once the panel shows that frame.
    _step_until(ctl, lambda c: any(s.frames_done for s in c.active_slots()))
    (seq_id,) = [q["id"] for j in ctl.plan.jobs for q in j.sequences]
    assert ctl.active_slots() == [controller.SlotState(0, "hang", seq_id, 1, 4)]
    assert ctl.active_slots()[0].progress == 0.25 and ctl.current_job == f"hang {seq_id}"
    assert ctl.status == "Render Dataset: 1 / 4 frames"
    ctl.cancel()
    assert ctl.finished and ctl.active_slots() == [] and ctl.kept == (1, 4)
    assert not controller.is_running() and controller.active() is None
    level, text = ctl.final_report()
    assert level == "WARNING"
    assert text == (f"Aborted: kept 1 of 4 frames (1 rendered now, 0 from before) in "
                    f"{ctl.output_dir}; render again to resume")
    controller.release(ctl)
    # The lock went with the run: the rerun starts, and renders only the frames not kept.
    again = _controller(tmp_path, ["hang"], frames=4)
    again.run_blocking(interval=0.005)
    s = again.summary()
    assert (s["frames_rendered"], s["frames_skipped"], s["done"]) == (3, 1, ["hang"])
    assert again.final_report() == ("INFO", (
        f"1 scene(s) done, 0 skipped (already complete), 0 failed; 3 frame(s) rendered, "
        f"1 already complete, in {again.output_dir}"))


def test_the_active_run_is_released_only_by_its_own_controller(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _controller(tmp_path / "a", ["good"])
    b = _controller(tmp_path / "b", ["good"])
    controller.set_active(a)
    controller.set_active(b)  # a newer run replaces the registered one
    controller.release(a)
    assert controller.active() is b
    b.run_blocking(interval=0.005)
    assert controller.active() is None  # finished runs are not active
    controller.release(b)
    controller.set_active(None)
    a.cancel()  # never started: cancelling ends it and releases its folder
    assert a.finished and a.final_report()[1].startswith("Aborted: kept 0 of 3 frames")


def test_a_manifest_that_cannot_be_written_is_said_and_the_run_still_reports(tmp_path):
    """A full disk at the very end: the manifest write fails, the panel says so in one line and
    still gives the run's final report (before, the report itself failed)."""
    ctl = _controller(tmp_path, ["good_a"])
    manifest = Path(ctl.output_dir) / layout.MANIFEST
    manifest.mkdir(parents=True)  # a folder where the file must go: replacing it fails
    ctl.start()
    _step_until(ctl, lambda c: c.finished)
    texts = [m.text for m in ctl.messages]
    assert any(t.startswith("manifest.json not written: ") and str(manifest) in t for t in texts)
    level, text = ctl.final_report()
    assert text.startswith("1 scene(s) done, 0 skipped (already complete), 0 failed; "
                           f"{FRAMES} frame(s) rendered")
    assert ctl.summary()["done"] == ["good_a"] and ctl.messages[-1].text == text
