# SPDX-License-Identifier: GPL-3.0-or-later
"""Object-level ground truth: the instance ids and the numpy functions that compute the
per-instance geometry (boxes, projections, closest points, the segmentation EXR's two channels).
Pure Python + numpy (no ``bpy``). Field names follow BOP's ``scene_gt`` / ``scene_gt_info``
where one exists (``bbox_obj``, ``bbox_visib``, ``px_count_visib``), with Kubric's notion of
per-instance 3D boxes.

Ids (both ``0`` = background, no surface):

* ``object_id``: per object, ``1..N`` over the renderable objects of the file sorted by
  library-qualified name (``segmentation_ids.json`` → ``ids``). Objects that are drawn only
  through collection instances, particles or geometry nodes get one too. Geometry-nodes instances
  of geometry that is not an object (e.g. a Mesh Cube node) carry their instancer's object id.
* ``instance_id``: per drawn instance, ``1 .. 2**31 - 1``: :func:`instance_id` of the instance's
  key (object name, instancer chain, the depsgraph's ``persistent_id``), never draw order, so the
  same in every frame, sequence and rerun of a file. An object drawn by itself is one instance
  (chain ``[]``). ``segmentation_ids.json`` → ``instances`` maps each id to ``object``,
  ``object_id``, ``instancer_chain``, ``persistent_id`` and ``class``.
* Per pixel, in ``segmentations/segmentation_NNNNNN.exr``: channel ``V`` (float32, exact
  integers, as before) = object id, channel ``instance`` (**uint32**; read it with
  :func:`read_ids`, since a float32 conversion is not exact above 2**24) = instance id.
  Both come from the pixel's **first** Cycles sample (like depth), never averaged.

How the pixel ids are made (render side): Cycles' Object Index pass carries each object's
``pass_index`` (set to its object id for the render and restored afterwards; linked objects keep
theirs); it is exact and comes from the same first sample as the Depth pass. Where that value
belongs to several drawn instances (instances of one object, or linked objects sharing a
``pass_index``), the pixel's first-sample surface point (pixel-centre ray at the pass's planar
depth) picks the instance whose evaluated geometry is nearest (its box first, then its surface).
No material, object or RGB sample is changed.

The files (``objects.json``, the instance table, and one record of arrays per frame under
``objects/``; version 1 still read) are :mod:`dataset.documents.objects`; ``deforming`` of a
table row is true when the instance's evaluated object-space vertices change within the sequence
or it has an armature, animated or driven shape keys, a physics/cache/lattice/hook-type modifier
or animated modifier settings (its pose then does not explain its motion).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .frame_writer import FrameWriter
from .layout import SEGMENTATION_INSTANCE_CHANNEL as INSTANCE_CHANNEL
from .layout import SEGMENTATION_OBJECT_CHANNEL as OBJECT_CHANNEL
from .verify import WriteError, write_error

MAX_INSTANCE_ID = 2**31 - 1
PID_UNUSED = 2**31 - 1  # fills the unused tail of the depsgraph's persistent_id


# -- ids ------------------------------------------------------------------------------------------
def trim_pid(pid) -> list[int]:
    """The used part of a depsgraph ``persistent_id`` (the unused tail is 2**31 - 1)."""
    out = [int(x) for x in pid]
    while out and out[-1] == PID_UNUSED:
        out.pop()
    return out


def instance_key(obj: str, chain: list[str], pid: list[int]) -> str:
    """The canonical text an instance id is hashed from."""
    return json.dumps([obj, list(chain), list(pid)], separators=(",", ":"))


def instance_id(key: str) -> int:
    """``1 .. 2**31 - 1`` from BLAKE2b of ``key`` (same on every machine and Python)."""
    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")
    return 1 + h % MAX_INSTANCE_ID


def bulk_instance_ids(obj: str, chain: list[str], pid) -> np.ndarray:
    """``(n,)`` uint32: :func:`instance_id` of ``instance_key(obj, chain, [0, p])`` for each
    ``p`` of ``pid`` (n,) ints (the instances of a geometry-nodes instancer), with the key text
    formatted and the digests turned into ids once for all (BLAKE2b itself runs per key)."""
    head = instance_key(obj, chain, [0])[:-2].encode("utf-8") + b","
    b2 = hashlib.blake2b
    digests = b"".join([b2(b"%s%d]]" % (head, p), digest_size=8).digest()
                        for p in np.asarray(pid, np.int64).tolist()])
    h = np.frombuffer(digests, "<u8")
    return (h % np.uint64(MAX_INSTANCE_ID) + np.uint64(1)).astype(np.uint32)


def instance_ids(obj: str, chain: list[str], pids: list[list[int]]) -> np.ndarray:
    """``(n,)`` uint32: :func:`instance_id` of ``instance_key(obj, chain, pid)`` for each
    ``pid`` of ``pids`` (the used entries of persistent ids, any length), with the key text's
    head formatted and the digests turned into ids once for all."""
    head = instance_key(obj, chain, [])[:-3].encode("utf-8") + b"["
    b2 = hashlib.blake2b
    texts = {n: head + b",".join([b"%d"] * n) + b"]]" for n in {len(p) for p in pids}}
    digests = b"".join([b2(texts[len(p)] % tuple(p), digest_size=8).digest() for p in pids])
    h = np.frombuffer(digests, "<u8")
    return (h % np.uint64(MAX_INSTANCE_ID) + np.uint64(1)).astype(np.uint32)


# -- geometry -------------------------------------------------------------------------------------
CV_FROM_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def world_to_cv(cam_to_world_gl) -> np.ndarray:
    """World -> OpenCV camera ``(4, 4)`` from a Blender/OpenGL camera-to-world pose. An
    orthonormal one (:func:`dataset.camera.orthonormal_pose`) is inverted by transposing its
    rotation (a LAPACK 4x4 inverse took 0.2-0.5 ms in the worker), any other by LAPACK."""
    m = np.asarray(cam_to_world_gl, float) * CV_FROM_GL.diagonal()  # @ CV_FROM_GL: column signs
    rt = m[:3, :3].T
    if np.abs(rt @ m[:3, :3] - np.eye(3)).max() > 1e-12 or (m[3] != (0, 0, 0, 1)).any():
        return np.linalg.inv(m)
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rt, -(rt @ m[:3, 3])
    return out


def box_corners(lo, hi) -> np.ndarray:
    """``(8, 3)`` corners of the box ``[lo, hi]`` in the documented order."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return np.array([[hi[0] if i & 1 else lo[0], hi[1] if i & 2 else lo[1],
                      hi[2] if i & 4 else lo[2]] for i in range(8)])


