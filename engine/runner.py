# SPDX-License-Identifier: GPL-3.0-or-later
"""The runner: feeds scene jobs to N worker processes and turns their output into events.

One engine for every face. Drive it either blocking (:meth:`Runner.run`) or step by step
(:meth:`Runner.poll`, never blocks: what the modal operator calls on each timer tick).
Pure Python: workers are separate Blender processes, so a crash in one scene loses nothing else.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import events as ev
from .launch import worker_command, worker_env


@dataclass
class Job:
    """One scene (a .blend opened once) and the sequences to render from it."""

    blend: str
    scene_name: str
    sequences: list[dict[str, Any]]  # id, out_dir, frame_start, frame_end
    settings: dict[str, Any]
    attempts: int = 0
    frames_total: int = 0

    def __post_init__(self):
        self.frames_total = sum(s["frame_end"] - s["frame_start"] + 1 for s in self.sequences
                                if s.get("frame_start") is not None and s.get("frame_end") is not None)


@dataclass
class _Worker:
    job: Job
    proc: subprocess.Popen
    job_path: Path
    log: Any
    slot: int
    last_seen: float = field(default_factory=time.monotonic)
    finished_rc: int | None = None
    recycle: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    reader: threading.Thread | None = None


@dataclass
class SceneResult:
    scene: str
    blend: str
    status: str = "pending"  # pending | running | done | failed
    errors: list[str] = field(default_factory=list)
    sequences_done: list[str] = field(default_factory=list)
    sequences_failed: dict[str, str] = field(default_factory=dict)


class Runner:
    """Run :class:`Job` s in up to ``jobs`` worker processes.

    ``work_dir`` receives job files and one log per worker process. ``timeout`` (s): a worker
    silent for longer is killed and its job retried up to ``retries`` times. ``frame_budget``:
    frames a process may render before it is replaced by a fresh one (0: never).
    """

    def __init__(self, jobs: list[Job], *, work_dir: str | os.PathLike, parallel: int = 1,
                 executable: str = "", timeout: float = 300.0, retries: int = 1,
                 frame_budget: int = 0, gpus: list[int] | None = None,
                 env: dict[str, str] | None = None):
        self.pending: list[Job] = list(jobs)
        self.work_dir = Path(work_dir)
        self.parallel = max(1, int(parallel))
        self.executable = executable
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.frame_budget = int(frame_budget)
        self.gpus = list(gpus or [])
        self.base_env = env
        self.workers: list[_Worker] = []
        self.queue: queue.Queue = queue.Queue()
        self.results: dict[str, SceneResult] = {
            j.scene_name: SceneResult(j.scene_name, j.blend) for j in jobs}
        self.frames_total = sum(j.frames_total for j in jobs)
        self.frames_done = 0
        self.frames_skipped = 0
        self.frame_seconds: list[float] = []
        self.started_at: float | None = None
        self.cancelled = False
        self.spawned = 0
        self._slots_busy: set[int] = set()
        self._planned = {s["id"] for j in jobs for s in j.sequences if s.get("id")}

    # -- driving -----------------------------------------------------------------------------
    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        self._fill()

    def poll(self) -> list[dict[str, Any]]:
        """Collect what the workers said since the last call, reap finished ones, start new
        ones. Never blocks. Returns the new events (worker events plus runner events)."""
        out: list[dict[str, Any]] = []
        while True:
            try:
                w, event = self.queue.get_nowait()
            except queue.Empty:
                break
            out.extend(self._on_event(w, event))
        now = time.monotonic()
        for w in list(self.workers):
            rc = w.proc.poll()
            if rc is None and now - w.last_seen > self.timeout:
                w.proc.kill()
                w.proc.wait()
                out.append(self._runner_event("worker_timeout", w, seconds=round(now - w.last_seen)))
                rc = w.proc.returncode
                w.errors.append({"message": f"worker silent for more than {self.timeout:g} s "
                                            "(killed); raise --timeout for very slow frames"})
            if rc is not None:
                if w.reader is not None:
                    w.reader.join(timeout=5)
                while True:  # events the reader queued before the process ended
                    try:
                        w2, event = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    out.extend(self._on_event(w2, event))
                out.extend(self._reap(w, rc))
        if not self.cancelled:
            self._fill()
        return out

    def run(self, on_event=None, interval: float = 0.05) -> dict[str, SceneResult]:
        """Blocking driver: start, poll until done, return the per-scene results."""
        self.start()
        try:
            while not self.done:
                for e in self.poll():
                    if on_event:
                        on_event(e)
                time.sleep(interval)
            for e in self.poll():
                if on_event:
                    on_event(e)
        except KeyboardInterrupt:
            self.cancel()
            raise
        return self.results

    @property
    def done(self) -> bool:
        return not self.workers and (not self.pending or self.cancelled)

    def cancel(self) -> None:
        """Stop every worker now. Finished frames stay (they are journaled); the journal lets a
        rerun resume exactly where this stopped."""
        self.cancelled = True
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.kill()
        for w in list(self.workers):
            w.proc.wait()
            if w.reader is not None:
                w.reader.join(timeout=5)
            self._close(w)
        self.workers.clear()

    # -- progress ------------------------------------------------------------------------------
    @property
    def progress(self) -> float:
        if self.frames_total <= 0:
            return 1.0 if self.done else 0.0
        return min(1.0, (self.frames_done + self.frames_skipped) / self.frames_total)

    @property
    def eta_seconds(self) -> float | None:
        if not self.frame_seconds or self.started_at is None:
            return None
        elapsed = time.monotonic() - self.started_at
        rate = self.frames_done / elapsed if elapsed > 0 else 0
        left = self.frames_total - self.frames_done - self.frames_skipped
        return left / rate if rate > 0 else None

    @property
    def frames_per_second(self) -> float:
        if self.started_at is None:
            return 0.0
        elapsed = time.monotonic() - self.started_at
        return self.frames_done / elapsed if elapsed > 0 else 0.0

    # -- internals -----------------------------------------------------------------------------
    def _fill(self) -> None:
        while self.pending and len(self.workers) < self.parallel:
            self._spawn(self.pending.pop(0))

    def _spawn(self, job: Job) -> None:
        slot = min(set(range(self.parallel)) - self._slots_busy)
        self._slots_busy.add(slot)
        self.spawned += 1
        job.attempts += 1
        gpu = self.gpus[slot % len(self.gpus)] if self.gpus else None
        payload = {"blend": job.blend, "scene_name": job.scene_name, "settings": job.settings,
                   "sequences": job.sequences, "frame_budget": self.frame_budget,
                   "gpu_index": 0 if gpu is not None else None}
        job_path = self.work_dir / f"job-{self.spawned:05d}.json"
        job_path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        log = open(self.work_dir / f"worker-{self.spawned:05d}.log", "w", encoding="utf-8")
        proc = subprocess.Popen(worker_command(job_path, self.executable), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=worker_env(self.base_env, gpu=gpu), text=True,
                                encoding="utf-8", errors="replace", bufsize=1)
        w = _Worker(job=job, proc=proc, job_path=job_path, log=log, slot=slot)
        w.reader = threading.Thread(target=self._read, args=(w,), daemon=True)
        w.reader.start()
        self.workers.append(w)
        self.results[job.scene_name].status = "running"

    def _read(self, w: _Worker) -> None:
        for line in w.proc.stdout:
            w.log.write(line)
            event = ev.decode(line.strip())
            if event is not None:
                self.queue.put((w, event))
        w.log.flush()

    def _runner_event(self, kind: str, w: _Worker | None = None, **data: Any) -> dict[str, Any]:
        e = {"event": kind, **data}
        if w is not None:
            e.setdefault("scene", w.job.scene_name)
            e.setdefault("slot", w.slot)
        return e

    def _on_event(self, w: _Worker, e: dict[str, Any]) -> list[dict[str, Any]]:
        w.last_seen = time.monotonic()
        e = {**e, "slot": w.slot}
        kind = e["event"]
        res = self.results[w.job.scene_name]
        if kind == "job_started" and e["job"] not in self._planned:
            # A range resolved by the worker (render_animation without frame_start/end).
            self._planned.add(e["job"])
            self.frames_total += int(e.get("frames", 0))
        if kind == "frame_done":
            self.frames_done += 1
            self.frame_seconds.append(float(e.get("seconds", 0.0)))
        elif kind == "frame_skipped":
            self.frames_skipped += 1
        elif kind == "job_done":
            res.sequences_done.append(e["job"])
            res.sequences_failed.pop(e["job"], None)
        elif kind == "error":
            w.errors.append(e)
            if e.get("job"):
                res.sequences_failed[e["job"]] = e["message"]
        elif kind == "recycle":
            w.recycle = True
        return [e]

    def _reap(self, w: _Worker, rc: int) -> list[dict[str, Any]]:
        self.workers.remove(w)
        self._close(w)
        res = self.results[w.job.scene_name]
        out = []
        remaining = [s for s in w.job.sequences if s["id"] not in res.sequences_done]
        if self.cancelled:
            return out
        if w.recycle and remaining:
            # Fresh process for the rest; the journal makes it skip finished frames.
            self.pending.insert(0, Job(w.job.blend, w.job.scene_name, remaining,
                                       w.job.settings, attempts=w.job.attempts - 1))
            out.append(self._runner_event("worker_recycled", w, rc=rc))
            return out
        if not remaining and rc == 0:
            res.status = "done"
            out.append(self._runner_event("scene_done", w))
            return out
        reasons = [e["message"] for e in w.errors] or [
            f"worker exited with code {rc} without a message (crash?); see its log {w.log.name}"]
        if w.job.attempts <= self.retries and not _is_permanent(w.errors):
            self.pending.append(Job(w.job.blend, w.job.scene_name, remaining, w.job.settings,
                                    attempts=w.job.attempts))
            out.append(self._runner_event("retry", w, attempt=w.job.attempts + 1,
                                          reason=reasons[-1]))
            return out
        res.status = "failed" if remaining else "done"
        res.errors.extend(reasons)
        out.append(self._runner_event("scene_failed", w, reasons=reasons))
        return out

    def _close(self, w: _Worker) -> None:
        self._slots_busy.discard(w.slot)
        try:
            w.log.close()
        except OSError:
            pass

    # -- summary -------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        done = [r.scene for r in self.results.values() if r.status == "done"]
        failed = {r.scene: r.errors or list(r.sequences_failed.values())
                  for r in self.results.values() if r.status == "failed"}
        return {"scenes_done": done, "scenes_failed": failed,
                "frames_rendered": self.frames_done, "frames_skipped": self.frames_skipped,
                "frames_total": self.frames_total, "cancelled": self.cancelled,
                "ok": not failed and not self.cancelled and
                all(r.status == "done" for r in self.results.values())}


def _is_permanent(errors: list[dict[str, Any]]) -> bool:
    """Bad input (no camera, unreadable file ...) fails the same way every time: no retry."""
    return any(e.get("permanent") for e in errors)
