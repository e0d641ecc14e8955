# SPDX-License-Identifier: GPL-3.0-or-later
"""Object-level ground truth on disk (schema ``dataset_forge.objects/2``): the instance table once
per sequence, and one record of arrays per frame. Pure Python + numpy (no ``bpy``).

Files grow with what is recorded, never with frames x instances rewritten::

    SEQ/objects.json                 ObjectsDoc: schema, records mode, frames_file pattern, the
                                     frame numbers that have a record, the instance table
                                     (one JSON row per line), written once at sequence end
    SEQ/objects/objects_NNNNNN.npz   FrameRecord of frame NNNNNN: written once, atomically,
                                     right after the frame's render; verified and journaled
                                     with the frame's images

A record is a plain ``.npz`` (as ``numpy.savez_compressed`` writes it, deflate level 1, no
pickles): read it with ``numpy.load(path)`` alone. Its arrays, sorted by ``instance_id`` (``N``
instances):

=================  ================  ========================================================
key                shape, dtype      meaning
=================  ================  ========================================================
``schema``         (), str           ``"dataset_forge.objects/2"``
``frame``          (), int64         frame number on the (stretched) timeline
``camera``         (), str           name of the camera that rendered the frame
``instance_id``    (N,), uint32      ascending; rows of ``objects.json`` ``instances``
``object_to_world`` (N, 4, 4), f8    object space to world (scene units, scale kept)
``box_lo``         (N, 3), float64   object-space AABB of the *evaluated* geometry, low corner
``box_hi``         (N, 3), float64   ... high corner
``bbox_obj``       (N, 4), float64   amodal ``[x, y, w, h]`` px (projected evaluated vertices and
                                     near-plane crossings, clipped to the image; 0s when none)
``bbox_visib``     (N, 4), int32     ``[x, y, w, h]`` pixel-edge box of its visible pixels
``px_count_visib`` (N,), int64       number of pixels carrying its instance id
=================  ================  ========================================================

Derived on read (not stored): ``object_to_camera`` ``(N, 4, 4)`` =
``inv(transform_matrix @ diag(1, -1, -1, 1)) @ object_to_world`` (OpenCV camera frame of the
frame's pose in ``transforms.json``; :meth:`FrameRecord.object_to_camera`) and ``bbox_3d``
``(N, 8, 3)`` world corners of ``[box_lo, box_hi]``, corner ``i`` taking the high ``x`` when
``i & 1``, ``y`` when ``i & 2``, ``z`` when ``i & 4`` (:meth:`FrameRecord.bbox_3d`).

Which instances a frame lists (``objects.json`` ``records``, the ``object_records`` setting):
``visible`` (default: ``px_count_visib > 0``), ``frustum`` (visible, or a non-empty amodal box:
some of it projects into the image in front of the near plane) or ``all`` (every drawn instance).
The table lists every instance some frame lists.

Version 1 (``objects.json`` with per-frame ``instances`` lists, written by 0.1.x) is still read:
:func:`v1_records` turns it into the same records (``box_lo``/``box_hi`` from the stored
``bbox_3d`` through the inverse pose) and keeps its stored ``object_to_camera``.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from ...settings import RECORD_MODES  # the object_records setting's choices
from .. import layout
from ..objects import CV_FROM_GL
from .base import (
    DocumentError,
    as_bool,
    as_int,
    as_str,
    check_schema,
    fail,
    ints,
    list_of,
)
from .base import field as get

SCHEMA = "dataset_forge.objects/2"
SCHEMA_V1 = "dataset_forge.objects/1"

# name -> (dtype, shape of one row); the exact arrays of a record, in file order
ARRAYS: dict[str, tuple[type, tuple[int, ...]]] = {
    "instance_id": (np.uint32, ()),
    "object_to_world": (np.float64, (4, 4)),
    "box_lo": (np.float64, (3,)),
    "box_hi": (np.float64, (3,)),
    "bbox_obj": (np.float64, (4,)),
    "bbox_visib": (np.int32, (4,)),
    "px_count_visib": (np.int64, ()),
}

_MAY_BE_UNKNOWN = ("box_lo", "box_hi", "bbox_obj")


# -- the instance table ----------------------------------------------------------------------------
class InstanceRowDict(TypedDict):
    """One row of ``objects.json`` ``instances`` as written."""

    instance_id: int
    object_id: int
    object: str
    instancer_chain: list[str]
    persistent_id: list[int]
    category: str
    deforming: bool


class ObjectsDocDict(TypedDict):
    """``objects.json`` (schema 2) as written."""

    schema: str
    records: str
    frames_file: str
    frames: list[int]
    instances: list[InstanceRowDict]


@dataclass(frozen=True)
class InstanceRow:
    """One instance, the same in every frame of the sequence (see ``dataset/objects.py`` for the
    ids and ``deforming``)."""

    instance_id: int
    object_id: int
    object: str
    instancer_chain: list[str]
    persistent_id: list[int]
    category: str
    deforming: bool

    @classmethod
    def from_dict(cls, d: Any, where: str) -> InstanceRow:
        if not isinstance(d, dict):
            raise fail(where, f"expected an object, found {type(d).__name__}")
        return cls(instance_id=get(d, "instance_id", as_int, where),
                   object_id=get(d, "object_id", as_int, where),
                   object=get(d, "object", as_str, where, ""),
                   instancer_chain=get(d, "instancer_chain", list_of(as_str), where, []),
                   persistent_id=get(d, "persistent_id", list_of(as_int), where, []),
                   category=get(d, "category", as_str, where, ""),
                   deforming=get(d, "deforming", as_bool, where, False))

    def to_dict(self) -> InstanceRowDict:
        return {"instance_id": self.instance_id, "object_id": self.object_id, "object": self.object,
                "instancer_chain": list(self.instancer_chain),
                "persistent_id": list(self.persistent_id), "category": self.category,
                "deforming": self.deforming}


@dataclass
class ObjectsDoc:
    """``objects.json`` (schema 2): the instance table, sorted by ``instance_id``; ``frames``: the
    frame numbers that have a record file (``frames_file`` with ``NNNNNN`` = the frame)."""

    SCHEMA = SCHEMA
    records: str = "visible"
    frames_file: str = field(default_factory=lambda: layout.pattern(layout.objects_file(0)))
    frames: list[int] = field(default_factory=list)
    instances: list[InstanceRow] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ObjectsDoc:
        if not isinstance(d, dict):
            raise fail(where, f"expected an object, found {type(d).__name__}")
        check_schema(d, "schema", (SCHEMA,), where)
        records = get(d, "records", as_str, where)
        if records not in RECORD_MODES:
            raise fail(f"{where}.records", f"{records!r} is not one of {', '.join(RECORD_MODES)}")
        out = cls(records=records, frames_file=get(d, "frames_file", as_str, where),
                  frames=get(d, "frames", list_of(as_int), where),
                  instances=get(d, "instances", list_of(InstanceRow.from_dict), where))
        if "NNNNNN" not in out.frames_file:
            raise fail(f"{where}.frames_file", f"{out.frames_file!r} has no NNNNNN frame field")
        ids = [r.instance_id for r in out.instances]
        if ids != sorted(set(ids)):
            raise fail(f"{where}.instances", "instance ids are not ascending and unique")
        return out

    def to_dict(self) -> ObjectsDocDict:
        return {**self._head(), "instances": [r.to_dict() for r in self.instances]}

    def frame_file(self, frame: int) -> str:
        """The record file of ``frame``, relative to the sequence folder."""
        return self.frames_file.replace("N" * layout.DIGITS, layout.frame_digits(frame))

    def write(self, path: str | os.PathLike) -> None:
        """Atomic; one instance row per line (a compact file that still diffs by line)."""
        import json

        from ..transforms import write_text_atomic

        enc = json.JSONEncoder(separators=(",", ":")).encode  # one encoder for every row
        head = enc(self._head())[:-1]
        parts: dict = {}
        body = ",\n".join([_row_json(r, enc, parts) for r in self.instances])
        write_text_atomic(path, f'{head},"instances":[\n{body}\n]}}\n' if self.instances
                          else f'{head},"instances":[]}}\n')

    def _head(self) -> dict:
        """The document's keys before ``instances``, in order."""
        return {"schema": SCHEMA, "records": self.records, "frames_file": self.frames_file,
                "frames": list(self.frames)}


