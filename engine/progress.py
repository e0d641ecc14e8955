# SPDX-License-Identifier: GPL-3.0-or-later
"""Plain-text progress for the command line and the Python API. Pure Python.

:class:`ProgressPrinter` is an ``on_event`` callback for :meth:`runner.Runner.run`. On a terminal it
redraws one bar line (``[#####-----]  45%  123/270 frames  2.1 frames/s  ETA 1m05s``); in a log
(no TTY) it prints the same text as a new line at most every ``interval`` seconds and at the end,
so CI logs stay short. Failures, retries and finished scenes are printed on their own line, or
sent to a :mod:`logging` logger (``dataset_forge``) when it is given one: :func:`console` does that
for the CLI and the Python API, with a handler that prints the messages above the bar.

A stream that is closed or missing (``2>&-`` makes ``sys.stderr`` None) is never written to.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from ..text import bar, format_duration
from ..wire.protocol import Ev, Event, Summary

LOG = logging.getLogger("dataset_forge")


def format_bar(e: Event, width: int = 24) -> str:
    """One line for a ``progress`` event."""
    frac = float(e.get("fraction", 0.0))
    total = e.get("frames_total", 0)
    finished = e.get("frames_done", 0) + e.get("frames_skipped", 0)
    skipped = f" ({e['frames_skipped']} already done)" if e.get("frames_skipped") else ""
    return (f"{bar(frac, width)} {frac * 100:5.1f}%  {finished}/{total} frames"
            f"{skipped}  {e.get('fps', 0.0):.2f} frames/s  ETA {format_duration(e.get('eta'))}  "
            f"scenes {e.get('scenes_finished', 0)}/{e.get('scenes_total', 0)}  "
            f"workers {e.get('workers', 0)}")


def is_terminal(stream: TextIO | None) -> bool:
    """``stream.isatty()``, False for a missing or closed stream."""
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


class ProgressPrinter:
    """``on_event`` callback that prints a progress bar with ETA and the notable events.

    ``stream`` None: no bar (the messages still go to ``logger``). ``logger``: send the messages
    there (with their level) instead of printing them."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 interval: float = 10.0, verbose: bool = False,
                 logger: logging.Logger | None = None):
        self.stream = stream
        self.tty = is_terminal(stream) if tty is None else tty
        self.interval = float(interval)
        self.verbose = verbose
        self.logger = logger
        self._last_print: float | None = None
        self._bar_shown = False
        self.last: Event | None = None
        self._device: str | None = None

    def _write(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed, or the reader went away: stop writing
            self.stream = None

    def line(self, text: str) -> None:
        """Print ``text`` on its own line (above the bar on a terminal)."""
        if self.tty and self._bar_shown:
            self._write("\r\033[K")
            self._bar_shown = False
        self._write(text + "\n")

    def _bar(self, e: Event, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or self._last_print is None or now - self._last_print >= 0.1:
                self._write("\r\033[K" + format_bar(e))
                self._bar_shown = self.stream is not None
                self._last_print = now
        elif force or self._last_print is None or now - self._last_print >= self.interval:
            self.line(format_bar(e))
            self._last_print = now

    def __call__(self, e: Event) -> None:
        if e.get("event") == Ev.PROGRESS:
            self.last = e
            self._bar(e, force=bool(e.get("done")))
            return
        said = self.describe(e)
        if said is None:
            return
        if self.logger is not None:
            self.logger.log(*said)
        else:
            self.line(said[1])

    def describe(self, e: Event) -> tuple[int, str] | None:
        """(logging level, one line) for a notable event, None for the others."""
        kind = e.get("event")
        scene = e.get("scene")
        if kind == Ev.SCENE_FAILED:
            return logging.ERROR, f"FAILED {scene}: {'; '.join(e.get('reasons', []))}"
        if kind == Ev.RETRY:
            return (logging.WARNING,
                    f"retrying {scene} (attempt {e.get('attempt')}): {e.get('reason')}")
        if kind == Ev.WORKER_TIMEOUT:
            return logging.WARNING, f"{scene}: worker silent for {e.get('seconds')} s, killed"
        if kind == Ev.WORKER_RECYCLED:
            return logging.INFO, f"{scene}: worker restarted after its frame budget (recycle_frames)"
        if kind == Ev.SCENE_DONE:
            status = e.get("status", "done")
            return logging.INFO, f"{status} {scene}" + (" (already complete)"
                                                       if status == "skipped" else "")
        if kind == Ev.DEVICE and (self.verbose or e.get("device") != self._device):
            # Always say where rendering happens (a CPU fallback must be plain in the log), once
            # per change rather than once per scene.
            self._device = e.get("device")
            return logging.INFO, f"{scene}: {e.get('device')}"
        if kind == Ev.WARNING:  # e.g. a missing linked library or texture
            return logging.WARNING, f"{scene}: {e.get('message')}"
        if kind == Ev.NOTICE:  # something the run did on its own, e.g. a re-render
            return logging.INFO, str(e.get("message"))
        if kind == Ev.ERROR and self.verbose:
            return logging.ERROR, f"{scene}: {e.get('message')}"
        return None

    def close(self) -> None:
        """End the bar line (terminal) so the summary starts on a fresh line."""
        if self.last is not None and not self.last.get("done"):
            self._bar(self.last, force=True)
        if self.tty and self._bar_shown:
            self._write("\n")
            self._bar_shown = False


class _PrinterHandler(logging.Handler):
    """Prints log records through a :class:`ProgressPrinter` (above its bar), message only."""

    def __init__(self, printer: ProgressPrinter):
        super().__init__(logging.INFO)
        self.printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.printer.line(record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never end a run
            self.handleError(record)


@contextmanager
def console(on_progress: Callable[[Event], None] | None = None, *, bar: bool | None = None,
            stream: TextIO | None = None, show_messages: bool | None = None,
            ) -> Iterator[Callable[[Event], None]]:
    """The ``on_event`` callback of a run: calls ``on_progress``, draws the progress line on
    ``stream`` (default stderr; ``bar`` None: only when it is a terminal) and logs the messages to
    ``dataset_forge``. ``show_messages``: print them above the bar with a handler that lives for
    the run (None: when the bar was asked for, or is drawn and nobody configured logging)."""
    stream = sys.stderr if stream is None else stream
    if show_messages is None:
        show_messages = bar is True or (bar is None and is_terminal(stream)
                                        and not LOG.hasHandlers())
    if bar is None:
        bar = is_terminal(stream)
    printer = ProgressPrinter(stream if bar else None, logger=LOG)
    handler = _PrinterHandler(printer) if show_messages else None
    level = LOG.level
    if handler is not None:
        LOG.addHandler(handler)
        if level == logging.NOTSET or level > logging.INFO:
            LOG.setLevel(logging.INFO)

    def report(e: Event) -> None:
        if on_progress is not None:
            on_progress(e)
        printer(e)

    try:
        yield report
    finally:
        printer.close()
        if handler is not None:
            LOG.removeHandler(handler)
            LOG.setLevel(level)


def summary_head(summary: Summary, where: str) -> str:
    """The run's result in one sentence (the CLI's first line, the panel's final report):
    ``2 scene(s) done, 0 skipped (already complete), 1 failed; 12 frame(s) rendered, 0 already
    complete, in WHERE``."""
    return (f"{len(summary.get('done', []))} scene(s) done, {len(summary.get('skipped', []))} "
            f"skipped (already complete), {len(summary.get('failed', {}))} failed; "
            f"{summary.get('frames_rendered', 0)} frame(s) rendered, "
            f"{summary.get('frames_skipped', 0)} already complete, in {where}")


def format_summary(summary: Summary) -> str:
    """The end-of-run text: one line per scene (done / skipped / failed with its reason)."""
    lines = []
    for name, sc in summary.get("scenes", {}).items():
        st = sc["status"]
        seqs = sc.get("sequences", [])
        if st == "failed":
            reason = summary.get("failed", {}).get(name) or "; ".join(sc.get("errors", []))
            lines.append(f"  FAILED  {name}: {reason}")
        else:
            r = sum(q["rendered"] for q in seqs)
            k = sum(q["skipped"] for q in seqs)
            lines.append(f"  {st.upper():7s} {name}: {len(seqs)} sequence(s), {r} frame(s) rendered, "
                         f"{k} already complete")
    head = summary_head(summary, f"{summary.get('seconds', 0):.1f} s")
    if summary.get("cancelled"):
        head += " (cancelled: rerun the same command to resume)"
    tail = [f"manifest: {summary['manifest']}"] if summary.get("manifest") else []
    return "\n".join([head, *lines, *tail])
