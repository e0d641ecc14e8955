# SPDX-License-Identifier: GPL-3.0-or-later
"""One line of ``SEQ/.dataset_forge_journal.jsonl``: a frame and the size of each of its files
(see :mod:`dataset.journal`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypedDict

from .base import DocumentError, as_dict, as_int, dict_of, fail, field


def _size(v: Any, where: str) -> int:
    n = as_int(v, where)
    if n < 0:
        raise fail(where, f"a file size cannot be negative ({n})")
    return n


class JournalLineDict(TypedDict):
    """One journal line: the frame and ``{file: size in bytes}`` of every file it wrote."""

    frame: int
    files: dict[str, int]


@dataclass(frozen=True)
class JournalLine:
    """``frame`` (scene frame number) was written and verified with ``files`` (path relative to
    the sequence folder -> size in bytes)."""

    frame: int
    files: dict[str, int]

    @classmethod
    def from_dict(cls, d: Any, where: str) -> JournalLine:
        d = as_dict(d, where)
        return cls(frame=field(d, "frame", as_int, where),
                   files=field(d, "files", dict_of(_size), where))

    def to_dict(self) -> JournalLineDict:
        return {"frame": self.frame, "files": dict(self.files)}

    def to_line(self) -> str:
        """The line as appended (sorted keys, newline-terminated)."""
        return json.dumps(self.to_dict(), sort_keys=True) + "\n"

    @classmethod
    def parse(cls, line: str, where: str) -> JournalLine:
        """The line decoded; :class:`DocumentError` naming ``where`` when it is not one."""
        def no_constants(c: str) -> Any:
            raise ValueError(f"non-JSON number {c}")

        try:
            d = json.loads(line, parse_constant=no_constants)
        except ValueError as exc:
            raise DocumentError(f"{where}: not a JSON line ({exc})") from None
        return cls.from_dict(d, where)


def torn(line: str) -> bool:
    """Whether ``line`` is one the writer started and a kill cut short: not JSON, and a prefix of
    what :meth:`JournalLine.to_line` writes (``{"files": {...}, "frame": N}``)."""
    head = '{"files": {'
    if not head.startswith(line[:len(head)]):
        return False
    try:
        json.loads(line)
    except ValueError:
        return True
    return False
