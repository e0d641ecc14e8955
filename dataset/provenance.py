# SPDX-License-Identifier: GPL-3.0-or-later
"""What produced a sequence folder, and whether a resume may reuse its frames. Pure Python.

Every sequence folder holds ``provenance.json`` (:data:`dataset.layout.PROVENANCE`): the ``.blend``
(path, size, mtime and a SHA-256 of its content), the Blender version, the scene rendered and the
settings that change pixels or their meaning (:func:`fingerprint_settings`). At the start of a
sequence the worker calls :func:`begin_sequence` with the record of the current run:

* nothing journaled in the folder: the record is written, stale files are removed, render;
* the record matches: resume (the journal decides frame by frame);
* the folder belongs to another ``.blend`` (other path and other content): always refused, whatever
  ``on_change`` says, so that a name collision can never hand one file's frames to another;
* otherwise (settings, file content or Blender changed, or no record): ``on_change`` decides:
  ``refuse`` raises :class:`ProvenanceError` naming what changed and the fix; ``rerender`` removes
  the sequence's files and renders it again from scratch (the caller says so).

The record also holds every external file the scene's pixels depend on (images, movies, linked
libraries, volumes, fonts, Alembic/USD caches: ``dependencies``, collected by the worker), each
with its size, mtime and SHA-256, hashed at most once per process and file
(:func:`dependency_identities`); a changed, added, removed or missing dependency is a change like a
changed setting. The worker hashes the ``.blend`` as it loads it (:func:`identity_as_loaded`: the
hash of the bytes Blender read, checked by the file's stat before and after), once per process,
and records that identity for every sequence it renders from it: a file saved while a run renders
is recorded as the version the frames show, and the next run sees the change.

A record that cannot be read (not JSON, wrong types, non-finite numbers: :class:`ProvenanceDoc`
refuses it) or a damaged journal is treated as no record: refused by default, and with
``on_change rerender`` set aside (renamed ``NAME.damaged-TIME``) and rendered again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import DatasetForgeError
from ..settings import Settings, SettingsDict
from ..version import __version__
from . import layout
from .documents.base import DocumentError, JSONObject, read_json
from .documents.provenance import FileIdentity, FileIdentityDict, ProvenanceDoc
from .journal import Journal, set_aside
from .lock import SEQUENCE_LOCK
from .transforms import write_json_atomic

FORMAT = 1

# Settings that never change a pixel or its meaning: how the run is driven, where it runs, and
# which sequences are sampled (a sequence folder's name already encodes its frame range).
# Every other field, including one added later, is part of the fingerprint.
NOT_FINGERPRINTED = frozenset({
    "sequences_per_scene", "num_frames", "strategy", "seed", "min_gap",
    "scene",  # the scene actually rendered is recorded instead (``""`` may name the same one)
    "device_type", "threads", "use_persistent_data", "jobs", "allow_skips", "on_change",
    "allow_scene_outputs", "executable", "timeout", "retries", "recycle_frames", "gpus",
})

# What a reset removes: the files the layout defines for a sequence (user files stay).
_DATA_FOLDERS = (layout.RGB_FOLDER, *(k.folder for k in layout.KINDS.values()), layout.OBJECTS_FOLDER,
                 layout.DISPARITY.folder, layout.PREVIEWS)
_META_FILES = (layout.TRANSFORMS, layout.INFO, layout.OBJECTS_FILE, layout.IDS_FILE, layout.STEREO)


class ProvenanceError(DatasetForgeError, RuntimeError):
    """A sequence folder holds frames that this run must not reuse; one line with the fix."""

    permanent = True  # a retry cannot change the answer


def fingerprint_settings(settings: Settings | SettingsDict) -> SettingsDict:
    """The settings that change pixels or meaning (a JSON-able dict, sorted keys)."""
    d = settings.to_dict() if isinstance(settings, Settings) else dict(settings)
    return {k: d[k] for k in sorted(d) if k not in NOT_FINGERPRINTED}


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def blend_identity(path: str | os.PathLike, recorded: FileIdentityDict | None = None) -> FileIdentityDict:
    """``{"path", "size", "mtime_ns", "sha256"}`` of a ``.blend``. The hash of ``recorded`` is
    reused when path, size and mtime are unchanged; otherwise it is computed (once per process)."""
    p = os.path.abspath(os.fspath(path))
    st = os.stat(p)
    key = (p, st.st_size, st.st_mtime_ns)
    if (recorded and recorded.get("path") == p and recorded.get("size") == st.st_size
            and recorded.get("mtime_ns") == st.st_mtime_ns and recorded.get("sha256")):
        _HASHES.setdefault(key, recorded["sha256"])
    if key not in _HASHES:
        _HASHES[key] = file_sha256(p)
    return {"path": p, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _HASHES[key]}


_CONTENT: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, this process


def file_identity(path: str | os.PathLike, kind: str) -> FileIdentity:
    """``path``'s identity (absolute path, size, mtime, SHA-256), hashed at most once per process
    for the same size and mtime; a missing file is ``missing`` (no hash)."""
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
        key = (p, st.st_size, st.st_mtime_ns)
        if key not in _CONTENT:
            _CONTENT[key] = file_sha256(p)
    except OSError:
        return FileIdentity(p, 0, 0, None, kind, missing=True)
    return FileIdentity(p, st.st_size, st.st_mtime_ns, _CONTENT[key], kind)


def dependency_identities(deps: list[tuple[str, str]]) -> list[FileIdentity]:
    """The identities of ``deps`` (``(kind, absolute path)`` pairs; a folder: every file in it,
    an image sequence or a cache), sorted by path, each path once."""
    out: dict[str, FileIdentity] = {}
    for kind, path in deps:
        p = os.path.abspath(path)
        if os.path.isdir(p):
            for root, _dirs, files in os.walk(p):
                for name in files:
                    f = os.path.join(root, name)
                    out.setdefault(f, file_identity(f, kind))
        else:
            out.setdefault(p, file_identity(p, kind))
    return [out[k] for k in sorted(out)]


def identity_as_loaded(path: str | os.PathLike, load) -> FileIdentityDict:
    """Hash ``path`` and call ``load()`` (which opens it); the identity of the bytes loaded. The
    file's size and mtime are read before the hash and after the load: a file saved in between
    raises :class:`ProvenanceError` (not permanent: a retry loads the saved file)."""
    p = os.path.abspath(os.fspath(path))
    st0 = os.stat(p)
    ident = file_identity(p, "blend")
    load()
    st1 = os.stat(p)
    if (st0.st_size, st0.st_mtime_ns) != (st1.st_size, st1.st_mtime_ns) or \
            (ident.size, ident.mtime_ns) != (st0.st_size, st0.st_mtime_ns):
        err = ProvenanceError(f"{os.path.basename(p)} was saved while it was being opened; "
                              "it is opened again")
        err.permanent = False
        raise err
    return {"path": p, "size": ident.size, "mtime_ns": ident.mtime_ns, "sha256": ident.sha256}


def saved_since(loaded: FileIdentityDict) -> bool:
    """Whether the ``.blend`` of identity ``loaded`` changed on disk since it was loaded."""
    try:
        st = os.stat(loaded["path"])
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (loaded.get("size"), loaded.get("mtime_ns"))


def make_record(blend: str | os.PathLike, settings: Settings, blender_version: str, scene: str, *,
                recorded: JSONObject | None = None, loaded: FileIdentityDict | None = None,
                dependencies: list[FileIdentity] | None = None) -> JSONObject:
    """The provenance record of a sequence rendered now (``recorded``: the folder's current
    record, whose ``.blend`` hash is reused when the file did not change; ``loaded``: the
    identity of the ``.blend`` as the worker loaded it, used as is; ``dependencies``: the
    external files the scene reads)."""
    ident = dict(loaded) if loaded is not None else blend_identity(
        blend, (recorded or {}).get("blend"))
    fp = fingerprint_settings(settings)
    deps = [d.to_dict() for d in dependencies] if dependencies is not None else None
    digest = hashlib.sha256(json.dumps(
        {"blend": ident["sha256"], "blender": _major_minor(blender_version), "scene": scene,
         "settings": fp, **({"dependencies": [(d["path"], d["sha256"]) for d in deps]}
                            if deps else {})}, sort_keys=True).encode()).hexdigest()
    rec = {"format": FORMAT, "blend": ident, "blender_version": blender_version, "scene": scene,
           "settings": fp, "fingerprint": digest, "dataset_forge_version": __version__,
           "created": datetime.now(UTC).isoformat(timespec="seconds")}
    if deps is not None:
        rec["dependencies"] = deps
    return rec


def load_record(seq_dir: str | os.PathLike) -> tuple[JSONObject | None, str | None]:
    """``(record, damage)``: the folder's provenance record as a dict (None: missing or
    unreadable) and, when it exists but cannot be read, why (one line naming the file)."""
    path = Path(seq_dir) / layout.PROVENANCE
    if not path.exists():
        return None, None
    try:
        doc = ProvenanceDoc.from_dict(read_json(path), str(path))
    except DocumentError as exc:
        return None, str(exc)
    return doc.to_dict(), None


def read_record(seq_dir: str | os.PathLike) -> JSONObject | None:
    """The folder's provenance record, or None (missing or unreadable)."""
    return load_record(seq_dir)[0]


