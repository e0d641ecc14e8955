# SPDX-License-Identifier: GPL-3.0-or-later
"""The panel's run controller: the state machine behind the *Render* operators. Pure Python.

A :class:`RunController` owns one :class:`engine.session.RunSession` (lock, plan, runner,
manifest), turns its events into what the panel shows (overall progress, ETA, frames/s, one row
per busy worker, messages, per-scene errors) and into the final report. The modal operator calls
:meth:`step` on every timer tick and :meth:`cancel` on Esc / *Abort*; ``execute()`` calls
:meth:`run_blocking`. Both drive the same engine, so a script and the panel render identically.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

from ..dataset.documents.plan import Plan
from ..wire.protocol import Ev, Event, Summary
from .plan import frames_on_disk
from .progress import summary_head
from .runner import Runner
from .session import RunSession

MAX_MESSAGES = 50


@dataclass
class SlotState:
    """What one worker slot is rendering."""

    slot: int
    scene: str
    sequence: str = ""
    frames_done: int = 0
    frames_total: int = 0

    @property
    def progress(self) -> float:
        return min(1.0, self.frames_done / self.frames_total) if self.frames_total > 0 else 0.0


@dataclass
class Message:
    level: str  # INFO | WARNING | ERROR (the levels of Operator.report)
    text: str


@dataclass
class RunController:
    """Drive ``session`` step by step. ``output_dir`` is shown and reported; ``cleanup`` lists
    temporary folders removed when the run ends (e.g. the copy of an unsaved file)."""

    session: RunSession
    output_dir: str
    title: str = "Render Dataset"
    cleanup: list[str] = field(default_factory=list)
    slots: dict[int, SlotState] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    scene_errors: dict[str, str] = field(default_factory=dict)
    current_job: str = ""
    started: bool = False
    finished: bool = False
    kept: tuple[int, int] | None = None  # (frames complete on disk, planned) after a cancel

    def __post_init__(self) -> None:
        self.session.open()  # the lock and plan.json now: a busy folder is refused at once
        # Scenes the plan already rejected (unreadable, no camera, range too short) never reach
        # a worker: they are failures of this run all the same.
        for sc in self.plan.scenes if self.plan is not None else []:
            if sc.error:
                self.scene_errors[sc.name] = sc.error.splitlines()[0]

    @property
    def runner(self) -> Runner:
        assert self.session.runner is not None
        return self.session.runner

    @property
    def plan(self) -> Plan | None:
        return self.session.plan

    # -- driving ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.session.start()
        self.started = True

    def step(self) -> list[Message]:
        """Poll the runner once (never blocks); returns the new messages for the Info log."""
        before = len(self.messages)
        for e in self.session.poll():
            self._on_event(e)
        if self.session.done:
            self._finish()
        return self.messages[before:]

    def cancel(self) -> None:
        """Kill every worker now; finished frames stay on disk and in the journal."""
        if not self.finished:
            self.session.cancel()
            # cancel() read the workers' last output: count the frames finished before the kill.
            if self.session.runner is not None:
                for e in self.session.poll():
                    self._on_event(e)
            self.slots.clear()
            self._finish()

    def run_blocking(self, interval: float = 0.05, on_step=None) -> None:
        """Start (if needed) and step until done: the ``execute()`` path."""
        if not self.started:
            self.start()
        try:
            while not self.finished:
                new = self.step()
                if on_step is not None:
                    on_step(new)
                if not self.finished:
                    time.sleep(interval)
        except KeyboardInterrupt:
            self.cancel()
            raise

    @property
    def done(self) -> bool:
        return self.finished

    # -- what the panel shows --------------------------------------------------------------------
    @property
    def progress(self) -> float:
        """Finished (rendered + skipped) frames / planned frames, 0..1."""
        return self.runner.progress

    @property
    def status(self) -> str:
        r = self.runner
        if not self.finished:
            return (f"{self.title}: {r.frames_done + r.frames_skipped} / {r.frames_total} frames"
                    if r.frames_total else f"{self.title}: starting")
        return self.final_report()[1]

    def active_slots(self) -> list[SlotState]:
        return [self.slots[k] for k in sorted(self.slots)]

    def summary(self) -> Summary:
        """The run's summary (once it ended)."""
        assert self.session.summary is not None
        return self.session.summary

    def final_report(self) -> tuple[str, str]:
        """(level, sentence) for ``Operator.report`` once the run ended: done / skipped / failed."""
        s = self.summary()
        where = self.output_dir
        if s["cancelled"]:
            # A worker killed between journaling a frame and announcing it: the journal is what a
            # rerun trusts, so it is what we report as kept.
            kept, total = self.kept if self.kept is not None else (
                s["frames_rendered"] + s["frames_skipped"], s["frames_total"])
            return ("WARNING", f"Aborted: kept {kept} of {total} frames "
                               f"({s['frames_rendered']} rendered now, {s['frames_skipped']} from "
                               f"before) in {where}; render again to resume")
        failed = s["failed"]
        text = summary_head(s, where)
        if failed:
            name, reason = next(iter(failed.items()))
            # WARNING, not ERROR: the other scenes rendered (and bpy.ops raises on ERROR).
            return "WARNING", f"{text}. {name}: {str(reason).splitlines()[0]}"
        return "INFO", text

    # -- internals ---------------------------------------------------------------------------------
    def _say(self, level: str, text: str) -> None:
        self.messages.append(Message(level, text))
        del self.messages[:-MAX_MESSAGES]

    def _on_event(self, e: Event) -> None:
        kind = e.get("event")
        slot = e.get("slot")
        scene = e.get("scene") or ""
        if kind == Ev.JOB_STARTED and slot is not None:
            self.slots[slot] = SlotState(slot, scene, e.get("job") or "", 0, int(e.get("frames", 0)))
            self.current_job = f"{scene} {e.get('job') or ''}".strip()
        elif kind in (Ev.FRAME_DONE, Ev.FRAME_SKIPPED) and slot is not None:
            st = self.slots.get(slot)
            if st is None:
                st = self.slots[slot] = SlotState(slot, scene, e.get("job") or "")
            st.frames_done += 1
        elif kind == Ev.SCENE_OPENED and slot is not None:
            # The row shows the scene's planned frames from the start (its first job_started
            # narrows it to that sequence): never a row of "0/0".
            self.slots.setdefault(slot, SlotState(slot, scene, "", 0, self._planned_frames(scene)))
            self.current_job = scene
        elif kind == Ev.ERROR:
            where = f"{scene} {e.get('job') or ''}".strip() or "worker"
            self._say("ERROR", f"{where}: {e.get('message', '')}".splitlines()[0])
        elif kind == Ev.RETRY:
            self._say("WARNING", f"{scene}: retrying (attempt {e.get('attempt')}): "
                                 f"{str(e.get('reason', '')).splitlines()[0]}")
        elif kind == Ev.WORKER_TIMEOUT:
            self._say("WARNING", f"{scene}: worker silent for {e.get('seconds')} s, killed")
        elif kind == Ev.SCENE_FAILED:
            reasons = e.get("reasons") or ["unknown reason"]
            self.scene_errors[scene] = str(reasons[-1]).splitlines()[0]
            self._say("ERROR", f"{scene}: failed: {self.scene_errors[scene]}")
        elif kind == Ev.SCENE_DONE:
            self._say("INFO", f"{scene}: done")
        if kind in (Ev.SCENE_DONE, Ev.SCENE_FAILED, Ev.RETRY, Ev.WORKER_RECYCLED,
                    Ev.WORKER_TIMEOUT) and slot is not None:
            self.slots.pop(slot, None)

    def _planned_frames(self, scene: str) -> int:
        """Frames the plan gives ``scene`` (its sequences with a known range; 0 when none is
        known before the worker reads the scene's range)."""
        total = 0
        for job in self.plan.jobs if self.plan is not None else []:
            if job.scene == scene:
                total += job.frames
        return total

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.slots.clear()
        if self.plan is not None and self.session.runner is not None and self.runner.cancelled:
            try:
                self.kept = frames_on_disk(self.plan)
            except (OSError, KeyError, ValueError):
                self.kept = None
        try:
            self.session.finish()
        except (OSError, KeyError, ValueError) as exc:
            self._say("WARNING", f"manifest.json not written: {exc}")
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)
        level, text = self.final_report()
        self._say(level, text)


# The one run of this Blender session (the panel's "a run is active" state). Module level because
# a Runner (processes, threads) cannot live in a property.
_ACTIVE: list[RunController] = []


def active() -> RunController | None:
    """The controller of the run in progress, or None."""
    return _ACTIVE[0] if _ACTIVE and not _ACTIVE[0].finished else None


def set_active(ctl: RunController | None) -> None:
    _ACTIVE.clear()
    if ctl is not None:
        _ACTIVE.append(ctl)


def release(ctl: RunController) -> None:
    """Forget ``ctl`` if it is still the registered run (a newer run stays)."""
    if _ACTIVE and _ACTIVE[0] is ctl:
        _ACTIVE.clear()


def is_running() -> bool:
    return active() is not None