def transform(m, pts) -> np.ndarray:
    """Apply a ``(4, 4)`` affine matrix to ``(N, 3)`` points."""
    m = np.asarray(m, float)
    return np.asarray(pts, float) @ m[:3, :3].T + m[:3, 3]


def amodal_box(verts_cam, edges, K, w: int, h: int, near: float) -> list[float]:
    """``[x, y, w, h]`` of ``verts_cam`` ``(N, 3)`` (OpenCV camera frame) projected through ``K``,
    where vertices behind ``near`` are replaced by the crossings of ``edges`` ``(E, 2)`` with
    the plane ``z = near``; clipped to the image. ``[0, 0, 0, 0]`` when nothing is in view."""
    v = np.asarray(verts_cam, float)
    front = v[:, 2] >= near
    pts = [v[front]]
    if edges is not None and len(edges) and not front.all():
        e = np.asarray(edges, int)
        a, b = v[e[:, 0]], v[e[:, 1]]
        cross = front[e[:, 0]] != front[e[:, 1]]
        a, b = a[cross], b[cross]
        t = (near - a[:, 2]) / (b[:, 2] - a[:, 2])
        pts.append(a + t[:, None] * (b - a))
    p = np.concatenate(pts)
    if not len(p):
        return [0.0, 0.0, 0.0, 0.0]
    K = np.asarray(K, float)
    u = K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2]
    vv = K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2]
    x0, x1 = max(float(u.min()), 0.0), min(float(u.max()), float(w))
    y0, y1 = max(float(vv.min()), 0.0), min(float(vv.max()), float(h))
    if x1 <= x0 or y1 <= y0:
        return [0.0, 0.0, 0.0, 0.0]
    return [x0, y0, x1 - x0, y1 - y0]


MASK_IDS_MAX = 32  # candidate ids up to which one mask per id beats sorting the pixels


