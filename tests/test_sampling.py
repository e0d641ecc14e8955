# SPDX-License-Identifier: GPL-3.0-or-later
"""Disjoint sequence sampling: properties (hypothesis) and the error messages. Pure Python."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from dataset_forge.sampling import (
    SamplingError,
    Sequence,
    multiplier_tag,
    sample_sequences,
    sequence_id,
    stretched_range,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

MULTIPLIERS = st.sampled_from([1.0, 2.0, 0.5, 1.5, 3.0, 0.25])


@st.composite
def requests(draw, strategy: str):
    start = draw(st.integers(-100, 400))
    length = draw(st.integers(1, 700))
    m = draw(MULTIPLIERS)
    a, b = stretched_range(start, start + length - 1, m)
    span = b - a + 1
    gap = draw(st.integers(0, 5)) if strategy == "random" else 0
    n = draw(st.integers(1, max(1, min(12, (span + gap) // (1 + gap)))))
    if strategy == "uniform":
        most = span // n
    else:
        most = (span - (n - 1) * gap) // n
    assume(most >= 1)
    nf = draw(st.one_of(st.none(), st.integers(1, most)))
    seed = draw(st.integers(0, 2**31))
    return dict(frame_start=start, frame_end=start + length - 1, sequences_per_scene=n,
                num_frames=nf, multiplier=m, strategy=strategy, seed=seed, min_gap=gap)


def _check(req, seqs: list[Sequence]) -> None:
    a, b = stretched_range(req["frame_start"], req["frame_end"], req["multiplier"])
    n = req["sequences_per_scene"]
    assert len(seqs) == n
    lengths = {q.num_frames for q in seqs}
    assert len(lengths) == 1
    if req["num_frames"]:
        assert lengths == {req["num_frames"]}
    for q in seqs:
        assert a <= q.start and q.end <= b
        assert q.num_frames >= 1
        assert q.id == sequence_id(req["multiplier"], q.start, q.num_frames)
    ordered = sorted(seqs)
    for p, q in zip(ordered, ordered[1:]):
        # Disjoint, and at least min_gap frames between two windows.
        assert q.start - p.end - 1 >= req["min_gap"]
    assert len({f for q in seqs for f in q.frames}) == sum(q.num_frames for q in seqs)


@settings(deadline=None)
@given(requests("uniform"))
def test_uniform_properties(req):
    seqs = sample_sequences(**req)
    _check(req, seqs)
    a, b = stretched_range(req["frame_start"], req["frame_end"], req["multiplier"])
    span, n = b - a + 1, req["sequences_per_scene"]
    # The tutorial's spacing: starts evenly spread over the stretched range, the first at its
    # first frame; neighbours are floor or ceil of span / n apart.
    assert [q.start for q in seqs] == [a + i * span // n for i in range(n)]
    assert {q2.start - q1.start for q1, q2 in zip(seqs, seqs[1:])} <= {span // n, -(-span // n)}
    if not req["num_frames"]:
        assert seqs[0].num_frames == span // n
    assert seqs == sample_sequences(**{**req, "seed": req["seed"] + 1})  # no randomness


@settings(deadline=None)
@given(requests("random"))
def test_random_properties(req):
    seqs = sample_sequences(**req, key="scene")
    _check(req, seqs)
    assert seqs == sample_sequences(**req, key="scene")  # deterministic per seed and key


def test_random_differs_by_seed_and_key_and_is_uniform():
    args = dict(frame_start=1, frame_end=10, sequences_per_scene=1, num_frames=1,
                strategy="random")
    starts = Counter(sample_sequences(**args, seed=s)[0].start for s in range(3000))
    # Every window position is equally likely: 300 expected each, 5 sigma is about 82.
    assert set(starts) == set(range(1, 11))
    assert max(abs(c - 300) for c in starts.values()) < 82
    a = [sample_sequences(1, 600, 3, 20, strategy="random", seed=7, key=k) for k in "abcdef"]
    assert len({tuple(q.start for q in s) for s in a}) > 1
    b = [sample_sequences(1, 600, 3, 20, strategy="random", seed=s) for s in range(6)]
    assert len({tuple(q.start for q in s) for s in b}) > 1


def test_uniform_matches_tutorial_numbers():
    # 24 frames stretched by 2 -> frames 2..48 (47 frames); 2 sequences start 23 frames apart.
    seqs = sample_sequences(1, 24, 2, 3, multiplier=2.0)
    assert [(q.start, q.end, q.id) for q in seqs] == [(2, 4, "002-00002-00005"),
                                                     (25, 27, "002-00025-00028")]
    # Whole range in one sequence by default.
    (q,) = sample_sequences(1, 600, 1)
    assert (q.start, q.end, q.id) == (1, 600, "001-00001-00601")
    assert multiplier_tag(1.5) == "1p5" and sequence_id(1.5, 3, 4) == "1p5-00003-00007"


def _largest(msg: str, what: str) -> int:
    m = re.search(rf"the largest valid {what} is (\d+)", msg)
    assert m, msg
    return int(m.group(1))


@settings(deadline=None)
@given(start=st.integers(0, 50), length=st.integers(1, 60), n=st.integers(1, 20),
       nf=st.integers(1, 80), gap=st.integers(0, 6), strategy=st.sampled_from(["uniform", "random"]),
       m=MULTIPLIERS)
def test_error_states_largest_valid_value(start, length, n, nf, gap, strategy, m):
    """Whatever does not fit fails with a message whose 'largest valid' value really is the
    largest that works (that value works, one more fails)."""
    req = dict(frame_start=start, frame_end=start + length - 1, sequences_per_scene=n,
               num_frames=nf, multiplier=m, strategy=strategy, min_gap=gap)
    try:
        sample_sequences(**req)
        return
    except SamplingError as exc:
        msg = str(exc)
    a, b = stretched_range(start, start + length - 1, m)
    assert f"({a}..{b})" in msg
    if "sequences_per_scene is" in msg:
        k = _largest(msg, "sequences_per_scene")
        assert k >= 1
        sample_sequences(**{**req, "sequences_per_scene": k, "num_frames": 1})
        with pytest.raises(SamplingError):
            sample_sequences(**{**req, "sequences_per_scene": k + 1, "num_frames": 1})
    else:
        k = _largest(msg, "num_frames")
        assert k >= 1
        assert len(sample_sequences(**{**req, "num_frames": k})) == n
        with pytest.raises(SamplingError):
            sample_sequences(**{**req, "num_frames": k + 1})


def test_error_messages_read_well():
    with pytest.raises(SamplingError, match=r"^6 sequences cannot fit in 5 frames \(1\.\.5\); "
                                            r"the largest valid sequences_per_scene is 5$"):
        sample_sequences(1, 5, 6)
    with pytest.raises(SamplingError, match=r"2 sequences of 3 frames do not fit in 5 frames \(1\.\.5\) "
                                            r"with uniform spacing 2: the largest valid num_frames is 2, "
                                            r"or use at most 1 sequences_per_scene"):
        sample_sequences(1, 5, 2, 3)
    with pytest.raises(SamplingError, match=r"the largest valid num_frames is 1 \(or lower min_gap to "
                                            r"at most 2\)"):
        sample_sequences(1, 10, 3, 2, strategy="random", min_gap=3)
    with pytest.raises(SamplingError, match=r"3 sequences with a gap of 5 cannot fit in 10 frames "
                                            r"\(1\.\.10\); the largest valid sequences_per_scene is 2"):
        sample_sequences(1, 10, 3, strategy="random", min_gap=5)
    with pytest.raises(SamplingError, match="unknown strategy 'even'"):
        sample_sequences(1, 10, 1, strategy="even")
    with pytest.raises(SamplingError, match="frame range 5..4 is empty"):
        sample_sequences(5, 4, 1)
