# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame-level resume journal. Pure Python.

A frame counts as done only when a journal line for it exists **and** every file it lists still
has the recorded size. The line is appended (and fsync'ed) only after all of the frame's files
were written, so a worker killed mid-frame leaves either no line (frame re-rendered) or a torn
last line (ignored). A truncated or deleted file fails the size check, so it is re-rendered too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

JOURNAL_NAME = ".dataset_forge_journal.jsonl"


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
        """Record ``frame`` as complete with the current sizes of ``files`` (relative paths)."""
        sizes = {}
        for rel in files:
            p = self.seq_dir / rel
            size = p.stat().st_size  # raises if the renderer did not write it
            if size == 0:
                raise OSError(f"{p} is empty")
            sizes[rel] = size
        line = json.dumps({"frame": int(frame), "files": sizes}, sort_keys=True) + "\n"
        self.seq_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._done[int(frame)] = sizes

    @property
    def done_frames(self) -> set[int]:
        return set(self._done)
