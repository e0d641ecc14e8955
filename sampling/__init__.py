# SPDX-License-Identifier: GPL-3.0-or-later
"""Disjoint frame ranges (sequences) per scene. Pure Python.

Frames are counted on the *stretched* timeline: with ``keyframe_multiplier = m`` a keyframe at
frame ``f`` moves to ``f * m`` (as in the tutorial), so a scene animated over ``[a, b]`` is sampled
over ``[round(a * m), round(b * m)]``. A sequence covers ``num_frames`` frames
``start .. start + num_frames - 1``; its id is ``MMM-SSSSS-EEEEE`` with ``EEEEE = start + num_frames``
(the tutorial's exclusive end) and ``MMM`` the multiplier (``002``; ``1.5`` is written ``1p5``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..errors import DatasetForgeError


class SamplingError(DatasetForgeError, ValueError):
    """The request cannot fit the scene's range; the message says the largest valid value."""


@dataclass(frozen=True, order=True)
class Sequence:
    """A frame range ``start..end`` (inclusive) on the stretched timeline."""

    start: int
    num_frames: int
    multiplier: float = 1.0

    @property
    def end(self) -> int:
        return self.start + self.num_frames - 1

    @property
    def id(self) -> str:
        return sequence_id(self.multiplier, self.start, self.num_frames)

    @property
    def frames(self) -> range:
        return range(self.start, self.start + self.num_frames)


def multiplier_tag(multiplier: float) -> str:
    """``MMM`` part of a sequence id: ``001`` for 1.0, ``002`` for 2.0, ``1p5`` for 1.5."""
    if float(multiplier).is_integer():
        return f"{int(multiplier):03d}"
    return f"{multiplier:g}".replace(".", "p")


def sequence_id(multiplier: float, start: int, num_frames: int) -> str:
    """The tutorial's ``MMM-SSSSS-EEEEE`` id (``EEEEE`` = start + num_frames, exclusive)."""
    return f"{multiplier_tag(multiplier)}-{start:05d}-{start + num_frames:05d}"


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def stretched_range(frame_start: int, frame_end: int, multiplier: float = 1.0) -> tuple[int, int]:
    """The scene's frame range after stretching time by ``multiplier`` (keyframe f -> f * m)."""
    if frame_end < frame_start:
        raise SamplingError(f"frame range {frame_start}..{frame_end} is empty")
    return _round(frame_start * multiplier), _round(frame_end * multiplier)


def sample_sequences(frame_start: int, frame_end: int, sequences_per_scene: int = 1,
                     num_frames: int | None = None, *, multiplier: float = 1.0,
                     strategy: str = "uniform", seed: int = 0, min_gap: int = 0,
                     key: str = "") -> list[Sequence]:
    """Choose ``sequences_per_scene`` disjoint sequences in the stretched range of
    ``frame_start..frame_end`` (the scene's own range, inclusive, before stretching).

    ``num_frames`` None or 0 means "as long as fits" (uniform: the spacing; random: an equal share).
    ``key`` (e.g. the scene name) decorrelates the random windows of different scenes for one seed.
    Raises :class:`SamplingError` with the largest valid value when the request cannot fit.
    """
    if strategy not in ("uniform", "random"):
        raise SamplingError(f"unknown strategy {strategy!r}: use 'uniform' or 'random'")
    a, b = stretched_range(frame_start, frame_end, multiplier)
    length = b - a + 1
    n = int(sequences_per_scene)
    if n < 1:
        raise SamplingError("sequences_per_scene must be at least 1")
    if num_frames is not None and int(num_frames) < 0:
        raise SamplingError(f"num_frames must be at least 1 (0: as long as fits), got {num_frames}")
    gap = int(min_gap) if strategy == "random" else 0
    if gap < 0:
        raise SamplingError(f"min_gap must be at least 0, got {min_gap}")
    if n + (n - 1) * gap > length:
        # Not even one-frame windows fit: the count is the problem.
        largest = (length + gap) // (1 + gap)
        raise SamplingError(
            f"{n} sequences" + (f" with a gap of {gap}" if gap else "") + f" cannot fit in "
            f"{length} frames ({a}..{b}); the largest valid sequences_per_scene is {largest}")
    if strategy == "uniform":
        step = length // n
        nf = step if not num_frames else int(num_frames)
        if nf > step:
            best_n = max(length // nf, 0)
            hint = (f"the largest valid num_frames is {step}" +
                    (f", or use at most {best_n} sequences_per_scene" if best_n else "") +
                    " (or raise keyframe_multiplier)")
            raise SamplingError(f"{n} sequences of {nf} frames do not fit in {length} frames "
                                f"({a}..{b}) with uniform spacing {step}: {hint}")
        return [Sequence(a + (i * length) // n, nf, multiplier) for i in range(n)]
    nf = int(num_frames) if num_frames else (length - (n - 1) * gap) // n
    slack = length - n * nf - (n - 1) * gap
    if nf < 1 or slack < 0:
        # Only reached with num_frames given (the count check above covers the rest).
        largest = (length - (n - 1) * gap) // n
        raise SamplingError(f"{n} sequences of {nf} frames with a gap of {gap} do not fit in "
                            f"{length} frames ({a}..{b}): the largest valid num_frames is "
                            f"{largest}" + (f" (or lower min_gap to at most "
                                            f"{(length - n * nf) // (n - 1)})"
                                            if n > 1 and length >= n * nf else ""))
    rng = random.Random(f"{seed}:{key}")
    # Stars and bars: sorted draws without replacement give every arrangement of the slack
    # between the windows the same probability.
    picks = sorted(rng.sample(range(slack + n), n))
    return [Sequence(a + (p - i) + i * (nf + gap), nf, multiplier) for i, p in enumerate(picks)]
