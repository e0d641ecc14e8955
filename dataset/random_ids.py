# SPDX-License-Identifier: GPL-3.0-or-later
"""The value Cycles' Object Info > Random gives a drawn instance, predicted from its names and
persistent id (vectorised, uint32 arithmetic), so that a pixel's Random AOV names the instance
its centre ray hit (:mod:`.pixel_ids`). Pure numpy.

Blender (``make_dupli``): an instance's ``random_id`` hashes the instanced object's name and its
persistent id with :func:`hash_string` and :func:`hash_int_2d`; Cycles gives a plain
(non-instance) object ``hash_int_2d(hash_string(name), 0)``; Object Info > Random is then
``float32(random_id) * 2**-32`` (Cycles: ``random_id * (1.0f / 0xFFFFFFFF)``, whose float32
factor is exactly 2**-32)."""

from __future__ import annotations

import numpy as np

from .objects import PID_UNUSED

_M = np.uint32(0xFFFFFFFF)
_SEED = np.uint32((0xDEADBEEF + (2 << 2) + 13) & 0xFFFFFFFF)


def hash_string(name: str) -> int:
    """``BLI_hash_string`` (and Cycles' ``hash_string``): ``h = h * 37 + byte`` over the UTF-8
    bytes, uint32."""
    h = 0
    for b in name.encode("utf-8"):
        h = (h * 37 + b) & 0xFFFFFFFF
    return h


def _rot(x: np.ndarray, k: int) -> np.ndarray:
    return (x << np.uint32(k)) | (x >> np.uint32(32 - k))


def hash_int_2d(kx, ky) -> np.ndarray:
    """``BLI_hash_int_2d`` (= Cycles' ``hash_uint2``, Jenkins lookup3 of two words) of uint32
    arrays (broadcast; negative ints wrap as two's complement)."""
    kx = np.asarray(kx).astype(np.int64).astype(np.uint32)
    ky = np.asarray(ky).astype(np.int64).astype(np.uint32)
    with np.errstate(over="ignore"):
        a, b = _SEED + kx, _SEED + ky
        c = np.broadcast_to(_SEED, a.shape).copy() if a.shape else _SEED
        c = (c ^ b) - _rot(b, 14)
        a = (a ^ c) - _rot(c, 11)
        b = (b ^ a) - _rot(a, 25)
        c = (c ^ b) - _rot(b, 16)
        a = (a ^ c) - _rot(c, 4)
        b = (b ^ a) - _rot(a, 14)
        c = (c ^ b) - _rot(b, 24)
    return np.asarray(c, np.uint32)


def plain_random_id(name: str) -> int:
    """Cycles' random id of a plain (non-instance) object of (datablock) name ``name``."""
    return int(hash_int_2d(hash_string(name), 0))


def instance_random_ids(name: str, pid: np.ndarray, entries: int = 0) -> np.ndarray:
    """``random_id`` ``(n,)`` uint32 of instances of object ``name`` made by that object itself
    (a top-level geometry-nodes instancer), persistent ids ``pid`` ``(n, k)`` (their used
    entries, without the trailing INT_MAX); ``entries``: hash that many entries, the unused
    ones as INT_MAX (Blender 4.2-4.5: 8), or only the used ones (0: Blender 5.0)."""
    pid = np.asarray(pid, np.int64).reshape(len(pid), -1)
    if entries > pid.shape[1]:
        pid = np.hstack([pid, np.full((len(pid), entries - pid.shape[1]), PID_UNUSED, np.int64)])
    h = np.full(len(pid), hash_string(name), np.uint32)
    for j in range(pid.shape[1]):
        h = hash_int_2d(h, pid[:, j])
    return h


def random_value(random_id) -> np.ndarray:
    """Object Info > Random of ``random_id`` (uint32 array) as Cycles writes it: float32."""
    return (np.asarray(random_id, np.uint32).astype(np.float32) * np.float32(2.0 ** -32))