def _major_minor(version: str) -> str:
    return ".".join(str(version).split(" ")[0].split(".")[:2])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def foreign(old: JSONObject, new: JSONObject) -> bool:
    """True when ``old`` was made from another ``.blend``: other path **and** other content (a
    moved file keeps its frames; an edited file at the same path is a change, not a stranger)."""
    ob, nb = old.get("blend", {}), new.get("blend", {})
    return ob.get("path") != nb.get("path") and ob.get("sha256") != nb.get("sha256")


def changes(old: JSONObject, new: JSONObject) -> list[str]:
    """What differs between two records, one short phrase each (empty: the frames are reusable).
    A setting missing from ``old`` (recorded before the setting existed) is the value such a
    sequence was rendered with: its ``legacy`` metadata, else its default."""
    out: list[str] = []
    ob, nb = old.get("blend", {}), new.get("blend", {})
    if ob.get("sha256") != nb.get("sha256"):
        out.append(f"the content of {os.path.basename(nb.get('path', '?'))} (the .blend was "
                   "modified since these frames were rendered)")
    if _major_minor(old.get("blender_version", "?")) != _major_minor(new.get("blender_version", "")):
        out.append(f"Blender {old.get('blender_version')} -> {new.get('blender_version')}")
    if old.get("scene") != new.get("scene"):
        out.append(f"scene {old.get('scene')!r} -> {new.get('scene')!r}")
    out += dependency_changes(old.get("dependencies"), new.get("dependencies"))
    defaults = {f.name: f.metadata.get("legacy", f.default) for f in fields(Settings)}
    os_, ns = old.get("settings", {}), new.get("settings", {})
    for k in sorted(set(os_) | set(ns)):
        a = os_[k] if k in os_ else defaults.get(k)
        b = ns[k] if k in ns else defaults.get(k)
        if not _same(a, b):
            out.append(f"{k} {a!r} -> {b!r}")
    return out


