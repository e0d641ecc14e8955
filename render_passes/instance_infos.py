# SPDX-License-Identifier: GPL-3.0-or-later
"""The object tracker's instance table: instance id -> row, with the instances read in bulk kept
as arrays per instancer (:class:`InstanceInfos`, the one owner of their persistent id <->
instance id mapping) and given a row only when asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from ..dataset.documents.objects import InstanceRow, InstanceRowDict

# (instance id, object name, instancer chain, persistent id) -> the instance's row
MakeRow = Callable[[int, str, tuple, list], InstanceRowDict]
# new persistent ids (m,) int64, sorted and unique -> (their instance ids (m,) uint32, their
# Object Info > Random values (m,) float32, NaN where not known)
HashNew = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class _Bulk:
    """Every instance of one instancer read in bulk so far: ``pid`` (n,) int64 sorted (the second
    persistent-id entry), ``iid`` (n,) uint32, ``rand`` (n,) float32 and ``seq`` (n,) (the order
    they were added in) in the same order; ``by_iid``: the order of ``iid``, the first added
    first among equal ids; ``last``: the latest query ``(pid, positions)``, reused while an
    instancer's persistent ids stay the same from frame to frame."""

    __slots__ = ("pid", "iid", "rand", "seq", "by_iid", "sorted_iid", "last")

    def __init__(self, pid: np.ndarray, iid: np.ndarray, rand: np.ndarray, seq: np.ndarray):
        self.pid, self.iid, self.rand, self.seq = pid, iid, rand, seq
        self.by_iid = np.lexsort((seq, iid))
        self.sorted_iid = iid[self.by_iid]
        self.last: tuple[np.ndarray, np.ndarray] | None = None

    def positions(self, pid: np.ndarray) -> np.ndarray | None:
        """Positions of ``pid`` in the table (None when some are not in it)."""
        if self.last is not None and np.array_equal(self.last[0], pid):
            return self.last[1]
        pos = np.minimum(np.searchsorted(self.pid, pid), len(self.pid) - 1)
        if not (self.pid[pos] == pid).all():
            return None
        self.last = (pid.copy(), pos)
        return pos

    def find(self, iid: int) -> int | None:
        """The position of instance id ``iid`` (a uint32), or None."""
        j = int(np.searchsorted(self.sorted_iid, np.uint32(iid)))
        if j < len(self.sorted_iid) and self.sorted_iid[j] == iid:
            return int(self.by_iid[j])
        return None


