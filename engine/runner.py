# SPDX-License-Identifier: GPL-3.0-or-later
"""The runner: a :class:`ledger.Ledger` (what to do) driving a launcher (where workers run).

One engine for every face. Drive it either blocking (:meth:`Runner.run`) or step by step
(:meth:`Runner.poll`, never blocks: what the panel's modal operator calls on each timer tick).
Workers are separate Blender processes (:class:`launchers.LocalLauncher`, or Ray tasks with
``engine.ray_executor``), so a crash in one scene loses nothing else. Pure Python.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..settings import Settings
from ..wire.protocol import Event, Summary
from .launchers import Exit, Launcher, LocalLauncher, write_spec
from .ledger import Attempt, Job, Ledger, SceneResult

__all__ = ["Job", "Runner"]


class Runner:
    """Run :class:`Job` s through ``launcher`` (default: up to ``parallel`` local processes).

    ``work_dir`` receives job files and one log per worker. ``timeout`` (s): a worker silent for
    longer is killed and its job retried up to ``retries`` times. ``frame_budget``: frames a
    process may render before a fresh one replaces it (0: never). ``executable``, ``gpus``,
    ``env``: for the default local launcher.
    """

    @classmethod
    def from_settings(cls, jobs: list[Job], settings: Settings, work_dir: str | os.PathLike,
                      **kw: Any) -> Runner:
        """A local runner configured by the run options of ``settings`` (jobs, executable,
        timeout, retries, recycling, GPU pinning)."""
        return cls(jobs, work_dir=work_dir, parallel=settings.jobs, executable=settings.executable,
                   timeout=settings.timeout, retries=settings.retries,
                   frame_budget=settings.recycle_frames,
                   gpus=settings.gpu_list if settings.device_type != "CPU" else [], **kw)

    def __init__(self, jobs: list[Job], *, work_dir: str | os.PathLike, parallel: int = 1,
                 executable: str = "", timeout: float = 300.0, retries: int = 1,
                 frame_budget: int = 0, gpus: list[int] | None = None,
                 env: dict[str, str] | None = None, launcher: Launcher | None = None):
        self.ledger = Ledger(jobs, retries=retries, timeout=timeout)
        self.launcher = launcher or LocalLauncher(parallel=parallel, executable=executable,
                                                  gpus=gpus, env=env)
        self.work_dir = Path(work_dir)
        self.frame_budget = int(frame_budget)
        self.active: list[Attempt] = []
        self.spawned = 0
        self._backlog: list[Event] = []
        self._last_progress: tuple | None = None

    # -- driving -----------------------------------------------------------------------------
    def start(self) -> None:
        """Prepare the launcher (may raise before anything renders) and start the first workers."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.launcher.open(self.work_dir, list(self.ledger.pending))
        self.ledger.start(time.monotonic())
        self._fill()

    def poll(self) -> list[Event]:
        """Collect what the workers said since the last call, book their exits, kill silent ones,
        start new ones. Never blocks. Returns the new events (worker events plus runner events,
        then a ``progress`` event whenever the numbers changed)."""
        out, self._backlog = self._backlog, []
        events, exits = self.launcher.poll([a.handle for a in self.active])
        out.extend(self._book(events, exits))
        now = time.monotonic()
        for a in self.active:
            if self.ledger.silent(a, now):
                self.launcher.kill(a.handle)
                out.append(self.ledger.timed_out(a, now, self.launcher.where(a.handle)))
        self._fill()
        running = self.launcher.running([a.handle for a in self.active])
        key = (self.frames_done, self.frames_skipped, self.frames_total, running, self.done)
        if key != self._last_progress:
            self._last_progress = key
            out.append(self.ledger.progress(now, running, self.done))
        return out

    def run(self, on_event: Callable[[Event], None] | None = None,
            interval: float = 0.05) -> dict[str, SceneResult]:
        """Blocking driver: start, poll until done, return the per-scene results. On any
        exception (Ctrl-C included) every worker is stopped before it propagates."""
        try:
            self.start()
            while True:
                for e in self.poll():
                    if on_event:
                        on_event(e)
                if self.done and not self._backlog:
                    break
                time.sleep(interval)
        except BaseException:
            self.cancel()
            raise
        finally:
            self.launcher.close()
        return self.results

    def cancel(self) -> None:
        """Stop every worker now. Finished frames stay (they are journaled); the journal lets a
        rerun resume exactly where this stopped. Their last events come with the next poll."""
        self.ledger.cancel()
        if self.active:
            events, exits = self.launcher.stop([a.handle for a in self.active])
            self._backlog.extend(self._book(events, exits))
        self.active.clear()

    def close(self) -> None:
        """Free what the launcher holds (Ray: the probe file); :meth:`run` does this itself."""
        self.launcher.close()

    @property
    def done(self) -> bool:
        return self.ledger.finished(len(self.active))

    # -- state (read by the panel) ---------------------------------------------------------------
    @property
    def results(self) -> dict[str, SceneResult]:
        return self.ledger.results

    @property
    def cancelled(self) -> bool:
        return self.ledger.cancelled

    @property
    def frames_done(self) -> int:
        return self.ledger.frames_done

    @property
    def frames_skipped(self) -> int:
        return self.ledger.frames_skipped

    @property
    def frames_total(self) -> int:
        return self.ledger.frames_total

    @property
    def workers(self) -> list[Any]:
        """The launcher handles of the running workers (local: ``.proc`` is the process)."""
        return [a.handle for a in self.active]

    @property
    def progress(self) -> float:
        return self.ledger.overall(self.done)

    @property
    def eta_seconds(self) -> float | None:
        return self.ledger.eta_seconds(time.monotonic())

    @property
    def frames_per_second(self) -> float:
        return self.ledger.frames_per_second(time.monotonic())

    def summary(self, **kw: Any) -> Summary:
        """The run's :class:`protocol.Summary` (``kw``: see :meth:`ledger.Ledger.summary`)."""
        return self.ledger.summary(executor=self.launcher.name, nodes=self.launcher.nodes,
                                   logs=str(self.work_dir), **kw)

    # -- internals -----------------------------------------------------------------------------
    def _book(self, events: list[tuple[Any, Event]], exits: list[Exit]) -> list[Event]:
        by_handle = {id(a.handle): a for a in self.active}
        out: list[Event] = []
        now = time.monotonic()
        for h, e in events:
            a = by_handle.get(id(h))
            if a is not None:
                out.extend(self.ledger.on_event(a, e, now))
        for x in exits:
            a = by_handle.get(id(x.handle))
            if a is not None:
                self.active.remove(a)
                now_kills = oom_kills()
                oom = (None if a.oom_kills is None or now_kills is None
                       else now_kills > a.oom_kills)
                out.extend(self.ledger.on_exit(a, x.rc, x.lost, oom=oom))
        return out

    def _fill(self) -> None:
        cap = self.launcher.capacity
        while not cap or len(self.active) < cap:
            job = self.ledger.next_job()
            if job is None:
                return
            busy = {a.slot for a in self.active}
            slot = next(i for i in range(len(busy) + 1) if i not in busy)
            self.spawned += 1
            spec = write_spec(self.work_dir, self.spawned, job, slot,
                              self.launcher.placement(slot, job), self.frame_budget)
            try:
                handle = self.launcher.start(spec)
            except BaseException:
                self.ledger.pending.appendleft(job)
                raise
            a = self.ledger.begin(job, slot, str(spec.log_path), time.monotonic(),
                                  started=self.launcher.started(handle))
            a.handle = handle
            a.oom_kills = oom_kills()
            self.active.append(a)


def oom_kills() -> int | None:
    """How many processes the out-of-memory killer has killed so far: this process's memory
    cgroup's count (cgroup v2 ``memory.events``, v1 ``memory.oom_control``), else the system's
    (``/proc/vmstat``, Linux 4.13+); None where none can be read. A worker that dies by SIGKILL
    while it grew is an OOM kill, not a crash to retry."""
    files = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrl, path = line.split(":", 2)
            if ctrl == "":
                files.append(Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.events")
            elif "memory" in ctrl.split(","):
                files.append(Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.oom_control")
    except (OSError, ValueError):
        pass
    files.append(Path("/proc/vmstat"))
    for f in files:
        try:
            for line in f.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return None
