# SPDX-License-Identifier: GPL-3.0-or-later
"""Pixel to instance: which drawn instance each pixel of the Object Index pass shows, from the
pass's value and, where several instances share it, the pixel's first-sample surface point
(pixel-centre ray at the planar depth) against the candidates' boxes and surfaces, bucketed by a
world voxel grid so the cost follows the visible surface, not pixels x instances. Pure Python +
numpy; the id and geometry conventions are :mod:`.objects`."""

from __future__ import annotations

import hashlib
from typing import NamedTuple, TypedDict

import numpy as np

from .layout import BACKGROUND_DEPTH
from .objects import CV_FROM_GL
from .pixel_frames import Frames, frames
from .pixel_voxels import voxel_buckets


class Candidate(TypedDict):
    """A drawn instance as the pixel resolver sees it."""

    instance_id: int
    object_id: int
    pass_value: int      # what Cycles writes in the Object Index pass for it
    matrix: np.ndarray   # (4, 4) object -> world
    lo: np.ndarray       # (3,) object-space box of its evaluated geometry
    hi: np.ndarray


class Candidates(NamedTuple):
    """Drawn instances as arrays (see :class:`Candidate`), ``n`` rows."""

    instance_id: np.ndarray   # (n,) uint32
    object_id: np.ndarray     # (n,) int32
    pass_value: np.ndarray    # (n,) int64
    matrix: np.ndarray        # (n, 4, 4) float64
    lo: np.ndarray            # (n, 3) float64
    hi: np.ndarray            # (n, 3) float64
    radius: np.ndarray | None = None  # (n,) object-space radius of the geometry about the box
    #                                   centre (None: the box's half diagonal; < 0: no bound)
    rand: np.ndarray | None = None    # (n,) float32 Random AOV value its pixels carry
    #                                   (0: none written; NaN: not known; None: all NaN)

    @classmethod
    def from_list(cls, cands: list[Candidate]) -> Candidates:
        n = len(cands)
        return cls(np.array([c["instance_id"] for c in cands], np.uint32).reshape(n),
                   np.array([c["object_id"] for c in cands], np.int32).reshape(n),
                   np.array([c["pass_value"] for c in cands], np.int64).reshape(n),
                   np.array([np.asarray(c["matrix"], float) for c in cands]).reshape(n, 4, 4),
                   np.array([np.asarray(c["lo"], float) for c in cands]).reshape(n, 3),
                   np.array([np.asarray(c["hi"], float) for c in cands]).reshape(n, 3))


