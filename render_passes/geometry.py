# SPDX-License-Identifier: GPL-3.0-or-later
"""Evaluated geometry of drawn things, as the object tracker and the topology watch read it:
vertices, edges and triangles of an evaluated object (:func:`geometry_of`; its box where it has no
mesh form), geometry-nodes instances read as arrays (:func:`bulk_instances`), and whether an
object deforms by construction (:func:`structural_deformer`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..dataset import objects as od
from . import compat

# Modifiers whose result changes over time without the object's matrix changing.
DEFORMERS = {"ARMATURE", "CLOTH", "SOFT_BODY", "FLUID", "DYNAMIC_PAINT", "OCEAN", "WAVE",
             "EXPLODE", "MESH_CACHE", "MESH_SEQUENCE_CACHE", "SURFACE_DEFORM", "MESH_DEFORM",
             "LATTICE", "HOOK", "CURVE"}


def structural_deformer(ob) -> bool:
    """Armature/physics/cache modifiers, animated shape keys, or animated modifier settings."""
    if any(m.type in DEFORMERS for m in getattr(ob, "modifiers", ())):
        return True
    data = ob.data
    keys = getattr(data, "shape_keys", None)
    if keys is not None and len(keys.key_blocks) > 1 and keys.animation_data is not None and (
            keys.animation_data.action is not None or len(keys.animation_data.drivers)):
        return True  # animated or driven shape keys (static ones change nothing over time)
    ad = ob.animation_data
    if ad is not None:
        paths = []
        if ad.action is not None:
            paths += [fc.data_path for fc in compat.iter_fcurves(ad.action)]
        paths += [d.data_path for d in ad.drivers]
        if any(p.startswith("modifiers[") for p in paths):
            return True
    return False


class Geometry:
    """Evaluated object-space geometry of one drawn thing (shared by its instances): vertices
    ``(V, 3)`` float64, edges ``(E, 2)``, triangles ``(T, 3)``, the box ``lo``/``hi`` ``(3,)``."""

    __slots__ = ("verts", "edges", "tris", "lo", "hi", "radius", "_bvh", "sig")

    def __init__(self, verts, edges, tris, sig=None):
        self.verts, self.edges, self.tris = verts, edges, tris
        if len(verts):
            self.lo, self.hi = verts.min(0), verts.max(0)
            # about the box centre, grown by float32 rounding of the vertices
            r = np.linalg.norm(verts - (self.lo + self.hi) / 2, axis=1).max()
            self.radius = float(r) * (1 + 1e-6) + 1e-9
        else:
            self.lo = self.hi = np.zeros(3)
            self.radius = 0.0
        self._bvh = None
        self.sig = sig  # the float32 vertices it was read from (None: a box stand-in)

    def bvh(self):
        if self._bvh is None:
            from mathutils.bvhtree import BVHTree

            self._bvh = BVHTree.FromPolygons([tuple(v) for v in self.verts],
                                             [tuple(t) for t in self.tris])
        return self._bvh


BOX_EDGES = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7],
                      [0, 4], [1, 5], [2, 6], [3, 7]])


def box_geometry(ob) -> Geometry | None:
    """The evaluated bounding box as geometry, for things that do not convert to a mesh
    (hair curves, point clouds, volumes): boxes are then those of ``bound_box``."""
    try:
        c = np.array([[float(x) for x in v] for v in ob.bound_box])
    except (AttributeError, TypeError):
        return None
    if not np.isfinite(c).all() or not np.ptp(c, 0).any():
        return None
    return Geometry(od.box_corners(c.min(0), c.max(0)), BOX_EDGES, np.zeros((0, 3), np.int32))


DEFAULT_RADIUS = 0.01  # Blender's radius of a point or curve point without a "radius" attribute


def points_box(ob) -> Geometry | None:
    """Box stand-in of an evaluated point cloud or hair curves object: every point's sphere
    (position +- radius), joined with ``bound_box`` (which leaves the radius out for hair
    curves on 4.2, where ``to_mesh`` gives the bare curve points)."""
    box = box_geometry(ob)
    attrs = getattr(ob.data, "attributes", None)
    pos = attrs.get("position") if attrs is not None else None
    n = len(pos.data) if pos is not None and pos.domain == "POINT" else 0
    if not n:
        return box
    p = np.empty(n * 3, np.float32)
    pos.data.foreach_get("vector", p)
    rad = attrs.get("radius")
    r = np.full(n, DEFAULT_RADIUS, np.float32)
    if rad is not None and rad.domain == "POINT" and rad.data_type == "FLOAT":
        rad.data.foreach_get("value", r)
    p, r = p.reshape(-1, 3).astype(np.float64), np.abs(r.astype(np.float64))[:, None]
    lo, hi = (p - r).min(0), (p + r).max(0)
    if box is not None:
        lo, hi = np.minimum(lo, box.lo), np.maximum(hi, box.hi)
    if not np.isfinite(lo).all() or not np.isfinite(hi).all():
        return box
    return Geometry(od.box_corners(lo, hi), BOX_EDGES, np.zeros((0, 3), np.int32))


def mesh_geometry(me, cached: Geometry | None) -> Geometry | None:
    """Geometry of a mesh; ``cached`` is returned when its vertices are unchanged (only the
    vertex positions are read then)."""
    n = len(me.vertices)
    if not n:
        return None
    v = np.empty(n * 3, np.float32)
    me.vertices.foreach_get("co", v)
    if cached is not None and cached.sig is not None and np.array_equal(cached.sig, v):
        return cached
    e = np.empty(len(me.edges) * 2, np.int32)
    me.edges.foreach_get("vertices", e)
    me.calc_loop_triangles()
    t = np.empty(len(me.loop_triangles) * 3, np.int32)
    me.loop_triangles.foreach_get("vertices", t)
    return Geometry(v.reshape(-1, 3).astype(np.float64), e.reshape(-1, 2), t.reshape(-1, 3), v)


def geometry_of(ob, cached: Geometry | None = None) -> Geometry | None:
    """Vertices/edges/triangles of an evaluated object (``None`` when it has no surface);
    ``cached`` (this thing's geometry of an earlier frame) is reused when unchanged."""
    me, tmp = None, False
    if ob.type in ("CURVES", "POINTCLOUD"):
        return points_box(ob)
    if ob.type == "MESH":
        me = ob.data
    else:
        try:
            me, tmp = ob.to_mesh(), True
        except Exception:  # noqa: BLE001 - types without a mesh form: use the box
            return box_geometry(ob)
    try:
        if me is None:
            return box_geometry(ob)
        if not len(me.vertices):
            return None if ob.type == "MESH" else box_geometry(ob)
        return mesh_geometry(me, cached)
    finally:
        if tmp:
            ob.to_mesh_clear()


# Object types whose own data Cycles draws; the others (legacy curves, text, NURBS surfaces,
# metaballs) are drawn only through the mesh component of their evaluated geometry, which the
# depsgraph lists as a separate instance entry (docs/blender_notes.md, "Drawn things").
NATIVE = {"MESH", "CURVES", "POINTCLOUD", "VOLUME"}
MESHED = {"CURVE", "FONT", "SURFACE", "META"}
# GeometrySet attribute of each component the depsgraph lists as its own entry, and the object
# type whose own data that component is.
_COMPONENTS = {"mesh": "MESH", "curves": "CURVES", "pointcloud": "POINTCLOUD", "volume": "VOLUME",
               "grease_pencil": "GREASEPENCIL"}


def other_components(ob_eval) -> bool:
    """Whether an evaluated object (with a geometry-nodes modifier) has geometry that
    :func:`geometry_of` does not read: a point cloud, volume, hair or Grease Pencil component
    of another type than the object's, which the depsgraph lists as a separate instance (the
    mesh of a curve, text, surface or metaball object is read by ``to_mesh``). Needs the
    GeometrySet API (4.3+; 4.2 always walks the depsgraph's instances)."""
    if not compat.GEOMETRY_SET or ob_eval.type not in NATIVE | MESHED:
        return False
    gs = ob_eval.evaluated_geometry()
    for attr, own in _COMPONENTS.items():
        if own == ob_eval.type or (attr == "mesh" and ob_eval.type in MESHED):
            continue
        data = getattr(gs, attr, None)
        if data is not None and (attr != "mesh" or len(data.vertices)):
            return True
    return False


def union_geometry(parts: list[Geometry], cached: Geometry | None = None) -> Geometry:
    """One drawn thing made of several evaluated components (a mesh, points, a volume ... in
    the same object space): their meshes joined when every part has triangles, else the box of
    all of them as a box stand-in (a point cloud or volume part has no triangles). ``cached``
    is returned when it was made of the same part objects."""
    if len(parts) == 1:
        return parts[0]
    if cached is not None and isinstance(cached.sig, tuple) and len(cached.sig) == len(parts) \
            and all(a is b for a, b in zip(cached.sig, parts)):
        return cached
    if all(len(p.tris) for p in parts):
        offs = np.cumsum([0] + [len(p.verts) for p in parts[:-1]])
        g = Geometry(np.concatenate([p.verts for p in parts]),
                     np.concatenate([p.edges + o for p, o in zip(parts, offs)]),
                     np.concatenate([p.tris + o for p, o in zip(parts, offs)]))
    else:
        lo = np.min([p.lo for p in parts], 0)
        hi = np.max([p.hi for p in parts], 0)
        g = Geometry(od.box_corners(lo, hi), BOX_EDGES, np.zeros((0, 3), np.int32))
    g.sig = tuple(parts)
    return g


def pure_mesh(ref) -> bool:
    """A geometry-nodes instance reference that is one mesh and nothing else (the depsgraph
    draws it as one instance of the instancer)."""
    if type(ref).__name__ != "GeometrySet" or ref.mesh is None:
        return False
    return all(getattr(ref, a, None) is None for a in ("curves", "pointcloud", "volume",
                                                       "grease_pencil")) and \
        ref.instances_pointcloud() is None


class Bulk(NamedTuple):
    """Geometry-nodes instances of one top-level object, read as arrays."""

    mats: np.ndarray    # (n, 4, 4) object -> world
    ref: np.ndarray     # (n,) reference index
    pid: np.ndarray     # (n,) the second persistent_id entry (the instance's id or index)
    refs: list          # per reference: its GeometrySet (owns the Mesh: keep it alive)


def bulk_instances(ob_eval, transforms: bool = True, dg=None) -> Bulk | None | tuple:
    """``()``: no instances; a :class:`Bulk` (``mats`` None without ``transforms``); None:
    instances that only the depsgraph's ``object_instances`` describes (collections, objects,
    nested instances, 4.2; repeated ``id`` values without ``dg``, the depsgraph ``ob_eval``
    belongs to: :func:`unique_ids`)."""
    got = compat.geometry_instances(ob_eval, transforms)
    if got is None or got == ():
        return got
    t, ref, ids, refs = got
    if not refs or not all(pure_mesh(r) for r in refs) or ref.min() < 0 or ref.max() >= len(refs):
        return None
    pid = np.arange(len(ref), dtype=np.int64) if ids is None else ids.astype(np.int64)
    if ids is not None and len(np.unique(pid)) != len(pid):
        pid = unique_ids(ob_eval, ids, dg) if dg is not None else None
        if pid is None:
            return None
    if t is None:
        return Bulk(None, ref, pid, refs)
    mw = np.array(ob_eval.matrix_world, float)
    return Bulk(mw @ t, ref, pid, refs)


# instancer name -> (its instances' ``id`` attribute (n,) int32, their persistent ids (n,) int64,
# None where the walk disagreed with the array); the latest _UNIQUE_KEPT instancers (a worker
# renders scene after scene)
_UNIQUE: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
_UNIQUE_KEPT = 16


def unique_ids(ob_eval, ids: np.ndarray, dg) -> np.ndarray | None:
    """The persistent ids (second entry, (n,) int64) Blender gives the geometry-nodes instances
    of ``ob_eval`` (in ``dg``) whose ``id`` attribute ``ids`` (n,) repeats. Blender keeps the
    first instance of each value and draws new ids for the later ones from a generator seeded
    by the value, a function of the whole ``ids`` array that is not reproduced here: it is read
    from one walk of ``dg.object_instances`` (which lists an instancer's instances in array
    order) and reused while the instancer's ``ids`` are the same. None when the walk disagrees
    with the array (then only the walk describes the instances)."""
    name = ob_eval.original.name_full
    known = _UNIQUE.get(name)
    if known is not None and np.array_equal(known[0], ids):
        return known[1]
    walked = _walked_ids(ob_eval, dg, len(ids))
    if walked is not None:
        _, first = np.unique(ids, return_index=True)
        if not np.array_equal(walked[first], ids[first]) or len(np.unique(walked)) != len(walked):
            walked = None
    _UNIQUE.pop(name, None)
    _UNIQUE[name] = (ids.copy(), walked)
    while len(_UNIQUE) > _UNIQUE_KEPT:
        _UNIQUE.pop(next(iter(_UNIQUE)))
    return walked


def _walked_ids(ob_eval, dg, n: int) -> np.ndarray | None:
    """The second persistent-id entry of the ``n`` instances of ``ob_eval`` as
    ``dg.object_instances`` lists them (None unless exactly ``n``, each ``(0, id)``). The
    instancer's other entries (components of its geometry) have a one-entry persistent id."""
    out = np.empty(n, np.int64)
    k = 0
    for inst in dg.object_instances:
        if not inst.is_instance or inst.parent != ob_eval:
            continue
        pid = inst.persistent_id
        if pid[1] == od.PID_UNUSED:
            continue  # a component of the instancer's own geometry (its points, volume ...)
        if pid[0] != 0 or pid[2] != od.PID_UNUSED or k == n:
            return None
        out[k] = pid[1]
        k += 1
    return out if k == n else None


def drawn_object(inst):
    """The evaluated object whose data an ``object_instances`` entry draws. An instance of a
    real mesh object without geometry nodes (collection, particle, vertex/face and "As
    Instance" instances; one entry per instance) draws that object's mesh, read from
    ``instance_object``: the entry's own ``object`` is a temporary whose Python object Blender
    never frees (120 bytes per entry per walk on 5.0 and 4.5, about half on 4.2: 23 MiB per walk
    of 200,000 instances). Geometry-nodes geometry, and the components of an instanced object's
    geometry (a curve's mesh, a mesh's points: other entries with the same
    ``instance_object``), are only the temporary's."""
    if inst.is_instance:
        src = inst.instance_object
        if plain_instanced_mesh(inst.parent, src):
            return src
    return inst.object


def plain_instanced_mesh(parent, src) -> bool:
    """Whether the instance entries of ``parent`` whose ``instance_object`` is ``src`` (both
    evaluated, or None) draw ``src``'s own mesh, one entry per instance (:func:`drawn_object`)."""
    return (src is not None and src.type == "MESH" and src != parent
            and not any(m.type == "NODES" for m in src.modifiers))


def has_nodes(orig) -> bool:
    """Whether an object has a geometry-nodes modifier (the only way a mesh, curve or point
    cloud object without particles or instancing makes instances)."""
    return any(m.type == "NODES" for m in getattr(orig, "modifiers", ()))
