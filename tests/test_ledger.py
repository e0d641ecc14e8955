# SPDX-License-Identifier: GPL-3.0-or-later
"""The run's bookkeeping without a process: feed the ledger events and exits, read its decisions
(retry, recycle, give up, silent worker), its progress numbers and its summary."""

from __future__ import annotations

import pytest
from dataset_forge.engine.ledger import Job, Ledger
from dataset_forge.wire.protocol import SUMMARY_KEYS, Ev, Status


def _job(name: str = "a", seqs=((1, 4),)) -> Job:
    return Job(blend=f"/s/{name}.blend", scene_name=name, settings={}, sequences=[
        {"id": f"{name}-{a}", "out_dir": f"/d/{name}/{a}", "frame_start": a, "frame_end": b}
        for a, b in seqs])


def _frames(ledger, att, job_id, frames, kind=Ev.FRAME_DONE, now=1.0):
    out = []
    for f in frames:
        out += ledger.on_event(att, {"event": kind.value, "job": job_id, "scene": att.job.scene_name,
                                     "frame": f}, now)
    return out


def test_a_clean_run_books_frames_progress_and_summary():
    led = Ledger([_job("a", ((1, 4), (10, 11))), _job("b")], retries=1, timeout=30)
    led.start(100.0)
    assert led.frames_total == 10 and led.fraction == 0.0
    job = led.next_job()
    att = led.begin(job, slot=0, log="w1.log", now=100.0)
    assert job.attempts == 1 and led.results["a"].status == Status.RUNNING
    assert led.on_event(att, {"event": "heartbeat"}, 101.0) == []  # alive, nothing to show
    out = _frames(led, att, "a-1", [1, 2, 3, 4], now=102.0)
    assert [e["slot"] for e in out] == [0] * 4
    led.on_event(att, {"event": "job_done", "job": "a-1"}, 102.0)
    _frames(led, att, "a-10", [10, 11], kind=Ev.FRAME_SKIPPED, now=103.0)
    led.on_event(att, {"event": "job_done", "job": "a-10"}, 103.0)
    assert led.on_exit(att, 0) == [{"event": "scene_done", "scene": "a", "slot": 0,
                                    "status": "done"}]
    # 4 rendered in 4 s: 1 frame/s; 4 left (b) -> 4 s.
    p = led.progress(104.0, workers=0, done=False)
    assert (p["frames_done"], p["frames_skipped"], p["fraction"]) == (4, 2, 0.6)
    assert (p["fps"], p["eta"], p["elapsed"], p["scenes_finished"]) == (1.0, 4.0, 4.0, 1)
    b = led.begin(led.next_job(), slot=0, log="w2.log", now=104.0)
    _frames(led, b, "b-1", [1, 2, 3, 4], kind=Ev.FRAME_SKIPPED)
    led.on_event(b, {"event": "job_done", "job": "b-1"}, 105.0)
    led.on_exit(b, 0)
    assert led.finished(running=0)
    s = led.summary(seconds=5.0, logs="/logs")
    assert tuple(s) == SUMMARY_KEYS
    assert (s["ok"], s["exit_code"], s["done"], s["skipped"], s["failed"]) == (
        True, 0, ["a"], ["b"], {})
    assert s["scenes"]["a"]["sequences"][1] == {"id": "a-10", "out_dir": "/d/a/10", "frames": 2,
                                                "rendered": 0, "skipped": 2, "status": "skipped",
                                                "reason": None}


