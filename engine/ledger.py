# SPDX-License-Identifier: GPL-3.0-or-later
"""The run's bookkeeping, without processes: what each scene and sequence did, which job runs next,
when to retry, recycle or give up, when a worker counts as silent, progress numbers and the
summary. Pure Python, no clock of its own (every method that needs the time takes ``now``, in
seconds of ``time.monotonic``), so it is tested by feeding it events.

The :class:`runner.Runner` owns one :class:`Ledger` and a launcher: it asks :meth:`Ledger.next_job`
what to start, tells :meth:`Ledger.begin` that an attempt started, passes every worker event to
:meth:`Ledger.on_event` and every exit to :meth:`Ledger.on_exit`, and kills what
:meth:`Ledger.silent` names.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..settings import SettingsDict
from ..wire.protocol import (
    Ev,
    Event,
    ProgressEvent,
    SceneSummary,
    SequenceSpec,
    SequenceSummary,
    Status,
    Summary,
)

__all__ = ["Attempt", "Job", "Ledger", "SceneResult", "SequenceResult", "exit_reason"]


@dataclass
class Job:
    """One scene (a .blend opened once) and the sequences to render from it."""

    blend: str
    scene_name: str
    sequences: list[SequenceSpec]
    settings: SettingsDict
    attempts: int = 0  # processes started for this scene so far (a recycled one is not counted)

    @property
    def frames_total(self) -> int:
        return sum(_frames(s) for s in self.sequences)


def _frames(s: SequenceSpec) -> int:
    a, b = s.get("frame_start"), s.get("frame_end")
    return b - a + 1 if a is not None and b is not None else 0


@dataclass
class SequenceResult:
    """What happened to one sequence in this run: frames rendered now, frames found complete."""

    id: str
    out_dir: str
    frames: int = 0
    rendered: int = 0
    skipped: int = 0
    status: Status = Status.PENDING  # done | skipped (every frame was complete) | failed
    reason: str | None = None
    seen: set[int] = field(default_factory=set, repr=False)

    def to_dict(self) -> SequenceSummary:
        return {"id": self.id, "out_dir": self.out_dir, "frames": self.frames,
                "rendered": self.rendered, "skipped": self.skipped, "status": str(self.status),
                "reason": self.reason}


@dataclass
class SceneResult:
    scene: str
    blend: str
    status: Status = Status.PENDING
    errors: list[str] = field(default_factory=list)
    sequences: dict[str, SequenceResult] = field(default_factory=dict)
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.status in (Status.DONE, Status.SKIPPED, Status.FAILED)

    def to_dict(self) -> SceneSummary:
        return {"blend": self.blend, "status": str(self.status), "errors": list(self.errors),
                "attempts": self.attempts,
                "sequences": [q.to_dict() for q in self.sequences.values()]}


@dataclass
class Attempt:
    """One worker process (or Ray task) rendering one job. ``handle`` is the launcher's."""

    job: Job
    slot: int
    log: str  # the worker's log file
    last_seen: float  # when it last said anything (monotonic s)
    started: bool = True  # running on a machine (a Ray task may wait in a queue first)
    recycle: bool = False
    timed_out: bool = False
    errors: list[str] = field(default_factory=list)
    permanent: bool = False  # an error that fails the same way every time: no retry
    handle: Any = None
    oom_kills: int | None = None  # the system's OOM-kill count when it started (None: unknown)


