# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame-level resume journal. Pure Python.

A frame counts as done only when a journal line for it exists **and** every file it lists still
has the recorded size. The line is appended (and fsync'ed) only after all of the frame's files
were written, checked complete (``dataset.verify``) and flushed to the disk with their folders,
so a worker killed mid-frame leaves either no line (frame re-rendered) or a torn last line
(ignored). A truncated or deleted file fails the size check, so it is re-rendered too.

A line of another shape (wrong types, a number that is not finite) vouches for nothing: it is
skipped (:attr:`Journal.bad_lines`). A journal that cannot be read at all (bytes that are not
text, not a file) was damaged by something other than a kill: :attr:`Journal.damaged` says why,
nothing in it is vouched for, and :func:`set_aside` moves it out of the way (the worker does,
holding the folder) so that the folder is treated as one without a record.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .documents.base import DocumentError
from .documents.journal import JournalLine, torn
from .layout import JOURNAL
from .verify import check_written, sync_written, write_error


def set_aside(path: str | os.PathLike) -> Path | None:
    """Rename a damaged state file ``path`` to ``NAME.damaged-YYYYmmddTHHMMSS`` beside it (kept
    for inspection, never read again); returns the new path, None when it is gone already."""
    p = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for n in range(100):
        dst = p.with_name(f"{p.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
        if dst.exists():
            continue
        try:
            os.replace(p, dst)
        except FileNotFoundError:
            return None
        return dst
    return None


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Journal:
    """Append-only record of the completed frames of one sequence folder.

    With ``background``, :meth:`mark_done` checks the files at once (cheap) and leaves the slow
    part (fsync of the files, their folders and the journal line) to one writer thread, in
    order, so that it overlaps the next frame's render; :meth:`flush` waits for it and raises
    its error, :meth:`close` waits without raising."""

    def __init__(self, seq_dir: str | os.PathLike, *, background: bool = False):
        self.seq_dir = Path(seq_dir)
        self.path = self.seq_dir / JOURNAL
        self._done: dict[int, dict[str, int]] = {}
        self._background = background
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._torn_tail = False  # the file ends inside a line: the next line starts a new one
        self.damaged: str | None = None  # why the journal cannot be read at all (nothing is done)
        self.bad_lines = 0  # lines neither ours nor torn by a kill (ignored)
        self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self.damaged = f"cannot be read: {exc.strerror or exc}"
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.damaged = "holds bytes that are not text"
            return
        self._torn_tail = bool(text) and not text.endswith("\n")
        lines = text.splitlines()
        done: dict[int, dict[str, int]] = {}
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                rec = JournalLine.parse(line, f"{self.path} line {i + 1}")
            except DocumentError:
                # A kill cuts the line being appended (a prefix of what we write, followed by
                # nothing or by the newline the next run puts first); a line of another shape
                # vouches for nothing either: its frame is rendered again.
                if not torn(line):
                    self.bad_lines += 1
                continue
            done[rec.frame] = rec.files
        self._done = done

    def is_done(self, frame: int, files: list[str] | None = None) -> bool:
        """True when ``frame`` was journaled and its files are intact. ``files`` (relative paths)
        must all be among the journaled ones when given (a new ground truth makes it not done)."""
        rec = self._done.get(frame)
        if rec is None:
            return False
        if files is not None and not set(files) <= set(rec):
            return False
        for rel, size in rec.items():
            try:
                if (self.seq_dir / rel).stat().st_size != size:
                    return False
            except OSError:
                return False
        return True

    def mark_done(self, frame: int, files: list[str],
                  then: Callable[[], None] | None = None) -> None:
        """Record ``frame`` as complete with the sizes of ``files`` (relative paths), after
        checking that each one is a complete image and flushing files and folders to the disk
        (:mod:`dataset.verify`); then call ``then`` (the frame is vouched for). Raises
        :class:`dataset.verify.WriteError` (one line: path, cause, fix) when a file is missing or
        incomplete or the journal cannot be written (in background mode: a failure of an earlier
        frame's commit); the frame then stays not done."""
        self._raise_pending()
        paths = [self.seq_dir / rel for rel in files]
        checked = check_written(paths)
        sizes = {rel: checked[os.fspath(p)] for rel, p in zip(files, paths)}
        if not self._background:
            self._commit(int(frame), sizes, paths, then)
            return
        if self._thread is None:
            self._queue = queue.Queue(maxsize=2)  # a slow disk holds the render back
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="dataset_forge_journal")
            self._thread.start()
        self._queue.put((int(frame), sizes, paths, then))

    def _commit(self, frame: int, sizes: dict[str, int], paths: list[Path],
                then: Callable[[], None] | None) -> None:
        sync_written(paths)
        line = JournalLine(frame, sizes).to_line()
        if self._torn_tail:
            line = "\n" + line
        try:
            self.seq_dir.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            if new:
                _fsync_dir(self.seq_dir)
        except OSError as exc:
            raise write_error(exc, self.path) from None
        self._torn_tail = False
        self._done[frame] = sizes
        if then is not None:
            then()

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after a failure nothing more is vouched for
                    self._commit(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller by flush()
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_pending(self) -> None:
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc

    def flush(self) -> None:
        """Wait until every frame passed to :meth:`mark_done` is committed; raise the first
        error of the background writer."""
        if self._queue is not None:
            self._queue.join()
        self._raise_pending()

    def close(self) -> None:
        """Wait for the background writer and stop it (errors are left to :meth:`flush`)."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            self._queue = None

    @property
    def done_frames(self) -> set[int]:
        return set(self._done)
