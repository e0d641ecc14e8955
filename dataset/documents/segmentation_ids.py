# SPDX-License-Identifier: GPL-3.0-or-later
"""``SEQ/segmentation_ids.json``: what the ids of the segmentation images name.

``ids`` maps each object id (the segmentation EXR's object channel, a decimal string key) to the
object (library-qualified ``name``, top-level ``collection``, ``class``, ``library`` path or
None); ``background`` is the id of no surface (0). ``instances`` (written at the end of a
sequence with object records) maps each instance id (the EXR's instance channel) with visible
pixels in some frame to its ``object``, ``object_id``, ``instancer_chain``, ``persistent_id`` and
``class``. The worker writes the document without ``instances`` before the first frame and again
with them after the last (indented by 2, each instance on one line). No schema marker (it never
had one): a document without one is version 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import layout
from .base import (
    Conv,
    JSONObject,
    T,
    as_dict,
    as_int,
    as_str,
    dict_of,
    fail,
    field,
    ints,
    join_rows,
    list_of,
    optional,
    read_optional,
    write_json,
    write_text_atomic,
)

KEYS = ("background", "id_source", "class_property", "ids", "instances", "name", "collection",
        "class", "library", "object", "object_id", "instancer_chain", "persistent_id")
GENERIC = ("background", "ids", "instances", "name", "collection", "class", "library", "object",
           "object_id", "instancer_chain", "persistent_id", "id_source")  # keys elsewhere too

ID_SOURCE = ("renderable objects of the file sorted by library-qualified name, numbered from 1 "
             "(values used by linked objects' pass_index skipped)")


@dataclass(frozen=True)
class ObjectId:
    """What object id ``k`` names: the object, its top-level collection, class and library."""

    name: str
    collection: str | None
    cls: str | None
    library: str | None

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ObjectId:
        d = as_dict(d, where)
        return cls(name=field(d, "name", as_str, where),
                   collection=field(d, "collection", optional(as_str), where, None),
                   cls=field(d, "class", optional(as_str), where, None),
                   library=field(d, "library", optional(as_str), where, None))

    def to_dict(self) -> JSONObject:
        return {"name": self.name, "collection": self.collection, "class": self.cls,
                "library": self.library}


@dataclass(frozen=True)
class InstanceId:
    """What instance id ``k`` names: the object drawn, its object id, the chain of instancers
    (names, outermost first), the persistent id and the class. A document written by hand may
    leave out the chain and the persistent id (read as empty) and the class (read as "")."""

    object: str
    object_id: int
    instancer_chain: list[str]
    persistent_id: list[int]
    cls: str

    @classmethod
    def from_dict(cls, d: Any, where: str) -> InstanceId:
        d = as_dict(d, where)
        return cls(object=field(d, "object", as_str, where),
                   object_id=field(d, "object_id", as_int, where),
                   instancer_chain=field(d, "instancer_chain", list_of(as_str), where, []),
                   persistent_id=field(d, "persistent_id", list_of(as_int), where, []),
                   cls=field(d, "class", as_str, where, ""))

    def to_dict(self) -> JSONObject:
        return {"object": self.object, "object_id": self.object_id,
                "instancer_chain": self.instancer_chain, "persistent_id": self.persistent_id,
                "class": self.cls}


def _id_keys(conv: Conv[T]) -> Conv[dict[str, T]]:
    """``dict_of(conv)`` whose keys must be decimal ids."""
    def f(v: Any, where: str) -> dict[str, T]:
        out = dict_of(conv)(v, where)
        for k in out:
            if not k.isdigit():
                raise fail(where, f"key {k!r} is not a decimal id")
        return out
    return f


def _plain(v: Any) -> InstanceId | None:
    """An entry exactly as the worker writes it, without the generic checks (14,700 entries of
    the 50k scatter: 0.15 s through them); None for anything else."""
    if type(v) is not dict or len(v) != 5:
        return None
    o, i, ch, p, c = (v.get(k) for k in ("object", "object_id", "instancer_chain",
                                          "persistent_id", "class"))
    if (type(o) is str and type(i) is int and type(c) is str and type(ch) is list
            and type(p) is list and all(type(x) is str for x in ch)
            and all(type(x) is int for x in p)):
        return InstanceId(o, i, ch, p, c)
    return None


@dataclass(frozen=True)
class SegmentationIds:
    """The ``segmentation_ids.json`` of one sequence (see the module docstring)."""

    ids: dict[str, ObjectId]
    class_property: str
    background: int = 0
    id_source: str = ID_SOURCE
    instances: dict[str, InstanceId] | None = None

    SCHEMA = None  # no marker: version 1

    @classmethod
    def from_dict(cls, d: Any, where: str) -> SegmentationIds:
        d = as_dict(d, where)
        return cls(ids=field(d, "ids", _id_keys(ObjectId.from_dict), where),
                   class_property=field(d, "class_property", as_str, where, ""),
                   background=field(d, "background", as_int, where, 0),
                   id_source=field(d, "id_source", as_str, where, ""),
                   instances=field(d, "instances", optional(_id_keys(InstanceId.from_dict)), where,
                                   None))

    def with_instances(self, instances: dict[str, InstanceId] | JSONObject) -> SegmentationIds:
        """This document with the ``instances`` map: typed (as
        ``objects_files.SequenceWriter.finish`` returns it: taken as it is) or its JSON (checked
        here: entries of exactly the written shape are taken at once, anything else goes through
        :meth:`InstanceId.from_dict` and its message)."""
        if (isinstance(instances, dict) and all(type(v) is InstanceId for v in instances.values())
                and all(type(k) is str and k.isdigit() for k in instances)):
            return replace(self, instances=dict(instances))
        out = {k: _plain(v) for k, v in instances.items()} if isinstance(instances, dict) else None
        if out is None or None in out.values() or not all(k.isdigit() for k in out):
            out = _id_keys(InstanceId.from_dict)(instances, "instances")
        return replace(self, instances=out)

    def to_dict(self) -> JSONObject:
        d: JSONObject = {"background": self.background, "id_source": self.id_source,
                         "class_property": self.class_property,
                         "ids": {k: v.to_dict() for k, v in self.ids.items()}}
        if self.instances is not None:
            d["instances"] = {k: v.to_dict() for k, v in self.instances.items()}
        return d

    def write(self, seq_dir: str | Path) -> None:
        path = Path(seq_dir) / layout.IDS_FILE
        if self.instances is None:
            write_json(path, self.to_dict())
        else:  # one line per instance (base.join_rows), each encoded by _instance_json
            head = replace(self, instances=None).to_dict()
            parts: dict = {}
            write_text_atomic(path, join_rows(head, "instances", [
                f"{_key(k)}: {_instance_json(v, parts)}" for k, v in self.instances.items()]))


def _key(k: str) -> str:
    """``json.dumps(k)`` of a mapping key (a decimal id at once)."""
    return f'"{k}"' if k.isascii() and k.isdigit() else json.dumps(k)


def _instance_json(v: InstanceId, parts: dict) -> str:
    """``json.dumps(v.to_dict(), separators=(", ", ": "))``, the same text 5x faster (14,700
    entries of the 50k scatter: 0.13 s through ``json.dumps``) for entries of the types the
    worker writes: the part shared by the instances of one instancer is encoded once and kept
    in ``parts``; anything else goes through ``json.dumps``."""
    pid, oid = v.persistent_id, v.object_id
    if type(pid) is list and ints(pid):
        key = (type(oid), oid, v.object, tuple(v.instancer_chain), v.cls)
        mid = parts.get(key)
        if mid is None and type(oid) is int and type(v.object) is str and type(v.cls) is str \
                and all(type(x) is str for x in key[3]):
            mid = parts[key] = (
                json.dumps({"object": v.object, "object_id": oid,
                            "instancer_chain": list(key[3])}, separators=(", ", ": "))[:-1]
                + ', "persistent_id": [', f'], "class": {json.dumps(v.cls)}}}')
        if mid is not None:
            return f"{mid[0]}{', '.join(map(str, pid))}{mid[1]}"
    return json.dumps(v.to_dict(), separators=(", ", ": "))


def read(path: str | Path) -> SegmentationIds | None:
    """The ids document at ``path``; None when there is none. One that cannot be decoded or is
    not of this shape is a :class:`DocumentError` naming it."""
    return read_optional(path, SegmentationIds.from_dict)
