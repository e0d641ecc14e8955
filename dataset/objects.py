# SPDX-License-Identifier: GPL-3.0-or-later
"""Object-level ground truth: the schema of ``objects.json`` (one per sequence), the instance ids
and the numpy functions that compute them. Pure Python + numpy (no ``bpy``).

Written by the worker next to ``transforms.json`` when segmentations are on; read by the loader
(as arrays), validate and the exports. Field names follow BOP's ``scene_gt`` / ``scene_gt_info``
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

``objects.json`` (:class:`ObjectsDoc`):

* ``instances``: one :class:`InstanceInfo` per instance drawn in any frame of the sequence;
  ``deforming`` is true when its evaluated object-space vertices change within the sequence or
  it has an armature, animated or driven shape keys, a physics/cache/lattice/hook-type modifier
  or animated modifier settings (its pose then does not explain its motion).
* ``frames[i].instances``: one :class:`InstanceFrame` per instance drawn in that frame (in front
  of the camera or not), sorted by ``instance_id``:

  * ``object_to_world``: ``(4, 4)`` row-major, object space to world (scene units, scale kept).
  * ``object_to_camera``: ``(4, 4)`` object space to the **OpenCV camera frame** of that frame's
    camera (x right, y down, z forward; the frame's ``K`` maps it to pixels), i.e.
    ``inv(pose_opencv) @ object_to_world`` with ``pose_opencv = transform_matrix @ diag(1,-1,-1,1)``.
  * ``bbox_3d``: ``(8, 3)`` world corners of the axis-aligned box of the *evaluated* geometry in
    object space; corner ``i`` has ``x = max if i & 1``, ``y = max if i & 2``, ``z = max if i & 4``.
  * ``bbox_obj`` (amodal): ``[x, y, w, h]`` pixels (origin top-left image corner, continuous):
    the box of the projected evaluated vertices (plus edge crossings of the camera's near
    plane), clipped to the image; ``[0, 0, 0, 0]`` when nothing is in front of the camera.
  * ``bbox_visib``: ``[x, y, w, h]`` integer pixel-edge box of the pixels carrying the instance
    id; ``[0, 0, 0, 0]`` when none. ``px_count_visib``: the number of those pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TypedDict

import numpy as np

from .layout import SEGMENTATION_INSTANCE_CHANNEL as INSTANCE_CHANNEL
from .layout import SEGMENTATION_OBJECT_CHANNEL as OBJECT_CHANNEL

OBJECTS_SCHEMA = "dataset_forge.objects/1"
MAX_INSTANCE_ID = 2**31 - 1
PID_UNUSED = 2**31 - 1  # fills the unused tail of the depsgraph's persistent_id


class InstanceInfo(TypedDict):
    """One drawn instance, the same in every frame of the sequence."""

    instance_id: int
    object_id: int
    object: str                 # the instanced object's name (library-qualified if linked)
    instancer_chain: list[str]  # outermost first; [] for an object drawn by itself
    category: str               # its class (the object's class, as in segmentation_ids.json)
    deforming: bool             # see the module docstring


class InstanceFrame(TypedDict):
    """One instance in one frame."""

    instance_id: int
    object_to_world: list[list[float]]
    object_to_camera: list[list[float]]
    bbox_3d: list[list[float]]
    bbox_obj: list[float]
    bbox_visib: list[int]
    px_count_visib: int


class FrameObjects(TypedDict):
    frame: int
    camera: str
    instances: list[InstanceFrame]


class ObjectsDoc(TypedDict):
    schema: str
    instances: list[InstanceInfo]
    frames: list[FrameObjects]


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


# -- geometry -------------------------------------------------------------------------------------
CV_FROM_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def world_to_cv(cam_to_world_gl) -> np.ndarray:
    """World -> OpenCV camera ``(4, 4)`` from a Blender/OpenGL camera-to-world pose."""
    return np.linalg.inv(np.asarray(cam_to_world_gl, float) @ CV_FROM_GL)


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


def visible_boxes(inst: np.ndarray) -> dict[int, tuple[list[int], int]]:
    """``{instance id: ([x, y, w, h], pixel count)}`` of an ``(H, W)`` instance-id image."""
    flat = inst.ravel()
    nz = np.flatnonzero(flat)
    if not len(nz):
        return {}
    ids = flat[nz]
    order = np.argsort(ids, kind="stable")
    ids, nz = ids[order], nz[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    w = inst.shape[1]
    out = {}
    for s, e in zip(starts, ends):
        px = nz[s:e]
        rows, cols = px // w, px % w
        x0, y0 = int(cols.min()), int(rows.min())
        out[int(ids[s])] = ([x0, y0, int(cols.max()) - x0 + 1, int(rows.max()) - y0 + 1], e - s)
    return out


class Candidate(TypedDict):
    """A drawn instance as the pixel resolver sees it."""

    instance_id: int
    object_id: int
    pass_value: int      # what Cycles writes in the Object Index pass for it
    matrix: np.ndarray   # (4, 4) object -> world
    lo: np.ndarray       # (3,) object-space box of its evaluated geometry
    hi: np.ndarray


def resolve_pixels(index: np.ndarray, depth: np.ndarray, K, cam_to_world_gl,
                   candidates: list[Candidate], surface_distance=None
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Object and instance id images from the Object Index pass and the planar Depth pass of
    the same (first) sample, both ``(H, W)``.

    Pixels whose index value belongs to one candidate take it. Otherwise the surface point of
    the pixel-centre ray at that depth is compared with the candidates' boxes (world distance,
    tolerance: 2 pixel footprints); among several boxes within tolerance,
    ``surface_distance(candidate, points_world (N, 3)) -> (N,)`` (when given) decides.
    Returns ``(object_ids int32, instance_ids uint32, stats)``."""
    from .layout import pixel_rays

    h, w = index.shape
    idx = np.rint(index).astype(np.int64)
    hit = depth < 1e9
    obj = np.zeros((h, w), np.int32)
    ins = np.zeros((h, w), np.uint32)
    stats = {"unique": 0, "by_box": 0, "by_surface": 0, "nearest_box": 0, "unidentified": 0}
    groups: dict[int, list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(int(c["pass_value"]), []).append(c)
    K = np.asarray(K, float)
    pose = np.asarray(cam_to_world_gl, float) @ CV_FROM_GL
    xr, yr = pixel_rays(K, (h, w))
    foot = 2.0 * np.sqrt(2.0) * max(1.0 / K[0, 0], 1.0 / K[1, 1])
    hp = np.flatnonzero(hit)
    vals = idx.ravel()[hp]
    keys = np.array(sorted(groups), np.int64)
    pos = np.searchsorted(keys, vals) if len(keys) else np.zeros(len(vals), np.int64)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    found = (keys[pos] == vals) if len(keys) else np.zeros(len(vals), bool)
    stats["unidentified"] = int((~found).sum())
    single = np.array([len(groups[int(k)]) == 1 for k in keys], bool)
    lut_o = np.array([groups[int(k)][0]["object_id"] for k in keys], np.int32)
    lut_i = np.array([groups[int(k)][0]["instance_id"] for k in keys], np.uint32)
    one = found & single[pos] if len(keys) else found
    obj.ravel()[hp[one]] = lut_o[pos[one]]
    ins.ravel()[hp[one]] = lut_i[pos[one]]
    stats["unique"] = int(one.sum())
    many = np.flatnonzero(found & ~one)
    order = many[np.argsort(vals[many], kind="stable")]
    sv = vals[order]
    starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]]) if len(sv) else np.array([], int)
    for s0, s1 in zip(starts, np.r_[starts[1:], len(sv)]):
        group = groups[int(sv[s0])]
        px = hp[order[s0:s1]]
        rows, cols = px // w, px % w
        n = len(px)
        d = depth.ravel()[px].astype(np.float64)
        p_cam = np.stack([xr[0, cols] * d, yr[rows, 0] * d, d], -1)
        p = p_cam @ pose[:3, :3].T + pose[:3, 3]
        tol = foot * d + 1e-6
        dist = np.empty((len(group), n))
        for j, c in enumerate(group):
            m = np.asarray(c["matrix"], float)
            q = (p - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T
            off = np.maximum(np.maximum(c["lo"] - q, q - c["hi"]), 0.0)
            dist[j] = np.linalg.norm(off @ m[:3, :3].T, axis=1)
        within = dist <= tol
        nwithin = within.sum(0)
        pick = np.argmin(dist, 0)
        stats["by_box"] += int((nwithin == 1).sum())
        stats["nearest_box"] += int((nwithin == 0).sum())
        amb = np.flatnonzero(nwithin > 1)
        if len(amb):
            stats["by_surface"] += len(amb)
            if surface_distance is not None:
                sd = np.full((len(group), len(amb)), np.inf)
                for j, c in enumerate(group):
                    sel = within[j, amb]
                    if sel.any():
                        sd[j, sel] = surface_distance(c, p[amb[sel]])
                pick[amb] = np.argmin(sd, 0)
        oid = np.array([c["object_id"] for c in group], np.int32)
        iid = np.array([c["instance_id"] for c in group], np.uint32)
        obj.ravel()[px] = oid[pick]
        ins.ravel()[px] = iid[pick]
    return obj, ins, stats


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


def read_ids(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(object ids int32, instance ids uint32)``, each ``(H, W)``, exactly as stored."""
    from .exr import read_stored

    ch = read_stored(path, [OBJECT_CHANNEL, INSTANCE_CHANNEL])
    return (np.rint(ch[OBJECT_CHANNEL]).astype(np.int32),
            np.asarray(ch[INSTANCE_CHANNEL]).astype(np.uint32))
