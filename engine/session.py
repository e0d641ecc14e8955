# SPDX-License-Identifier: GPL-3.0-or-later
"""One run, start to end: the output folder's lock, ``plan.json``, the runner, ``manifest.json``
and the summary. Pure Python.

Every face drives a run through a :class:`RunSession`: ``render_animation`` and
``create_datasets`` (:mod:`engine.api`), the CLI, and the panel (step by step, with
:meth:`RunSession.poll`). So every run takes the same lock, writes its logs to the same place and
returns the same :class:`protocol.Summary`.

:meth:`RunSession.run` also turns SIGTERM and SIGHUP into what Ctrl-C does (workers stopped,
manifest written): :class:`Interrupted`, a ``KeyboardInterrupt`` that carries the signal.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from ..dataset.documents.plan import Plan
from ..dataset.layout import STATE_DIR
from ..dataset.lock import FolderBusy, FolderLock
from ..dataset.provenance import clean_stale_tmp
from ..dataset.transforms import write_json_atomic
from ..settings import Settings, frame_range_problem
from ..wire.protocol import Event, SequenceSpec, Summary
from .ledger import Job
from .plan import PLAN_NAME, PlanError, write_manifest
from .runner import Runner

__all__ = ["Interrupted", "RunLock", "RunSession", "ensure_writable", "interrupt_on_signals"]



class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT, SIGTERM, SIGHUP); ``exit_code`` is 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
        self.name = signal.Signals(signum).name


@contextmanager
def interrupt_on_signals(signums: tuple[int, ...] | None = None) -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread (once: a
    second signal during the cleanup is ignored). Only signals still at their default action are
    taken over (``nohup`` keeps SIGHUP ignored; an application's own handler stays); elsewhere
    than the main thread this does nothing."""
    if signums is None:
        signums = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)

    taken = [s for s in signums if signal.getsignal(s) is signal.SIG_DFL]
    for s in taken:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s in taken:
            signal.signal(s, signal.SIG_DFL)


def ensure_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove that files can be written in it; raises
    :class:`PlanError` with one clear sentence otherwise."""
    path = Path(folder).expanduser().resolve()
    probe = path / f".dataset_forge_write_test_{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise PlanError(f"cannot write to the output folder {path} ({why}); choose a folder you "
                        "can write to, or fix its permissions") from None
    return path


class RunLock(FolderLock):
    """The lock on an output folder for the length of a run (:class:`dataset.lock.FolderLock`).

    Two runs writing the same sequences would render the same frames twice and could interleave
    their files; the second one fails at once instead, with a :class:`PlanError` saying what to
    do."""

    def acquire(self) -> RunLock:
        try:
            super().acquire()
        except FolderBusy as exc:
            raise PlanError(f"{exc}; wait for it to finish or stop it, then rerun to resume") from None
        return self


class RayOptions(TypedDict, total=False):
    """The Ray executor's options: the cluster ``address`` and the CPUs / GPUs of each task."""

    address: str | None
    num_cpus: float | None
    num_gpus: float | None


