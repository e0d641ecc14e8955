# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's pure parts, without Blender: discovery names and order, the plan, GPU pinning,
progress text."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dataset_forge.engine.discovery import DiscoveryError, SceneInfo, find_blends, safe_name, scene_names
from dataset_forge.engine.launch import gpu_for_slot, gpu_pinning
from dataset_forge.engine.launchers import worker_settings
from dataset_forge.engine.plan import build_plan
from dataset_forge.engine.progress import ProgressPrinter, format_bar, format_summary
from dataset_forge.settings import Settings
from dataset_forge.text import bar, format_duration


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"BLENDER")


def test_find_blends_order_depth_and_backups(tmp_path):
    _touch(tmp_path, "scene10.blend", "scene2.blend", "Scene1.blend", "scene2.blend1",
           "notes.txt", ".hidden.blend", "b/scene2.blend", "a10/x.blend", "a9/x.blend",
           "b/deep/too_deep.blend", ".git/y.blend", "b/old.blend2")
    rels = [p.relative_to(tmp_path).as_posix() for p in find_blends(tmp_path)]
    assert rels == ["a9/x.blend", "a10/x.blend", "b/scene2.blend", "Scene1.blend", "scene2.blend",
                    "scene10.blend"]
    assert all(Path(p).is_absolute() for p in find_blends(tmp_path))


def test_scene_names_unique_stable_and_safe(tmp_path):
    _touch(tmp_path, "scene2.blend", "b/scene2.blend", "my scene (v2).blend", "CON.blend",
           "ünï cødé.blend", "a/Scene2.blend", "x/y z.blend", "x_y_z.blend")
    blends = find_blends(tmp_path)
    names = dict(zip((p.relative_to(tmp_path).as_posix() for p in blends),
                     scene_names(blends, tmp_path)))
    assert names == {
        "a/Scene2.blend": "a_Scene2",  # three files called scene2 (any case): named by path
        "b/scene2.blend": "b_scene2",
        "CON.blend": "_CON",  # a Windows device name
        "my scene (v2).blend": "my scene (v2)",  # only characters illegal somewhere change
        "scene2.blend": "scene2",
        "x/y z.blend": "y z",
        "x_y_z.blend": "x_y_z",
        "ünï cødé.blend": "ünï cødé",  # letters of every script are kept
    }
    assert len({n.lower() for n in names.values()}) == len(names)
    # Stable: adding an unrelated scene renames nobody.
    _touch(tmp_path, "zzz.blend")
    again = dict(zip((p.relative_to(tmp_path).as_posix() for p in find_blends(tmp_path)),
                     scene_names(find_blends(tmp_path), tmp_path)))
    assert {k: again[k] for k in names} == names
    # Same sanitised name from different stems: numbered in natural order.
    assert scene_names([tmp_path / "a:b.blend", tmp_path / "a_b.blend"], tmp_path) == ["a_b", "a_b-2"]
    # A linked .blend is named by where the link sits, not by its target.
    (tmp_path / "c").mkdir()
    (tmp_path / "elsewhere").mkdir()
    _touch(tmp_path / "elsewhere", "scene2.blend")
    (tmp_path / "c" / "scene2.blend").symlink_to(tmp_path / "elsewhere" / "scene2.blend")
    linked = find_blends(tmp_path)
    assert "c_scene2" in scene_names(linked, tmp_path)
    assert safe_name("x" * 200) == "x" * 80
    assert safe_name("..") == safe_name("") == safe_name("***") == "scene"


def test_missing_or_empty_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DiscoveryError, match="does not exist or is not a folder"):
        find_blends(tmp_path / "nope")
    from dataset_forge.engine.discovery import discover

    with pytest.raises(DiscoveryError, match=r"no \.blend files in .* \(\.blend1 backups are ignored\)"):
        discover(tmp_path)


def test_gpu_assignment_round_robin_and_env():
    assert [gpu_for_slot(s, [0, 1]) for s in range(4)] == [0, 1, 0, 1]  # --jobs 4, two per GPU
    assert [gpu_for_slot(s, [2, 5, 7]) for s in range(3)] == [2, 5, 7]
    assert gpu_for_slot(3, []) is None
    env, index = gpu_pinning(5)
    assert env == {"CUDA_VISIBLE_DEVICES": "5", "HIP_VISIBLE_DEVICES": "5",
                   "ONEAPI_DEVICE_SELECTOR": "level_zero:5"}
    assert index == 0  # the only visible device of the backend
    assert gpu_pinning(None) == ({}, None)
    assert Settings(gpus="0, 1").gpu_list == [0, 1]


