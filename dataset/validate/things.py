# SPDX-License-Identifier: GPL-3.0-or-later
"""One frame's arrays as the checks need them, and the "things" in it: the instances of
``objects.json``'s table (the frames' records say where each is) found per pixel through the
instance-id image (or, without one, through the object id of objects drawn exactly once)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..loader import Objects, Sequence


@dataclass
class FrameData:
    """Arrays of frame ``index`` that read (None where the kind is missing or unreadable)."""

    index: int
    number: int
    K: np.ndarray
    pose: np.ndarray
    depth: np.ndarray | None        # planar, float32
    ids: np.ndarray | None          # object ids, int64
    inst: np.ndarray | None         # instance ids, int64
    labels: np.ndarray | None       # column of objects.json's instance, -1 = none / background
    flow: np.ndarray | None         # (H, W, 4) forward u, v, backward u, v
    normals: np.ndarray | None      # as stored
    smooth: np.ndarray | None = None  # no crease (normal step > CREASE_DEG) among the 8 neighbours
    non_integer: int = 0


class ThingMap:
    """Maps id images to columns of :class:`Objects` (one per instance)."""

    def __init__(self, objs: Objects | None):
        self.objs = objs
        self.reason = "" if objs is not None else "no objects.json (object poses unknown)"
        if objs is None:
            return
        self.order = np.argsort(objs.instance_ids)
        self.sorted_ids = objs.instance_ids[self.order]
        uniq, first, counts = np.unique(objs.object_ids, return_index=True, return_counts=True)
        self.shared = set(uniq[counts > 1].tolist())
        self.obj_order = first[counts == 1].astype(np.int64)  # one pass: 50,000 instances stay cheap
        self.obj_sorted = uniq[counts == 1]
        self.mappable = np.ones(len(objs.instance_ids), bool)  # columns the last label image can show

    @staticmethod
    def _lookup(keys: np.ndarray, cols: np.ndarray, img: np.ndarray) -> np.ndarray:
        if keys.size == 0:
            return np.full(img.shape, -1, np.int64)
        j = np.clip(np.searchsorted(keys, img), 0, keys.size - 1)
        return np.where((keys[j] == img) & (img != 0), cols[j], -1)

    def labels(self, inst: np.ndarray | None, ids: np.ndarray | None) -> np.ndarray | None:
        """``(H, W)`` column per pixel (-1: background or unknown), or None (see ``reason``)."""
        if self.objs is None:
            return None
        if inst is not None:
            self.mappable[:] = True
            return self._lookup(self.sorted_ids, self.order, inst)
        if ids is not None:
            if self.shared:
                self.reason = (f"object id(s) {', '.join(map(str, sorted(self.shared)[:5]))} are drawn as "
                               "several instances and there is no instance-id image")
            self.mappable = ~np.isin(self.objs.object_ids, list(self.shared))
            return self._lookup(self.obj_sorted, self.obj_order, ids)
        self.reason = "no segmentation (pixels cannot be assigned to things)"
        return None

    def name(self, col: int) -> str:
        o = self.objs
        return f"{o.names[col] or 'instance'}#{int(o.instance_ids[col])}"


def load_frame(seq: Sequence, i: int, decoded: dict[str, dict[str, np.ndarray]], things: ThingMap,
               want_flow: bool = True) -> FrameData:
    """Frame ``i`` from ``decoded``: per kind whose file is good, its channels as the files
    check decoded them (a kind that is absent counts as missing)."""
    fr = seq[i]
    for kind, chans in decoded.items():
        fr.adopt(kind, chans)

    def ok(kind):
        return kind in decoded
    depth = fr.planar_depth if ok("depth") else None
    ids = inst = None
    non_integer = 0
    if ok("segmentation"):
        raw = decoded["segmentation"][seq.channels["segmentation"]]
        non_integer = int(np.count_nonzero(raw != np.rint(raw)))
        ids = np.rint(raw).astype(np.int64)
        inst = fr.instances
    flow = None
    if want_flow and ok("flow"):
        flow = np.concatenate([fr.flow_forward, fr.flow_backward], axis=-1)
    normals = fr.normals if ok("normal") else None
    labels = things.labels(inst, ids)
    return FrameData(index=i, number=seq.frame_numbers[i], K=fr.K, pose=fr.pose, depth=depth, ids=ids,
                     inst=inst, labels=labels, flow=flow, normals=normals,
                     smooth=None if normals is None or not want_flow else no_crease(normals),
                     non_integer=non_integer)


CREASE_DEG = 30.0


def no_crease(normals: np.ndarray) -> np.ndarray:
    """``(H, W)`` pixels whose 8 neighbours' normals are within :data:`CREASE_DEG` of their own.
    Cycles averages flow over the pixel filter (1.5 px): next to a crease the average spans two
    faces whose flow fields meet at a kink, off by up to ~0.1 px from the centre's flow."""
    n = normals.astype(np.float32)
    h, w = n.shape[:2]
    p = np.pad(n, ((1, 1), (1, 1), (0, 0)), mode="edge")
    lim = np.float32(np.cos(np.radians(CREASE_DEG)))
    lengths = np.sqrt(np.einsum("hwc,hwc->hw", p, p))  # every pixel's once, the neighbours' too
    length = lengths[1:-1, 1:-1]
    out = np.ones((h, w), bool)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            if dr == dc == 1:
                continue
            nb = p[dr:dr + h, dc:dc + w]
            out &= np.einsum("hwc,hwc->hw", n, nb) >= lim * length * lengths[dr:dr + h, dc:dc + w]
    return out
