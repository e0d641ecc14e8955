# SPDX-License-Identifier: GPL-3.0-or-later
"""The world -> object maps of the pixel resolver's candidates (:mod:`.pixel_ids`), made for the
rows a frame's pixels reach: at 50,000 instances making all of them took 0.045 s, on the first
frame, for the few thousand a frame's pixels are measured against. Pure numpy."""

from __future__ import annotations

import numpy as np

from .objects import conformal, inv3


class Frames:
    """World -> object maps of sorted candidates (matrices ``(n, 4, 4)`` object -> world), for
    the rows made so far (:meth:`need`); a row's values are those made for all rows at once.

    ``inv`` ``(n, 3, 3)``: inverse of the linear part (zero where the pass value is unique: such
    a row is never measured); ``w2o`` ``(n, 3, 4)`` world -> object; ``conf`` ``(n,)``: a
    rotation times a uniform scale; ``scale`` ``(n,)``: that scale where ``conf``, else 1;
    ``rank`` ``(n,)``: the rank of the row's pass value among the keys; ``shared``: the rows
    whose pass value several candidates hold."""

    def __init__(self, matrix: np.ndarray, rank: np.ndarray, is_shared: np.ndarray):
        n = len(matrix)
        self.matrix, self.rank, self._is_shared = matrix, rank, is_shared
        self.shared = np.flatnonzero(is_shared)
        self.w2o = np.zeros((n, 3, 4))
        self.inv = self.w2o[:, :, :3]  # one array kept, not two
        self.conf = np.zeros(n, bool)
        self.scale = np.ones(n)
        self._have = np.zeros(n, bool)

    def need(self, rows: np.ndarray) -> Frames:
        """Make the maps of ``rows`` (any shape of row indices) not made yet; returns self."""
        rows = np.asarray(rows).reshape(-1)
        new = rows[~self._have[rows]]
        if not len(new):
            return self
        new = np.unique(new)
        m = self.matrix[new]
        inv = np.zeros((len(new), 3, 3))
        sh = self._is_shared[new]
        inv[sh] = inv3(m[sh, :3, :3])
        self.w2o[new, :, :3] = inv
        self.w2o[new, :, 3] = -np.einsum("nij,nj->ni", inv, m[:, :3, 3])
        conf = self.conf[new] = conformal(m)
        self.scale[new] = np.where(conf, np.linalg.norm(m[:, :3, 0], axis=1), 1.0)
        self._have[new] = True
        return self


def frames(matrix: np.ndarray, pass_value: np.ndarray, keys: np.ndarray, sizes: np.ndarray
           ) -> Frames:
    """The (lazy) :class:`Frames` of candidates of ``pass_value`` ``(n,)`` among the distinct
    ``keys`` (ascending), ``sizes`` candidates each."""
    rank = np.searchsorted(keys, pass_value)
    return Frames(matrix, rank, sizes[rank] > 1)