def dependency_changes(old: list[FileIdentityDict] | None,
                       new: list[FileIdentityDict] | None) -> list[str]:
    """What differs between two dependency lists, one phrase per file (``old`` None: recorded
    before dependencies were, a change only when ``new`` lists any)."""
    if new is None:
        return []
    if old is None:
        return ["the files the scene reads (not recorded: rendered by an older Dataset Forge)"] \
            if new else []
    a = {d["path"]: d for d in old}
    b = {d["path"]: d for d in new}
    out = []
    for p in sorted(set(a) | set(b)):
        x, y = a.get(p), b.get(p)
        kind = (y or x)["kind"]
        if x is None:
            out.append(f"{kind} {p} (now read by the scene)")
        elif y is None:
            out.append(f"{kind} {p} (no longer read by the scene)")
        elif y.get("missing") and not x.get("missing"):
            out.append(f"{kind} {p} (missing now)")
        elif x.get("sha256") != y.get("sha256"):
            out.append(f"the content of {kind} {p}")
    return out


def _ours(folder: str, name: str) -> bool:
    """Whether ``name`` in ``folder`` (relative to the sequence) is a file the layout defines."""
    stems = {layout.RGB_FOLDER: layout.RGB_STEM, layout.DISPARITY.folder: layout.DISPARITY.stem,
             **{k.folder: k.stem for k in layout.KINDS.values()},
             layout.OBJECTS_FOLDER: layout.OBJECTS_STEM}
    parts = folder.split("/")
    if parts[0] == layout.PREVIEWS and len(parts) == 2:
        stem = parts[1]
    elif folder in stems:
        stem = stems[folder]
    else:
        return False
    return re.fullmatch(rf"{re.escape(stem)}_-?\d+\.(png|exr|jpg|npz)", name) is not None


