# SPDX-License-Identifier: GPL-3.0-or-later
"""The resume journal alone (no process, no render): what it vouches for after a reload, a torn
last line, a truncated, replaced or deleted file, and a frame asked for with more files than it
recorded. (Verified writes and the background writer: test_verified_writes.py.)"""

from __future__ import annotations

import json

import pytest
from dataset_forge.dataset import layout
from dataset_forge.dataset.journal import Journal
from PIL import Image


def _seq(tmp_path, frames):
    seq = tmp_path / "seq"
    for f in frames:
        p = seq / layout.rgb_file(f, "png")
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6), (f, 2 * f, 3)).save(p)
    return seq


def test_a_reload_trusts_whole_lines_and_skips_a_torn_last_one(tmp_path):
    seq = _seq(tmp_path, [1, 2, 3])
    j = Journal(seq)
    for f in (1, 2):
        j.mark_done(f, [layout.rgb_file(f, "png")])
    path = seq / layout.JOURNAL
    lines = path.read_text().splitlines()
    assert [json.loads(x)["frame"] for x in lines] == [1, 2]
    rec = json.loads(lines[0])["files"]
    assert rec == {layout.rgb_file(1, "png"): (seq / layout.rgb_file(1, "png")).stat().st_size}
    # A writer killed in the middle of frame 3's line, then garbage and a line of the wrong shape.
    line3 = json.dumps({"frame": 3, "files": {layout.rgb_file(3, "png"): 1}})
    path.write_text(path.read_text() + '{"frame": "x"}\n[1, 2]\n\n' + line3[:-7])
    again = Journal(seq)
    assert again.done_frames == {1, 2}
    assert again.is_done(1) and again.is_done(2) and not again.is_done(3)
    # A line appended after the torn one starts on its own line: frame 3 survives a reload.
    again.mark_done(3, [layout.rgb_file(3, "png")])
    assert Journal(seq).done_frames == {1, 2, 3} and Journal(seq).is_done(3)


@pytest.mark.parametrize("change", ["truncated", "grown", "deleted"])
def test_a_file_that_changed_size_or_vanished_is_not_done(tmp_path, change):
    seq = _seq(tmp_path, [1, 2])
    j = Journal(seq)
    j.mark_done(1, [layout.rgb_file(1, "png")])
    j.mark_done(2, [layout.rgb_file(2, "png")])
    p = seq / layout.rgb_file(2, "png")
    data = p.read_bytes()
    if change == "truncated":
        p.write_bytes(data[:-1])
    elif change == "grown":
        p.write_bytes(data + b"\0")
    else:
        p.unlink()
    for jj in (j, Journal(seq)):  # the instance that wrote it and a fresh reader agree
        assert jj.is_done(1) and not jj.is_done(2)
        assert jj.done_frames == {1, 2}  # recorded; is_done is what a rerun trusts


def test_a_frame_asked_for_with_a_file_it_never_recorded_is_not_done(tmp_path):
    seq = _seq(tmp_path, [1])
    Journal(seq).mark_done(1, [layout.rgb_file(1, "png")])
    j = Journal(seq)
    assert j.is_done(1, [layout.rgb_file(1, "png")])
    assert not j.is_done(1, [layout.rgb_file(1, "png"), layout.gt_file("depth", 1)])  # new pass
    assert not j.is_done(7) and not Journal(tmp_path / "empty").is_done(1)