def test_a_crash_is_retried_with_only_the_unfinished_sequences_then_given_up():
    led = Ledger([_job("a", ((1, 2), (5, 6)))], retries=1)
    att = led.begin(led.next_job(), 0, "/logs/worker-00001.log", 0.0)
    _frames(led, att, "a-1", [1, 2])
    led.on_event(att, {"event": "job_done", "job": "a-1"}, 1.0)
    _frames(led, att, "a-5", [5])
    out = led.on_exit(att, -11)  # a crash
    assert out == [{"event": "retry", "scene": "a", "slot": 0, "attempt": 2,
                    "reason": "worker was killed by SIGSEGV (a crash?); "
                              "see its log /logs/worker-00001.log"}]
    again = led.next_job()
    assert [q["id"] for q in again.sequences] == ["a-5"] and again.attempts == 1
    att2 = led.begin(again, 0, "w2.log", 2.0)
    # The retry re-reports frame 5 as complete: counted once over the run.
    _frames(led, att2, "a-5", [5], kind=Ev.FRAME_SKIPPED)
    assert (led.frames_done, led.frames_skipped) == (3, 0)
    led.on_event(att2, {"event": "error", "job": "a-5", "message": "a.blend: boom"}, 3.0)
    out = led.on_exit(att2, 1)
    assert out[0]["event"] == "scene_failed" and out[0]["reasons"] == ["a.blend: boom"]
    assert led.next_job() is None and led.results["a"].attempts == 2
    s = led.summary()
    assert (s["ok"], s["exit_code"], s["failed"]) == (False, 1, {"a": "a.blend: boom"})
    assert [q["status"] for q in s["scenes"]["a"]["sequences"]] == ["done", "failed"]


def test_a_permanent_error_is_not_retried():
    led = Ledger([_job()], retries=3)
    att = led.begin(led.next_job(), 0, "w.log", 0.0)
    led.on_event(att, {"event": "error", "job": None, "scene": "a", "permanent": True,
                       "message": "a.blend: no camera"}, 0.5)
    assert led.on_exit(att, 1)[0]["event"] == "scene_failed"
    assert led.next_job() is None and led.results["a"].attempts == 1


def test_recycle_starts_a_fresh_process_first_without_counting_an_attempt():
    led = Ledger([_job("a", ((1, 6),)), _job("b")], retries=0)
    att = led.begin(led.next_job(), 0, "w.log", 0.0)
    _frames(led, att, "a-1", [1, 2])
    led.on_event(att, {"event": "recycle", "job": "a-1"}, 1.0)
    assert led.on_exit(att, 0) == [{"event": "worker_recycled", "scene": "a", "slot": 0, "rc": 0}]
    nxt = led.next_job()  # the rest of a before b
    assert nxt.scene_name == "a" and nxt.attempts == 0
    att2 = led.begin(nxt, 0, "w2.log", 2.0)
    assert att2.job.attempts == 1  # the recycled process is still the first attempt
    assert led.on_exit(att2, 1)[0]["event"] == "scene_failed"


def test_silence_is_decided_by_the_clock_given_and_only_for_started_workers():
    led = Ledger([_job()], timeout=10.0)
    att = led.begin(led.next_job(), 0, "w.log", 100.0, started=False)  # a queued Ray task
    assert not led.silent(att, 500.0)
    led.on_event(att, {"event": "task_started", "node": "n1"}, 200.0)
    assert att.started and not led.silent(att, 210.0) and led.silent(att, 210.5)
    led.on_event(att, {"event": "heartbeat"}, 209.0)
    assert not led.silent(att, 215.0)
    e = led.timed_out(att, 220.0, where=" on host1")
    assert e == {"event": "worker_timeout", "scene": "a", "slot": 0, "seconds": 11}
    assert not led.silent(att, 1000.0)  # killed once; its exit decides the rest
    retry = led.on_exit(att, -9)[0]
    assert retry["event"] == "retry" and retry["reason"].startswith(
        "worker silent and idle for more than 10 s (no event, no CPU use: frozen or deadlocked) "
        "on host1, killed")


