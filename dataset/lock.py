# SPDX-License-Identifier: GPL-3.0-or-later
"""The lock of a datasets folder (``.dataset_forge/lock``): held by a run for its whole length,
and by ``validate`` while it rewrites ``manifest.json``, so neither overwrites the other's
manifest. Each sequence folder has its own (``SEQ/.dataset_forge/sequence.lock``), held by the
worker rendering it, so that two entry points (``create-datasets`` and ``render-animation``)
never render into one folder at once. An advisory ``flock``: the operating system drops it when
the process ends, however it ends, so a killed run never leaves a stale lock. POSIX only;
elsewhere it is a no-op."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DatasetForgeError
from .layout import LOCK, STATE_DIR


class FolderBusy(DatasetForgeError):
    """Another process holds the folder's lock. ``owner``: its pid as it wrote it ('?' if none)."""

    def __init__(self, folder: Path, owner: str):
        self.folder, self.owner = folder, owner
        super().__init__(f"another Dataset Forge run (pid {owner}) is writing into {folder}")


class FolderLock:
    """An exclusive lock on datasets folder ``folder``; :meth:`acquire` raises :class:`FolderBusy`
    at once when another process holds it (never waits)."""

    def __init__(self, folder: str | os.PathLike, name: str = LOCK):
        self.folder = Path(folder)
        self.path = self.folder / STATE_DIR / name
        self._fh = None

    def acquire(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "?"
            fh.close()
            raise FolderBusy(self.folder, owner) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file releases the lock
            self._fh = None

    def __enter__(self) -> FolderLock:
        return self if self._fh is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


SEQUENCE_LOCK = "sequence.lock"  # SEQ/.dataset_forge/sequence.lock: held by the worker rendering SEQ


class SequenceBusy(FolderBusy):
    """Another worker renders into the same sequence folder (another run, another entry point)."""

    permanent = True

    def __init__(self, folder: Path, owner: str):
        DatasetForgeError.__init__(
            self, f"{folder}: another Dataset Forge worker (pid {owner}) is rendering this sequence "
                  "folder (a create-datasets or render-animation run); wait for it to finish, then "
                  "rerun to resume")
        self.folder, self.owner = folder, owner


def sequence_lock(seq_dir: str | os.PathLike) -> FolderLock:
    """The lock a worker holds while it renders into sequence folder ``seq_dir``, whatever entry
    point started it (held: :class:`SequenceBusy`)."""
    lock = FolderLock(seq_dir, SEQUENCE_LOCK)
    try:
        return lock.acquire()
    except FolderBusy as exc:
        raise SequenceBusy(exc.folder, exc.owner) from None


def holder(folder: str | os.PathLike) -> str | None:
    """The pid (as written, '?' if none) of the process that holds ``folder``'s lock now, or None
    when nobody does. Creates nothing (a read-only dataset can be asked)."""
    try:
        import fcntl
    except ImportError:
        return None
    path = Path(folder) / STATE_DIR / LOCK
    try:
        fh = open(path, encoding="utf-8")
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return fh.read().strip() or "?"
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None
