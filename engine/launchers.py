# SPDX-License-Identifier: GPL-3.0-or-later
"""Launchers: where worker processes run. Pure Python (no bpy).

A launcher starts one worker for one job file and reports what it prints and when it ends; the
:class:`runner.Runner` decides everything else (with its :class:`ledger.Ledger`). The interface:

* :meth:`Launcher.open` once before the first start (connect, check the cluster ...);
* :meth:`Launcher.placement` the GPU and the settings of a worker in a slot;
* :meth:`Launcher.start` a worker on a written :class:`WorkerSpec` -> a handle;
* :meth:`Launcher.poll` (never blocks) -> the events printed since the last call, and the handles
  that ended with their exit code; a handle's exit comes after all of its events;
* :meth:`Launcher.kill` one worker (a silent one), :meth:`Launcher.stop` every worker and wait,
  :meth:`Launcher.close` at the end.

:class:`LocalLauncher` runs workers as processes on this machine; ``engine.ray_executor`` has the
one that runs them as Ray tasks. Both start the worker with :func:`popen_worker`, and the job file
and log of every worker come from :func:`write_spec`.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset.documents.job import JobSpec
from ..settings import SettingsDict
from ..wire import events as ev
from ..wire.protocol import Event
from .launch import gpu_for_slot, gpu_pinning, worker_command, worker_env
from .ledger import Job

__all__ = ["Exit", "Launcher", "LocalHandle", "LocalLauncher", "LogCopy", "Placement", "WorkerSpec",
           "kill_process_group", "popen_worker", "worker_settings", "write_spec"]

LOG = logging.getLogger("dataset_forge")


class LogCopy:
    """A worker's output copied, line-buffered, to its log file ``path``. The log is for reading
    later; the events are the run: a log that cannot be opened or written (a full disk) costs one
    warning and the rest of the copy, never an event."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self._fh: Any = None
        try:
            # Line-buffered: the log is complete up to the last line even if the runner is killed.
            self._fh = open(path, "w", encoding="utf-8", buffering=1)
        except OSError as exc:
            self._give_up(exc)

    def write(self, text: str) -> None:
        if self._fh is not None:
            try:
                self._fh.write(text)
            except (OSError, ValueError) as exc:  # ValueError: closed by a kill meanwhile
                self._give_up(exc)

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError as exc:
                self._warn(exc)

    def _give_up(self, exc: BaseException) -> None:
        self._warn(exc)
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass

    def _warn(self, exc: BaseException) -> None:
        LOG.warning("worker log %s: not written further (%s); the run goes on", self.path, exc)


@dataclass(frozen=True)
class Placement:
    """Where a worker renders: ``gpu`` (the GPU it alone sees, or None), ``gpu_index`` (the
    Cycles device index it selects) and the ``settings`` it gets."""

    gpu: int | None
    gpu_index: int | None
    settings: SettingsDict


@dataclass(frozen=True)
class WorkerSpec:
    """A worker ready to start: its job file, its log file, a run-unique ``key`` and its slot."""

    key: str
    slot: int
    job_path: Path
    log_path: Path
    gpu: int | None


@dataclass(frozen=True)
class Exit:
    """A worker ended: exit code ``rc`` (negative: killed by that signal); ``lost``: why the
    launcher lost it when the worker could not say so itself (a Ray task gone with its node)."""

    handle: Any
    rc: int
    lost: str | None = None