def _row_json(r: InstanceRow, enc, parts: dict) -> str:
    """``enc(r.to_dict())`` (``enc``: a compact JSON encoder), the same text 10x faster for rows
    of the types the worker writes (14,700 rows of the 50k scatter: 0.2 s through ``enc``):
    the part shared by the rows of one instancer is encoded once and kept in ``parts``."""
    pid, oid = r.persistent_id, r.object_id
    if not (type(r.instance_id) is int and type(r.deforming) is bool and type(pid) is list
            and ints(pid)):
        return enc(r.to_dict())
    key = (type(oid), oid, r.object, tuple(r.instancer_chain), r.category)
    mid = parts.get(key)
    if mid is None:
        if not (type(oid) is int and type(r.object) is str and type(r.category) is str
                and all(type(x) is str for x in key[3])):
            return enc(r.to_dict())
        mid = parts[key] = (f',"object_id":{oid},"object":{enc(r.object)},"instancer_chain":'
                            f'{enc(list(key[3]))},"persistent_id":[',
                            f'],"category":{enc(r.category)},"deforming":')
    return (f'{{"instance_id":{r.instance_id}{mid[0]}{",".join(map(str, pid))}{mid[1]}'
            f'{"true" if r.deforming else "false"}}}')


def _npz(fh, arrays: dict[str, np.ndarray]) -> None:
    """``numpy.savez_compressed(fh, **arrays)`` at deflate level 1 instead of 6: 6,000 rows of
    the 50k scatter written in 17 ms instead of 44, 11 % larger; ``numpy.load`` reads it alike."""
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for key, value in arrays.items():
            with z.open(f"{key}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(value), allow_pickle=False)


# -- per-frame records -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameRecord:
    """One frame's instances as arrays (the fields of :data:`ARRAYS`, rows sorted by
    ``instance_id``; see the module docstring for units)."""

    frame: int
    camera: str
    instance_id: np.ndarray      # (N,) uint32, ascending
    object_to_world: np.ndarray  # (N, 4, 4) float64
    box_lo: np.ndarray           # (N, 3) float64, object space
    box_hi: np.ndarray           # (N, 3) float64
    bbox_obj: np.ndarray         # (N, 4) float64 [x, y, w, h] amodal
    bbox_visib: np.ndarray       # (N, 4) int32 [x, y, w, h]
    px_count_visib: np.ndarray   # (N,) int64

    @classmethod
    def make(cls, frame: int, camera: str, where: str = "record", *, unknown: bool = False,
             **arrays: Any) -> FrameRecord:
        """A record from array-likes (cast to the documented dtypes, rows sorted by instance id);
        raises :class:`DocumentError` naming ``where`` when a shape or value is wrong. ``unknown``:
        NaN allowed in the boxes and ``-1`` in ``bbox_visib`` / ``px_count_visib`` (a version-1
        entry without them)."""
        n = len(np.asarray(arrays["instance_id"]).reshape(-1))
        out: dict[str, np.ndarray] = {}
        for name, (dtype, shape) in ARRAYS.items():
            if name not in arrays:
                raise fail(where, f"missing array '{name}'")
            a = np.asarray(arrays[name])
            if a.size == 0:
                a = a.reshape((0, *shape))
            if a.shape != (n, *shape):
                raise fail(f"{where}.{name}", f"shape {a.shape}, expected {(n, *shape)}")
            if np.issubdtype(dtype, np.integer):
                if a.dtype.kind not in "iu" or (a.size and (a.min() < np.iinfo(dtype).min
                                                            or a.max() > np.iinfo(dtype).max)):
                    raise fail(f"{where}.{name}", f"expected integers that fit {np.dtype(dtype).name}")
            elif a.dtype.kind not in "fiu" or not (np.isfinite(a) | (
                    unknown and name in _MAY_BE_UNKNOWN and np.isnan(a))).all():
                raise fail(f"{where}.{name}", "expected finite numbers")
            out[name] = np.ascontiguousarray(a, dtype=dtype)
        order = np.argsort(out["instance_id"], kind="stable")
        if (np.diff(order) != 1).any():
            out = {k: v[order] for k, v in out.items()}
        if (np.diff(out["instance_id"].astype(np.int64)) == 0).any():
            raise fail(f"{where}.instance_id", "an instance id is listed twice")
        if not unknown and (out["px_count_visib"] < 0).any():
            raise fail(f"{where}.px_count_visib", "negative pixel count")
        return cls(frame=int(frame), camera=str(camera), **out)

    @classmethod
    def empty(cls, frame: int, camera: str) -> FrameRecord:
        return cls.make(frame, camera, **{k: np.zeros((0, *s), d) for k, (d, s) in ARRAYS.items()})

    def __len__(self) -> int:
        return len(self.instance_id)

    def take(self, mask_or_index: np.ndarray) -> FrameRecord:
        """The rows picked by a boolean mask or ascending indices."""
        return replace(self, **{k: getattr(self, k)[mask_or_index] for k in ARRAYS})

    def select(self, mode: str) -> FrameRecord:
        """The rows a frame lists under ``mode`` (one of :data:`RECORD_MODES`)."""
        if mode == "all":
            return self
        keep = self.px_count_visib > 0
        if mode == "frustum":
            keep |= (self.bbox_obj[:, 2] > 0) & (self.bbox_obj[:, 3] > 0)
        elif mode != "visible":
            raise ValueError(f"object_records {mode!r} is not one of {', '.join(RECORD_MODES)}")
        return self.take(keep)

    # -- derived -----------------------------------------------------------------------------
    def bbox_3d(self) -> np.ndarray:
        """``(N, 8, 3)`` world corners of the object-space box (corner order in the module doc)."""
        bits = (np.arange(8)[:, None] >> np.arange(3)) & 1  # (8, 3): 1 = high
        c = np.where(bits[None].astype(bool), self.box_hi[:, None], self.box_lo[:, None])
        m = self.object_to_world
        return np.einsum("nij,nkj->nki", m[:, :3, :3], c) + m[:, None, :3, 3]

    def object_to_camera(self, cam_to_world_gl: np.ndarray) -> np.ndarray:
        """``(N, 4, 4)`` object space to the OpenCV camera frame of the pose ``cam_to_world_gl``
        ``(4, 4)`` (``transform_matrix``, Blender camera axes)."""
        w2c = np.linalg.inv(np.asarray(cam_to_world_gl, np.float64) @ CV_FROM_GL)
        return np.einsum("ij,njk->nik", w2c, self.object_to_world)

    # -- files -------------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {"schema": np.array(SCHEMA), "frame": np.array(self.frame, np.int64),
                "camera": np.array(self.camera), **{k: getattr(self, k) for k in ARRAYS}}

    def write(self, path: str | os.PathLike) -> None:
        """Write the ``.npz`` atomically (temporary file in the same folder, then rename); the
        journal makes it durable with the frame. A write error is a one-line ``WriteError``."""
        from ..verify import write_error

        path = Path(path)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()  # the same bytes as into the file, one write instead of ~50
            _npz(buf, self.arrays())
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.getbuffer())
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            raise write_error(exc, path) from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    @classmethod
    def read(cls, path: str | os.PathLike) -> FrameRecord:
        """The record of a ``.npz`` file; a :class:`DocumentError` naming the file (and array)
        when it cannot be read or is not of the schema."""
        where = os.fspath(path)
        try:
            with zipfile.ZipFile(path) as z:
                names = {n[:-4] for n in z.namelist() if n.endswith(".npy")}

                def get(k: str) -> np.ndarray:
                    return _npy(z.read(k + ".npy"))
                if "schema" not in names or str(get("schema")[()]) != SCHEMA:
                    got = str(get("schema")[()]) if "schema" in names else None
                    raise fail(where, f"schema {got!r} is not one this version reads ({SCHEMA!r})")
                missing = [k for k in ("frame", "camera", *ARRAYS) if k not in names]
                if missing:
                    raise fail(where, f"missing array(s) {', '.join(missing)}")
                arrays = {k: get(k) for k in ARRAYS}
                frame, camera = get("frame"), get("camera")
                if frame.shape != () or frame.dtype.kind not in "iu" or camera.shape != () \
                        or camera.dtype.kind != "U":
                    raise fail(where, "'frame' must be a 0-d integer and 'camera' a 0-d string")
                return cls.make(int(frame), str(camera), where, **arrays)
        except DocumentError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DocumentError(f"{where}: cannot be read as a .npz record ({exc})") from None