def visible_box_arrays(inst: np.ndarray, ids: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids (n,) uint32 sorted, boxes (n, 4) int32 [x, y, w, h], counts (n,) int64)`` of the
    pixels of each instance id of an ``(H, W)`` instance-id image (0 = none). Vectorised.
    ``ids``: the ids the image can hold, when known (up to :data:`MASK_IDS_MAX` of them, one
    mask per id; pixels of any other id make it fall back to sorting the pixels)."""
    if ids is not None and len(ids) <= MASK_IDS_MAX:
        got = _masked_boxes(inst, np.unique(np.asarray(ids, np.uint32)))
        if got is not None:
            return got
    flat = inst.ravel()
    nz = np.flatnonzero(flat)
    if not len(nz):
        return np.zeros(0, np.uint32), np.zeros((0, 4), np.int32), np.zeros(0, np.int64)
    ids = flat[nz]
    order = np.argsort(ids, kind="stable")
    ids, nz = ids[order], nz[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    w, last = inst.shape[1], np.r_[starts[1:], len(ids)] - 1
    cols = nz % w  # nz ascends within an id (stable sort): its rows span first .. last
    x0, x1 = np.minimum.reduceat(cols, starts), np.maximum.reduceat(cols, starts)
    y0, y1 = nz[starts] // w, nz[last] // w
    boxes = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], -1).astype(np.int32)
    counts = np.diff(np.r_[starts, len(ids)]).astype(np.int64)
    return ids[starts].astype(np.uint32), boxes, counts


def _masked_boxes(inst: np.ndarray, ids: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`visible_box_arrays` by one mask per id of ``ids`` (sorted, unique); None when the
    image has pixels of other ids."""
    out_ids, boxes, counts = [], [], []
    for i in ids[ids > 0].tolist():
        m = inst == i
        n = int(np.count_nonzero(m))
        if not n:
            continue
        cx, ry = m.any(0), m.any(1)
        x0, y0 = int(cx.argmax()), int(ry.argmax())
        x1, y1 = len(cx) - int(cx[::-1].argmax()), len(ry) - int(ry[::-1].argmax())
        out_ids.append(i)
        boxes.append((x0, y0, x1 - x0, y1 - y0))
        counts.append(n)
    if sum(counts) != np.count_nonzero(inst):
        return None
    return (np.array(out_ids, np.uint32), np.array(boxes, np.int32).reshape(-1, 4),
            np.array(counts, np.int64))


def visible_boxes(inst: np.ndarray) -> dict[int, tuple[list[int], int]]:
    """``{instance id: ([x, y, w, h], pixel count)}`` of an ``(H, W)`` instance-id image."""
    ids, boxes, counts = visible_box_arrays(inst)
    return {int(i): (b.tolist(), int(c)) for i, b, c in zip(ids, boxes, counts)}


