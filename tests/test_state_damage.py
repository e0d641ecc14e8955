# SPDX-License-Identifier: GPL-3.0-or-later
"""Damaged state files and the provenance of a scene's dependencies, without Blender (ms each).

A journal or provenance record that cannot be read never gives a traceback: it is treated as no
record (refused by default, set aside and rendered again with ``on_change rerender``); a changed
image, movie or library the scene reads is a change like a changed setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset_forge.dataset import layout
from dataset_forge.dataset import provenance as pv
from dataset_forge.dataset.journal import Journal
from dataset_forge.engine.plan import sequence_state
from dataset_forge.settings import Settings
from PIL import Image


def _frame(seq: Path, f: int) -> str:
    rel = layout.rgb_file(f, "png")
    (seq / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), (f, 0, 0)).save(seq / rel)
    return rel


def _render(seq: Path, blend: Path, settings: Settings, deps=None, frames=(1, 2)) -> list[str]:
    """What the worker does: begin the sequence, then write and journal frames."""
    extra = {} if deps is None else {"dependencies": pv.dependency_identities(deps)}
    record = pv.make_record(blend, settings, "5.0.1", "Scene", recorded=pv.read_record(seq),
                            **extra)
    why = pv.begin_sequence(seq, record, settings.on_change)
    j = Journal(seq)
    for f in frames:
        if not j.is_done(f):
            j.mark_done(f, [_frame(seq, f)])
    return why


@pytest.fixture
def rendered(tmp_path):
    blend = tmp_path / "scenes" / "a.blend"
    blend.parent.mkdir()
    blend.write_bytes(b"BLENDER-v500 a")
    seq = tmp_path / "ds" / "renders" / "a" / "001-00001-00002"
    assert _render(seq, blend, Settings()) == []
    return blend, seq


JOURNAL_DAMAGE = {
    "random bytes": bytes(range(256)) * 4,
    "a directory": None,
}
RECORD_DAMAGE = {
    "random bytes": bytes(range(256)),
    "settings a string": None,  # filled from the real record
    "1e999": None,
    "a list": b"[1, 2, 3]",
    "blend a number": None,
}


def _damage_record(seq: Path, how: str) -> None:
    p = seq / layout.PROVENANCE
    rec = json.loads(p.read_text())
    if how == "settings a string":
        rec["settings"] = "abc"
        p.write_text(json.dumps(rec))
    elif how == "1e999":
        p.write_text(json.dumps(rec).replace('"format": 1', '"format": 1e999'))
    elif how == "blend a number":
        rec["blend"] = 7
        p.write_text(json.dumps(rec))
    else:
        p.write_bytes(RECORD_DAMAGE[how])


@pytest.mark.parametrize("how", sorted(RECORD_DAMAGE))
def test_a_damaged_record_is_refused_by_name_then_set_aside_and_rerendered(rendered, how):
    blend, seq = rendered
    _damage_record(seq, how)
    with pytest.raises(pv.ProvenanceError, match=r"provenance\.json cannot be read.*--on-change rerender"):
        _render(seq, blend, Settings())
    why = _render(seq, blend, Settings(on_change="rerender"))
    assert len(why) == 1 and "set aside as provenance.json.damaged-" in why[0]
    assert len(list(seq.glob("provenance.json.damaged-*"))) == 1
    assert pv.read_record(seq) is not None and Journal(seq).done_frames == {1, 2}
    assert _render(seq, blend, Settings()) == []  # and it resumes from now on


@pytest.mark.parametrize("how", sorted(JOURNAL_DAMAGE))
def test_a_damaged_journal_is_refused_by_name_then_set_aside_and_rerendered(rendered, how):
    blend, seq = rendered
    j = seq / layout.JOURNAL
    j.unlink()
    if JOURNAL_DAMAGE[how] is None:
        j.mkdir()
    else:
        j.write_bytes(JOURNAL_DAMAGE[how])
    assert sequence_state(seq, 1, 2).frames_complete == 0  # readers: nothing vouched for
    with pytest.raises(pv.ProvenanceError, match=r"\.dataset_forge_journal\.jsonl cannot be read"):
        _render(seq, blend, Settings())
    # --no-allow-skips renders everything again: it gets past the damage too
    why = pv.prepare(seq, blend, Settings(allow_skips=False), "5.0.1", "Scene", "a")
    assert "set aside as .dataset_forge_journal.jsonl.damaged-" in why
    assert (seq / layout.JOURNAL).is_file() is False and not (seq / "frames").exists()


def test_journal_lines_of_another_shape_or_not_finite_vouch_for_nothing(rendered):
    blend, seq = rendered
    j = seq / layout.JOURNAL
    good = j.read_text()
    j.write_text(good + '{"files": {"frames/frame_000003.png": 1e999}, "frame": 3}\n'
                 '{"files": ["x"], "frame": 4}\n{"files": {}, "frame": 1e999}\n"abc"\n')
    jr = Journal(seq)
    assert jr.done_frames == {1, 2} and jr.bad_lines == 4 and jr.damaged is None
    assert _render(seq, blend, Settings()) == []


def test_a_replaced_texture_or_library_is_a_change_named_by_path(tmp_path):
    blend = tmp_path / "a.blend"
    blend.write_bytes(b"BLENDER-v500 a")
    tex, lib = tmp_path / "tex" / "red.png", tmp_path / "lib.blend"
    tex.parent.mkdir()
    tex.write_bytes(b"red")
    lib.write_bytes(b"BLENDER-v500 lib")
    deps = [("image", str(tex)), ("library", str(lib))]
    seq = tmp_path / "seq"
    assert _render(seq, blend, Settings(), deps) == []
    assert _render(seq, blend, Settings(), deps) == []  # unchanged: resume
    tex.write_bytes(b"green")
    with pytest.raises(pv.ProvenanceError, match=rf"the content of image {tex}"):
        _render(seq, blend, Settings(), deps)
    tex.write_bytes(b"red")
    lib.write_bytes(b"BLENDER-v500 other library")
    with pytest.raises(pv.ProvenanceError, match=rf"the content of library {lib}"):
        _render(seq, blend, Settings(), deps)
    lib.unlink()
    with pytest.raises(pv.ProvenanceError, match=rf"library {lib} \(missing now\)"):
        _render(seq, blend, Settings(), deps)
    why = _render(seq, blend, Settings(on_change="rerender"), deps)
    assert why == [f"library {lib} (missing now)"]


def test_a_blend_saved_after_loading_is_recorded_as_loaded(tmp_path):
    blend = tmp_path / "a.blend"
    blend.write_bytes(b"BLENDER-v500 old")
    loaded = pv.identity_as_loaded(blend, lambda: None)
    blend.write_bytes(b"BLENDER-v500 new content")  # saved while the run renders
    assert pv.saved_since(loaded)
    seq = tmp_path / "seq2"
    pv.prepare(seq, blend, Settings(), "5.0.1", "Scene", loaded=loaded)
    assert pv.read_record(seq)["blend"]["sha256"] == loaded["sha256"] != pv.file_sha256(blend)
    Journal(seq).mark_done(1, [_frame(seq, 1)])
    with pytest.raises(pv.ProvenanceError, match=r"the content of a\.blend"):
        pv.prepare(seq, blend, Settings(), "5.0.1", "Scene")  # the next run sees the new file


def test_a_blend_saved_while_it_loads_is_opened_again(tmp_path):
    blend = tmp_path / "a.blend"
    blend.write_bytes(b"BLENDER-v500 old")
    with pytest.raises(pv.ProvenanceError, match="saved while it was being opened") as e:
        pv.identity_as_loaded(blend, lambda: blend.write_bytes(b"BLENDER-v500 saved meanwhile"))
    assert e.value.permanent is False


def test_a_damaged_record_with_nothing_journaled_is_set_aside_with_one_line(tmp_path):
    blend = tmp_path / "a.blend"
    blend.write_bytes(b"BLENDER-v500 a")
    seq = tmp_path / "seq"
    seq.mkdir()
    (seq / layout.PROVENANCE).write_text('{"format": 1, "blend": "x"')
    why = _render(seq, blend, Settings(), frames=())
    assert len(why) == 1 and why[0].startswith("provenance.json cannot be read (")
    assert "set aside as provenance.json.damaged-" in why[0] and pv.read_record(seq) is not None