def worker_settings(settings: SettingsDict, parallel: int,
                    cpu_count: int | None = None) -> SettingsDict:
    """The settings a worker gets: with ``threads`` 0 (all cores) and several workers, each one
    gets an equal share of the cores, so that N workers do not each start a thread per core."""
    if int(settings.get("threads") or 0) or parallel <= 1:
        return settings
    cores = cpu_count or os.cpu_count() or 1
    return {**settings, "threads": max(1, cores // parallel)}


def write_spec(work_dir: Path, number: int, job: Job, slot: int, placement: Placement,
               frame_budget: int) -> WorkerSpec:
    """Write ``job-NNNNN.json`` (what the worker renders) into ``work_dir``; the worker's log will
    be ``worker-NNNNN.log`` beside it. ``number`` counts the workers of the run from 1."""
    job_path = JobSpec.render(job.blend, job.scene_name, placement.settings, job.sequences,
                              frame_budget, placement.gpu_index, placement.gpu).write(
        work_dir / f"job-{number:05d}.json")
    return WorkerSpec(key=f"{number:05d}", slot=slot, job_path=job_path,
                      log_path=work_dir / f"worker-{number:05d}.log", gpu=placement.gpu)


def popen_worker(job_path: str | os.PathLike, executable: str,
                 env: dict[str, str]) -> subprocess.Popen:
    """Start the worker process on ``job_path``: text output (stdout and stderr merged) on a pipe,
    no stdin, in its own process group (so that killing it kills what it started)."""
    return subprocess.Popen(worker_command(job_path, executable), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, text=True,
                            encoding="utf-8", errors="replace", bufsize=1,
                            start_new_session=os.name == "posix")


def kill_process_group(proc: subprocess.Popen) -> None:
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


class Launcher:
    """Base of the launchers; see the module's docstring. ``capacity``: workers at once (0: as
    many as there are jobs; the cluster queues what does not fit)."""

    name = "local"
    capacity = 1
    nodes: dict[str, str]

    def open(self, work_dir: Path, jobs: list[Job]) -> None:
        """Called once, before the first :meth:`start`; may raise (nothing rendered yet)."""

    def placement(self, slot: int, job: Job) -> Placement:
        raise NotImplementedError

    def start(self, spec: WorkerSpec) -> Any:
        raise NotImplementedError

    def poll(self, handles: list[Any]) -> tuple[list[tuple[Any, Event]], list[Exit]]:
        """Never blocks: the events of the workers since the last call, and the exits of those of
        ``handles`` (the running ones) that ended."""
        raise NotImplementedError

    def started(self, handle: Any) -> bool:
        """Whether the worker runs (a queued Ray task does not yet: it cannot be silent)."""
        return True

    def running(self, handles: list[Any]) -> int:
        """How many of ``handles`` run now (what the progress line calls workers)."""
        return len(handles)

    def kill(self, handle: Any) -> None:
        raise NotImplementedError

    def stop(self, handles: list[Any]) -> tuple[list[tuple[Any, Event]], list[Exit]]:
        """Kill every worker, wait for them; returns their last events and exits."""
        raise NotImplementedError

    def where(self, handle: Any) -> str:
        """' on HOST' for a worker on another machine, else ''."""
        return ""

    def close(self) -> None:
        """Free what :meth:`open` took (the run's logs stay)."""


@dataclass
class LocalHandle:
    """A worker process on this machine, with the thread that reads its output."""

    spec: WorkerSpec
    proc: subprocess.Popen
    log: LogCopy
    reader: threading.Thread | None = None
    exited: bool = False


class LocalLauncher(Launcher):
    """Worker processes on this machine: up to ``parallel`` at once, slot ``i`` pinned to GPU
    ``gpus[i % len(gpus)]``; ``env`` the base environment (None: this process's)."""

    name = "local"

    def __init__(self, *, parallel: int = 1, executable: str = "", gpus: list[int] | None = None,
                 env: dict[str, str] | None = None):
        self.capacity = max(1, int(parallel))
        self.executable = executable
        self.gpus = list(gpus or [])
        self.base_env = env
        self.nodes = {}
        self._queue: queue.Queue = queue.Queue()

    def placement(self, slot: int, job: Job) -> Placement:
        gpu = gpu_for_slot(slot, self.gpus)
        return Placement(gpu, gpu_pinning(gpu)[1], worker_settings(job.settings, self.capacity))

    def start(self, spec: WorkerSpec) -> LocalHandle:
        log = LogCopy(spec.log_path)
        try:
            proc = popen_worker(spec.job_path, self.executable,
                                worker_env(self.base_env, gpu=spec.gpu))
        except BaseException:
            log.close()
            raise
        h = LocalHandle(spec, proc, log)
        h.reader = threading.Thread(target=self._read, args=(h,), daemon=True,
                                    name=f"dataset_forge_reader_{spec.key}")
        h.reader.start()
        return h

    def _read(self, h: LocalHandle) -> None:
        for line in h.proc.stdout:
            h.log.write(line)
            e = ev.decode(line.strip())
            if e is not None:
                self._queue.put((h, e))

    def _drain(self) -> list[tuple[Any, Event]]:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def poll(self, handles: list[LocalHandle]) -> tuple[list[tuple[Any, Event]], list[Exit]]:
        exits = []
        for h in handles:
            rc = h.proc.poll()
            if rc is not None and not h.exited:
                if h.reader is not None:
                    h.reader.join(timeout=5)
                h.exited = True
                self._close_log(h)
                exits.append(Exit(h, rc))
        return self._drain(), exits

    def kill(self, handle: LocalHandle) -> None:
        kill_process_group(handle.proc)

    def stop(self, handles: list[LocalHandle]) -> tuple[list[tuple[Any, Event]], list[Exit]]:
        for h in handles:
            if h.proc.poll() is None:
                kill_process_group(h.proc)
        for h in handles:
            h.proc.wait()
        return self.poll(handles)

    @staticmethod
    def _close_log(h: LocalHandle) -> None:
        h.log.close()