def test_worker_env_gives_openblas_one_thread_unless_the_caller_chose():
    from dataset_forge.engine.launch import worker_env

    env = worker_env({"PATH": "/bin"}, gpu=1, user_resources="/tmp/u")
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["BLENDER_USER_RESOURCES"] == "/tmp/u"
    assert worker_env({"OPENBLAS_NUM_THREADS": "4"})["OPENBLAS_NUM_THREADS"] == "4"


def test_worker_pinned_device_is_the_only_visible_one():
    from dataset_forge.render_passes.devices import choose_backend

    # What Cycles lists in a worker pinned with CUDA_VISIBLE_DEVICES=1 on a 2-GPU machine: one
    # CUDA and one OptiX device (the same card); index 0 selects it for either backend.
    visible = {"OPTIX": ["RTX B"], "CUDA": ["RTX B"]}
    c = choose_backend(visible, "AUTO", gpu_pinning(1)[1])
    assert (c.backend, c.devices, c.index) == ("OPTIX", ("RTX B",), 0)
    c = choose_backend(visible, "CUDA", gpu_pinning(1)[1])
    assert (c.backend, c.devices) == ("CUDA", ("RTX B",))


def _infos(tmp_path):
    return [SceneInfo("a", str(tmp_path / "a.blend"), 1, 24, 24.0, "Camera"),
            SceneInfo("short", str(tmp_path / "short.blend"), 1, 2, 24.0, "Camera"),
            SceneInfo("nocam", str(tmp_path / "nocam.blend"), 1, 24, 24.0, None,
                      "nocam.blend: scene 'x' has no active camera; set one"),
            SceneInfo("b", str(tmp_path / "b.blend"), 10, 20, 30.0, "Cam")]


def test_build_plan_jobs_and_errors(tmp_path):
    s = Settings(sequences_per_scene=2, num_frames=3, keyframe_multiplier=2.0)
    plan = build_plan(tmp_path, tmp_path / "ds", s, scenes=_infos(tmp_path)).to_dict()  # as written
    assert plan["settings"]["keyframe_multiplier"] == 2.0 and plan["seed"] == 0
    assert [j["scene"] for j in plan["jobs"]] == ["a", "b"]
    a = plan["jobs"][0]["sequences"]
    assert [(q["id"], q["frame_start"], q["frame_end"]) for q in a] == [
        ("002-00002-00005", 2, 4), ("002-00025-00028", 25, 27)]
    assert a[0]["out_dir"] == str((tmp_path / "ds" / "renders" / "a" / "002-00002-00005").resolve())
    b = plan["jobs"][1]["sequences"]  # 10..20 stretched to 20..40: 21 frames, step 10
    assert [(q["frame_start"], q["frame_end"]) for q in b] == [(20, 22), (30, 32)]
    errors = {sc["name"]: sc["error"] for sc in plan["scenes"]}
    assert errors["a"] is None and errors["b"] is None
    assert errors["nocam"].startswith("nocam.blend: scene 'x' has no active camera")
    assert errors["short"].startswith("scene 'short' (short.blend, frames 1..2, keyframe_multiplier 2)")
    assert "do not fit in 3 frames (2..4)" in errors["short"]  # 1..2 stretched by 2
    assert "the largest valid num_frames is 1" in errors["short"]
    assert {sc["name"]: sc["stretched_range"] for sc in plan["scenes"]}["b"] == [20, 40]
    assert not (tmp_path / "ds").exists()  # building a plan writes nothing


