# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame-level resume journal. Pure Python.

A frame counts as done only when a journal line for it exists **and** every file it lists still
has the recorded size. The line is appended (and fsync'ed) only after all of the frame's files
were written, checked complete (``dataset.verify``) and flushed to the disk with their folders,
so a worker killed mid-frame leaves either no line (frame re-rendered) or a torn last line
(ignored). A truncated or deleted file fails the size check, so it is re-rendered too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..dataset.verify import verify_written, write_error

JOURNAL_NAME = ".dataset_forge_journal.jsonl"


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Journal:
    """Append-only record of the completed frames of one sequence folder."""

    def __init__(self, seq_dir: str | os.PathLike):
        self.seq_dir = Path(seq_dir)
        self.path = self.seq_dir / JOURNAL_NAME
        self._done: dict[int, dict[str, int]] = {}
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                self._done[int(rec["frame"])] = {str(k): int(v) for k, v in rec["files"].items()}
            except (ValueError, KeyError, TypeError):
                continue  # torn line from a killed writer

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

    def mark_done(self, frame: int, files: list[str]) -> None:
        """Record ``frame`` as complete with the sizes of ``files`` (relative paths), after
        checking that each one is a complete image and flushing files and folders to the disk
        (:func:`dataset.verify.verify_written`). Raises :class:`dataset.verify.WriteError` (one
        line: path, cause, fix) when a file is missing or incomplete or the journal cannot be
        written; the frame then stays not done."""
        checked = verify_written([self.seq_dir / rel for rel in files])
        sizes = {rel: checked[os.fspath(self.seq_dir / rel)] for rel in files}
        line = json.dumps({"frame": int(frame), "files": sizes}, sort_keys=True) + "\n"
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
        self._done[int(frame)] = sizes

    @property
    def done_frames(self) -> set[int]:
        return set(self._done)
