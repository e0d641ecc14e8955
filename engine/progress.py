# SPDX-License-Identifier: GPL-3.0-or-later
"""Plain-text progress for the command line. Pure Python.

:class:`ProgressPrinter` is an ``on_event`` callback for :meth:`runner.Runner.run`. On a terminal it
redraws one bar line (``[#####-----]  45%  123/270 frames  2.1 frames/s  ETA 1m05s``); in a log
(no TTY) it prints the same text as a new line at most every ``interval`` seconds and at the end,
so CI logs stay short. Failures, retries and finished scenes are always printed on their own line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def format_seconds(seconds: float | None) -> str:
    """``12s``, ``3m05s``, ``1h02m``; ``--`` when unknown."""
    if seconds is None:
        return "--"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def format_bar(e: dict[str, Any], width: int = 24) -> str:
    """One line for a ``progress`` event."""
    frac = float(e.get("fraction", 0.0))
    filled = int(round(frac * width))
    total = e.get("frames_total", 0)
    finished = e.get("frames_done", 0) + e.get("frames_skipped", 0)
    skipped = f" ({e['frames_skipped']} already done)" if e.get("frames_skipped") else ""
    return (f"[{'#' * filled}{'-' * (width - filled)}] {frac * 100:5.1f}%  {finished}/{total} frames"
            f"{skipped}  {e.get('fps', 0.0):.2f} frames/s  ETA {format_seconds(e.get('eta'))}  "
            f"scenes {e.get('scenes_finished', 0)}/{e.get('scenes_total', 0)}  "
            f"workers {e.get('workers', 0)}")


class ProgressPrinter:
    """``on_event`` callback that prints a progress bar with ETA and the notable events."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 interval: float = 10.0, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = float(interval)
        self.verbose = verbose
        self._last_print: float | None = None
        self._bar_shown = False
        self.last: dict[str, Any] | None = None
        self._device: str | None = None

    def _line(self, text: str) -> None:
        if self.tty and self._bar_shown:
            self.stream.write("\r\033[K")
            self._bar_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _bar(self, e: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or self._last_print is None or now - self._last_print >= 0.1:
                self.stream.write("\r\033[K" + format_bar(e))
                self.stream.flush()
                self._bar_shown = True
                self._last_print = now
        elif force or self._last_print is None or now - self._last_print >= self.interval:
            self._line(format_bar(e))
            self._last_print = now

    def __call__(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        if kind == "progress":
            self.last = e
            self._bar(e, force=bool(e.get("done")))
            return
        scene = e.get("scene")
        if kind == "scene_failed":
            self._line(f"FAILED {scene}: {'; '.join(e.get('reasons', []))}")
        elif kind == "retry":
            self._line(f"retrying {scene} (attempt {e.get('attempt')}): {e.get('reason')}")
        elif kind == "worker_timeout":
            self._line(f"{scene}: worker silent for {e.get('seconds')} s, killed")
        elif kind == "worker_recycled":
            self._line(f"{scene}: worker restarted after its frame budget (recycle_frames)")
        elif kind == "scene_done":
            status = e.get("status", "done")
            self._line(f"{status} {scene}" + (" (already complete)" if status == "skipped" else ""))
        elif kind == "device" and (self.verbose or e.get("device") != self._device):
            # Always say where rendering happens (a CPU fallback must be plain in the log), once
            # per change rather than once per scene.
            self._device = e.get("device")
            self._line(f"{scene}: {e.get('device')}")
        elif kind == "notice":  # something the run did on its own, e.g. a re-render
            self._line(str(e.get("message")))
        elif kind == "error" and self.verbose:
            self._line(f"{scene}: {e.get('message')}")

    def close(self) -> None:
        """End the bar line (terminal) so the summary starts on a fresh line."""
        if self.last is not None and not self.last.get("done"):
            self._bar(self.last, force=True)
        if self.tty and self._bar_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_shown = False
