# SPDX-License-Identifier: GPL-3.0-or-later
"""One frame's drawn instances as the object tracker holds them: grouped by drawn thing
(:class:`Group`), stacked into rows (:class:`Stack`), and the surface distance of world points to
an instance row's evaluated geometry (:func:`surface_distance`, for the pixel resolver); an
instance's instancer chain (:func:`instancer_chain`)."""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import numpy as np

from ..dataset import objects as od
from ..dataset import random_ids as rids
from . import compat
from .geometry import Geometry, union_geometry
from .instance_walk import matrices

# Triangles up to which the surface distance of a pixel is measured with numpy, not a BVH.
SMALL_MESH = 256


class Group(NamedTuple):
    """Instances of one drawn thing in one frame."""

    name: str            # the object they count as
    geom: Geometry
    iids: np.ndarray     # (n,) uint32
    mats: np.ndarray     # (n, 4, 4) object -> world
    pass_value: int
    changed: bool        # its geometry differs from the previous frame's
    rand: np.ndarray | None = None  # (n,) float32 Random AOV each instance's pixels carry
    #                                 (0: writes none; NaN or None: not known)


class Stack(NamedTuple):
    """One frame's groups as instance rows, ``n`` of them."""

    gi: np.ndarray    # (n,) the group of each row
    iid: np.ndarray   # (n,) uint32 instance ids
    mats: np.ndarray  # (n, 4, 4) object -> world
    lo: np.ndarray    # (n, 3) object-space box of the group's geometry
    hi: np.ndarray    # (n, 3)
    rand: np.ndarray  # (n,) float32 (see Group.rand)


def stack(groups: list[Group]) -> Stack:
    """The rows of ``groups``, in order (arrays joined with one ``concatenate`` each: a
    frame of bench/scale.py's ``many`` has 400 groups)."""
    if not groups:
        return Stack(np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros((0, 4, 4)),
                     np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, np.float32))
    sizes = np.array([len(g.iids) for g in groups], np.int64)
    gi = np.repeat(np.arange(len(groups)), sizes)
    iid = np.concatenate([g.iids for g in groups])
    mats = np.concatenate([g.mats for g in groups])
    lo = np.concatenate([g.geom.lo for g in groups]).reshape(-1, 3)[gi]
    hi = np.concatenate([g.geom.hi for g in groups]).reshape(-1, 3)[gi]
    rs = [g.rand for g in groups]
    if any(r is None or np.ndim(r) != 1 for r in rs):
        rs = [np.full(len(g.iids), np.nan, np.float32) if g.rand is None
              else np.asarray(g.rand, np.float32).reshape(len(g.iids)) for g in groups]
    rand = np.concatenate(rs).astype(np.float32, copy=False)
    if len(rand) != len(iid):
        raise ValueError(f"Random values of {len(rand)} rows, expected {len(iid)}")
    return Stack(gi, iid, mats, lo, hi, rand)


def instancer_chain(parent, orig) -> list[str]:
    """Instancer names, outermost first: the top instancer ``parent``, then nested collection
    instancers on the unique path to ``orig`` (when the path is unique)."""
    paths: list[list[str]] = []

    def walk(inst_ob, path, depth):
        col = inst_ob.instance_collection if inst_ob.instance_type == "COLLECTION" else None
        if col is None or depth > 8:
            return
        for o in col.all_objects:
            if o == orig:
                paths.append(path)
            if o.instance_type == "COLLECTION" and o.instance_collection is not None:
                walk(o, path + [o.name_full], depth + 1)

    walk(parent, [parent.name_full], 0)
    return paths[0] if len(paths) == 1 else [parent.name_full]


def sliced_groups(acc) -> list[Group]:
    """Groups from lists ``[geom, changed, name, pass value, iids, matrices, Random values,
    pieces]`` (rows as Python lists, matrices as ``Matrix``; ``pieces``: rows already arrays,
    ``(position among the listed rows, iids, matrices, Random values)`` each): the listed rows
    of all of them made into three arrays at once, each group holding its slices (one group per
    drawn thing: 400 on bench/scale.py's ``many``), joined with its pieces where it has some."""
    flat: tuple[list, list, list] = ([], [], [])
    for a in acc:
        flat[0].extend(a[4])
        flat[1].extend(a[5])
        flat[2].extend(a[6])
    iids, rand = np.array(flat[0], np.uint32), np.array(flat[2], np.float32)
    mats = matrices(flat[1])
    out, s = [], 0
    for g, ch, name, pv, i, _m, _r, pieces in acc:
        cols = (iids[s:s + len(i)], mats[s:s + len(i)], rand[s:s + len(i)])
        if pieces:
            cols = _joined(cols, pieces)
        out.append(Group(name, g, cols[0], cols[1], pv, ch, cols[2]))
        s += len(i)
    return out


