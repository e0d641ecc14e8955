# SPDX-License-Identifier: GPL-3.0-or-later
"""The object tracker's instance table: rows of instances read in bulk, made on first access,
equal the rows made one by one."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_forge.dataset import objects as od
from dataset_forge.render_passes.instance_infos import InstanceInfos


def _row(iid, name, chain, pid):
    return {"instance_id": iid, "object": name, "instancer_chain": list(chain),
            "persistent_id": list(pid), "deforming": False}


def test_bulk_rows_equal_the_rows_made_one_by_one():
    eager, lazy = InstanceInfos(_row), InstanceInfos(_row)
    pids = np.array([7, 3, 2**30 + 5, 12], np.int64)
    keys = [od.instance_key("Ground", ["Ground"], [0, p]) for p in pids.tolist()]
    iids = np.array([od.instance_id(k) for k in keys], np.uint32)
    for i, p in zip(iids.tolist(), pids.tolist()):
        eager.add(i, "Ground", ("Ground",), [0, p])
    lazy.add(99, "Rock", (), [])
    lazy.add_bulk("Ground", ("Ground",), iids[:2], pids[:2])
    lazy.add_bulk("Ground", ("Ground",), iids[2:], pids[2:])  # a later frame's new instances
    assert sorted(lazy) == sorted(iids.tolist() + [99]) and len(lazy) == 5
    for i in iids.tolist():
        assert i in lazy and lazy[i] == eager[i]
    assert lazy[99]["object"] == "Rock" and 100 not in lazy
    with pytest.raises(KeyError):
        lazy[100]
    lazy[int(iids[1])]["deforming"] = True  # a row, once made, is kept
    assert lazy[int(iids[1])]["deforming"] and not lazy[int(iids[0])]["deforming"]


def test_the_first_row_of_an_id_wins():
    t = InstanceInfos(_row)
    t.add(5, "A", (), [])
    t.add_bulk("G", ("G",), np.array([5, 6], np.uint32), np.array([1, 2]))
    t.add(6, "B", (), [])
    assert t[5]["object"] == "A" and t[6]["object"] == "G" and t[6]["persistent_id"] == [0, 2]