def amodal_boxes(o2c: np.ndarray, verts, edges, K, w: int, h: int, near: float) -> np.ndarray:
    """:func:`amodal_box` of one geometry (``verts`` ``(V, 3)`` object space, ``edges``
    ``(E, 2)``) under ``n`` object-to-OpenCV-camera matrices ``o2c`` ``(n, 4, 4)``:
    ``(n, 4)`` float64. Vectorised over instances (in chunks of bounded memory); only instances
    that cross the near plane take the per-instance path."""
    o2c = np.asarray(o2c, float)
    v = np.asarray(verts, float)
    n = len(o2c)
    out = np.zeros((n, 4))
    if not n or not len(v):
        return out
    K = np.asarray(K, float)
    step = max(1, 2_000_000 // max(len(v), 1))
    for a in range(0, n, step):
        m = o2c[a:a + step]
        p = np.einsum("vj,nij->nvi", v, m[:, :3, :3]) + m[:, None, :3, 3]   # (c, V, 3)
        front = p[..., 2] >= near
        allf = front.all(1)
        z = np.where(front, p[..., 2], 1.0)
        u = K[0, 0] * p[..., 0] / z + K[0, 2]
        vv = K[1, 1] * p[..., 1] / z + K[1, 2]
        x0 = np.maximum(u.min(1), 0.0)
        x1 = np.minimum(u.max(1), float(w))
        y0 = np.maximum(vv.min(1), 0.0)
        y1 = np.minimum(vv.max(1), float(h))
        ok = allf & (x1 > x0) & (y1 > y0)
        box = np.stack([x0, y0, x1 - x0, y1 - y0], -1)
        out[a:a + step][ok] = box[ok]
        for j in np.flatnonzero(~allf & front.any(1)):  # crosses the near plane
            out[a + j] = amodal_box(p[j], edges, K, w, h, near)
    return out


MANY_ROWS = 16      # rows of one geometry from which amodal_boxes takes them by itself
ROWS_POINTS = 250_000  # projected vertices per step of amodal_boxes_rows


def amodal_boxes_rows(o2c: np.ndarray, geoms: list[tuple[np.ndarray, np.ndarray]],
                      gi: np.ndarray, K, w: int, h: int, near: float) -> np.ndarray:
    """:func:`amodal_boxes` of rows of different geometries, ``(n, 4)`` float64: row ``r`` is
    geometry ``geoms[gi[r]]`` (``(verts (V, 3), edges (E, 2))``) under ``o2c[r]``. The rows
    of geometries with few of them are projected together (one numpy pass instead of one per
    geometry), with the same operations per vertex, so the boxes are bit-identical."""
    o2c = np.asarray(o2c, float)
    gi = np.asarray(gi, np.int64)
    out = np.zeros((len(o2c), 4))
    nv = np.array([len(v) for v, _ in geoms], np.int64)
    many = np.bincount(gi, minlength=len(geoms)) >= MANY_ROWS
    for j in np.flatnonzero(many).tolist():
        s = np.flatnonzero(gi == j)
        out[s] = amodal_boxes(o2c[s], geoms[j][0], geoms[j][1], K, w, h, near)
    rows = np.flatnonzero(~many[gi] & (nv[gi] > 0))
    if not len(rows):
        return out
    used = np.unique(gi[rows])  # the vertices of these geometries, end to end
    allv = np.concatenate([np.asarray(geoms[j][0], float).reshape(-1, 3) for j in used.tolist()])
    first = np.concatenate([[0], np.cumsum(nv[used])])[np.searchsorted(used, gi[rows])]
    n, ends = nv[gi[rows]], np.cumsum(nv[gi[rows]])
    a = 0
    while a < len(rows):
        b = max(a + 1, int(np.searchsorted(ends, ends[a] - n[a] + ROWS_POINTS, "right")))
        out[rows[a:b]] = _rows_step(o2c[rows[a:b]], [geoms[j][1] for j in gi[rows[a:b]]],
                                    first[a:b], n[a:b], allv, K, w, h, near)
        a = b
    return out


def _rows_step(o2c: np.ndarray, edges: list, first: np.ndarray, nv: np.ndarray,
               allv: np.ndarray, K, w: int, h: int, near: float) -> np.ndarray:
    """Boxes ``(m, 4)`` of ``m`` rows whose vertices are ``allv[first[r]:first[r] + nv[r]]``
    (``nv`` > 0) under ``o2c[r]``: :func:`amodal_boxes`' steps on all their vertices at once,
    minima and maxima per row by ``reduceat``."""
    starts = np.concatenate([[0], np.cumsum(nv)[:-1]])
    row = np.repeat(np.arange(len(nv)), nv)
    m = o2c[row]                                                             # (P, 4, 4)
    v = allv[np.arange(len(row)) - starts[row] + first[row]]                 # (P, 3)
    p = np.einsum("pj,pij->pi", v, m[:, :3, :3]) + m[:, :3, 3]
    K = np.asarray(K, float)
    front = p[:, 2] >= near
    allf = np.logical_and.reduceat(front, starts)
    z = np.where(front, p[:, 2], 1.0)
    u = K[0, 0] * p[:, 0] / z + K[0, 2]
    vv = K[1, 1] * p[:, 1] / z + K[1, 2]
    x0 = np.maximum(np.minimum.reduceat(u, starts), 0.0)
    x1 = np.minimum(np.maximum.reduceat(u, starts), float(w))
    y0 = np.maximum(np.minimum.reduceat(vv, starts), 0.0)
    y1 = np.minimum(np.maximum.reduceat(vv, starts), float(h))
    ok = allf & (x1 > x0) & (y1 > y0)
    out = np.zeros((len(nv), 4))
    out[ok] = np.stack([x0, y0, x1 - x0, y1 - y0], -1)[ok]
    for j in np.flatnonzero(~allf & np.logical_or.reduceat(front, starts)).tolist():
        out[j] = amodal_box(p[starts[j]:starts[j] + nv[j]], edges[j], K, w, h, near)  # crosses near
    return out


def nearest_on_triangles(verts, tris, pts) -> np.ndarray:
    """``(P, 3)`` the nearest point of the triangles ``tris`` ``(T, 3)`` of ``verts``
    ``(V, 3)`` to each of ``pts`` ``(P, 3)`` (all in one space). Ericson's closest point on a
    triangle in barycentric form: the six dot products come from two matrix products, the
    regions and squared distances are ``(P, T)`` scalars (coordinates centred on the geometry),
    and the point is formed for the nearest triangle only. NaN where there are no triangles."""
    v = np.asarray(verts, float)
    t = np.asarray(tris, np.int64).reshape(-1, 3)
    p = np.asarray(pts, float).reshape(-1, 3)
    out = np.full(p.shape, np.nan)
    if not len(t) or not len(p):
        return out
    ctr = (v.min(0) + v.max(0)) / 2
    v = v - ctr
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    ab, ac = b - a, c - a
    aba, aca = (ab * a).sum(1), (ac * a).sum(1)
    abb, acb = (ab * b).sum(1), (ac * b).sum(1)
    abc, acc = (ab * c).sum(1), (ac * c).sum(1)
    abab, abac, acac = (ab * ab).sum(1), (ab * ac).sum(1), (ac * ac).sum(1)
    aa = (a * a).sum(1)
    step = max(1, 2_000_000 // len(t))
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in range(0, len(p), step):
            q = p[s:s + step] - ctr                              # (n, 3)
            qab, qac, qa = q @ ab.T, q @ ac.T, q @ a.T           # (n, T)
            d1, d2 = qab - aba, qac - aca
            d3, d4 = qab - abb, qac - acb
            d5, d6 = qab - abc, qac - acc
            va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
            den = va + vb + vc
            vv, ww = vb / den, vc / den                          # inside the face
            r = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)     # edge BC
            tb = (d4 - d3) / ((d4 - d3) + (d5 - d6))
            vv, ww = np.where(r, 1 - tb, vv), np.where(r, tb, ww)
            r = (vb <= 0) & (d2 >= 0) & (d6 <= 0)                # edge AC
            vv, ww = np.where(r, 0.0, vv), np.where(r, d2 / (d2 - d6), ww)
            r = (d6 >= 0) & (d5 <= d6)                           # vertex C
            vv, ww = np.where(r, 0.0, vv), np.where(r, 1.0, ww)
            r = (vc <= 0) & (d1 >= 0) & (d3 <= 0)                # edge AB
            vv, ww = np.where(r, d1 / (d1 - d3), vv), np.where(r, 0.0, ww)
            r = (d3 >= 0) & (d4 <= d3)                           # vertex B
            vv, ww = np.where(r, 1.0, vv), np.where(r, 0.0, ww)
            r = (d1 <= 0) & (d2 <= 0)                            # vertex A
            vv, ww = np.where(r, 0.0, vv), np.where(r, 0.0, ww)
            qq = (q * q).sum(1)[:, None]
            dd = (qq - 2 * qa + aa - 2 * vv * d1 - 2 * ww * d2 + vv * vv * abab
                  + 2 * vv * ww * abac + ww * ww * acac)
            dd = np.where(np.isnan(dd), np.inf, dd)
            k = np.argmin(dd, 1)
            i = np.arange(len(k))
            x = a[k] + ab[k] * vv[i, k][:, None] + ac[k] * ww[i, k][:, None]
            x[~np.isfinite(dd[i, k])] = np.nan
            out[s:s + step] = x + ctr
    return out


def inv3(m: np.ndarray) -> np.ndarray:
    """Inverses of ``(n, 3, 3)`` matrices (rows: cross products of the columns / determinant;
    much faster than a batched LAPACK call for small matrices)."""
    a0, a1, a2 = m[..., :, 0], m[..., :, 1], m[..., :, 2]
    r = np.stack([np.cross(a1, a2), np.cross(a2, a0), np.cross(a0, a1)], -2)
    det = (a0 * r[..., 0, :]).sum(-1)
    return r / det[..., None, None]


def conformal(m: np.ndarray) -> np.ndarray:
    """``(n,)`` whether each ``(n, 4, 4)`` matrix is a rotation times a uniform scale (then a
    point's distance to a box is at most its distance to any surface inside the box)."""
    r = m[:, :3, :3]
    g = np.einsum("nji,njk->nik", r, r)
    s = g[:, 0, 0]
    return np.abs(g - s[:, None, None] * np.eye(3)).max((1, 2)) <= 1e-9 * np.maximum(s, 1e-300)


# bytes per instance of a frame record, and of the worker's working arrays for one frame
# (matrices, boxes, projections and the sort while the frame is assembled)
RECORD_BYTES = 4 + 16 * 8 + 3 * 8 * 2 + 4 * 8 + 4 * 4 + 8
WORK_BYTES = 4096
METADATA_MEMORY_LIMIT = 2 * 1024**3  # what one frame's object metadata may hold in the worker


def metadata_estimate(n_instances: int, frames: int, mode: str) -> dict[str, int]:
    """The object metadata of a sequence: ``{"instances", "frame_bytes", "sequence_bytes",
    "work_bytes"}``. For ``mode`` "all" every instance is in every frame; "visible" and
    "frustum" hold at most that (the estimate is the bound)."""
    fb = int(n_instances) * RECORD_BYTES  # one frame's record arrays
    return {"instances": int(n_instances), "frame_bytes": fb, "sequence_bytes": fb * int(frames),
            "work_bytes": int(n_instances) * WORK_BYTES}


def metadata_refusal(n_instances: int, frames: int, mode: str,
                     limit: int = METADATA_MEMORY_LIMIT) -> str | None:
    """None when the object metadata fits, else the one-line reason (with the estimate and the
    fix). Only "all" is refused: "visible" and "frustum" hold what the camera sees."""
    if mode != "all":
        return None
    est = metadata_estimate(n_instances, frames, mode)
    if est["work_bytes"] <= limit:
        return None
    gib = 1024**3
    return (f"object_records 'all' with {n_instances:,} instances needs about "
            f"{est['work_bytes'] / gib:.1f} GiB per frame in the worker and "
            f"{est['sequence_bytes'] / gib:.1f} GiB for {frames} frames (limit "
            f"{limit / gib:.1f} GiB per frame): set object_records to 'visible' or 'frustum'")


# -- files ----------------------------------------------------------------------------------------
def write_ids(path: str | os.PathLike, obj: np.ndarray, ins: np.ndarray,
              compression: str = "ZIP") -> None:
    """The segmentation EXR: ``V`` float32 object ids, ``instance`` uint32 instance ids."""
    import OpenEXR

    from .exr import compression_name

    comp = getattr(OpenEXR, f"{compression_name(compression)}_COMPRESSION")
    header = {"compression": comp, "type": OpenEXR.scanlineimage}
    chans = {OBJECT_CHANNEL: np.ascontiguousarray(obj, np.float32),
             INSTANCE_CHANNEL: np.ascontiguousarray(ins, np.uint32)}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with OpenEXR.File(header, chans) as f:
        f.write(str(tmp))
    os.replace(tmp, path)


class IdsWriter(FrameWriter):
    """The frame writer (:class:`.frame_writer.FrameWriter`) of a sequence with segmentations:
    a frame's segmentation EXR (:meth:`submit`, :func:`write_ids`, lossless ``codec``) and its
    other files (:meth:`run`: its object record). Seconds in ``timings``: ``write_ids_thread``
    writing the EXRs, ``write_ids_wait`` waiting, and the key :meth:`run` names."""

    def __init__(self, codec: str, timings: dict[str, float]):
        super().__init__("dataset_forge_ids", timings, "write_ids_wait")
        self.codec = codec

    def submit(self, frame: int, path: Path, obj: np.ndarray, ins: np.ndarray,
               remove: Path | None = None) -> None:
        """Write frame ``frame``'s ids to ``path``, then delete ``remove`` (its raw file)."""
        self._queue(frame, self._write, path, obj, ins, remove)

    def _write(self, path: Path, obj: np.ndarray, ins: np.ndarray, remove: Path | None) -> None:
        t0 = time.perf_counter()
        try:
            write_ids(path, obj, ins, self.codec)
            if remove is not None:
                os.unlink(remove)
        except OSError as exc:
            raise write_error(exc, path if exc.filename is None else None) from None
        except RuntimeError as exc:  # OpenEXR's own failure to write (a full disk ...)
            raise WriteError(path, " ".join(str(exc).split())[:200]) from None
        self._add("write_ids_thread", time.perf_counter() - t0)


def read_ids(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(object ids int32, instance ids uint32)``, each ``(H, W)``, exactly as stored."""
    from .exr import read_stored

    ch = read_stored(path, [OBJECT_CHANNEL, INSTANCE_CHANNEL])
    return (np.rint(ch[OBJECT_CHANNEL]).astype(np.int32),
            np.asarray(ch[INSTANCE_CHANNEL]).astype(np.uint32))