class Ledger:
    """Results, retry and recycle policy, silence, progress and summary of one run.

    ``retries``: new processes for a scene whose worker failed (not for a permanent error).
    ``timeout`` (s): a started worker silent for longer is to be killed and retried.
    """

    def __init__(self, jobs: list[Job], *, retries: int = 1, timeout: float = 300.0):
        self.pending: deque[Job] = deque(jobs)
        self.retries = int(retries)
        self.timeout = float(timeout)
        self.results: dict[str, SceneResult] = {}
        for j in jobs:
            res = self.results.setdefault(j.scene_name, SceneResult(j.scene_name, j.blend))
            for s in j.sequences:
                if s.get("id"):
                    res.sequences[s["id"]] = SequenceResult(s["id"], s["out_dir"], frames=_frames(s))
        self.frames_total = sum(j.frames_total for j in jobs)
        self.frames_done = 0
        self.frames_skipped = 0
        self.started_at: float | None = None
        self.cancelled = False

    # -- scheduling ------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        self.started_at = now

    def next_job(self) -> Job | None:
        """The job to start next (recycled rests first, retries last), or None."""
        if self.cancelled or not self.pending:
            return None
        return self.pending.popleft()

    def begin(self, job: Job, slot: int, log: str, now: float, *, started: bool = True) -> Attempt:
        """Record that a process for ``job`` was started in worker slot ``slot``."""
        job.attempts += 1
        res = self.results[job.scene_name]
        res.attempts += 1
        res.status = Status.RUNNING
        return Attempt(job=job, slot=slot, log=log, last_seen=now, started=started)

    def cancel(self) -> None:
        self.cancelled = True

    def finished(self, running: int) -> bool:
        """No attempt runs and nothing is left to start (or the run was cancelled)."""
        return not running and (not self.pending or self.cancelled)

    # -- what the workers say --------------------------------------------------------------------
    def on_event(self, a: Attempt, e: Event, now: float) -> list[Event]:
        """Book one event of attempt ``a``; returns what to pass on (with ``slot``; nothing for a
        heartbeat, which only proves that the worker is alive)."""
        a.last_seen = now
        kind = e.get("event")
        if kind == Ev.TASK_STARTED:
            a.started = True
        if kind == Ev.HEARTBEAT:
            return []
        e = {**e, "slot": a.slot}
        if kind == Ev.TASK_STARTED:
            e.setdefault("scene", a.job.scene_name)
        res = self.results[a.job.scene_name]
        seq = res.sequences.get(e.get("job") or "")
        if kind == Ev.JOB_STARTED and seq is None:
            seq = self._resolved(a, res, e)
        if kind == Ev.FRAME_DONE:
            self.frames_done += 1
            if seq is not None:
                seq.rendered += 1
                seq.seen.add(int(e["frame"]))
        elif kind == Ev.FRAME_SKIPPED:
            # A retried or recycled process re-reports the frames that an earlier process of
            # this run rendered: count each frame once.
            if seq is None or int(e["frame"]) not in seq.seen:
                self.frames_skipped += 1
                if seq is not None:
                    seq.skipped += 1
                    seq.seen.add(int(e["frame"]))
        elif kind == Ev.JOB_DONE and seq is not None:
            seq.status = Status.DONE if seq.rendered else Status.SKIPPED
            seq.reason = None
        elif kind == Ev.ERROR:
            a.errors.append(str(e.get("message", "")))
            a.permanent = a.permanent or bool(e.get("permanent"))
            if seq is not None:
                seq.status, seq.reason = Status.FAILED, str(e.get("message", ""))
        elif kind == Ev.RECYCLE:
            a.recycle = True
        return [e]

    def _resolved(self, a: Attempt, res: SceneResult, e: Event) -> SequenceResult:
        """A sequence whose range the worker read from the scene (``render_animation`` without
        frame_start/frame_end): the job and the totals learn its id and size now."""
        n = int(e.get("frames", 0))
        self.frames_total += n
        out_dir = ""
        for s in a.job.sequences:
            if s.get("id") is None:  # the worker named it: so does the job from now on
                s["id"], out_dir = e["job"], s["out_dir"]
                break
        seq = res.sequences[e["job"]] = SequenceResult(e["job"], out_dir, frames=n)
        return seq

    # -- silence ---------------------------------------------------------------------------------
    def silent(self, a: Attempt, now: float) -> bool:
        """True when started attempt ``a`` said nothing (not even a heartbeat) for ``timeout`` s
        and was not timed out already: the caller kills it, then calls :meth:`timed_out`."""
        return a.started and not a.timed_out and now - a.last_seen > self.timeout

    def timed_out(self, a: Attempt, now: float, where: str = "") -> Event:
        """Record that silent attempt ``a`` is being killed (its exit follows); the event says so.
        ``where``: ' on HOST' for a remote worker."""
        seconds = now - a.last_seen
        a.timed_out = True
        a.last_seen = now
        a.errors.append(f"worker silent and idle for more than {self.timeout:g} s (no event, no CPU "
                        f"use: frozen or deadlocked){where}, killed")
        return {"event": Ev.WORKER_TIMEOUT.value, "scene": a.job.scene_name, "slot": a.slot,
                "seconds": round(seconds)}

    # -- exits -----------------------------------------------------------------------------------
    def on_exit(self, a: Attempt, rc: int, lost: str | None = None,
                oom: bool | None = None) -> list[Event]:
        """Attempt ``a`` ended with exit code ``rc`` (negative: killed by that signal); ``lost``:
        why the launcher lost it (a Ray task with its node); ``oom``: whether the system's
        out-of-memory killer killed a process meanwhile (None: unknown). Decides recycle, retry
        or the scene's end; the next job to start is then :meth:`next_job`'s."""
        if lost:
            a.errors.append(lost)
        res = self.results[a.job.scene_name]
        done_ids = {q.id for q in res.sequences.values() if q.status in (Status.DONE, Status.SKIPPED)}
        remaining = [s for s in a.job.sequences if s.get("id") not in done_ids]
        if self.cancelled:
            return []
        base = {"scene": a.job.scene_name, "slot": a.slot}
        if a.recycle and remaining:
            # Fresh process for the rest; the journal makes it skip finished frames.
            self.pending.appendleft(Job(a.job.blend, a.job.scene_name, remaining, a.job.settings,
                                        attempts=a.job.attempts - 1))
            return [{"event": Ev.WORKER_RECYCLED.value, **base, "rc": rc}]
        if not remaining and rc == 0:
            seqs = list(res.sequences.values())
            res.status = (Status.SKIPPED if seqs and all(q.status == Status.SKIPPED for q in seqs)
                          else Status.DONE)
            return [{"event": Ev.SCENE_DONE.value, **base, "status": str(res.status)}]
        reasons = list(a.errors) or [exit_reason(rc, a.log)]
        if killed_for_memory(rc) and oom and not a.timed_out and not lost:
            # the kernel's OOM killer sent SIGKILL: the same job would grow the same way again,
            # so it is not retried blindly
            a.permanent = True
            reasons.append(f"the worker rendering scene '{a.job.scene_name}' ({a.job.blend}) was "
                           "killed by SIGKILL by the system's out-of-memory killer; "
                           "not retried: lower width/height, samples or the enabled ground truths, "
                           "or run fewer jobs at once, then rerun to resume")
        if a.job.attempts <= self.retries and not a.permanent:
            self.pending.append(Job(a.job.blend, a.job.scene_name, remaining, a.job.settings,
                                    attempts=a.job.attempts))
            return [{"event": Ev.RETRY.value, **base, "attempt": a.job.attempts + 1,
                     "reason": reasons[-1]}]
        res.status = Status.FAILED if remaining else Status.DONE
        res.errors.extend(r for r in reasons if r not in res.errors)
        for s in remaining:
            q = res.sequences.get(s.get("id") or "")
            if q is not None and q.status != Status.FAILED:
                q.status, q.reason = Status.FAILED, reasons[-1]
        return [{"event": Ev.SCENE_FAILED.value, **base, "reasons": reasons}]

    # -- progress and summary --------------------------------------------------------------------
    @property
    def fraction(self) -> float:
        """Finished (rendered + skipped) frames / planned frames, 0..1."""
        if self.frames_total <= 0:
            return 0.0
        return min(1.0, (self.frames_done + self.frames_skipped) / self.frames_total)

    def overall(self, done: bool) -> float:
        """:attr:`fraction`, but 1.0 once a run with no planned frames is ``done``."""
        return 1.0 if done and self.frames_total <= 0 else self.fraction

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started_at) if self.started_at is not None else 0.0

    def frames_per_second(self, now: float) -> float:
        """Frames rendered in this run per second of run time."""
        t = self.elapsed(now)
        return self.frames_done / t if t > 0 else 0.0

    def eta_seconds(self, now: float) -> float | None:
        """Seconds left at this run's rate; None before the first rendered frame."""
        rate = self.frames_per_second(now)
        if not self.frames_done or rate <= 0:
            return None
        return max(0, self.frames_total - self.frames_done - self.frames_skipped) / rate

    def progress(self, now: float, workers: int, done: bool) -> ProgressEvent:
        eta = self.eta_seconds(now)
        return {"event": Ev.PROGRESS.value, "frames_done": self.frames_done,
                "frames_skipped": self.frames_skipped, "frames_total": self.frames_total,
                "fraction": round(self.overall(done), 4),
                "eta": None if eta is None else round(eta, 1),
                "fps": round(self.frames_per_second(now), 3), "workers": workers,
                "scenes_total": len(self.results),
                "scenes_finished": sum(r.finished for r in self.results.values()),
                "elapsed": round(self.elapsed(now), 1), "done": done}

    def summary(self, *, rejected: dict[str, tuple[str, str]] | None = None,
                order: list[str] | None = None, seconds: float = 0.0, executor: str = "local",
                nodes: dict[str, str] | None = None, logs: str = "", plan: str | None = None,
                manifest: str | None = None) -> Summary:
        """The run's :class:`protocol.Summary`. ``rejected``: scenes the plan refused before any
        worker ({name: (blend, reason)}), failures of this run all the same; ``order``: scene
        names in the order to list them (the plan's)."""
        failed: dict[str, str] = {}
        scenes: dict[str, SceneSummary] = {}
        for name, (blend, reason) in (rejected or {}).items():
            failed[name] = reason
            scenes[name] = {"blend": blend, "status": str(Status.FAILED), "errors": [reason],
                            "attempts": 0, "sequences": []}
        for r in self.results.values():
            scenes[r.scene] = r.to_dict()
            if r.status == Status.FAILED:
                reasons = r.errors or [q.reason for q in r.sequences.values() if q.reason]
                failed[r.scene] = "; ".join(dict.fromkeys(reasons)) or "failed without a message"
        if order is not None:
            scenes = {k: scenes[k] for k in [*order, *scenes] if k in scenes}
        ok = not failed and not self.cancelled and all(
            r.status in (Status.DONE, Status.SKIPPED) for r in self.results.values())
        return {"ok": ok, "exit_code": 0 if ok else 1, "cancelled": self.cancelled,
                "done": [r.scene for r in self.results.values() if r.status == Status.DONE],
                "skipped": [r.scene for r in self.results.values() if r.status == Status.SKIPPED],
                "failed": failed, "scenes": scenes, "frames_rendered": self.frames_done,
                "frames_skipped": self.frames_skipped, "frames_total": self.frames_total,
                "seconds": round(seconds, 2), "executor": executor, "nodes": dict(nodes or {}),
                "logs": logs, "plan": plan, "manifest": manifest}


def killed_for_memory(rc: int) -> bool:
    """An exit by SIGKILL (``-9`` from a process, ``137`` through a shell or Blender's wrapper):
    what the out-of-memory killer does (and ``kill -9``: the caller tells them apart)."""
    return rc in (-9, 128 + 9)


def exit_reason(rc: int, log: str) -> str:
    """Why a worker that said nothing ended: its signal or exit code, and where its log is."""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        why = "out of memory, or killed by hand?" if killed_for_memory(rc) else "a crash?"
        return f"worker was killed by {name} ({why}); see its log {log}"
    return f"worker exited with code {rc} without a message (a crash?); see its log {log}"
