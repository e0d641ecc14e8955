# SPDX-License-Identifier: GPL-3.0-or-later
"""The object tracker's fast lane through ``depsgraph.object_instances``: the entries of one
(parent, instanced object) pair whose every entry is one whole instance of a plain mesh object
(a particle system's or a vertex/face instancer's; :func:`.geometry.plain_instanced_mesh`) are
kept as raw values while the depsgraph is walked (:class:`Lane`: persistent id, ``random_id``,
matrix) and made into rows per pair with numpy (:meth:`Lane.rows`): instance ids looked up in a
table per (object, instancer chain) kept over the sequence (:class:`PidTable`; new ones hashed
with :func:`dataset.objects.instance_ids`), Object Info > Random values from the ``random_id``
array. The rows are those the per-entry walk gives (same ids, matrices, Random values, order)."""

from __future__ import annotations

from itertools import chain as _chain
from typing import NamedTuple

import numpy as np

from ..dataset import objects as od
from ..dataset import random_ids as rids


class LaneRows(NamedTuple):
    """One frame's drawn instances of a :class:`Lane`, one per persistent id (the first entry of
    each), in the order met."""

    iid: np.ndarray    # (n,) uint32 instance ids
    mats: np.ndarray   # (n, 4, 4) object -> world
    rand: np.ndarray   # (n,) float32 Random AOV values
    new: np.ndarray    # (n,) bool: first met in this sequence (its row is not in the table yet)
    used: list         # the used persistent id entries of each new row, in order
    row_of: np.ndarray  # (m + 1,) rows before each entry met: entries a:b are rows row_of[a]:row_of[b]


