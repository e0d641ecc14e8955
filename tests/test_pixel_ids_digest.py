# SPDX-License-Identifier: GPL-3.0-or-later
"""The last frame's prepared candidates are reused only for candidates byte for byte the same:
any changed value, dtype, shape or missing array prepares anew."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_forge.dataset import pixel_ids as pix


def _cands(n=6, seed=0):
    rng = np.random.default_rng(seed)
    m = np.repeat(np.eye(4)[None], n, 0)
    m[:, :3, 3] = rng.normal(size=(n, 3))
    return pix.Candidates(np.arange(10, 10 + n, dtype=np.uint32), np.ones(n, np.int32),
                          np.full(n, 5, np.int64), m, np.full((n, 3), -0.5),
                          np.full((n, 3), 0.5), np.full(n, 0.8),
                          rand=np.where(np.arange(n) % 2, np.nan, 0.25).astype(np.float32))


def test_equal_candidates_in_new_arrays_are_the_same():
    first = pix.prepare(_cands())
    assert pix.prepare(_cands(), first) is first  # NaN Random values included
    strided = _cands()._replace(lo=np.asfortranarray(np.full((6, 3), -0.5)))
    assert pix.prepare(strided, first) is first  # the bytes in C order count, not the layout


@pytest.mark.parametrize("field", pix.Candidates._fields)
def test_any_changed_value_prepares_anew(field):
    first = pix.prepare(_cands())
    c = _cands()
    a = getattr(c, field).copy()
    flat = a.reshape(-1)
    flat[-1] = flat[-1] + 1 if a.dtype.kind in "ui" else (0.5 if np.isnan(flat[-1]) else np.nan)
    later = pix.prepare(c._replace(**{field: a}), first)
    assert later is not first and later.digest != first.digest
    assert np.array_equal(getattr(later.c, field)[np.argsort(later.order)], a, equal_nan=True)


def test_dtype_shape_order_and_missing_arrays_prepare_anew():
    c = _cands()
    first = pix.prepare(c)
    for other in (c._replace(pass_value=c.pass_value.astype(np.int32)),
                  c._replace(lo=c.lo.reshape(3, 6)),
                  c._replace(radius=None), c._replace(rand=None),
                  pix.Candidates(*(a[::-1] for a in c))):
        assert not first.same(other)
    assert pix.digest(c._replace(rand=None)) != pix.digest(c._replace(radius=None))
    zero = pix.prepare(c._replace(radius=np.zeros(6)))  # -0.0: other bits, counted as changed
    assert not zero.same(c._replace(radius=-np.zeros(6))) and zero.same(c._replace(radius=np.zeros(6)))


def test_maps_made_for_some_rows_are_the_maps_made_for_all():
    """World -> object maps made a few rows at a time (as a frame's pixels reach them) equal,
    bit for bit, those made for every row at once; rows not reached are not made."""
    from dataset_forge.dataset.objects import conformal, inv3
    from dataset_forge.dataset.pixel_frames import frames

    rng = np.random.default_rng(3)
    n = 500
    m = np.repeat(np.eye(4)[None], n, 0)
    m[:, :3, :3] = rng.normal(size=(n, 3, 3))
    m[::3, :3, :3] = np.linalg.qr(rng.normal(size=(n, 3, 3)))[0][::3] * 2.5  # conformal ones
    m[:, :3, 3] = rng.normal(size=(n, 3)) * 100
    pv = np.sort(np.r_[rng.integers(0, 40, n - 10), np.arange(100, 110)])  # 10 unique values
    keys, sizes = np.unique(pv, return_counts=True)
    fr = frames(m, pv, keys, sizes)
    assert not fr.conf.any() and (fr.w2o == 0).all()
    for rows in (rng.integers(0, n, (7, 3)), np.arange(100, 140), np.array([], int),
                 rng.integers(0, n, 300)):
        assert fr.need(rows) is fr
    reached = fr._have.copy()
    fr.need(np.arange(n))
    shared = (sizes[np.searchsorted(keys, pv)] > 1)
    inv = np.zeros((n, 3, 3))
    inv[shared] = inv3(m[shared, :3, :3])
    conf = conformal(m)
    assert 0 < reached.sum() < n and shared.any() and not shared.all() and conf.any()
    assert np.array_equal(fr.inv, inv) and np.array_equal(fr.conf, conf)
    assert np.array_equal(fr.w2o[:, :, 3], -np.einsum("nij,nj->ni", inv, m[:, :3, 3]))
    assert np.array_equal(fr.scale, np.where(conf, np.linalg.norm(m[:, :3, 0], axis=1), 1.0))
    assert np.array_equal(fr.shared, np.flatnonzero(shared))
