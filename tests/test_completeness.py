# SPDX-License-Identifier: GPL-3.0-or-later
"""An incomplete dataset is never called complete (without Blender): sequences of the plan that
are missing, or a run still writing the folder, fail validate and make an export refuse (or, with
``allow_incomplete``, say ``"complete": false``). Also: ``export --overwrite`` removes only what
an export wrote, and the loader's tutorial layout does not follow a symlink out."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from dataset_forge.dataset import layout
from dataset_forge.dataset.exports import ExportError, export
from dataset_forge.dataset.exports.common import MARKER
from dataset_forge.dataset.journal import Journal
from dataset_forge.dataset.lock import FolderLock
from dataset_forge.dataset.validate import validate

sys.path.insert(0, str(Path(__file__).parent))
import validate_scenes as vs  # noqa: E402

IDS = ["001-00001-00004", "001-00011-00014", "001-00021-00024", "001-00031-00034"]


def _journal(seq: Path) -> None:
    tf = json.loads((seq / layout.TRANSFORMS).read_text())
    j = Journal(seq)
    for fr in tf["frames"]:
        files = [fr["file_path"], *(fr[k] for k in fr if k.endswith("_file_path"))]
        j.mark_done(fr["frame"], files)


@pytest.fixture(scope="module")
def clean_seq(tmp_path_factory) -> Path:
    seq = vs.write_scene(vs.scenes()["static_camera"], tmp_path_factory.mktemp("clean") / IDS[0])
    _journal(seq)
    return seq


def _dataset(tmp_path: Path, clean_seq: Path) -> Path:
    """A datasets folder whose run was killed before its first manifest: the plan promises four
    sequences of scene ``static``, one of them is on disk and complete."""
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(clean_seq, ds / layout.RENDERS / "static" / IDS[0])
    seqs = [{"id": i, "out_dir": str(ds / layout.RENDERS / "static" / i),
             "frame_start": int(i[4:9]), "frame_end": int(i[10:])} for i in IDS]
    (ds / "plan.json").write_text(json.dumps({
        "version": 1, "datasets_dir": str(ds), "jobs": [{"scene": "static", "blend": "/s/a.blend",
                                                          "sequences": seqs}], "scenes": []}))
    return ds


def test_a_dataset_missing_planned_sequences_fails_validate_and_export(tmp_path, clean_seq):
    ds = _dataset(tmp_path, clean_seq)
    rep = validate(ds, write=False)
    assert not rep["ok"]  # main: "1/1 sequence(s) passed"
    from dataset_forge.dataset.completeness import assess

    c = assess(ds)
    assert (len(c.planned), len(c.missing), c.running) == (4, 3, None)
    assert c.lines()[0].startswith("3 of 4 planned sequences missing (renders/static/001-00011-00014")
    assert rep["incomplete"] == c.lines()
    assert sorted(rep["failed"]) == [f"renders/static/{i}" for i in IDS[1:]]
    assert validate(ds, write=False, allow_incomplete=True)["incomplete"] == c.lines()
    with pytest.raises(ExportError, match=r"not complete: 3 of 4 planned sequences missing.*"
                                          r"--allow-incomplete"):
        export("colmap", ds, tmp_path / "x")
    res = export("colmap", ds, tmp_path / "y", allow_incomplete=True)
    rec = json.loads((tmp_path / "y" / MARKER).read_text())
    assert rec["complete"] is False and rec["finished"] is True and res["complete"] is False
    assert rec["incomplete"] == c.lines()


def test_a_dataset_a_run_is_writing_is_not_complete(tmp_path, clean_seq):
    ds = _dataset(tmp_path, clean_seq)
    plan = json.loads((ds / "plan.json").read_text())
    plan["jobs"][0]["sequences"] = plan["jobs"][0]["sequences"][:1]
    (ds / "plan.json").write_text(json.dumps(plan))
    assert validate(ds, write=False)["ok"]
    with FolderLock(ds):  # as a running create-datasets holds it
        rep = validate(ds, write=False)
        assert not rep["ok"]  # main: "1/1 sequence(s) passed"
        from dataset_forge.dataset.completeness import assess

        c = assess(ds)
        assert c.running == str(os.getpid()) and not c.complete
        assert c.lines() == [f"a run is writing this dataset ({ds.resolve()}, pid {os.getpid()}): "
                             "its sequences are not finished; check again once it ends"]
        assert rep["incomplete"] == c.lines()
        seq = ds / layout.RENDERS / "static" / IDS[0]
        assert not assess(seq).complete  # a sequence folder of it too
        with pytest.raises(ExportError, match="a run is writing this dataset"):
            export("colmap", seq, tmp_path / "x")
    assert export("colmap", ds, tmp_path / "y")["complete"] is True


def test_overwrite_removes_only_what_the_export_wrote(tmp_path, clean_seq):
    dst = tmp_path / "out"
    export("colmap", clean_seq, dst)
    rec = json.loads((dst / MARKER).read_text())
    assert rec["files"] and all((dst / f).is_file() for f in rec["files"])
    (dst / "my_notes.txt").write_text("mine")
    (dst / "images" / "my_extra.png").write_bytes(b"mine too")
    export("colmap", clean_seq, dst, overwrite=True)
    assert (dst / "my_notes.txt").read_text() == "mine"
    assert (dst / "images" / "my_extra.png").read_bytes() == b"mine too"
    assert json.loads((dst / MARKER).read_text())["files"] == rec["files"]


def test_overwrite_of_an_interrupted_export_removes_what_it_had_written(tmp_path, clean_seq):
    dst = tmp_path / "out"

    def stop(e):
        if e["frames_done"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export("colmap", clean_seq, dst, on_progress=stop)
    (dst / "mine.txt").write_text("mine")
    export("colmap", clean_seq, dst, overwrite=True)
    assert (dst / "mine.txt").read_text() == "mine"
    assert json.loads((dst / MARKER).read_text())["complete"] is True


def test_the_tutorial_layout_does_not_follow_a_symlink_out(tmp_path, clean_seq):
    import shutil

    from dataset_forge.dataset.loader import DatasetError, Sequence

    seq = tmp_path / "seq"
    shutil.copytree(clean_seq, seq)
    tf = json.loads((seq / layout.TRANSFORMS).read_text())
    for fr in tf["frames"]:
        for k in [k for k in fr if k.endswith("_file_path") and k != "file_path"]:
            del fr[k]
    tf.pop("conventions", None)
    tf.pop("dataset_forge_version", None)
    (seq / layout.TRANSFORMS).write_text(json.dumps(tf))
    outside = tmp_path / "outside"
    shutil.move(seq / "depths", outside)
    (seq / "depths").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DatasetError, match="points outside the sequence folder"):
        Sequence(seq)