def reset_sequence(seq_dir: str | os.PathLike) -> None:
    """Remove the files of a sequence folder that the layout defines (frames, ground truth,
    previews, metadata, journal, provenance) and the folders left empty; any other file stays
    (``render-animation`` may write into a folder that holds other things). The journal goes
    first, so a kill in between leaves nothing vouched for."""
    root = Path(seq_dir)
    right = root / layout.RIGHT_FOLDER  # a stereo pair's right view goes with its left view
    if right.is_dir() and not right.is_symlink() and (right / layout.PROVENANCE).is_file():
        reset_sequence(right)
        # the right view is wholly ours: its worker's lock file goes too (not held: the left
        # view's worker, which renders both, holds the left one)
        state = right / layout.STATE_DIR
        for p in (state / SEQUENCE_LOCK, state, right):
            try:
                p.unlink() if p.name == SEQUENCE_LOCK else p.rmdir()
            except OSError:
                pass
    for name in (layout.JOURNAL, layout.PROVENANCE, *_META_FILES):
        try:
            (root / name).unlink()
        except FileNotFoundError:
            pass
    folders = [f for f in _DATA_FOLDERS if f != layout.PREVIEWS]
    try:
        folders += [f"{layout.PREVIEWS}/{p.name}" for p in (root / layout.PREVIEWS).iterdir()
                    if p.is_dir() and not p.is_symlink()]
    except OSError:
        pass
    for folder in [*folders, layout.PREVIEWS]:
        d = root / folder
        if d.is_symlink() or not d.is_dir():
            continue
        for p in d.iterdir():
            if _ours(folder, p.name) and (p.is_file() or p.is_symlink()):
                p.unlink()
        try:
            d.rmdir()
        except OSError:
            pass  # not empty: something of the user's


# ``write_json_atomic``'s temp files (mkstemp: 8 random characters) and ``verify.cause``'s probe.
_STALE_TMP = re.compile(r"\.[^/\\]+\.[a-z0-9_]{8}\.tmp|\.dataset_forge_probe_\d+\.tmp")


