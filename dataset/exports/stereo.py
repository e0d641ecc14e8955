# SPDX-License-Identifier: GPL-3.0-or-later
"""``kitti-stereo``: stereo pairs in the KITTI 2015 stereo layout (devkit format)::

    DST/KittiStereo/training/image_2/NNNNNN_10.png     left frame (8-bit RGB)
    DST/KittiStereo/training/image_3/NNNNNN_10.png     right frame
    DST/KittiStereo/training/disp_occ_0/NNNNNN_10.png  left disparity: 16-bit grey PNG,
                                                       disparity = value / 256 px, 0 = invalid
    DST/KittiStereo/training/frames.json               NNNNNN -> sequence, frame, fx, baseline

One sample per stereo frame, numbered from 0 over all sequences in order. Disparity is invalid
where the left view has no surface and beyond KITTI's range (>= 256 px, named in the summary);
values are rounded to 1/256 px (a valid disparity below 1/512 px is written as 1/256, never as
0). KITTI keeps no right-view disparity: read it from the sequence (``Sequence.right``). A
sequence without a stereo pair is refused, naming the option that renders one.

``sceneflow-stereo`` (module :mod:`.sceneflow`): both views and both disparities in the
FlyingThings3D (SceneFlow) layout, disparity as PFM (float32, exact)::

    DST/FlyingThings3D/frames_cleanpass/TRAIN/A/SEQ/{left,right}/NNNN.png   8-bit RGB
    DST/FlyingThings3D/disparity/TRAIN/A/SEQ/{left,right}/NNNN.pfm          disparity, px
    DST/FlyingThings3D/frames.json                 SEQ/NNNN -> sequence, frame, fx, baseline

``NNNN`` is the frame's position in its sequence (0000, 0001 ...), ``SEQ`` the flat sequence
name. PFM: ``Pf`` (one channel), ``W H``, scale ``-1.0`` (little-endian), rows bottom to top.
SceneFlow's disparity is dense: our 0 where a view has no surface is the disparity of a point
at infinity, which is what such a pixel sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..documents.base import JSONObject
from ..png import png_bytes as encode_png
from .common import (
    ExportError,
    SeqJob,
    SequenceResult,
    png_bytes,
    rgb8,
    rgb8_is_exact,
    write_bytes,
    write_json,
)

ROOT = Path("KittiStereo") / "training"
SCALE = 256.0           # KITTI: disparity = uint16 / 256
MAX_DISPARITY = 65535 / SCALE


def kitti_disparity_u16(disparity: np.ndarray) -> tuple[np.ndarray, int]:
    """``(H, W)`` uint16 KITTI disparity (``round(d * 256)``, 0 = invalid) from disparity in
    pixels (0 or non-finite = invalid) and the number of valid pixels dropped as out of range."""
    d = np.asarray(disparity, np.float64)
    valid = np.isfinite(d) & (d > 0)
    big = valid & (np.rint(d * SCALE) > 65535)
    ok = valid & ~big
    out = np.zeros(d.shape, np.uint16)
    out[ok] = np.maximum(1, np.rint(d[ok] * SCALE)).astype(np.uint16)
    return out, int(big.sum())


def png_grey16_bytes(image: np.ndarray) -> bytes:
    """``(H, W)`` uint16 as a 16-bit greyscale PNG (filter 0, zlib level 6, no ancillary chunks)."""
    return encode_png(np.asarray(image, np.uint16))


def export_sequence(job: SeqJob, dst: Path, tick, ctx: JSONObject) -> SequenceResult:
    seq = job.sequence
    doc, right = _pair(seq)
    root = dst / ROOT
    frames = ctx.setdefault("frames", [])
    notes: list[str] = []
    clipped = 0
    for i in range(len(seq)):
        k = len(frames)
        left, rv = seq[i], right[i]
        disp, big = kitti_disparity_u16(left.disparity)
        clipped += big
        write_bytes(root / "image_2" / f"{k:06d}_10.png", png_bytes(rgb8(left)))
        write_bytes(root / "image_3" / f"{k:06d}_10.png", png_bytes(rgb8(rv)))
        write_bytes(root / "disp_occ_0" / f"{k:06d}_10.png", png_grey16_bytes(disp))
        frames.append({"index": k, "sequence": job.rel or job.name, "frame": seq.frame_numbers[i],
                       "fx": float(left.K[0, 0]), "baseline": doc.baseline,
                       "baseline_m": doc.baseline_m})
        left.clear()
        rv.clear()
        tick()
    if clipped:
        notes.append(f"{clipped} pixel(s) with disparity beyond {MAX_DISPARITY:.0f} px marked invalid")
    if not rgb8_is_exact(seq):
        notes.append("frames are not 8-bit: written as 8-bit sRGB PNG")
    return {"summary": {"frames": len(seq), "out_of_range_px": clipped}, "notes": notes}


def finish(jobs: list[SeqJob], dst: Path, ctx: JSONObject) -> None:
    write_json(dst / ROOT / "frames.json", ctx.get("frames", []))


# -- sceneflow-stereo ----------------------------------------------------------------------------
SCENEFLOW = Path("FlyingThings3D")


def pfm_bytes(image: np.ndarray) -> bytes:
    """``(H, W)`` float32 as a one-channel PFM: ``Pf``, ``W H``, ``-1.0`` (little-endian), rows
    from the bottom row up."""
    a = np.ascontiguousarray(np.asarray(image, "<f4")[::-1])
    h, w = a.shape
    return f"Pf\n{w} {h}\n-1.0\n".encode("ascii") + a.tobytes()


def _pair(seq):
    doc, right = seq.stereo, seq.right
    if doc is None or right is None:
        raise ExportError(f"{seq.path}: not a stereo pair (no stereo.json); this export needs one "
                          "(render with --stereo-baseline B, B > 0)")
    if right.frame_numbers != seq.frame_numbers:
        raise ExportError(f"{right.path}: the right view's frames are not the left view's; render "
                          "the sequence again (validate names what differs)")
    return doc, right


def export_sceneflow_sequence(job: SeqJob, dst: Path, tick, ctx: JSONObject) -> SequenceResult:
    seq = job.sequence
    doc, right = _pair(seq)
    root = dst / SCENEFLOW
    frames = ctx.setdefault("frames", [])
    for i in range(len(seq)):
        name = f"{i:04d}"
        for view, fr in (("left", seq[i]), ("right", right[i])):
            write_bytes(root / "frames_cleanpass" / "TRAIN" / "A" / job.name / view / f"{name}.png",
                        png_bytes(rgb8(fr)))
            write_bytes(root / "disparity" / "TRAIN" / "A" / job.name / view / f"{name}.pfm",
                        pfm_bytes(fr.disparity))
            fr.clear()
        frames.append({"name": f"{job.name}/{name}", "sequence": job.rel or job.name,
                       "frame": seq.frame_numbers[i], "fx": float(seq[i].K[0, 0]),
                       "baseline": doc.baseline, "baseline_m": doc.baseline_m})
        tick()
    notes = [] if rgb8_is_exact(seq) else ["frames are not 8-bit: written as 8-bit sRGB PNG"]
    return {"summary": {"frames": len(seq)}, "notes": notes}


def finish_sceneflow(jobs: list[SeqJob], dst: Path, ctx: JSONObject) -> None:
    write_json(dst / SCENEFLOW / "frames.json", ctx.get("frames", []))