class PidTable:
    """Instance ids of the fast-lane instances of one (object, instancer chain) met so far, by
    raw persistent id: ``keys`` (m,) the rows as bytes (void dtype), sorted, ``iid`` (m,) uint32
    alike; ``last``: the latest query ``(pid, iid)``, reused while the persistent ids stay the
    same from frame to frame (static hair)."""

    __slots__ = ("keys", "iid", "last")

    def __init__(self):
        self.keys: np.ndarray | None = None
        self.iid = np.zeros(0, np.uint32)
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def ids(self, name: str, chain: tuple, pid: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
        """Instance ids (n,) uint32 of raw persistent ids ``pid`` (n, k) int64 (unique rows) of
        instances of ``name`` with instancer chain ``chain``, which of them are new, and the
        used entries of the new ones' persistent ids (:func:`used_pids`)."""
        if self.last is not None and np.array_equal(self.last[0], pid):
            return self.last[1], np.zeros(len(pid), bool), []
        v = np.ascontiguousarray(pid, np.int64).view(f"V{8 * pid.shape[1]}").ravel()
        new = np.ones(len(v), bool)
        iid = np.zeros(len(v), np.uint32)
        if self.keys is not None and len(self.keys) and len(v):
            pos = np.minimum(np.searchsorted(self.keys, v), len(self.keys) - 1)
            new = self.keys[pos] != v
            iid[~new] = self.iid[pos[~new]]
        used = used_pids(pid[new]) if new.any() else []
        if used:
            iid[new] = od.instance_ids(name, list(chain), used)
            keys = v[new] if self.keys is None else np.concatenate([self.keys, v[new]])
            o = np.argsort(keys, kind="stable")
            self.keys, self.iid = keys[o], np.concatenate([self.iid, iid[new]])[o]
        self.last = (pid.copy(), iid)
        return iid, new, used


class Lane:
    """The instance entries met of one (parent, instanced object) pair of the fast lane: each
    entry's persistent id (tuple), ``random_id`` (int) and object -> world matrix (a copy), in
    the order met. ``name``: the instanced object (``name_full``), ``chain``: its instancer chain,
    ``key``: its drawn part (the tracker's part key), ``pass_value``: its pass index."""

    __slots__ = ("name", "chain", "key", "pass_value", "pids", "rids", "mats", "_first", "_rows")

    def __init__(self, name: str, chain: tuple, key: tuple, pass_value: int):
        self.name, self.chain, self.key, self.pass_value = name, chain, key, pass_value
        self.pids: list[tuple] = []
        self.rids: list[int] = []
        self.mats: list = []
        self._first: tuple[np.ndarray, np.ndarray] | None = None
        self._rows: LaneRows | None = None

    def first(self) -> tuple[np.ndarray, np.ndarray]:
        """``(pid (n, k) int64, first (m,) bool)``: the raw persistent ids of the instances, and
        which of the m entries (at least one) are the first of theirs (those that count)."""
        if self._first is None:
            m = len(self.rids)
            pid = np.fromiter(_chain.from_iterable(self.pids), np.int64,
                              count=m * len(self.pids[0])).reshape(m, -1)
            first = np.zeros(m, bool)
            first[np.unique(np.ascontiguousarray(pid).view(f"V{8 * pid.shape[1]}").ravel(),
                            return_index=True)[1]] = True
            self._first = pid[first], first
        return self._first

    def rows(self, table: PidTable, feed: float) -> LaneRows:
        """This frame's rows (made once): ids from ``table``, Random values from ``random_id``
        where every material of the part feeds the Random AOV (``feed`` 1.0), else ``feed``
        (0.0 or NaN; :func:`.instance_rows.feeds`)."""
        if self._rows is not None:
            return self._rows
        pid, first = self.first()
        m = matrices(self.mats if first.all() else [m for m, f in zip(self.mats, first) if f])
        iid, new, used = table.ids(self.name, self.chain, pid)
        if feed == 1.0:
            rand = rids.random_value(np.array(self.rids, np.int64).astype(np.uint32)[first])
        else:
            rand = np.full(len(pid), feed, np.float32)
        self._rows = LaneRows(iid, m, rand, new, used, np.r_[0, np.cumsum(first)])
        return self._rows


class LaneIds:
    """The fast lane's instance ids over a sequence: a :class:`PidTable` per (object, chain);
    ``add(iids, name, chain, pids)`` puts instances first met in the instance table
    (:meth:`.instance_infos.InstanceInfos.add_rows`)."""

    def __init__(self, add):
        self._add = add
        self._tables: dict[tuple[str, tuple], PidTable] = {}

    def rows(self, run: Run, feed: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows ``(iids, matrices, Random values)`` of a run (:meth:`Lane.rows`); the
        instances first met are added, in order."""
        lane = run.lane
        t = self._tables.get((lane.name, lane.chain))
        if t is None:
            t = self._tables[(lane.name, lane.chain)] = PidTable()
        r = lane.rows(t, feed)
        s, e = int(r.row_of[run.start]), int(r.row_of[run.end])
        new = np.flatnonzero(r.new[s:e]) + s
        if len(new):
            at = int(np.count_nonzero(r.new[:s]))
            self._add(r.iid[new].tolist(), lane.name, lane.chain, r.used[at:at + len(new)])
        return r.iid[s:e], r.mats[s:e], r.rand[s:e]


def matrices(kept: list) -> np.ndarray:
    """``(n, 4, 4)`` float object -> world matrices from those a walk kept
    (``render_passes.compat.KEEP_MATRIX``): ``bytes`` of each (float32, rows first) or copies
    (mathutils ``Matrix``)."""
    if kept and isinstance(kept[0], bytes):
        return np.frombuffer(b"".join(kept), np.float32).astype(float).reshape(-1, 4, 4)
    return np.fromiter(_chain.from_iterable(_chain.from_iterable(kept)), float,
                       count=16 * len(kept)).reshape(-1, 4, 4)


def used_pids(pid: np.ndarray) -> list[list[int]]:
    """The used entries of raw persistent ids ``pid`` (n, k) (:func:`dataset.objects.trim_pid`
    of each row)."""
    tail = (pid == od.PID_UNUSED)[:, ::-1]
    used = pid.shape[1] - np.where(tail.all(1), pid.shape[1], tail.argmin(1))
    return [r[:u] for r, u in zip(pid.tolist(), used.tolist())]


class Run(NamedTuple):
    """Consecutive entries ``start:end`` of ``lane`` in the walk (between them no other entry)."""

    lane: Lane
    start: int
    end: int


def runs_of(marks: list[tuple[Lane, int]]) -> list[Run]:
    """The runs of the walk's run marks ``(lane, its first entry)``, in order."""
    out: list[Run] = []
    ends: dict[int, int] = {}
    for lane, start in reversed(marks):
        out.append(Run(lane, start, ends.get(id(lane), len(lane.rids))))
        ends[id(lane)] = start
    return out[::-1]
