# SPDX-License-Identifier: GPL-3.0-or-later
"""One frame's drawn instances as the object tracker holds them: grouped by drawn thing
(:class:`Group`), stacked into rows (:class:`Stack`), and the surface distance of world points to
an instance row's evaluated geometry (:func:`surface_distance`, for the pixel resolver)."""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from ..dataset import objects as od
from ..dataset import pixel_ids as pix
from .geometry import Geometry

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


class Stack(NamedTuple):
    """One frame's groups as instance rows, ``n`` of them."""

    gi: np.ndarray    # (n,) the group of each row
    iid: np.ndarray   # (n,) uint32 instance ids
    mats: np.ndarray  # (n, 4, 4) object -> world
    lo: np.ndarray    # (n, 3) object-space box of the group's geometry
    hi: np.ndarray    # (n, 3)


def stack(groups: list[Group]) -> Stack:
    sizes = np.array([len(g.iids) for g in groups], np.int64)
    gi = np.repeat(np.arange(len(groups)), sizes)
    iid = np.concatenate([g.iids for g in groups]) if groups else np.zeros(0, np.uint32)
    mats = np.concatenate([g.mats for g in groups]) if groups else np.zeros((0, 4, 4))
    lo = np.array([g.geom.lo for g in groups]).reshape(-1, 3)[gi]
    hi = np.array([g.geom.hi for g in groups]).reshape(-1, 3)[gi]
    return Stack(gi, iid, mats, lo, hi)


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
            q = np.einsum("nij,nj->ni", pix.inv3(m[:, :3, :3]), pts[sel] - m[:, :3, 3])
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