def new_acc(keys: tuple, parts: dict, geom, name: str, pv: int) -> list:
    """A group's accumulator for :func:`sliced_groups`: ``[geom, changed, name, pass value,
    iids, matrices, Random values, pieces]`` of the drawn parts ``keys`` (``parts``: part key
    -> (geometry, changed)); several parts are one union geometry (``geom(key, read)``: the
    tracker's geometry of a drawn thing)."""
    if len(keys) == 1:
        g, changed = parts[keys[0]]
    else:
        geoms = [parts[k][0] for k in keys]
        g, changed = geom(("union",) + keys, lambda c: union_geometry(geoms, c))
        changed = changed or any(parts[k][1] for k in keys)
    return [g, changed, name, pv, [], [], [], []]


def _joined(cols: tuple, pieces: list[tuple]) -> tuple:
    """Listed rows ``cols`` (iids, matrices, Random values) with ``pieces`` put among them."""
    if len(pieces) == 1 and not len(cols[0]):
        return pieces[0][1:]
    out: tuple[list, list, list] = ([], [], [])
    at = 0
    for p in pieces:
        for c, piece, o in zip(cols, p[1:], out):
            o += [c[at:p[0]], piece]
        at = p[0]
    for c, o in zip(cols, out):
        o.append(c[at:])
    return tuple(np.concatenate(o) for o in out)


def surface_distance(groups: list[Group], st: Stack, timings: dict[str, float]):
    """``surface(rows (N,), points_world (N, 3)) -> (N,)``: the world distance of each point to
    the evaluated surface of instance row ``rows[i]`` (vectorised per drawn thing; a BVH only
    for big meshes; 0 for a box stand-in, inf where a BVH finds nothing); its seconds are added
    to ``timings["surface"]``."""
    def surface(rows, pts):
        t0 = time.perf_counter()
        out = np.empty(len(rows))
        g_of = st.gi[rows]
        o = np.argsort(g_of, kind="stable")
        cuts = np.flatnonzero(np.diff(g_of[o])) + 1
        for sel in np.split(o, cuts):
            geom, m = groups[g_of[sel[0]]].geom, st.mats[rows[sel]]
            q = np.einsum("nij,nj->ni", od.inv3(m[:, :3, :3]), pts[sel] - m[:, :3, 3])
            if not len(geom.tris):  # a box stand-in: inside its box is all we know
                out[sel] = 0.0
                continue
            if len(geom.tris) <= SMALL_MESH:
                hits = od.nearest_on_triangles(geom.verts, geom.tris, q)
            else:
                nearest = geom.bvh().find_nearest
                nan = (np.nan, np.nan, np.nan)
                hits = np.array([(lambda h: nan if h is None else h[:])(nearest(p)[0])
                                 for p in q.tolist()], float).reshape(-1, 3)
            d = np.linalg.norm(np.einsum("nij,nj->ni", m[:, :3, :3], hits - q), axis=1)
            out[sel] = np.where(np.isnan(d), np.inf, d)
        timings["surface"] += time.perf_counter() - t0
        return out
    return surface


def feeds(fed: set[str] | None, mats) -> float:
    """How a surface drawn with materials ``mats`` (Material or None each) feeds the Random AOV:
    1.0 where every material writes it (``fed``: their names), 0.0 where none does (no
    material, a linked one, one without nodes: Cycles' default surface writes nothing), NaN
    (not known) where only some do or no AOV is written (``fed`` None)."""
    if fed is None:
        return np.nan
    w = [m is not None and m.name_full in fed for m in mats]
    if w and all(w):
        return 1.0
    return 0.0 if not any(w) else np.nan


def surface_random(fed: set[str] | None, mats, value: float) -> float:
    """The Random AOV value the pixels of a surface drawn with materials ``mats`` carry, for an
    instance whose Object Info > Random is ``value``: ``value`` where every material writes
    the AOV, else 0.0 or NaN (:func:`feeds`)."""
    f = feeds(fed, mats)
    return value if f == 1.0 else f


def plain_random(orig) -> float:
    """Object Info > Random of a plain (non-instance) object ``orig`` in Cycles (NaN for a
    linked object, whose name Cycles hashes was not measured)."""
    if orig.library is not None:
        return np.nan
    return _plain_value(orig.name)


@functools.lru_cache(maxsize=1 << 16)
def _plain_value(name: str) -> float:
    """Object Info > Random of a plain object named ``name`` (a function of the name alone,
    asked for every drawn object on every frame: 25 us each when hashed anew)."""
    return float(rids.random_value(rids.plain_random_id(name)))