def resolve_pixels(index: np.ndarray, depth: np.ndarray, K, cam_to_world_gl,
                   candidates: list[Candidate], surface_distance=None
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """:func:`resolve_pixel_arrays` for a list of :class:`Candidate`;
    ``surface_distance(candidate, points_world (N, 3)) -> (N,)``."""
    c = Candidates.from_list(candidates)
    sd = None
    if surface_distance is not None:
        def sd(rows, pts):
            out = np.empty(len(rows))
            for j in np.unique(rows):
                s = rows == j
                out[s] = surface_distance(candidates[int(j)], pts[s])
            return out
    return resolve_pixel_arrays(index, depth, K, cam_to_world_gl, c, sd)


PAIR_CHUNK = 1_000_000  # (pixel, candidate) pairs evaluated at once


def _box_distance(c: Candidates, fr: Frames, j: np.ndarray, p: np.ndarray) -> np.ndarray:
    """World distance from points ``p`` ``(n, 3)`` to the boxes of candidates ``j`` ``(n,)``
    (their world -> object maps ``fr``; where a rotation + uniform scale, the object-space
    distance times the scale)."""
    conf, scale = fr.need(j).conf, fr.scale
    a = fr.w2o[j]
    q = np.einsum("nij,nj->ni", a[:, :, :3], p) + a[:, :, 3]
    off = np.maximum(np.maximum(c.lo[j] - q, q - c.hi[j]), 0.0)
    d = np.linalg.norm(off, axis=1) * scale[j]
    nc = ~conf[j]
    if nc.any():
        d[nc] = np.linalg.norm(np.einsum("nij,nj->ni", c.matrix[j[nc], :3, :3], off[nc]), axis=1)
    return d


def _pairs(pix: np.ndarray, start: np.ndarray, count: np.ndarray, table: np.ndarray):
    """``(pixel, candidate)`` pairs: pixel ``pix[i]`` with ``table[start[i]:start[i]+count[i]]``."""
    pi = np.repeat(pix, count)
    k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return pi, table[np.repeat(start, count) + k]


def resolve_pixel_arrays(index: np.ndarray, depth: np.ndarray, K, cam_to_world_gl,
                         c: Candidates | Prepared, surface_distance=None, aov=None
                         ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Object and instance id images from the Object Index pass and the planar Depth pass of the same
    (first) sample, both ``(H, W)``, and (when given) the Random AOV ``aov`` ``(H, W)`` of a 1-sample
    render (Object Info > Random of the instance the pixel centre hit).

    Pixels whose index value belongs to one candidate take it. With ``aov`` and ``c.rand``, a pixel of a
    shared index value is the instance Cycles hit: the candidates of that value whose ``rand`` equals the
    pixel's AOV value, with those of unknown ``rand``; one -> it (if the pixel's surface point is within
    tolerance of its box); several (float32 values that coincide) -> the geometric rule below among only
    those (among all of the value over :data:`AOV_SHARED_MAX`: ``stats["aov_unknown"]``); none (or the box
    check fails) -> the geometric rule among every candidate of the value: ``stats["aov_mismatch"]``.
    Otherwise the geometric rule: the pixel-centre ray's surface point at that depth is compared with the
    candidates' boxes (world distance, tolerance: 2 pixel footprints); among several boxes within
    tolerance, ``surface_distance(rows (N,), points_world (N, 3)) -> (N,)`` (when given: the world
    distance of each point to the surface of candidate ``rows[i]``, rows of ``c``) decides; ties go to the
    lowest instance id. The work scales with the candidates near each pixel: boxes (grown by the
    tolerance) are hashed to a world voxel grid, and only (pixel, candidate) pairs of one voxel and one
    index value are measured (boxes covering many voxels, with every pixel of their value); a pixel near
    none of them is measured against every candidate of its value, in chunks. ``c``: or
    :func:`prepare`'s. Returns ``(object_ids int32, instance_ids uint32, stats)``."""
    h, w = index.shape
    obj = np.zeros((h, w), np.int32)
    ins = np.zeros((h, w), np.uint32)
    stats = dict.fromkeys(("unique", "by_aov", "aov_shared", "aov_mismatch", "aov_unknown", "by_box",
                           "by_surface", "nearest_box", "unidentified"), 0)
    pre = c if isinstance(c, Prepared) else prepare(c)
    c, order, v = pre.c, pre.order, pre.v
    if len(v.keys) and v.sizes.max() == 1 and v.keys[0] >= 0 and v.keys[-1] < 1 << 16:
        return _by_table(index, depth, c, v, stats)
    hp = np.flatnonzero(depth < BACKGROUND_DEPTH)
    pos, found = _value_rank(v.keys, index.ravel()[hp])
    stats["unidentified"] = int((~found).sum())
    if not len(c.instance_id):
        return obj, ins, stats
    one = found & (v.sizes[pos] == 1)
    obj.ravel()[hp[one]] = c.object_id[v.first[pos[one]]]
    ins.ravel()[hp[one]] = c.instance_id[v.first[pos[one]]]
    stats["unique"] = int(one.sum())
    many = np.flatnonzero(found & ~one)
    if not len(many):
        return obj, ins, stats
    px, grp = hp[many], pos[many]     # the pixels to resolve and the value rank of each
    K = np.asarray(K, float)
    pose = np.asarray(cam_to_world_gl, float) @ CV_FROM_GL
    foot = 2.0 * np.sqrt(2.0) * max(1.0 / K[0, 0], 1.0 / K[1, 1])
    p, d = _surface_points(depth, K, pose, px)
    geo = _Geo(p, foot * d + 1e-6, np.linalg.inv(pose), foot, surface_distance)
    fr = pre.frames()
    pick = np.full(len(px), -1, np.int64)
    rest = np.arange(len(px))
    if aov is not None and c.rand is not None:
        val = np.asarray(aov, np.float32).ravel()[px]
        rest = _by_aov(c, fr, v, order, pre.aov_table(), val, grp, geo, pick, stats)
    if len(rest):
        pick[rest] = _geometric(c, fr, v, order, grp[rest], geo.at(rest), stats)
    obj.ravel()[px] = c.object_id[pick]
    ins.ravel()[px] = c.instance_id[pick]
    return obj, ins, stats


def _by_table(index: np.ndarray, depth: np.ndarray, c: Candidates, v: _Values,
              stats: dict[str, int]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """:func:`resolve_pixel_arrays` when every pass value (in [0, 2^16)) is one candidate's: a
    table from the value to the ids, per pixel (the same ids and stats, no per-pixel gathers)."""
    n = int(v.keys[-1]) + 2  # the last entry: no candidate (a value not a key, or no surface)
    lut_o, lut_i = np.zeros(n, np.int32), np.zeros(n, np.uint32)
    lut_o[v.keys], lut_i[v.keys] = c.object_id[v.first], c.instance_id[v.first]
    r = np.fmax(np.fmin(np.rint(index), n - 1), -1).astype(np.intp)  # NaN -> n - 1
    hit = depth < BACKGROUND_DEPTH
    r[~hit | (r < 0)] = n - 1
    obj, ins = lut_o[r], lut_i[r]
    stats["unique"] = int(np.count_nonzero(ins))
    stats["unidentified"] = int(np.count_nonzero(hit)) - stats["unique"]
    return obj, ins, stats


class _Geo(NamedTuple):
    """The pixels resolved by geometry: world surface points ``(P, 3)``, their tolerances
    ``(P,)`` (2 pixel footprints at their depth), world -> camera (OpenCV), the footprint per
    metre of depth, and the surface distance function."""

    p: np.ndarray
    tol: np.ndarray
    w2cv: np.ndarray
    foot: float
    sd: object

    def at(self, sel: np.ndarray) -> _Geo:
        return self._replace(p=self.p[sel], tol=self.tol[sel])


def _geometric(c: Candidates, fr: Frames, v: _Values, order: np.ndarray, grp: np.ndarray,
               geo: _Geo, stats: dict[str, int]) -> np.ndarray:
    """The geometric rule (:func:`resolve_pixel_arrays`) for points ``geo.p`` of value ranks
    ``grp``: the picked row of ``c`` per point (``order``: row of ``c`` -> the row the surface
    distance function knows)."""
    near = _bucket_pairs(c, fr, geo.p, grp, geo.w2cv, geo.foot)
    best, nwithin, amb_pairs = _box_rounds(c, fr, geo.p, geo.tol, near)
    pick = best.copy()
    stats["by_box"] += int((nwithin == 1).sum())
    far = np.flatnonzero(nwithin == 0)
    stats["nearest_box"] += int(len(far))
    _nearest_box(c, fr, v, geo.p, grp, far, pick)
    n_amb = int((nwithin > 1).sum())
    stats["by_surface"] += n_amb
    if n_amb and geo.sd is not None:
        at, choice = _nearest_surface(c, fr, geo.p, amb_pairs, order, geo.sd)
        pick[at] = choice
    return pick


AOV_SHARED_MAX = 64  # candidates one AOV value may name before the pixel takes the full rule


def _by_aov(c: Candidates, fr: Frames, v: _Values, order: np.ndarray, tab: tuple,
            val: np.ndarray, grp: np.ndarray, geo: _Geo, pick: np.ndarray,
            stats: dict[str, int]) -> np.ndarray:
    """Points of value ranks ``grp`` and AOV values ``val`` resolved by the AOV (written into
    ``pick``; ``tab``: :meth:`Prepared.aov_table`; see :func:`resolve_pixel_arrays`); returns
    the points left to the geometric rule among every candidate of their value."""
    rank = fr.rank
    ktab, kkey, utab = tab
    pkey = (grp.astype(np.int64) << 32) | val.view(np.uint32).astype(np.int64)
    klo = np.searchsorted(kkey, pkey, "left")
    km = np.searchsorted(kkey, pkey, "right") - klo
    ulo = np.searchsorted(rank[utab], grp, "left")
    um = np.searchsorted(rank[utab], grp, "right") - ulo
    n = km + um
    one = np.flatnonzero(n == 1)
    if len(one):
        j = np.where(km[one] == 1, ktab[np.minimum(klo[one], max(len(ktab) - 1, 0))]
                     if len(ktab) else -1,
                     utab[np.minimum(ulo[one], max(len(utab) - 1, 0))] if len(utab) else -1)
        ok = _box_distance(c, fr, j, geo.p[one]) <= geo.tol[one]
        pick[one[ok]] = j[ok]
        stats["by_aov"] += int(ok.sum())
        n[one[~ok]] = 0
    many = n > AOV_SHARED_MAX  # mostly candidates of unknown value: the rule among all of them
    stats["aov_unknown"] += int(many.sum())
    amb = np.flatnonzero((n >= 2) & ~many)
    if len(amb):
        ulab, first, lab_px = np.unique(pkey[amb], return_index=True, return_inverse=True)
        f = amb[first]
        lk, rk = _pairs(np.arange(len(ulab)), klo[f], km[f], ktab)
        lu, ru = _pairs(np.arange(len(ulab)), ulo[f], um[f], utab)
        lab, rows = np.concatenate([lk, lu]), np.concatenate([rk, ru])
        o = np.lexsort((c.instance_id[rows], lab))
        lab, rows = lab[o], rows[o]
        sub = Candidates(*(a[rows] for a in c))._replace(pass_value=lab.astype(np.int64))
        vs = _Values(*np.unique(sub.pass_value, return_index=True, return_counts=True))
        fr_sub = frames(sub.matrix, sub.pass_value, vs.keys, vs.sizes)
        got = _geometric(sub, fr_sub, vs, order[rows], lab_px.ravel(), geo.at(amb), stats)
        pick[amb] = rows[got]
        stats["aov_shared"] += int(len(amb))
    stats["aov_mismatch"] += int((n == 0).sum())
    return np.flatnonzero((n == 0) | many)


class _Values(NamedTuple):
    """The distinct pass values of sorted candidates: ``keys`` ascending, the ``first`` row of
    each and how many rows hold it (``sizes``)."""

    keys: np.ndarray
    first: np.ndarray
    sizes: np.ndarray


class Prepared:
    """Candidates as :func:`resolve_pixel_arrays` works on them: ``c`` sorted by (pass value,
    instance id), ``order`` (sorted row -> given row), their pass values ``v``; their world ->
    object maps (:meth:`frames`) and AOV table (:meth:`aov_table`) made when first asked for."""

    def __init__(self, given: Candidates, given_digest: bytes | None = None):
        self.digest = digest(given) if given_digest is None else given_digest
        self.c, self.order = _sorted(given)
        self.v = _Values(*np.unique(self.c.pass_value, return_index=True, return_counts=True))
        self._frames: Frames | None = None
        self._aov: tuple | None = None

    def frames(self) -> Frames:
        if self._frames is None:
            self._frames = frames(self.c.matrix, self.c.pass_value, self.v.keys, self.v.sizes)
        return self._frames

    def aov_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, keys, unknown)``: the rows of known Random value sorted by (value rank,
        value bits), those keys, and the rows of unknown value (by rank: ``c`` is sorted by
        pass value)."""
        if self._aov is None:
            c, rank = self.c, self.frames().rank
            known = ~np.isnan(c.rand)
            kr = np.flatnonzero(known)
            key = (rank[kr].astype(np.int64) << 32) | c.rand[kr].astype(np.float32).view(np.uint32)
            o = np.argsort(key, kind="stable")
            self._aov = (kr[o], key[o], np.flatnonzero(~known))
        return self._aov

    def same(self, given: Candidates) -> bool:
        """Whether ``given`` is byte for byte the candidates this was made from (:func:`digest`)."""
        return digest(given) == self.digest


def digest(c: Candidates) -> bytes:
    """SHA-256 of each array's dtype, shape and bytes (a NaN or -0.0 with other bits: changed)."""
    h = hashlib.sha256(bytes(a is None for a in c))  # kept instead of a copy: 40 MB at 200k
    for a in (a for a in c if a is not None):
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.digest()


def prepare(c: Candidates, previous: Prepared | None = None) -> Prepared:
    """``c`` prepared for :func:`resolve_pixel_arrays`; ``previous`` (the last frame's) when
    ``c`` is byte for byte its candidates (:meth:`Prepared.same`; 6 ms at 50,000 instances,
    where sorting and maps take 0.07 s and gathering and comparing the arrays took 0.03 s)."""
    d = digest(c)  # once: it is also the new one's when the candidates changed
    if previous is not None and previous.digest == d:
        return previous
    return Prepared(c, d)


class _Near(NamedTuple):
    """Per pixel, its bucketed candidates ``cand[lo_i:lo_i+ncand]`` and its value's big boxes
    ``big[lo_b:lo_b+nbig]``."""

    cand: np.ndarray
    lo_i: np.ndarray
    ncand: np.ndarray
    big: np.ndarray
    lo_b: np.ndarray
    nbig: np.ndarray


def _sorted(c: Candidates) -> tuple[Candidates, np.ndarray]:
    """``c`` in (pass value, instance id) order (ties go to the lowest id) with its radius set,
    and that order (sorted row -> original row)."""
    order = np.lexsort((c.instance_id, c.pass_value))
    if c.radius is None:
        c = c._replace(radius=np.linalg.norm(c.hi - c.lo, axis=1) / 2)
    return Candidates(*(a if a is None else a[order] for a in c)), order


def _value_rank(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For index values ``vals`` (float, rounded; NaN is no key): the rank of each among ``keys``
    and whether it is one (a table lookup for keys in [0, 2^16), pass indices are 16-bit; else a
    binary search)."""
    vals = np.fmax(np.fmin(np.rint(vals), 2.0**62), -1.0).astype(np.int64)
    if len(keys) and keys[0] >= 0 and keys[-1] < 1 << 16:
        lut = np.full(int(keys[-1]) + 2, -1, np.int64)  # the last entry: no key
        lut[keys] = np.arange(len(keys))
        r = lut[np.clip(vals, -1, len(lut) - 1)]
        return np.maximum(r, 0), r >= 0
    pos = np.minimum(np.searchsorted(keys, vals), max(len(keys) - 1, 0))
    found = (keys[pos] == vals) if len(keys) else np.zeros(len(vals), bool)
    return pos, found


def _surface_points(depth: np.ndarray, K: np.ndarray, pose: np.ndarray, px: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """World points ``(P, 3)`` of flat pixels ``px``: the pixel-centre ray at the planar depth
    (``pose``: camera (OpenCV) -> world), and those depths ``(P,)`` in metres."""
    from .layout import pixel_rays

    h, w = depth.shape
    xr, yr = pixel_rays(K, (h, w))
    rows, cols = px // w, px % w
    d = depth.ravel()[px].astype(np.float64)
    p_cam = np.stack([xr[0, cols] * d, yr[rows, 0] * d, d], -1)
    return p_cam @ pose[:3, :3].T + pose[:3, 3], d


def _bucket_pairs(c: Candidates, fr: Frames, p: np.ndarray, grp: np.ndarray,
                  w2cv: np.ndarray, foot: float) -> _Near:
    """The candidates near each point ``p`` of value rank ``grp``.

    A point within ``tol`` of a box lies in the box's world AABB grown by ``foot * d`` where
    d <= zmax / (1 - foot) (zmax: the box's deepest camera depth). Boxes are hashed to a voxel
    grid over the points; a box covering more than ``pixel_voxels.BIG_VOXELS`` voxels (a ground
    plane) is paired with every point of its value instead."""
    small, big, vkey_of = voxel_buckets(c.lo, c.hi, c.matrix, fr.shared, p, w2cv, foot)
    cand, bkey = small
    bkey = fr.rank[cand] * vkey_of.n + bkey
    o = np.lexsort((cand, bkey))
    bkey, cand = bkey[o], cand[o]
    pkey = grp * vkey_of.n + vkey_of(p)
    lo_i = np.searchsorted(bkey, pkey, "left")
    ncand = np.searchsorted(bkey, pkey, "right") - lo_i
    big = big[np.lexsort((big, fr.rank[big]))]
    brank = fr.rank[big]
    lo_b = np.searchsorted(brank, grp, "left")
    nbig = np.searchsorted(brank, grp, "right") - lo_b
    return _Near(cand, lo_i, ncand, big, lo_b, nbig)


def _box_rounds(c: Candidates, fr: Frames, p: np.ndarray, tol: np.ndarray, near: _Near):
    """Box distances of each point to its near candidates, :data:`PAIR_CHUNK` pairs at a time:
    ``(nearest candidate (P,) or -1, candidates within tol (P,), [(point, candidate, distance)
    of the pairs within tol of points with several])``."""
    n_px = len(p)
    best = np.full(n_px, -1, np.int64)
    nwithin = np.zeros(n_px, np.int64)
    amb_pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    cum = np.cumsum(near.ncand + near.nbig)
    a = 0
    while a < n_px:
        b = int(np.searchsorted(cum, (cum[a - 1] if a else 0) + PAIR_CHUNK, "right"))
        b = max(b, a + 1)
        pi, cj = _pairs(np.arange(a, b), near.lo_i[a:b], near.ncand[a:b], near.cand)
        pb, cb = _pairs(np.arange(a, b), near.lo_b[a:b], near.nbig[a:b], near.big)
        pi, cj = np.concatenate([pi, pb]), np.concatenate([cj, cb])
        dist = _box_distance(c, fr, cj, p[pi])
        within = dist <= tol[pi]
        nwithin[a:b] = np.bincount(pi - a, within, b - a).astype(np.int64)
        # nearest per pixel; ties to the lowest candidate (instance id) order
        o2 = np.lexsort((cj, dist, pi))
        firsts = np.r_[True, pi[o2][1:] != pi[o2][:-1]] if len(o2) else np.zeros(0, bool)
        best[pi[o2[firsts]]] = cj[o2[firsts]]
        amb = within & (nwithin[pi] > 1)
        if amb.any():
            amb_pairs.append((pi[amb], cj[amb], dist[amb]))
        a = b
    return best, nwithin, amb_pairs


def _nearest_box(c: Candidates, fr: Frames, v: _Values, p: np.ndarray, grp: np.ndarray,
                 far: np.ndarray, pick: np.ndarray) -> None:
    """Points ``far`` (near no bucketed box) take the nearest box of every candidate of their
    value, in chunks (written into ``pick``)."""
    for r in np.unique(grp[far]):
        fr_px = far[grp[far] == r]
        group = np.arange(v.first[r], v.first[r] + v.sizes[r])
        step = max(1, PAIR_CHUNK // len(group))
        for s in range(0, len(fr_px), step):
            f = fr_px[s:s + step]
            pi = np.repeat(f, len(group))
            cj = np.tile(group, len(f))
            dist = _box_distance(c, fr, cj, p[pi])
            pick[f] = group[np.argmin(dist.reshape(len(f), len(group)), 1)]


def _nearest_surface(c: Candidates, fr: Frames, p: np.ndarray, amb_pairs, order: np.ndarray,
                     surface_distance) -> tuple[np.ndarray, np.ndarray]:
    """Among the boxes within tolerance of each ambiguous point (``amb_pairs``, see
    :func:`_box_rounds`), the nearest surface (ties: lowest candidate order):
    ``(points, candidates)``.

    Candidates of a point go in order of a lower bound of their surface distance (the box
    distance, or the distance to the sphere about the box centre holding the geometry,
    whichever is larger; 0 for one not a rotation + uniform scale); a candidate whose bound
    exceeds the nearest surface found so far cannot be nearer, so each round measures one
    candidate per point that still may win."""
    api = np.concatenate([x[0] for x in amb_pairs])
    acj = np.concatenate([x[1] for x in amb_pairs])
    adist = np.concatenate([x[2] for x in amb_pairs])
    m = c.matrix[acj]
    q = np.einsum("nij,nj->ni", fr.need(acj).inv[acj], p[api] - m[:, :3, 3])
    scale = np.linalg.norm(m[:, :3, 0], axis=1)
    sph = scale * (np.linalg.norm(q - (c.lo[acj] + c.hi[acj]) / 2, axis=1) - c.radius[acj])
    bound = np.where(fr.conf[acj] & (c.radius[acj] >= 0), np.maximum(adist, sph), 0.0)
    o3 = np.lexsort((acj, bound, api))
    api, acj, bound = api[o3], acj[o3], bound[o3]
    starts = np.flatnonzero(np.r_[True, api[1:] != api[:-1]])
    ends = np.r_[starts[1:], len(api)]
    ptr = starts.copy()
    bsd = np.full(len(starts), np.inf)
    bcj = np.full(len(starts), np.iinfo(np.int64).max)
    live = np.arange(len(starts))
    while len(live):
        i = ptr[live]
        sd = np.asarray(surface_distance(order[acj[i]], p[api[i]]), float)
        better = (sd < bsd[live]) | ((sd == bsd[live]) & (acj[i] < bcj[live]))
        bsd[live[better]], bcj[live[better]] = sd[better], acj[i][better]
        ptr[live] += 1
        nxt = np.minimum(ptr[live], len(api) - 1)
        live = live[(ptr[live] < ends[live]) & (bound[nxt] <= bsd[live])]
    return api[starts], bcj
