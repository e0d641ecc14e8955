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
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..settings import Settings
from . import events as ev
from .launch import gpu_for_slot, gpu_pinning, worker_command, worker_env

__all__ = ["Job", "Runner", "SceneResult", "SequenceResult", "gpu_for_slot", "gpu_pinning",
           "worker_settings"]


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
    gpu: int | None = None


@dataclass
class SequenceResult:
    """What happened to one sequence in this run: frames rendered now, frames found complete."""

    id: str
    out_dir: str
    frames: int = 0
    rendered: int = 0
    skipped: int = 0
    status: str = "pending"  # pending | done | skipped (all frames were complete) | failed
    reason: str | None = None
    seen: set[int] = field(default_factory=set, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "out_dir": self.out_dir, "frames": self.frames,
                "rendered": self.rendered, "skipped": self.skipped, "status": self.status,
                "reason": self.reason}


@dataclass
class SceneResult:
    scene: str
    blend: str
    status: str = "pending"  # pending | running | done | skipped | failed
    errors: list[str] = field(default_factory=list)
    sequences_done: list[str] = field(default_factory=list)
    sequences_failed: dict[str, str] = field(default_factory=dict)
    sequences: dict[str, SequenceResult] = field(default_factory=dict)
    attempts: int = 0


def worker_settings(settings: dict[str, Any], parallel: int,
                    cpu_count: int | None = None) -> dict[str, Any]:
    """The settings a worker gets: with ``threads`` 0 (all cores) and several workers, each one
    gets an equal share of the cores, so that N workers do not each start a thread per core."""
    if int(settings.get("threads") or 0) or parallel <= 1:
        return settings
    cores = cpu_count or os.cpu_count() or 1
    return {**settings, "threads": max(1, cores // parallel)}


class Runner:
    """Run :class:`Job` s in up to ``jobs`` worker processes.

    ``work_dir`` receives job files and one log per worker process. ``timeout`` (s): a worker
    silent for longer is killed and its job retried up to ``retries`` times. ``frame_budget``:
    frames a process may render before it is replaced by a fresh one (0: never).
    """

    @classmethod
    def from_settings(cls, jobs: list[Job], settings: Settings, work_dir: str | os.PathLike,
                      **kw: Any) -> Runner:
        """A runner configured by the run options of ``settings`` (jobs, executable, timeout,
        retries, recycling, GPU pinning)."""
        return cls(jobs, work_dir=work_dir, parallel=settings.jobs, executable=settings.executable,
                   timeout=settings.timeout, retries=settings.retries,
                   frame_budget=settings.recycle_frames,
                   gpus=settings.gpu_list if settings.device_type != "CPU" else [], **kw)

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
        for j in jobs:
            for s in j.sequences:
                if s.get("id"):
                    n = (s["frame_end"] - s["frame_start"] + 1
                         if s.get("frame_start") is not None and s.get("frame_end") is not None else 0)
                    self.results[j.scene_name].sequences[s["id"]] = SequenceResult(
                        s["id"], s["out_dir"], frames=n)
        self._last_progress: tuple | None = None
        self.lock: Any = None  # the datasets folder's RunLock, when a plan owns this runner
        self.frames_total = sum(j.frames_total for j in jobs)
        self.frames_done = 0
        self.frames_skipped = 0
        self.render_seconds = 0.0  # sum of the frames' render times (a sum: memory stays flat)
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
                _kill(w.proc)
                w.proc.wait()
                out.append(self._runner_event("worker_timeout", w, seconds=round(now - w.last_seen)))
                rc = w.proc.returncode
                w.errors.append({"message": f"worker silent and idle for more than "
                                            f"{self.timeout:g} s (no event, no CPU use: frozen or "
                                            "deadlocked), killed"})
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
        key = (self.frames_done, self.frames_skipped, self.frames_total, len(self.workers),
               self.done)
        if key != self._last_progress:
            self._last_progress = key
            out.append(self.progress_event())
        return out

    def progress_event(self) -> dict[str, Any]:
        """The aggregate state as one ``progress`` event (what the CLI bar and the panel show)."""
        eta = self.eta_seconds
        return {"event": "progress", "frames_done": self.frames_done,
                "frames_skipped": self.frames_skipped, "frames_total": self.frames_total,
                "fraction": round(self.progress, 4), "eta": None if eta is None else round(eta, 1),
                "fps": round(self.frames_per_second, 3), "workers": len(self.workers),
                "scenes_total": len(self.results),
                "scenes_finished": sum(r.status in ("done", "skipped", "failed")
                                       for r in self.results.values()),
                "elapsed": round(time.monotonic() - self.started_at, 1) if self.started_at else 0.0,
                "done": self.done}

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
                _kill(w.proc)
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
        if not self.frames_done or self.started_at is None:
            return None
        elapsed = time.monotonic() - self.started_at
        rate = self.frames_done / elapsed if elapsed > 0 else 0
        left = max(0, self.frames_total - self.frames_done - self.frames_skipped)
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
        self.results[job.scene_name].attempts += 1
        gpu = gpu_for_slot(slot, self.gpus)
        gpu_index = gpu_pinning(gpu)[1]
        payload = {"blend": job.blend, "scene_name": job.scene_name,
                   "settings": worker_settings(job.settings, self.parallel),
                   "sequences": job.sequences, "frame_budget": self.frame_budget,
                   "gpu_index": gpu_index, "gpu": gpu}
        job_path = self.work_dir / f"job-{self.spawned:05d}.json"
        job_path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        # Line-buffered: the log is complete up to the last line even if the runner is killed.
        log = open(self.work_dir / f"worker-{self.spawned:05d}.log", "w", encoding="utf-8",
                   buffering=1)
        proc = subprocess.Popen(worker_command(job_path, self.executable), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=worker_env(self.base_env, gpu=gpu), text=True,
                                encoding="utf-8", errors="replace", bufsize=1,
                                start_new_session=os.name == "posix")
        w = _Worker(job=job, proc=proc, job_path=job_path, log=log, slot=slot, gpu=gpu)
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
        if kind == "heartbeat":  # only proves the render is progressing
            return []
        res = self.results[w.job.scene_name]
        seq = res.sequences.get(e.get("job") or "")
        if kind == "job_started":
            if e["job"] not in self._planned:
                # A range resolved by the worker (render_animation without frame_start/end).
                self._planned.add(e["job"])
                self.frames_total += int(e.get("frames", 0))
            if seq is None:
                out_dir = ""
                for s in w.job.sequences:
                    if s.get("id") is None:  # the worker named it: so does the job from now on
                        s["id"], out_dir = e["job"], s["out_dir"]
                        break
                seq = res.sequences[e["job"]] = SequenceResult(e["job"], out_dir,
                                                               frames=int(e.get("frames", 0)))
        if kind == "frame_done":
            self.frames_done += 1
            self.render_seconds += float(e.get("seconds", 0.0))
            if seq is not None:
                seq.rendered += 1
                seq.seen.add(int(e["frame"]))
        elif kind == "frame_skipped":
            # A retried or recycled process re-reports the frames that an earlier process of
            # this run rendered: count each frame once.
            if seq is None or int(e["frame"]) not in seq.seen:
                self.frames_skipped += 1
                if seq is not None:
                    seq.skipped += 1
                    seq.seen.add(int(e["frame"]))
        elif kind == "job_done":
            if e["job"] not in res.sequences_done:
                res.sequences_done.append(e["job"])
            res.sequences_failed.pop(e["job"], None)
            if seq is not None:
                seq.status = "done" if seq.rendered else "skipped"
                seq.reason = None
        elif kind == "error":
            w.errors.append(e)
            if e.get("job"):
                res.sequences_failed[e["job"]] = e["message"]
                if seq is not None:
                    seq.status, seq.reason = "failed", e["message"]
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
            seqs = list(res.sequences.values())
            res.status = "skipped" if seqs and all(q.status == "skipped" for q in seqs) else "done"
            out.append(self._runner_event("scene_done", w, status=res.status))
            return out
        reasons = [e["message"] for e in w.errors] or [_exit_reason(rc, w.log.name)]
        if w.job.attempts <= self.retries and not _is_permanent(w.errors):
            self.pending.append(Job(w.job.blend, w.job.scene_name, remaining, w.job.settings,
                                    attempts=w.job.attempts))
            out.append(self._runner_event("retry", w, attempt=w.job.attempts + 1,
                                          reason=reasons[-1]))
            return out
        res.status = "failed" if remaining else "done"
        res.errors.extend(r for r in reasons if r not in res.errors)
        for s in remaining:
            q = res.sequences.get(s.get("id") or "")
            if q is not None and q.status != "failed":
                q.status, q.reason = "failed", reasons[-1]
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
        """``scenes_done`` (rendered now), ``scenes_skipped`` (were already complete),
        ``scenes_failed`` ({scene: [reasons]}), per-scene ``scenes`` detail, frame counts, ``ok``."""
        done = [r.scene for r in self.results.values() if r.status == "done"]
        skipped = [r.scene for r in self.results.values() if r.status == "skipped"]
        failed = {r.scene: r.errors or list(r.sequences_failed.values())
                  for r in self.results.values() if r.status == "failed"}
        scenes = {r.scene: {"blend": r.blend, "status": r.status, "errors": list(r.errors),
                            "attempts": r.attempts,
                            "sequences": [q.to_dict() for q in r.sequences.values()]}
                  for r in self.results.values()}
        return {"scenes_done": done, "scenes_skipped": skipped, "scenes_failed": failed,
                "scenes": scenes,
                "frames_rendered": self.frames_done, "frames_skipped": self.frames_skipped,
                "frames_total": self.frames_total, "cancelled": self.cancelled,
                "ok": not failed and not self.cancelled and
                all(r.status in ("done", "skipped") for r in self.results.values())}


def _exit_reason(rc: int, log: str) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return (f"worker was killed by {name} (out of memory, or killed by hand?); see its log "
                f"{log}")
    return f"worker exited with code {rc} without a message (a crash?); see its log {log}"


def _kill(proc: subprocess.Popen) -> None:
    """Kill a worker and whatever it started (a wrapper script's Blender): its process group."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except OSError:
            pass


def _is_permanent(errors: list[dict[str, Any]]) -> bool:
    """Bad input (no camera, unreadable file ...) fails the same way every time: no retry."""
    return any(e.get("permanent") for e in errors)