def test_a_lost_task_names_why_and_cancel_stops_every_decision():
    led = Ledger([_job("a"), _job("b")], retries=2)
    att = led.begin(led.next_job(), 0, "w.log", 0.0)
    out = led.on_exit(att, -9, lost="the Ray task on host2 was lost (NodeDiedError: gone)")
    assert out[0]["reason"] == "the Ray task on host2 was lost (NodeDiedError: gone)"
    led.cancel()
    assert led.next_job() is None and led.finished(running=0)
    att2 = led.begin(_job("b"), 1, "w2.log", 0.0)
    assert led.on_exit(att2, -9) == []
    s = led.summary()
    assert s["cancelled"] and not s["ok"] and s["exit_code"] == 1


def test_a_range_resolved_by_the_worker_joins_the_totals():
    job = Job("/s/a.blend", "a", [{"id": None, "out_dir": "/d/seq", "frame_start": None,
                                   "frame_end": None}], {})
    led = Ledger([job])
    assert led.frames_total == 0 and led.results["a"].sequences == {}
    att = led.begin(led.next_job(), 0, "w.log", 0.0)
    led.on_event(att, {"event": "job_started", "job": "001-00001-00025", "frames": 24}, 1.0)
    assert led.frames_total == 24 and job.sequences[0]["id"] == "001-00001-00025"
    assert led.results["a"].sequences["001-00001-00025"].out_dir == "/d/seq"


def test_rejected_scenes_fail_the_summary_in_plan_order():
    led = Ledger([_job("b")])
    att = led.begin(led.next_job(), 0, "w.log", 0.0)
    led.on_event(att, {"event": "job_done", "job": "b-1"}, 1.0)
    led.on_exit(att, 0)
    s = led.summary(rejected={"a": ("/s/a.blend", "a.blend: no camera")}, order=["a", "b"],
                    executor="ray", nodes={"n1": "host1"}, plan="/d/plan.json")
    assert list(s["scenes"]) == ["a", "b"] and s["failed"] == {"a": "a.blend: no camera"}
    assert s["scenes"]["a"]["attempts"] == 0 and not s["ok"]
    assert (s["executor"], s["nodes"], s["plan"], s["manifest"]) == (
        "ray", {"n1": "host1"}, "/d/plan.json", None)


@pytest.mark.parametrize("rc, text", [(-11, "worker was killed by SIGSEGV"),
                                      (-99, "worker was killed by signal 99"),
                                      (3, "worker exited with code 3 without a message")])
def test_exit_reasons(rc, text):
    from dataset_forge.engine.ledger import exit_reason

    assert exit_reason(rc, "w.log").startswith(text)


@pytest.mark.parametrize("rc", [-9, 137])
def test_a_worker_killed_for_memory_is_not_retried_and_named(rc):
    led = Ledger([_job("a", ((1, 2), (5, 6))), _job("b")], retries=3)
    att = led.begin(led.next_job(), 0, "w.log", 0.0)
    _frames(led, att, "a-1", [1])
    out = led.on_exit(att, rc, oom=True)  # the OOM killer's count grew while it ran
    assert out[0]["event"] == "scene_failed" and led.results["a"].attempts == 1
    assert "scene 'a' (/s/a.blend) was killed by SIGKILL by the system's " \
           "out-of-memory killer; not retried" in out[0]["reasons"][-1]
    assert led.next_job().scene_name == "b"  # the run moves on
    s = led.summary()
    assert "out-of-memory killer" in s["failed"]["a"]


def test_a_kill_9_by_hand_is_retried():
    led = Ledger([_job("a")], retries=1)
    att = led.begin(led.next_job(), 0, "w.log", 0.0)
    assert led.on_exit(att, -9, oom=False)[0]["event"] == "retry"  # no OOM kill meanwhile
    att = led.begin(led.next_job(), 0, "w2.log", 1.0)
    assert led.on_exit(att, -9)[0]["event"] == "scene_failed"  # retries spent


def test_the_oom_kill_count_is_read_where_linux_keeps_it():
    import sys

    from dataset_forge.engine.runner import oom_kills

    n = oom_kills()
    assert n is None if not sys.platform.startswith("linux") else isinstance(n, int) and n >= 0