def test_progress_text():
    assert [format_duration(x) for x in (None, -1.0, 4.4, 65, 3725)] == [
        "--:--", "--:--", "0:04", "1:05", "1:02:05"]
    assert [bar(f, 4) for f in (0.0, 0.5, 1.0, 2.0)] == ["[----]", "[##--]", "[####]", "[####]"]
    e = {"event": "progress", "frames_done": 10, "frames_skipped": 5, "frames_total": 60,
         "fraction": 0.25, "eta": 90.0, "fps": 2.0, "workers": 2, "scenes_total": 3,
         "scenes_finished": 1, "done": False}
    assert format_bar(e, width=8) == ("[##------]  25.0%  15/60 frames (5 already done)  2.00 frames/s"
                                      "  ETA 1:30  scenes 1/3  workers 2")
    out = io.StringIO()
    p = ProgressPrinter(out, tty=False, interval=3600)
    p(e)
    p({**e, "frames_done": 11})  # within the interval: not printed
    p({"event": "retry", "scene": "s", "attempt": 2, "reason": "worker was killed by SIGKILL"})
    p({**e, "frames_done": 45, "frames_skipped": 15, "fraction": 1.0, "done": True, "eta": 0})
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[######------------------]  25.0%  15/60 frames")
    assert lines[1] == "retrying s (attempt 2): worker was killed by SIGKILL"
    assert lines[2].startswith("[########################] 100.0%  60/60 frames")


def test_progress_always_names_the_render_device_once_per_change():
    out = io.StringIO()
    p = ProgressPrinter(out, tty=False)
    cpu = "no GPU found (tried OPTIX, CUDA, HIP, METAL, ONEAPI): rendering on the CPU"
    p({"event": "device", "scene": "a", "device": cpu, "gpu": False})
    p({"event": "device", "scene": "b", "device": cpu, "gpu": False})
    p({"event": "device", "scene": "c", "device": "rendering on OPTIX: GPU 0", "gpu": True})
    assert out.getvalue().splitlines() == [f"a: {cpu}", "c: rendering on OPTIX: GPU 0"]


def test_format_summary_lists_every_scene():
    summary = {"done": ["a"], "skipped": ["b"], "failed": {"c": "c.blend: broken"},
               "frames_rendered": 6, "frames_skipped": 6, "seconds": 3.2,
               "scenes": {"a": {"status": "done", "sequences": [{"rendered": 6, "skipped": 0}]},
                          "b": {"status": "skipped", "sequences": [{"rendered": 0, "skipped": 6}]},
                          "c": {"status": "failed", "errors": ["c.blend: broken"], "sequences": []}}}
    assert format_summary(summary).splitlines() == [
        "1 scene(s) done, 1 skipped (already complete), 1 failed; 6 frame(s) rendered, 6 already "
        "complete, in 3.2 s",
        "  DONE    a: 1 sequence(s), 6 frame(s) rendered, 0 already complete",
        "  SKIPPED b: 1 sequence(s), 0 frame(s) rendered, 6 already complete",
        "  FAILED  c: c.blend: broken"]


def test_progress_on_a_terminal_redraws_one_line():
    e = {"event": "progress", "frames_done": 1, "frames_skipped": 0, "frames_total": 4,
         "fraction": 0.25, "eta": 3.0, "fps": 1.0, "workers": 1, "scenes_total": 1,
         "scenes_finished": 0, "done": False}
    out = io.StringIO()
    p = ProgressPrinter(out, tty=True)
    p(e)
    p({"event": "scene_failed", "scene": "s", "reasons": ["s.blend: no camera"]})
    p({**e, "frames_done": 4, "fraction": 1.0, "eta": 0.0, "done": True})
    p.close()
    text = out.getvalue()
    # Bar, then the failure on its own line (bar erased first), then the final bar and a newline.
    assert text.startswith("\r\033[K[######------------------]  25.0%  1/4 frames")
    assert "\r\033[KFAILED s: s.blend: no camera\n\r\033[K[########################] 100.0%" in text
    assert text.endswith("workers 1\n") and text.count("\n") == 2


def test_workers_share_the_cores():
    s = Settings().to_dict()
    assert worker_settings(s, 4, cpu_count=16)["threads"] == 4
    assert worker_settings(s, 3, cpu_count=16)["threads"] == 5
    assert worker_settings(s, 32, cpu_count=16)["threads"] == 1
    assert worker_settings(s, 1, cpu_count=16)["threads"] == 0  # one worker: all cores
    assert worker_settings({**s, "threads": 2}, 4, cpu_count=16)["threads"] == 2  # as asked


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(done: int, total: int = 4, finished: bool = False) -> dict:
    return {"event": "progress", "frames_done": done, "frames_skipped": 0, "frames_total": total,
            "fraction": done / total, "eta": 1.0, "fps": 1.0, "workers": 1, "scenes_total": 1,
            "scenes_finished": int(finished), "done": finished}


def test_console_draws_the_cli_line_on_a_terminal_and_prints_log_messages_above_it():
    from dataset_forge.engine.progress import LOG, console

    out, got = _Terminal(), []
    handlers = list(LOG.handlers)
    retry = {"event": "retry", "scene": "s", "attempt": 2, "reason": "worker was killed by SIGKILL"}
    with console(got.append, stream=out, show_messages=True) as report:
        report(_progress(1))
        report(retry)
        report(_progress(4, finished=True))
    assert got == [_progress(1), retry, _progress(4, finished=True)]  # the caller's callback
    text = out.getvalue()
    assert text.startswith("\r\033[K[######------------------]  25.0%  1/4 frames")
    assert "\r\033[Kretrying s (attempt 2): worker was killed by SIGKILL\n\r\033[K[####" in text
    assert text.endswith("workers 1\n")
    assert LOG.handlers == handlers  # the run's handler is gone


def test_console_without_a_terminal_draws_nothing_and_only_logs(caplog):
    from dataset_forge.engine.progress import console

    caplog.set_level("INFO", logger="dataset_forge")
    out = io.StringIO()
    with console(stream=out) as report:
        report(_progress(1))
        report({"event": "scene_failed", "scene": "s", "reasons": ["s.blend: no camera"]})
    assert out.getvalue() == ""
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "FAILED s: s.blend: no camera")]