def clean_stale_tmp(folder: str | os.PathLike) -> list[Path]:
    """Remove the ``.NAME.*.tmp`` files an atomic write left behind when its process was killed
    (call it only while holding the folder: the run lock). Returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        if _STALE_TMP.fullmatch(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


# Set anew each time a folder is rendered from scratch, kept while it resumes: with the journal it
# tells which frames a verdict was about (dataset.verify.journal_digest).
RENDER_ID = layout.RENDER_ID


def begin_sequence(seq_dir: str | os.PathLike, record: JSONObject,
                   on_change: str) -> list[str]:
    """Decide what a sequence folder's frames are worth to this run (see the module docstring)
    and leave the folder ready: the current record written, stale temp files removed.

    Returns the changes that made it re-render from scratch (empty: fresh folder or resume).
    Raises :class:`ProvenanceError` when the frames belong to another file, or when something
    changed and ``on_change`` is ``refuse``."""
    root = Path(seq_dir)
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(root)
    old, damage = load_record(root)
    journal = Journal(root)
    damaged = [(root / layout.PROVENANCE, damage)] if damage else []
    if journal.damaged:
        damaged.append((journal.path, journal.damaged))
    why: list[str] = []
    if old is not None and foreign(old, record):
        raise ProvenanceError(
            f"{root} holds frames of {old['blend'].get('path')}, not of {record['blend']['path']}; "
            "refusing to mix two files' frames: use another datasets folder, or delete that "
            "folder to render this file into it")
    aside: list[str] = []
    if damaged and not (journal.done_frames or journal.damaged):
        # nothing was vouched for: a fresh folder, said once
        moved = set_aside(root / layout.PROVENANCE)
        aside = [f"{layout.PROVENANCE} cannot be read ({_short(damage or '', root / layout.PROVENANCE)})"
                 f", set aside as {moved.name if moved else '?'}; no frame was journaled"]
        damaged = []
    if damaged:
        why = [f"{p.name} cannot be read ({_short(msg, p)})" for p, msg in damaged]
    elif old is None:
        if journal.done_frames:
            why = ["no provenance record (rendered by an older Dataset Forge or another tool)"]
    else:
        why = changes(old, record)
        if why and not journal.done_frames:
            why = []  # nothing was vouched for: nothing to reuse or to refuse
    if why:
        if on_change != "rerender":
            raise ProvenanceError(
                f"{root} was rendered with other settings or inputs ({'; '.join(why)}); rerun "
                "with --on-change rerender (on_change='rerender') to render it again, or use "
                "another datasets folder")
        for p, _msg in damaged:
            moved = set_aside(p)
            if moved is not None:
                why = [w.replace(f"{p.name} cannot be read",
                                 f"{p.name} cannot be read, set aside as {moved.name}")
                       for w in why]
    if why or old is None or not journal.done_frames:
        # Fresh or re-rendered: nothing in the folder is vouched for, so no stale file of an
        # earlier format (PNG after JPEG ...) may stay next to the new ones.
        reset_sequence(root)
        record = {**record, RENDER_ID: uuid.uuid4().hex}
    else:  # a resume: the same frames, the same render
        record = {**record, RENDER_ID: old.get(RENDER_ID) or uuid.uuid4().hex}
    write_json_atomic(root / layout.PROVENANCE, record)
    return why or aside


def _short(msg: str, path: Path) -> str:
    """A document error without the path prefix (the message names the file already)."""
    return msg.removeprefix(f"{path}: ").removeprefix(f"{path} ")[:160]


def read_bindings(datasets_dir: str | os.PathLike) -> dict[str, FileIdentityDict]:
    """``{scene folder name: .blend identity}`` of every scene folder under ``DATASETS/renders``
    whose sequences carry a provenance record (the first record found per folder)."""
    out: dict[str, FileIdentityDict] = {}
    renders = Path(datasets_dir) / layout.RENDERS
    try:
        scenes = sorted(p for p in renders.iterdir() if p.is_dir())
    except OSError:
        return out
    for scene in scenes:
        try:
            seqs = sorted(p for p in scene.iterdir() if p.is_dir())
        except OSError:
            continue
        for seq in seqs:
            rec = read_record(seq)
            if rec is not None and rec["blend"].get("path"):
                out[scene.name] = dict(rec["blend"])
                break
    return out


def prepare(seq_dir: str | os.PathLike, blend: str | os.PathLike, settings: Settings,
            blender_version: str, scene: str, label: str = "", *,
            loaded: FileIdentityDict | None = None,
            dependencies: list[FileIdentity] | None = None) -> str | None:
    """The worker's call at the start of a sequence: build this run's record (``loaded``: the
    ``.blend`` as the worker loaded it; without it, the file on disk, reusing the folder's hash
    when the file is unchanged; ``dependencies``: the files the scene reads) and
    :func:`begin_sequence` with ``settings.on_change`` (``rerender`` when ``allow_skips`` is off).
    Returns the one-line notice of a re-render from scratch, or None."""
    record = make_record(blend, settings, blender_version, scene,
                         recorded=read_record(seq_dir), loaded=loaded, dependencies=dependencies)
    # Without allow_skips every frame is rendered again anyway: nothing old is reused.
    why = begin_sequence(seq_dir, record, settings.on_change if settings.allow_skips else "rerender")
    if not why:
        return None
    return (f"{label or os.path.basename(os.fspath(blend))}: re-rendering sequence "
            f"{Path(seq_dir).name} from scratch, changed: {'; '.join(why)}")


def settings_match(seq_dir: str | os.PathLike, settings: Settings | SettingsDict) -> bool:
    """Whether the folder's recorded settings equal ``settings`` (the ``.blend`` and Blender are
    not checked: that needs the worker). False without a record."""
    old = read_record(seq_dir)
    if old is None:
        return False
    new = {"blend": old.get("blend"), "blender_version": old.get("blender_version"),
           "scene": old.get("scene"), "settings": fingerprint_settings(settings)}
    return not changes(old, new)
