# SPDX-License-Identifier: GPL-3.0-or-later
"""``SEQ/provenance.json``: what a sequence folder's pixels were rendered from (see
:mod:`dataset.provenance` for the decisions taken on it)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, TypedDict

from ...settings import SettingsDict
from .base import (
    JSONObject,
    as_any,
    as_bool,
    as_dict,
    as_int,
    as_str,
    check_schema,
    field,
    list_of,
    optional,
)

FORMAT_KEY = "format"


class FileIdentityDict(TypedDict, total=False):
    """A file as recorded (``kind`` only when not "blend", ``missing`` only when true)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    kind: str
    missing: bool


@dataclass(frozen=True)
class FileIdentity:
    """One file a sequence's pixels depend on: absolute ``path``, ``size`` (bytes), ``mtime_ns``
    and the SHA-256 of its content (``missing``: the file was not there; size 0, no hash).
    ``kind``: ``blend``, ``image``, ``movie``, ``library``, ``volume``, ``font``, ``cache_file``,
    ``sound``."""

    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    kind: str = "blend"
    missing: bool = False

    @classmethod
    def from_dict(cls, d: Any, where: str) -> FileIdentity:
        d = as_dict(d, where)
        return cls(path=field(d, "path", as_str, where), size=field(d, "size", as_int, where),
                   mtime_ns=field(d, "mtime_ns", as_int, where),
                   sha256=field(d, "sha256", optional(as_str), where, None),
                   kind=field(d, "kind", as_str, where, "blend"),
                   missing=field(d, "missing", as_bool, where, False))

    def to_dict(self) -> FileIdentityDict:
        d: FileIdentityDict = {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns,
                               "sha256": self.sha256}
        if self.kind != "blend":
            d["kind"] = self.kind
        if self.missing:
            d["missing"] = True
        return d


@dataclass(frozen=True)
class ProvenanceDoc:
    """The record of one sequence folder. ``settings``: the fingerprinted settings (JSON values),
    ``dependencies``: every external file the scene reads (images, movies, libraries ...; the
    ``.blend`` itself is ``blend``), ``render_id``: new on each render from scratch."""

    SCHEMA = 1  # the integer ``format`` the record always carried

    blend: FileIdentity
    blender_version: str
    scene: str
    settings: SettingsDict  # the fingerprinted ones
    fingerprint: str = ""
    dependencies: list[FileIdentity] | None = None  # None: recorded before dependencies were
    render_id: str | None = None
    dataset_forge_version: str = ""
    created: str = ""
    extra: JSONObject = dc_field(default_factory=dict)  # keys of a newer version, kept

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ProvenanceDoc:
        d = as_dict(d, where)
        check_schema(d, FORMAT_KEY, (cls.SCHEMA,), where)
        known = {"format", "blend", "blender_version", "scene", "settings", "fingerprint",
                 "dependencies", "render_id", "dataset_forge_version", "created"}
        return cls(
            blend=field(d, "blend", FileIdentity.from_dict, where),
            blender_version=field(d, "blender_version", as_str, where),
            scene=field(d, "scene", as_str, where),
            settings=field(d, "settings", as_dict, where),
            fingerprint=field(d, "fingerprint", as_str, where, ""),
            dependencies=field(d, "dependencies", optional(list_of(FileIdentity.from_dict)),
                               where, None),
            render_id=field(d, "render_id", optional(as_str), where, None),
            dataset_forge_version=field(d, "dataset_forge_version", as_str, where, ""),
            created=field(d, "created", as_str, where, ""),
            extra={k: as_any(v, where) for k, v in d.items() if k not in known})

    def to_dict(self) -> JSONObject:
        d: JSONObject = {**self.extra, FORMAT_KEY: self.SCHEMA, "blend": self.blend.to_dict(),
                             "blender_version": self.blender_version, "scene": self.scene,
                             "settings": dict(self.settings), "fingerprint": self.fingerprint,
                             "dataset_forge_version": self.dataset_forge_version,
                             "created": self.created}
        if self.dependencies is not None:
            d["dependencies"] = [x.to_dict() for x in self.dependencies]
        if self.render_id is not None:
            d["render_id"] = self.render_id
        return d