def test_a_closed_or_missing_stream_is_never_written():
    from dataset_forge.engine.progress import is_terminal

    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(None)
    for stream in (closed, None):
        p = ProgressPrinter(stream, tty=True)
        p(_progress(1))
        p({"event": "scene_done", "scene": "s", "status": "done"})
        p.close()


def test_sigterm_and_sighup_become_one_interrupt_and_handlers_are_restored():
    import signal

    from dataset_forge.engine.session import Interrupted, interrupt_on_signals

    with pytest.raises(Interrupted) as info:
        with interrupt_on_signals():
            signal.raise_signal(signal.SIGTERM)
    assert (info.value.signum, info.value.exit_code, info.value.name) == (15, 143, "SIGTERM")
    assert isinstance(info.value, KeyboardInterrupt)  # what Ctrl-C's cleanup paths catch
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with pytest.raises(Interrupted):
        with interrupt_on_signals():
            try:
                signal.raise_signal(signal.SIGHUP)
            finally:
                signal.raise_signal(signal.SIGHUP)  # a second one during the cleanup: ignored
    # nohup: an ignored SIGHUP stays ignored.
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with interrupt_on_signals():
            signal.raise_signal(signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


def test_every_event_kind_is_named_in_the_wire_docstring():
    from dataset_forge.wire import events
    from dataset_forge.wire.protocol import Ev

    assert [k.value for k in Ev if f"``{k.value}``" not in events.__doc__] == []


@pytest.mark.parametrize("log", ["/dev/full", "missing-folder/worker.log"])
def test_a_worker_log_that_cannot_be_written_loses_no_event(tmp_path, caplog, log):
    """A log on a full disk (/dev/full: every write fails) or one that cannot be opened: one
    warning naming it, and every event is still read."""
    import dataclasses
    import time

    from dataset_forge.engine.launchers import LocalLauncher, write_spec
    from dataset_forge.engine.ledger import Job
    from fake_worker import write_fake_blender

    out = tmp_path / "seq"
    job = Job(blend=str(tmp_path / "good.blend"), scene_name="good", settings={}, sequences=[
        {"id": "s1", "out_dir": str(out), "frame_start": 1, "frame_end": 3}])
    launcher = LocalLauncher(executable=write_fake_blender(tmp_path))
    spec = write_spec(tmp_path, 1, job, 0, launcher.placement(0, job), 0)
    log_path = Path(log) if log.startswith("/") else tmp_path / log
    spec = dataclasses.replace(spec, log_path=log_path)
    events, exits = [], []
    with caplog.at_level("WARNING", logger="dataset_forge"):
        handle = launcher.start(spec)
        deadline = time.monotonic() + 60  # a safety net only: the loop ends on the exit
        while not exits and time.monotonic() < deadline:
            new, exits = launcher.poll([handle])
            events += [e for _, e in new]
            time.sleep(0.01)
    assert [x.rc for x in exits] == [0]
    assert [e["frame"] for e in events if e["event"] == "frame_done"] == [1, 2, 3]
    assert events[-1]["event"] == "worker_done"
    warnings = [r.getMessage() for r in caplog.records if r.name == "dataset_forge"]
    why = "No space left" if log == "/dev/full" else "No such file"
    assert len(warnings) == 1 and str(log_path) in warnings[0] and why in warnings[0], warnings
