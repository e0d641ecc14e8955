# SPDX-License-Identifier: GPL-3.0-or-later
"""A frame's files written on one background thread while the next frame renders (the render holds
no Python lock): the writes of each frame in order, :meth:`FrameWriter.wait` before the frame is
journaled. Used by the segmentation file and record writer (:class:`.objects.IdsWriter`) and the
flow writer (``render_passes/flow_plan.py``). Pure Python."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class FrameWriter:
    """Writes queued per frame on one thread named ``name``; seconds go to ``timings`` (each
    :meth:`run`'s key, and ``wait_key`` for the time :meth:`wait` waited, when given)."""

    def __init__(self, name: str, timings: dict[str, float] | None = None,
                 wait_key: str | None = None):
        self.name, self.wait_key = name, wait_key
        self.timings = {} if timings is None else timings
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[int, list[Future]] = {}

    def run(self, frame: int, key: str, write: Callable[[], None]) -> None:
        """``write()`` (raising a one-line :class:`.verify.WriteError`) on the thread after frame
        ``frame``'s earlier writes; its seconds go to ``timings[key]``."""
        def timed() -> None:
            t0 = time.perf_counter()
            write()
            self._add(key, time.perf_counter() - t0)
        self._queue(frame, timed)

    def _queue(self, frame: int, fn, *args) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        self._pending.setdefault(frame, []).append(self._pool.submit(fn, *args))

    def wait(self, frame: int) -> None:
        """Return once ``frame``'s files are written (at once when none was queued); the first
        failure is raised here (a one-line :class:`.verify.WriteError` naming the file)."""
        t0, failed = time.perf_counter(), None
        for fut in self._pending.pop(frame, []):
            try:
                fut.result()
            except BaseException as exc:  # noqa: BLE001 - the first is raised once all ended
                failed = failed or exc
        if self.wait_key is not None:
            self._add(self.wait_key, time.perf_counter() - t0)
        if failed is not None:
            raise failed

    def close(self) -> None:
        """Wait for the writes still running (their failures are left to :meth:`wait`)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _add(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds
