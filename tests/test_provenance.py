# SPDX-License-Identifier: GPL-3.0-or-later
"""Provenance of sequence folders and scene-folder binding, without Blender (ms each)."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from dataset_forge.dataset import layout
from dataset_forge.dataset import provenance as pv
from dataset_forge.dataset.documents.plan import Plan, PlannedJob, PlannedScene
from dataset_forge.dataset.journal import Journal
from dataset_forge.engine.discovery import (
    SceneInfo,
    bind_scene_names,
    find_blends,
    safe_name,
    scene_names,
)
from dataset_forge.settings import Settings
from PIL import Image


def _blend(folder: Path, name: str, content: bytes = b"BLENDER-v500 scene") -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content)
    return p


def _frame(seq: Path, f: int, ext: str = "png") -> str:
    rel = layout.rgb_file(f, ext)
    (seq / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), (f, 0, 0)).save(seq / rel)
    return rel


def _render(seq: Path, blend: Path, settings: Settings, frames=(1, 2), ext="png",
            blender="5.0.1", scene="Scene") -> list[str]:
    """What the worker does: begin the sequence, then write and journal frames."""
    why = pv.begin_sequence(seq, pv.make_record(blend, settings, blender, scene,
                                                recorded=pv.read_record(seq)),
                            settings.on_change)
    j = Journal(seq)
    for f in frames:
        if not j.is_done(f):
            j.mark_done(f, [_frame(seq, f, ext)])
    return why


def test_fingerprint_holds_what_changes_pixels_or_meaning_only():
    fp = pv.fingerprint_settings(Settings())
    for k in ("width", "height", "max_samples", "adaptive_threshold", "use_denoising",
              "file_format", "bit_depth", "color_mode", "exr_codec", "depth_type", "normal_frame",
              "depths", "normals", "flows", "segmentations", "debug", "keyframe_multiplier",
              "class_property", "disable_motion_blur", "autoexec"):
        assert k in fp, k
    for k in ("jobs", "timeout", "retries", "gpus", "executable", "threads", "on_change",
              "allow_skips", "recycle_frames", "device_type", "seed", "allow_scene_outputs"):
        assert k not in fp, k
    # A field that does not exist yet in an old record matches its default.
    new = pv.make_record(__file__, Settings(), "5.0.1", "S")
    old = json.loads(json.dumps(new))
    del old["settings"]["depth_type"]
    assert pv.changes(old, new) == []
    new2 = pv.make_record(__file__, Settings(depth_type="distance"), "5.0.1", "S")
    assert pv.changes(old, new2) == ["depth_type 'planar' -> 'distance'"]


@pytest.mark.parametrize("change,named", [
    ({"width": 40}, "width 32 -> 40"),
    ({"depth_type": "distance"}, "depth_type 'planar' -> 'distance'"),
    ({"normal_frame": "world"}, "normal_frame 'camera' -> 'world'"),
    ({"max_samples": 64}, "max_samples 1 -> 64"),
    ({"file_format": "JPEG"}, "file_format 'PNG' -> 'JPEG'"),
    ({"depths": True}, "depths False -> True"),
])
def test_a_changed_setting_is_refused_by_default_and_rerendered_on_request(tmp_path, change, named):
    blend = _blend(tmp_path, "a.blend")
    seq = tmp_path / "ds" / "renders" / "a" / "001-00001-00002"
    base = Settings(width=32, height=24, max_samples=1)
    assert _render(seq, blend, base) == []
    (seq / "notes.txt").write_text("mine")
    (seq / "frames" / "mine.png").write_text("mine too")
    changed = base.replace(**change)
    with pytest.raises(pv.ProvenanceError) as err:
        _render(seq, blend, changed)
    msg = str(err.value)
    assert named in msg and "--on-change rerender" in msg and "\n" not in msg
    assert Journal(seq).done_frames == {1, 2}  # refused: nothing touched
    assert not pv.settings_match(seq, changed) and pv.settings_match(seq, base)
    ext = "jpg" if change.get("file_format") == "JPEG" else "png"
    why = _render(seq, blend, changed.replace(on_change="rerender"), ext=ext)
    assert why == [named]
    # Re-rendered from scratch: only this run's files, the user's own file kept.
    assert sorted(p.name for p in (seq / "frames").iterdir()) == [
        *(f"frame_00000{i}.{ext}" for i in (1, 2)), "mine.png"]
    assert (seq / "notes.txt").read_text() == "mine"
    assert pv.settings_match(seq, changed)
    # Resuming with the same settings reuses everything.
    assert _render(seq, blend, changed) == []


def test_the_blend_content_scene_and_blender_version_are_part_of_the_fingerprint(tmp_path):
    blend = _blend(tmp_path, "a.blend")
    seq = tmp_path / "seq"
    s = Settings()
    _render(seq, blend, s)
    with pytest.raises(pv.ProvenanceError, match="scene 'Scene' -> 'Other'"):
        _render(seq, blend, s, scene="Other")
    with pytest.raises(pv.ProvenanceError, match=r"Blender 5\.0\.1 -> 4\.5\.3"):
        _render(seq, blend, s, blender="4.5.3")
    assert _render(seq, blend, s, blender="5.0.2") == []  # a patch release changes nothing
    blend.write_bytes(b"BLENDER-v500 edited scene")
    with pytest.raises(pv.ProvenanceError, match=r"content of a\.blend"):
        _render(seq, blend, s)


def test_a_folder_of_another_blend_is_refused_even_with_rerender(tmp_path):
    a = _blend(tmp_path, "a_b.blend", b"A")
    b = _blend(tmp_path, "a b.blend", b"B")
    seq = tmp_path / "seq"
    _render(seq, a, Settings())
    for on_change in ("refuse", "rerender"):
        with pytest.raises(pv.ProvenanceError, match="holds frames of .*a_b.blend, not of .*a b"):
            _render(seq, b, Settings(on_change=on_change))
    assert pv.read_record(seq)["blend"]["path"] == str(a)
    # The same content moved elsewhere is the same file: its frames are reused.
    moved = _blend(tmp_path / "moved", "a_b.blend", b"A")
    assert _render(seq, moved, Settings()) == []
    assert pv.read_record(seq)["blend"]["path"] == str(moved)


def test_frames_without_a_record_are_not_trusted(tmp_path):
    blend = _blend(tmp_path, "a.blend")
    seq = tmp_path / "seq"
    seq.mkdir()
    Journal(seq).mark_done(1, [_frame(seq, 1)])  # a 0.1.0 folder: journal, no provenance
    with pytest.raises(pv.ProvenanceError, match="no provenance record"):
        _render(seq, blend, Settings())
    assert _render(seq, blend, Settings(on_change="rerender")) == [
        "no provenance record (rendered by an older Dataset Forge or another tool)"]


def test_unvouched_leftovers_and_stale_temp_files_are_removed_at_the_start(tmp_path):
    blend = _blend(tmp_path, "a.blend")
    seq = tmp_path / "seq"
    _frame(seq, 7, "jpg")  # written by a run killed before its journal line
    (seq / "previews" / "depth").mkdir(parents=True)
    _png_at = seq / layout.preview_file("depth", 7)
    Image.new("RGB", (2, 2)).save(_png_at)
    (seq / "depths").mkdir()
    (seq / layout.gt_file("depth", 7)).write_bytes(b"torn")
    (seq / ".transforms.json.abc12_yz.tmp").write_text("{")
    (seq / ".my own.tmp").write_text("not ours")
    assert _render(seq, blend, Settings(), frames=(1,)) == []
    assert sorted(p.name for p in (seq / "frames").iterdir()) == ["frame_000001.png"]
    assert not (seq / "previews").exists() and not (seq / "depths").exists()
    assert [p.name for p in seq.glob(".*.tmp")] == [".my own.tmp"]


def test_the_blend_hash_is_reused_while_size_and_mtime_are_unchanged(tmp_path):
    blend = _blend(tmp_path, "big.blend", b"x" * 100)
    st = blend.stat()
    fake = {"path": str(blend), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": "recorded"}
    assert pv.blend_identity(blend, fake)["sha256"] == "recorded"  # the file was not read
    os.utime(blend, ns=(st.st_mtime_ns + 10**9, st.st_mtime_ns + 10**9))
    assert pv.blend_identity(blend, fake)["sha256"] == pv.file_sha256(blend)


def test_safe_name_keeps_every_script_and_replaces_only_what_some_os_forbids():
    assert safe_name("Straße 東京 Ελλάδα (v2)") == "Straße 東京 Ελλάδα (v2)"
    decomposed = unicodedata.normalize("NFD", "café")
    assert safe_name(decomposed) == "café" and len(safe_name(decomposed)) == 4
    assert safe_name('a<b>c:d"e/f\\g|h?i*j') == "a_b_c_d_e_f_g_h_i_j"
    assert safe_name("tab\there\x7fbell\x07") == "tab_here_bell_"
    assert safe_name("trailing. . ") == "trailing"
    assert safe_name(".hidden") == "hidden"
    for reserved in ("CON", "nul", "com1", "LPT9", "aux.scene", "com\u00b9", "conin$"):
        assert safe_name(reserved).startswith("_"), reserved
    assert safe_name("console") == "console"
    assert len(safe_name("東" * 300).encode()) <= 200
    assert safe_name("x" * 200) == "x" * 80
    assert safe_name("..") == safe_name("") == safe_name("***") == "scene"


def test_scene_folders_stay_bound_to_their_blend(tmp_path):
    scenes = tmp_path / "scenes"
    a = _blend(scenes, "a_b.blend", b"A")
    # Without the new rules `a b.blend` took `a_b`; now its name is its own.
    b = _blend(scenes, "a b.blend", b"B")
    assert scene_names(find_blends(scenes), scenes) == ["a b", "a_b"]
    # A real collision (':' is illegal on Windows and macOS): the bound file keeps its folder,
    # whatever the order or the natural-sort position of the newcomer.
    b.unlink()
    c = _blend(scenes, "a:b.blend", b"C")
    bindings = {"a_b": pv.blend_identity(a)}
    names = dict(zip(map(str, find_blends(scenes)), scene_names(find_blends(scenes), scenes,
                                                                  bindings)))
    assert names == {str(a): "a_b", str(c): "a_b-2"}
    # A folder bound to a file that is gone is never handed to a newcomer.
    a.unlink()
    assert scene_names(find_blends(scenes), scenes, bindings) == ["a_b-2"]
    # Two files with the same stem in subfolders: the one that had the folder keeps it.
    sub = tmp_path / "s2"
    x = _blend(sub / "x", "scene.blend", b"X")
    y = _blend(sub / "y", "scene.blend", b"Y")
    assert scene_names([x, y], sub, {"scene": pv.blend_identity(x)}) == ["scene", "y_scene"]
    assert scene_names([x, y], sub) == ["x_scene", "y_scene"]
    # Case-insensitive file systems: 'A_B' would be the same folder as 'a_b'.
    up = _blend(tmp_path / "s3", "A_B.blend", b"U")
    assert scene_names([up], tmp_path / "s3", {"a_b": {"path": "/gone/a_b.blend"}}) == ["A_B-2"]


def test_a_moved_scenes_folder_keeps_its_names_and_bindings_come_from_the_records(tmp_path):
    old = _blend(tmp_path / "old", "a_b.blend", b"A")
    ident = pv.blend_identity(old)
    ds = tmp_path / "ds"
    seq = ds / "renders" / "a_b" / "001-00001-00002"
    _render(seq, old, Settings())
    assert pv.read_bindings(ds) == {"a_b": ident}
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    os.rename(old, new_dir / "a_b.blend")
    other = _blend(new_dir, "a:b.blend", b"C")
    infos = [SceneInfo(name=n, blend=str(p)) for n, p in
             zip(scene_names(find_blends(new_dir), new_dir), find_blends(new_dir))]
    bound = {i.blend: i.name for i in bind_scene_names(infos, new_dir, ds)}
    assert bound == {str(new_dir / "a_b.blend"): "a_b", str(other): "a_b-2"}


def test_prepare_without_allow_skips_starts_over_and_names_the_change(tmp_path):
    blend = _blend(tmp_path, "a.blend")
    seq = tmp_path / "seq"
    _render(seq, blend, Settings(width=32))
    assert pv.prepare(seq, blend, Settings(width=32), "5.0.1", "Scene", "a") is None
    with pytest.raises(pv.ProvenanceError):
        pv.prepare(seq, blend, Settings(width=40), "5.0.1", "Scene", "a")
    note = pv.prepare(seq, blend, Settings(width=40, allow_skips=False), "5.0.1", "Scene", "a")
    assert note == ("a: re-rendering sequence seq from scratch, changed: "
                    "width 32 -> 40")
    assert not (seq / "frames").exists() and pv.settings_match(seq, Settings(width=40))


def _one_sequence_rendered(tmp_path: Path) -> tuple[Path, Path, Path, Settings, Plan]:
    """A datasets folder with one sequence (frames 1 and 2 of scene 'a') rendered as a worker
    does, and its plan: ``(blend, datasets folder, sequence folder, settings, plan)``."""
    blend = _blend(tmp_path / "scenes", "a.blend")
    ds = tmp_path / "ds"
    seq = ds / layout.RENDERS / "a" / "001-00001-00002"
    s = Settings()
    _render(seq, blend, s)
    (seq / layout.TRANSFORMS).write_text("{}")
    plan = Plan("test", "2026-01-01T00:00:00+00:00", str(tmp_path / "scenes"), str(ds), 0,
                s.to_dict(), [PlannedScene("a", str(blend))], [PlannedJob("a", str(blend), [
                    {"id": seq.name, "out_dir": str(seq), "frame_start": 1, "frame_end": 2}])])
    return blend, ds, seq, s, plan


def test_a_sequence_refused_in_this_run_is_never_called_complete_in_the_manifest(tmp_path):
    """Its old frames are whole and journaled, but they were made from the .blend before an edit:
    the run refused the sequence, so the manifest says incomplete, with the refusal, and drops
    the old validation entry."""
    from dataset_forge.engine.plan import write_manifest

    blend, ds, seq, s, plan = _one_sequence_rendered(tmp_path)
    blend.write_bytes(b"BLENDER-v500 edited scene")
    with pytest.raises(pv.ProvenanceError) as refused:
        _render(seq, blend, s)

    def manifest(summary):
        return json.loads(write_manifest(plan, summary).read_text())

    before = manifest(None)  # nothing known of a run: the files on disk decide
    assert before["scenes"][0]["status"] == "complete"
    before["scenes"][0]["sequences"][0]["validation"] = {"ok": True}
    (ds / layout.MANIFEST).write_text(json.dumps(before))
    summary = {"scenes": {"a": {"status": "failed", "errors": [str(refused.value)], "sequences": [
        {"id": seq.name, "out_dir": str(seq), "status": "failed", "reason": str(refused.value)}]}}}
    m = manifest(summary)
    sc, q = m["scenes"][0], m["scenes"][0]["sequences"][0]
    assert (sc["status"], q["status"]) == ("failed", "incomplete")
    assert q["reason"] == str(refused.value) and "the content of a.blend" in q["reason"]
    assert sc["reason"] == str(refused.value) and "validation" not in q
    assert m["totals"]["scenes_complete"] == 0 and m["totals"]["sequences_complete"] == 0


def test_a_validation_is_kept_while_the_frames_are_the_ones_it_judged(tmp_path):
    """The manifest keeps a sequence's validate verdict across reruns that render nothing, and
    drops it once the folder is rendered again from scratch, even when the new journal is byte
    for byte the old one (same file sizes) and the manifest was written in the same second."""
    from dataset_forge.dataset.verify import journal_digest
    from dataset_forge.engine.plan import write_manifest

    blend, ds, seq, s, plan = _one_sequence_rendered(tmp_path)
    first = pv.read_record(seq)[pv.RENDER_ID]

    def validated() -> dict:
        """Record a verdict as validate does, then let a run rewrite the manifest."""
        m = json.loads(write_manifest(plan).read_text())
        m["scenes"][0]["sequences"][0]["validation"] = {"ok": True, "journal_sha256": journal_digest(seq)}
        (ds / layout.MANIFEST).write_text(json.dumps(m))
        return m

    validated()
    journal = (seq / layout.JOURNAL).read_bytes()
    assert _render(seq, blend, s) == []  # a rerun: everything done, nothing rendered
    assert pv.read_record(seq)[pv.RENDER_ID] == first
    assert "validation" in json.loads(write_manifest(plan).read_text())["scenes"][0]["sequences"][0]
    s2 = Settings(on_change="rerender", width=s.width + 2)
    assert _render(seq, blend, s2)  # rendered again from scratch
    plan.settings = s2.to_dict()
    assert (seq / layout.JOURNAL).read_bytes() == journal and pv.read_record(seq)[pv.RENDER_ID] != first
    when = (ds / layout.MANIFEST).stat().st_mtime  # a clock of 1 s steps: no later than the manifest
    os.utime(seq / layout.JOURNAL, (when, when))
    assert "validation" not in json.loads(write_manifest(plan).read_text())["scenes"][0]["sequences"][0]


def test_a_record_from_before_an_option_compares_with_what_it_was_rendered_with():
    """A sequence recorded before ``filtered_passes`` existed has filtered normals and flow: its
    missing setting reads as True (its ``legacy``), so today's default (one surface per pixel)
    is a change, never a silent resume; a missing option whose old behaviour is its default
    (``normal_kind``) is no change."""
    now = pv.fingerprint_settings(Settings(normals=True))
    old = {k: v for k, v in now.items() if k not in ("filtered_passes", "normal_kind")}
    rec = {"blend": {"sha256": "x"}, "blender_version": "5.0.1", "scene": "S"}
    assert pv.changes({**rec, "settings": old}, {**rec, "settings": now}) == [
        "filtered_passes True -> False"]
    filtered = pv.fingerprint_settings(Settings(normals=True, filtered_passes=True))
    assert pv.changes({**rec, "settings": old}, {**rec, "settings": filtered}) == []