class RunSession:
    """One run into ``output_dir``: :meth:`open` (lock, ``plan.json``, runner), then either
    :meth:`run` (blocking) or :meth:`start` / :meth:`poll` / :meth:`cancel` (the panel), then
    :meth:`finish` (``manifest.json``, ``summary.json``, lock released) -> :class:`Summary`.

    Build it with :meth:`for_plan` (``create_datasets``: a plan of scenes into a datasets folder)
    or :meth:`for_sequence` (``render_animation``: one sequence folder, no plan or manifest).
    ``executor``: ``local`` (worker processes here) or ``ray`` (a Ray task per scene, see
    :mod:`engine.ray_executor`; ``ray_options``: ``address``, ``num_cpus``, ``num_gpus``).
    """

    def __init__(self, output_dir: str | os.PathLike, jobs: list[Job], settings: Settings, *,
                 plan: Plan | None = None, executor: str = "local",
                 ray_options: RayOptions | None = None, env: dict[str, str] | None = None):
        if executor not in ("local", "ray"):
            raise PlanError(f"unknown executor {executor!r}: choose local or ray")
        self.output_dir = Path(output_dir).expanduser().resolve()
        self.jobs = jobs
        self.settings = settings
        self.plan = plan
        self.executor = executor
        self.ray_options = dict(ray_options or {})
        self.env = env
        self.runner: Runner | None = None
        self.summary: Summary | None = None
        self._lock: RunLock | None = None
        self._t0 = 0.0

    @classmethod
    def for_plan(cls, plan: Plan, settings: Settings, **kw: Any) -> RunSession:
        """The run of a :func:`plan.build_plan` plan (one job per renderable scene)."""
        jobs = [Job(blend=j.blend, scene_name=j.scene, settings=settings.to_dict(),
                    sequences=[SequenceSpec(**q) for q in j.sequences]) for j in plan.jobs]
        return cls(plan.datasets_dir, jobs, settings, plan=plan, **kw)

    @classmethod
    def for_sequence(cls, blend: str | os.PathLike, out_dir: str | os.PathLike, settings: Settings,
                     frame_start: int | None = None, frame_end: int | None = None,
                     **kw: Any) -> RunSession:
        """The run of one sequence: frames ``frame_start..frame_end`` of ``blend`` (inclusive,
        stretched timeline; None: the scene's own range, read by the worker) into ``out_dir``."""
        blend = str(Path(blend).resolve())
        out = Path(out_dir).expanduser().resolve()
        if frame_start is not None or frame_end is not None:
            a = frame_start if frame_start is not None else frame_end
            b = frame_end if frame_end is not None else frame_start
            bad = frame_range_problem(a, b)
            if bad:
                raise PlanError(f"frames {frame_start}..{frame_end} of {Path(blend).name}: {bad}; "
                                "choose frames inside it")
            if frame_start is not None and frame_end is not None and frame_end < frame_start:
                raise PlanError(f"frame_end {frame_end} is before frame_start {frame_start}")
        seq: SequenceSpec = {"id": None, "out_dir": str(out), "frame_start": frame_start,
                             "frame_end": frame_end}
        if frame_start is not None and frame_end is not None:
            from ..sampling import sequence_id

            seq["id"] = sequence_id(settings.keyframe_multiplier, frame_start,
                                    frame_end - frame_start + 1)
        job = Job(blend=blend, scene_name=Path(blend).stem, sequences=[seq],
                  settings=settings.to_dict())
        return cls(out, [job], settings, **kw)

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self) -> Runner:
        """Check the folder, take its lock, write ``plan.json`` and build the (not started)
        runner. Raises :class:`PlanError` (folder not writable, another run holds the lock ...)."""
        if self.runner is not None:
            return self.runner
        out = ensure_writable(self.output_dir)
        self._lock = RunLock(out).acquire()
        try:
            clean_stale_tmp(out)  # a killed run's half-written manifest or plan
            if self.plan is not None:
                self.plan.write(out / PLAN_NAME)
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            work_dir = out / STATE_DIR / "logs" / f"{stamp}-{os.getpid()}"
            s = self.settings
            if self.executor == "ray":
                from .ray_executor import ray_runner

                self.runner = ray_runner(self.jobs, work_dir=work_dir, executable=s.executable,
                                         timeout=s.timeout, retries=s.retries,
                                         frame_budget=s.recycle_frames, probe_dir=out,
                                         **self.ray_options)
            else:
                self.runner = Runner.from_settings(self.jobs, s, work_dir, env=self.env)
        except BaseException:
            self._release()
            raise
        return self.runner

    def start(self) -> None:
        """Open if needed and start the first workers (the panel's path)."""
        runner = self.open()
        self._t0 = time.monotonic()
        try:
            runner.start()
        except BaseException:
            self._release()
            raise

    def poll(self) -> list[Event]:
        assert self.runner is not None
        return self.runner.poll()

    @property
    def done(self) -> bool:
        return self.runner is not None and self.runner.done

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def run(self, on_event: Callable[[Event], None] | None = None) -> Summary:
        """Render everything and return the summary. Ctrl-C, SIGTERM and SIGHUP stop the workers,
        write the manifest and raise (:class:`Interrupted` for the signals)."""
        runner = self.open()
        self._t0 = time.monotonic()
        try:
            with interrupt_on_signals():
                runner.run(on_event=on_event)
        finally:
            # Also after Ctrl-C: the manifest tells what is on disk.
            summary = self.finish()
        return summary

    def finish(self) -> Summary:
        """Write ``manifest.json`` (a plan's run) and ``summary.json`` beside the logs, release the
        lock; returns the summary. Called once the runner is done or cancelled."""
        if self.summary is not None:
            return self.summary
        try:
            assert self.runner is not None
            self.runner.close()
            scenes = self.plan.scenes if self.plan is not None else []
            rejected = {sc.name: (sc.blend, sc.error) for sc in scenes if sc.error}
            order = [sc.name for sc in scenes] if self.plan is not None else None
            summary = self.runner.summary(
                rejected=rejected, order=order, seconds=time.monotonic() - self._t0,
                plan=str(self.output_dir / PLAN_NAME) if self.plan is not None else None)
            # Known before the files below are written: a failed write (disk full) is raised to
            # the caller, who still gets the run's summary (the panel reports both).
            self.summary = summary
            if self.plan is not None:
                summary["manifest"] = str(write_manifest(self.plan, summary))
            # Beside the workers' logs: what this run did, for later questions.
            write_json_atomic(self.runner.work_dir / "summary.json", summary)
        finally:
            self._release()
        return summary

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