class InstanceInfos(Mapping):
    """Instance id -> its row (``instance_id, object_id, object, instancer_chain,
    persistent_id, category, deforming``, made by ``make``). Instances of a geometry-nodes
    instancer read in bulk are kept per instancer as arrays (:meth:`bulk`) and get their row on
    first access: at 200,000 instances a frame records a few thousand, and a dict per instance
    took about 100 MiB and a second. The first id added wins (ids are 31-bit hashes)."""

    def __init__(self, make: MakeRow):
        self._make = make
        self._rows: dict[int, InstanceRowDict] = {}
        self._bulk: dict[tuple[str, tuple], _Bulk] = {}  # (name, chain) -> its instances

    def add(self, iid: int, name: str, chain, pid: list[int]) -> None:
        if iid not in self:
            self._rows[iid] = self._make(iid, name, tuple(chain), list(pid))

    def add_rows(self, iids: list[int], name: str, chain, pids: list[list[int]]) -> None:
        """:meth:`add` of each ``(iids[j], pids[j])`` in order, instances of ``name`` with
        instancer chain ``chain``: one row made, the others copies of it with their own id and
        persistent id (``make``'s other fields depend on the object and chain alone)."""
        ids = np.asarray(iids, np.int64)
        taken = np.zeros(len(ids), bool)
        for t in self._bulk.values():
            if len(t.sorted_iid):
                j = np.minimum(np.searchsorted(t.sorted_iid, ids), len(t.sorted_iid) - 1)
                taken |= t.sorted_iid[j] == ids
        rows, base = self._rows, None
        for iid, pid, skip in zip(iids, pids, taken.tolist()):
            if skip or iid in rows:
                continue
            if base is None:
                base = rows[iid] = self._make(iid, name, tuple(chain), list(pid))
            else:
                rows[iid] = {**base, "instance_id": iid, "persistent_id": list(pid)}

    def bulk(self, name: str, chain, pid: np.ndarray, new: HashNew
             ) -> tuple[np.ndarray, np.ndarray]:
        """Instance ids (n,) uint32 and Random values (n,) float32 of the instances of
        instancer ``name`` whose persistent ids are ``[0, pid]`` (``pid`` (n,) int64); the ones
        not seen before are made by ``new``, once per sequence."""
        key = (name, tuple(chain))
        t = self._bulk.get(key)
        pos = t.positions(pid) if t is not None and len(t.pid) else None
        if pos is None:
            known = np.zeros(0, np.int64) if t is None else t.pid
            fresh = np.setdiff1d(pid, known)
            iid, rand = new(fresh)
            seq = np.arange(len(known), len(known) + len(fresh))
            if t is not None:
                fresh, seq = np.concatenate([t.pid, fresh]), np.concatenate([t.seq, seq])
                iid, rand = np.concatenate([t.iid, iid]), np.concatenate([t.rand, rand])
            o = np.argsort(fresh, kind="stable")
            t = self._bulk[key] = _Bulk(fresh[o], np.asarray(iid, np.uint32)[o],
                                        np.asarray(rand, np.float32)[o], seq[o])
            pos = t.positions(pid)
        return t.iid[pos], t.rand[pos]

    def rows_of(self, ids: np.ndarray) -> list[InstanceRow]:
        """The rows of those of instance ids ``ids`` (m,) that are in the table, in the order of
        ``ids``: the same rows as ``self[i]`` each, but found with one ``searchsorted`` per
        instancer table; a row not asked for before is made from the instancer's (``make``'s
        fields other than the instance and persistent ids depend on the instancer alone) and
        not kept."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        got = [self._rows.get(i) for i in ids.tolist()]
        out: list[InstanceRow | None] = [None if r is None else InstanceRow(**r) for r in got]
        todo = np.array([r is None for r in got], bool) & (ids >= 0) & (ids < 2**32)
        for (name, chain), t in self._bulk.items():
            want = np.flatnonzero(todo)
            if not len(want):
                break
            j = np.searchsorted(t.sorted_iid, ids[want].astype(np.uint32))
            hit = j < len(t.sorted_iid)
            hit[hit] = t.sorted_iid[j[hit]] == ids[want][hit]
            at, pos = want[hit], t.by_iid[j[hit]]
            if not len(at):
                continue
            r = self._make(int(ids[at[0]]), name, chain, [0, int(t.pid[pos[0]])])
            oid, ob, cat, dfm = r["object_id"], r["object"], r["category"], r["deforming"]
            ch = list(chain)  # one list for the instancer's rows: fewer objects for the GC
            for k, i, p in zip(at.tolist(), ids[at].tolist(), t.pid[pos].tolist()):
                out[k] = InstanceRow(i, oid, ob, ch, [0, p], cat, dfm)
            todo[at] = False
        return [r for r in out if r is not None]

    def _find(self, iid: int) -> tuple[str, tuple, list[int]] | None:
        if not 0 <= iid < 2**32:
            return None
        for (name, chain), t in self._bulk.items():
            j = t.find(iid)
            if j is not None:
                return name, chain, [0, int(t.pid[j])]
        return None

    def __getitem__(self, iid: int) -> InstanceRowDict:
        row = self._rows.get(iid)
        if row is None:
            found = self._find(int(iid)) if isinstance(iid, (int, np.integer)) else None
            if found is None:
                raise KeyError(iid)
            row = self._rows[iid] = self._make(iid, *found)
        return row

    def __contains__(self, iid: object) -> bool:
        return iid in self._rows or (isinstance(iid, (int, np.integer))
                                     and self._find(int(iid)) is not None)

    def _keys(self) -> set[int]:
        keys = set(self._rows)
        for t in self._bulk.values():
            keys.update(t.iid.tolist())
        return keys

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())
