# SPDX-License-Identifier: GPL-3.0-or-later
"""``DST/dataset_forge_export.json``: the record every export writes first (``finished`` false)
and again once every file is durable (see :mod:`dataset.exports`)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, TypedDict

from .base import JSONObject, as_any, as_bool, as_dict, as_str, check_schema, field, list_of

SCHEMA = "dataset_forge.export/1"


class ExportDocDict(TypedDict, total=False):
    """``dataset_forge_export.json`` as written (``files``, ``sequences``, ``notes`` once finished)."""

    schema: str
    format: str
    source: str
    finished: bool
    complete: bool
    dataset_forge_version: str
    incomplete: list[str]
    files: list[str]
    sequences: list[JSONObject]
    notes: list[str]


@dataclass(frozen=True)
class ExportDoc:
    """``finished``: every file of the export was written and flushed. ``complete``: finished
    **and** the source was complete (every planned sequence there, no run writing it);
    ``incomplete``: why not (one line each). ``files``: every path the export wrote, relative
    to DST (what ``--overwrite`` may remove)."""

    format: str
    source: str
    finished: bool
    complete: bool
    dataset_forge_version: str = ""
    incomplete: list[str] = dc_field(default_factory=list)
    files: list[str] = dc_field(default_factory=list)
    sequences: list[JSONObject] = dc_field(default_factory=list)  # each format's own record
    notes: list[str] = dc_field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ExportDoc:
        d = as_dict(d, where)
        check_schema(d, "schema", (SCHEMA,), where)
        complete = field(d, "complete", as_bool, where)
        return cls(format=field(d, "format", as_str, where),
                   source=field(d, "source", as_str, where, ""),
                   # records written before "finished" existed said "complete" for it
                   finished=field(d, "finished", as_bool, where, complete),
                   complete=complete,
                   dataset_forge_version=field(d, "dataset_forge_version", as_str, where, ""),
                   incomplete=field(d, "incomplete", list_of(as_str), where, []),
                   files=field(d, "files", list_of(as_str), where, []),
                   sequences=field(d, "sequences", list_of(as_dict), where, []),
                   notes=field(d, "notes", list_of(as_any), where, []))

    def to_dict(self) -> ExportDocDict:
        d: ExportDocDict = {"schema": SCHEMA, "format": self.format, "source": self.source,
             "finished": self.finished, "complete": self.complete,
             "dataset_forge_version": self.dataset_forge_version,
             "incomplete": list(self.incomplete)}
        if self.finished:  # what an unfinished export wrote is in its files log
            d.update(files=list(self.files), sequences=list(self.sequences), notes=list(self.notes))
        return d
