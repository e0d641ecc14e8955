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


def _hashed(asked):
    def new(pid):
        asked.append(pid.tolist())
        return od.bulk_instance_ids("Ground", ["Ground"], pid), pid.astype(np.float32) / 100
    return new


def test_bulk_rows_equal_the_rows_made_one_by_one():
    eager, lazy = InstanceInfos(_row), InstanceInfos(_row)
    pids = np.array([7, 3, 2**30 + 5, 12], np.int64)
    keys = [od.instance_key("Ground", ["Ground"], [0, p]) for p in pids.tolist()]
    iids = np.array([od.instance_id(k) for k in keys], np.uint32)
    for i, p in zip(iids.tolist(), pids.tolist()):
        eager.add(i, "Ground", ("Ground",), [0, p])
    lazy.add(99, "Rock", (), [])
    asked = []
    got = lazy.bulk("Ground", ("Ground",), pids[:2], _hashed(asked))
    assert got[0].tolist() == iids[:2].tolist() and got[1].tolist() == pytest.approx([0.07, 0.03])
    # a later frame: two new instances, one gone; only the new ones are hashed
    got = lazy.bulk("Ground", ("Ground",), pids[[3, 0, 2]], _hashed(asked))
    assert got[0].tolist() == iids[[3, 0, 2]].tolist()
    assert got[1].tolist() == pytest.approx([0.12, 0.07, (2**30 + 5) / 100])
    assert asked == [[3, 7], [12, 2**30 + 5]]
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
    ids = iter([np.array([5, 6], np.uint32), np.array([6], np.uint32)])

    def new(pid):
        return next(ids), np.zeros(len(pid), np.float32)

    t.bulk("G", ("G",), np.array([1, 2]), new)
    # a later frame's new instance whose id collides with an earlier one's (a smaller pid)
    assert t.bulk("G", ("G",), np.array([0, 1, 2]), new)[0].tolist() == [6, 5, 6]
    t.add(6, "B", (), [])
    assert t[5]["object"] == "A" and t[6]["object"] == "G" and t[6]["persistent_id"] == [0, 2]
    assert 2**33 not in t and -1 not in t


def test_unchanged_persistent_ids_are_not_looked_up_again():
    t = InstanceInfos(_row)
    asked = []
    pid = np.arange(50_000, dtype=np.int64)[::-1] * 3
    a = t.bulk("Ground", ("Ground",), pid, _hashed(asked))
    b = t.bulk("Ground", ("Ground",), pid.copy(), _hashed(asked))
    assert len(asked) == 1 and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0][:50].tolist() == [od.instance_id(od.instance_key("Ground", ["Ground"], [0, p]))
                                  for p in pid[:50].tolist()]
