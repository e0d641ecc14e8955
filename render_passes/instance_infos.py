# SPDX-License-Identifier: GPL-3.0-or-later
"""The object tracker's instance table: instance id -> row, with the rows of instances read in
bulk kept as arrays until asked for (:class:`InstanceInfos`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

# (instance id, object name, instancer chain, persistent id) -> the instance's row
MakeRow = Callable[[int, str, tuple, list], dict]


class InstanceInfos(Mapping):
    """Instance id -> its row (``instance_id, object_id, object, instancer_chain,
    persistent_id, category, deforming``, made by ``make``). Instances of a geometry-nodes
    instancer read in bulk are kept per instancer as sorted id arrays and get their row on first
    access: at 200,000 instances a frame records a few thousand, and a dict per instance took
    about 100 MiB and a second. The first id added wins (ids are 31-bit hashes)."""

    def __init__(self, make: MakeRow):
        self._make = make
        self._rows: dict[int, dict[str, Any]] = {}
        # (name, chain) -> (instance ids (n,) uint32 sorted, the second persistent-id entries (n,))
        self._bulk: dict[tuple[str, tuple], tuple[np.ndarray, np.ndarray]] = {}

    def add(self, iid: int, name: str, chain, pid: list[int]) -> None:
        if iid not in self:
            self._rows[iid] = self._make(iid, name, tuple(chain), list(pid))

    def add_bulk(self, name: str, chain, iids: np.ndarray, pids: np.ndarray) -> None:
        """Instances ``iids`` (n,) of instancer ``name`` whose persistent ids are
        ``[0, pids]``."""
        key = (name, tuple(chain))
        old = self._bulk.get(key)
        if old is not None:
            iids, pids = np.concatenate([old[0], iids]), np.concatenate([old[1], pids])
        o = np.argsort(iids, kind="stable")
        self._bulk[key] = (iids[o], pids[o])

    def _find(self, iid: int) -> tuple[str, tuple, list[int]] | None:
        for (name, chain), (ids, pids) in self._bulk.items():
            j = int(np.searchsorted(ids, iid))
            if j < len(ids) and ids[j] == iid:
                return name, chain, [0, int(pids[j])]
        return None

    def __getitem__(self, iid: int) -> dict[str, Any]:
        row = self._rows.get(iid)
        if row is None:
            found = self._find(iid)
            if found is None:
                raise KeyError(iid)
            row = self._rows[iid] = self._make(iid, *found)
        return row

    def __contains__(self, iid: object) -> bool:
        return iid in self._rows or (isinstance(iid, (int, np.integer))
                                     and self._find(int(iid)) is not None)

    def _keys(self) -> set[int]:
        keys = set(self._rows)
        for ids, _ in self._bulk.values():
            keys.update(ids.tolist())
        return keys

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())