def bulk_values(orig, pid: np.ndarray) -> np.ndarray:
    """``(n,)`` float32 Object Info > Random of the geometry-nodes instances made by the
    top-level instancer ``orig``, persistent ids ``[0, pid]`` (NaN where not known: a linked
    instancer, or a Blender whose hashing was not measured)."""
    if orig.library is not None or compat.RANDOM_ID_PID_ENTRIES is None:
        return np.full(len(pid), np.nan, np.float32)
    return rids.random_value(rids.instance_random_ids(
        orig.name, np.stack([np.zeros(len(pid), np.int64), np.asarray(pid, np.int64)], 1),
        compat.RANDOM_ID_PID_ENTRIES))


def bulk_random(fed: set[str] | None, mesh, values: np.ndarray) -> np.ndarray:
    """``(n,)`` Random AOV values of geometry-nodes instances of ``mesh`` whose Object Info >
    Random are ``values`` (:func:`bulk_values`; :func:`surface_random`)."""
    s = surface_random(fed, used_materials(list(mesh.materials), mesh), 1.0)
    if s != s:
        return np.full(len(values), np.nan, np.float32)
    return (values * np.float32(s)).astype(np.float32)


def thing_random(feed: dict[tuple, float], keys: tuple, rid: dict, orig) -> float:
    """The Random AOV value of an iterated drawn thing whose drawn parts are ``keys``: that of
    its one part (``rid[key]``: the depsgraph entry's ``random_id``, None for the object's
    own geometry; ``feed[key]``: :func:`feeds` of that part's materials); NaN for several
    parts."""
    if len(keys) != 1:
        return np.nan
    f = feed[keys[0]]
    if f != 1.0:
        return f
    r = rid[keys[0]]
    return plain_random(orig) if r is None else _instance_value(r)


@functools.lru_cache(maxsize=1 << 16)
def _instance_value(random_id: int) -> float:
    """Object Info > Random of an instance's ``random_id`` (asked for every instance entry on
    every frame)."""
    return float(rids.random_value(random_id))


def object_random(fed: set[str] | None, ob, orig) -> np.ndarray:
    """``(1,)`` the Random AOV value of plain object ``orig`` (evaluated: ``ob``)."""
    mats = used_materials([s.material for s in ob.material_slots], ob.data)
    return np.array([surface_random(fed, mats, plain_random(orig))], np.float32)


def used_materials(mats: list, data) -> list:
    """The materials of ``mats`` (an object's slots or a mesh's materials) that faces of mesh
    ``data`` use (its ``material_index``, clamped as Blender does); all of them for other data."""
    if len(mats) <= 1 or data is None or not hasattr(data, "polygons"):
        return mats
    a = data.attributes.get("material_index")
    if a is None or a.domain != "FACE":
        return mats[:1]
    idx = np.empty(len(a.data), np.int32)
    a.data.foreach_get("value", idx)
    return [mats[i] for i in np.unique(np.clip(idx, 0, len(mats) - 1)).tolist()]


def frame_record(records: str, groups: list[Group], st: Stack, ins: np.ndarray, w2c: np.ndarray,
                 k, near: float) -> dict[str, np.ndarray]:
    """The arrays of a frame's object record (sorted by ``instance_id``; the contract of
    ``dataset/documents/objects.py``'s ``FrameRecord``) from its instances ``st`` and id image
    ``ins`` (H, W): the instances ``records`` keeps ("visible", "frustum" or "all"), with
    amodal and visible boxes and pixel counts; ``w2c`` (4, 4) world -> OpenCV camera, ``k`` the
    intrinsics, ``near`` the clip start (m)."""
    vid, vbox, vcount = od.visible_box_arrays(ins, st.iid)
    iid = st.iid
    order = np.argsort(iid, kind="stable")
    order = order[np.r_[True, iid[order][1:] != iid[order][:-1]]] if len(iid) else order
    sid = iid[order]
    pos = np.minimum(np.searchsorted(vid, sid), max(len(vid) - 1, 0))
    seen = (vid[pos] == sid) if len(vid) else np.zeros(len(sid), bool)
    if records == "visible":
        order, pos, seen = order[seen], pos[seen], seen[seen]
    bbox_obj = od.amodal_boxes_rows(w2c @ st.mats[order],
                                    [(g.geom.verts, g.geom.edges) for g in groups],
                                    st.gi[order], k.K, k.w, k.h, near)
    if records == "frustum":
        keep = (bbox_obj[:, 2] > 0) | seen
        order, pos, seen, bbox_obj = order[keep], pos[keep], seen[keep], bbox_obj[keep]
    bbox_visib = np.zeros((len(order), 4), np.int32)
    px = np.zeros(len(order), np.int64)
    bbox_visib[seen] = vbox[pos[seen]]
    px[seen] = vcount[pos[seen]]
    return dict(instance_id=iid[order], object_to_world=st.mats[order], box_lo=st.lo[order],
                box_hi=st.hi[order], bbox_obj=bbox_obj, bbox_visib=bbox_visib,
                px_count_visib=px)
