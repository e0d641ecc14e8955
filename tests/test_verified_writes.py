# SPDX-License-Identifier: GPL-3.0-or-later
"""Verified writes without Blender: every truncation of a PNG, JPEG or EXR is caught, a write
error is one line naming the path and the cause, metadata gets the images' permissions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from dataset_forge.dataset import verify
from dataset_forge.dataset.exr import write_channels
from dataset_forge.dataset.journal import Journal
from dataset_forge.dataset.transforms import write_json_atomic
from PIL import Image

RNG = np.random.default_rng(7)


def _png(path: Path) -> Path:
    Image.fromarray(RNG.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


def _jpeg(path: Path) -> Path:
    Image.fromarray(RNG.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def _exr(path: Path, compression: str = "ZIP", channels=("V",)) -> Path:
    write_channels(path, {c: RNG.random((33, 40), dtype=np.float32) for c in channels},
                   compression=compression)
    return path


def _tiled_exr(path: Path) -> Path:
    t = OpenEXR.TileDescription()
    t.xSize, t.ySize, t.mode = 16, 16, OpenEXR.ONE_LEVEL
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.tiledimage, "tiles": t},
                 {"R": RNG.random((33, 40), dtype=np.float32)}).write(str(path))
    return path


def _multipart_exr(path: Path) -> Path:
    parts = [OpenEXR.Part({"compression": getattr(OpenEXR, f"{c}_COMPRESSION"),
                           "type": OpenEXR.scanlineimage},
                          {ch: RNG.random((33, 40), dtype=np.float32)}, name=ch)
             for c, ch in (("ZIP", "R"), ("PIZ", "G"))]
    OpenEXR.File(parts).write(str(path))
    return path


def _cuts(size: int) -> list[int]:
    """Truncation lengths: every byte of the first 400 and the last 80, and a stride between."""
    return sorted({*range(0, min(size, 400)), *range(max(0, size - 80), size),
                   *range(0, size, 37)})


MAKERS = {
    "png": lambda d: _png(d / "a.png"),
    "jpeg": lambda d: _jpeg(d / "a.jpg"),
    **{f"exr-{c}": (lambda d, c=c: _exr(d / f"a_{c}.exr", c, ("R", "G", "B", "A")))
       for c in ("NO", "RLE", "ZIPS", "ZIP", "PIZ")},
    "exr-float-one-channel": lambda d: _exr(d / "v.exr"),
    "exr-tiled": lambda d: _tiled_exr(d / "t.exr"),
    "exr-multipart": lambda d: _multipart_exr(d / "m.exr"),
}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_every_truncation_is_caught_and_the_whole_file_passes(tmp_path, kind):
    path = MAKERS[kind](tmp_path)
    data = path.read_bytes()
    assert verify.check_file(path) == len(data)
    cut = path.with_name("cut" + path.suffix)
    cut.write_bytes(data)
    for n in reversed(_cuts(len(data))):  # longest first: each cut is a truncation of the last
        os.truncate(cut, n)
        assert cut.stat().st_size == n
        with pytest.raises(verify.IncompleteFile):
            verify.check_file(cut)


def test_an_exr_whose_offset_table_was_never_filled_is_incomplete(tmp_path):
    # OpenEXR writes the offset table last: a writer stopped before that leaves zeros.
    path = _exr(tmp_path / "d.exr", "ZIP")
    data = bytearray(path.read_bytes())
    at = _table_start(path)
    n = 3  # 33 rows, 16 rows per ZIP chunk
    data[at + 8 * (n - 1): at + 8 * n] = b"\x00" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(verify.IncompleteFile, match="never written"):
        verify.check_file(path)


def _table_start(path: Path) -> int:
    with open(path, "rb") as fh:
        fh.seek(8)
        verify.exr_header(fh, str(path), False)
        return fh.tell()


def test_other_formats_and_wrong_signatures(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    assert verify.check_file(tmp_path / "a.json") == 2
    (tmp_path / "e.json").write_text("")
    with pytest.raises(verify.IncompleteFile, match="empty"):
        verify.check_file(tmp_path / "e.json")
    (tmp_path / "x.png").write_bytes(_jpeg(tmp_path / "j.jpg").read_bytes())
    with pytest.raises(verify.IncompleteFile, match="not a PNG"):
        verify.check_file(tmp_path / "x.png")
    (tmp_path / "x.exr").write_bytes(_png(tmp_path / "p.png").read_bytes())
    with pytest.raises(verify.IncompleteFile, match="not an OpenEXR"):
        verify.check_file(tmp_path / "x.exr")


def test_the_journal_vouches_only_for_complete_files_and_removes_a_torn_one(tmp_path):
    seq = tmp_path / "seq"
    (seq / "frames").mkdir(parents=True)
    good = _png(seq / "frames" / "frame_000001.png")
    j = Journal(seq)
    j.mark_done(1, ["frames/frame_000001.png"])
    torn = seq / "frames" / "frame_000002.png"
    torn.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(verify.WriteError) as err:
        j.mark_done(2, ["frames/frame_000001.png", "frames/frame_000002.png"])
    msg = str(err.value)
    assert msg.startswith(f"cannot write {torn}: ") and "IEND" in msg and "\n" not in msg
    assert not torn.exists()
    with pytest.raises(verify.WriteError, match="not written"):
        j.mark_done(3, ["frames/frame_000003.png"])
    assert Journal(seq).done_frames == {1}


def _run(code: str, limit: int | None = None, umask: int | None = None) -> str:
    """Run ``code`` in a child process under a file-size limit and/or umask (they stay there);
    returns its stdout. A umask needs a fresh Python (our package importable): the documents read
    it once per process; a limit alone runs in a forked child (no interpreter start)."""
    if umask is None:
        from conftest import run_forked

        rc, out, err = run_forked(code, limit=limit)
        assert rc == 0, err
        return out

    def pre():
        import resource

        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        os.umask(umask)

    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], preexec_fn=pre,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_file_size_limit_is_named_as_the_cause(tmp_path):
    out = _run(f"""
        import io
        import numpy as np
        from PIL import Image
        from dataset_forge.dataset import verify
        from dataset_forge.dataset.transforms import write_json_atomic, write_text_atomic
        from dataset_forge.dataset.journal import Journal
        seq = {str(tmp_path)!r}
        img = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        try:  # a renderer that ignores its write error (as Blender does) leaves a torn file
            with open(seq + "/big.png", "wb") as fh:
                fh.write(buf.getvalue())
        except OSError:
            pass
        try:
            Journal(seq).mark_done(1, ["big.png"])
        except verify.WriteError as e:
            print("JOURNAL", e)
        try:
            write_json_atomic(seq + "/transforms.json", {{"x": "y" * 20000}})
        except verify.WriteError as e:
            print("JSON", e)
        try:
            write_text_atomic(seq + "/validation.txt", "z" * 20000)
        except verify.WriteError as e:
            print("TEXT", e)
        """, limit=8000)
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert lines["JOURNAL"].startswith(f"cannot write {tmp_path / 'big.png'}: file too large (the "
                                       "file-size limit of 8000 bytes")
    assert lines["JSON"].startswith(f"cannot write {tmp_path / 'transforms.json'}: file too large")
    assert "rerun the same command" in lines["JSON"]
    assert lines["TEXT"].startswith(f"cannot write {tmp_path / 'validation.txt'}: file too large")
    assert not (tmp_path / "big.png").exists()  # the torn file is gone
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "transforms.json").exists()
    assert not (tmp_path / "validation.txt").exists()


def test_metadata_gets_the_images_permissions(tmp_path):
    out = _run(f"""
        import os
        from PIL import Image
        from dataset_forge.dataset.transforms import write_json_atomic
        d = {str(tmp_path)!r}
        Image.new("RGB", (2, 2)).save(d + "/img.png")
        write_json_atomic(d + "/meta.json", {{"a": 1}})
        print(oct(os.stat(d + "/img.png").st_mode & 0o777), oct(os.stat(d + "/meta.json").st_mode & 0o777))
        """, umask=0o022)
    assert out.split() == ["0o644", "0o644"]
    out = _run(f"""
        import os
        from dataset_forge.dataset.transforms import write_json_atomic
        write_json_atomic({str(tmp_path / 'm2.json')!r}, [])
        print(oct(os.stat({str(tmp_path / 'm2.json')!r}).st_mode & 0o777))
        """, umask=0o027)
    assert out.split() == ["0o640"]
    write_json_atomic(tmp_path / "same.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "same.json").read_text()) == {"k": [1, 2]}


def test_the_background_journal_commits_in_order_and_reports_its_failure(tmp_path):
    seq = tmp_path / "seq"
    (seq / "frames").mkdir(parents=True)
    j = Journal(seq, background=True)
    said: list[int] = []
    for f in range(1, 6):
        _png(seq / "frames" / f"frame_{f:06d}.png")
        j.mark_done(f, [f"frames/frame_{f:06d}.png"], then=lambda f=f: said.append(f))
    j.flush()
    assert said == [1, 2, 3, 4, 5]  # reported only once committed, in order
    assert [json.loads(x)["frame"] for x in (seq / ".dataset_forge_journal.jsonl").read_text()
            .splitlines()] == [1, 2, 3, 4, 5]
    j.close()
    # A commit that fails (here: the journal cannot be opened) is raised by the next call into
    # the journal (mark_done of a later frame, or flush, whichever comes after the writer thread
    # met the failure), and nothing after it is vouched for.
    bad = tmp_path / "bad"
    (bad / "frames").mkdir(parents=True)
    j = Journal(bad, background=True)
    (bad / ".dataset_forge_journal.jsonl").mkdir()
    with pytest.raises(verify.WriteError, match=r"cannot write .*\.dataset_forge_journal\.jsonl: "):
        for f in (1, 2):
            _png(bad / "frames" / f"frame_{f:06d}.png")
            j.mark_done(f, [f"frames/frame_{f:06d}.png"], then=lambda f=f: said.append(10 + f))
        j.flush()
    j.close()
    assert said == [1, 2, 3, 4, 5] and j.done_frames == set()