def _npy(data: bytes) -> np.ndarray:
    """One ``.npy`` member of a record, as ``numpy.load(allow_pickle=False)`` reads it (a new,
    writable array), its header parsed once per distinct header (``numpy.load`` parses each
    with ``ast.literal_eval``: 60 us of a record's 130 us per array)."""
    from numpy.lib import format as npy

    version = (data[6], data[7]) if data[:6] == npy.MAGIC_PREFIX else None
    size = {(1, 0): 2, (2, 0): 4}.get(version)
    if size is None or len(data) < 8 + size:  # not a 1.0/2.0 header: numpy reads (and refuses) it
        return npy.read_array(io.BytesIO(data), allow_pickle=False)
    end = 8 + size + int.from_bytes(data[8:8 + size], "little")
    shape, fortran, dtype = _npy_header(data[:end])
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.frombuffer(data, dtype, count=count, offset=end)
    return (flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)).copy(order="K")


@functools.lru_cache(maxsize=512)
def _npy_header(head: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    from numpy.lib import format as npy

    fp = io.BytesIO(head)
    version = npy.read_magic(fp)
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    return read(fp)


def read_ids(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(instance_id, px_count_visib)`` of a record file, reading only those two arrays."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["instance_id"].astype(np.uint32), z["px_count_visib"].astype(np.int64)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DocumentError(f"{os.fspath(path)}: cannot be read as a .npz record ({exc})") from None


# -- version 1 -------------------------------------------------------------------------------------
def _box_from_corners(m: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` object-space box of v1 world corners ``(N, 8, 3)`` under poses ``(N, 4, 4)``."""
    q = np.einsum("nij,nkj->nki", np.linalg.pinv(m[:, :3, :3]), corners - m[:, None, :3, 3])
    return q.min(axis=1), q.max(axis=1)


def v1_records(doc: Any, where: str) -> tuple[list[InstanceRow], dict[int, FrameRecord],
                                              dict[int, np.ndarray]]:
    """A version-1 ``objects.json`` (``schema``, ``instances`` as the table's rows, and ``frames``
    entries ``{frame, camera, instances: [{instance_id, object_to_world, object_to_camera,
    bbox_3d (8, 3) world corners, bbox_obj, bbox_visib, px_count_visib}]}``) as the instance table,
    ``{frame: FrameRecord}`` (every instance it listed) and ``{frame: stored object_to_camera
    (N, 4, 4)}`` (NaN where an entry had none)."""
    if not isinstance(doc, dict):
        raise fail(where, f"expected an object, found {type(doc).__name__}")
    check_schema(doc, "schema", (SCHEMA_V1, None), where)
    rows = get(doc, "instances", list_of(InstanceRow.from_dict), where)
    frames = doc.get("frames")
    if not isinstance(frames, list):
        raise fail(where, "not an objects.json document (needs 'instances' and 'frames' lists)")
    known = {r.instance_id for r in rows}
    if len(known) != len(rows):
        raise fail(f"{where}.instances", "an instance_id is listed twice")
    records: dict[int, FrameRecord] = {}
    o2c: dict[int, np.ndarray] = {}
    for i, fr in enumerate(frames):
        w = f"{where}.frames[{i}]"
        if not isinstance(fr, dict):
            raise fail(w, "expected an object")
        frame = get(fr, "frame", as_int, w)
        ents = fr.get("instances") or []
        if not isinstance(ents, list) or not all(isinstance(e, dict) for e in ents):
            raise fail(f"{w}.instances", "expected a list of objects")
        n = len(ents)
        try:
            ids = np.array([int(e["instance_id"]) for e in ents], np.int64)
            m = np.array([e["object_to_world"] for e in ents], np.float64).reshape(n, 4, 4)

            def opt(key, shape, fill, dtype=np.float64, ents=ents, n=n):
                return np.array([fill if e.get(key) is None else e[key] for e in ents],
                                dtype).reshape((n, *shape))
            corners = opt("bbox_3d", (8, 3), np.full((8, 3), np.nan))
            o2c[frame] = opt("object_to_camera", (4, 4), np.full((4, 4), np.nan))
            obj = opt("bbox_obj", (4,), [np.nan] * 4)
            vis = opt("bbox_visib", (4,), [-1] * 4, np.int64)  # -1: not recorded
            px = opt("px_count_visib", (), -1, np.int64)
        except (KeyError, ValueError, TypeError) as exc:
            raise fail(f"{w}.instances", f"malformed ({type(exc).__name__}: {exc})") from None
        for iid in ids.tolist():
            if iid not in known:
                raise fail(w, f"instance {iid} is not in 'instances'")
        has_box = np.isfinite(corners).all(axis=(1, 2))
        lo, hi = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
        if has_box.any():
            lo[has_box], hi[has_box] = _box_from_corners(m[has_box], corners[has_box])
        rec = FrameRecord.make(frame, str(fr.get("camera") or ""), w, unknown=True, instance_id=ids,
                               object_to_world=m, box_lo=lo, box_hi=hi, bbox_obj=obj,
                               bbox_visib=vis, px_count_visib=px)
        order = np.argsort(ids, kind="stable")
        o2c[frame] = o2c[frame][order]
        records[frame] = rec
    return sorted(rows, key=lambda r: r.instance_id), records, o2c
