# SPDX-License-Identifier: GPL-3.0-or-later
"""``visionsim-npy``: visionsim's NPY dataset (``visionsim.dataset.NpyDataset``) per sequence::

    DST[/SEQ]/frames.npy        (N, H, W, 3) uint8 RGB, sequence order
    DST[/SEQ]/depths.npy        (N, H, W) float32 planar depth (0 = no surface), with depth
    DST[/SEQ]/transforms.json   fl_x, fl_y, cx, cy, w, h, c = 3, file_path = "frames.npy",
                                depth_file_path = "depths.npy", frames = [{transform_matrix}]

This is the schema of visionsim 0.1's ``NPY_SCHEMA`` (what ``imgs-to-npy`` writes): no per-frame
``file_path``; ``transform_matrix`` camera-to-world in Blender camera axes as in the source.
Per-frame intrinsics are repeated on a frame only where they differ from the first frame's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..documents.base import JSONObject
from .common import SeqJob, SequenceResult, npy_memmap, remove_if_exists, rgb8, rgb8_is_exact, write_json

FRAMES, DEPTHS = "frames.npy", "depths.npy"


def export_sequence(job: SeqJob, dst: Path, tick, ctx: JSONObject) -> SequenceResult:
    seq = job.sequence
    out = dst / job.rel if job.rel else dst
    out.mkdir(parents=True, exist_ok=True)
    n, h, w = len(seq), seq.height, seq.width
    has_depth = "depth" in seq.kinds
    remove_if_exists(out / DEPTHS)
    frames = npy_memmap(out / FRAMES, np.uint8, (n, h, w, 3))
    depths = npy_memmap(out / DEPTHS, np.float32, (n, h, w)) if has_depth else None
    K0 = seq.intrinsics_of(0)
    metas = []
    for i, fr in enumerate(seq):
        frames[i] = rgb8(fr)
        if depths is not None:
            depths[i] = fr.planar_depth
        m: JSONObject = {"transform_matrix": fr.pose.tolist()}
        K = fr.K
        if not np.array_equal(K, K0):
            m.update(fl_x=float(K[0, 0]), fl_y=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]))
        metas.append(m)
        fr.clear()
        tick()
    frames.flush()
    del frames
    if depths is not None:
        depths.flush()
        del depths
    doc: JSONObject = {"fl_x": float(K0[0, 0]), "fl_y": float(K0[1, 1]), "cx": float(K0[0, 2]),
                           "cy": float(K0[1, 2]), "w": w, "h": h, "c": 3, "file_path": FRAMES,
                           "frames": metas}
    if has_depth:
        doc["depth_file_path"] = DEPTHS
    for k in ("frame_rate", "camera_model", "unit_scale_m"):
        if k in seq.meta:
            doc[k] = seq.meta[k]
    write_json(out / "transforms.json", doc, indent=2)
    notes = [] if rgb8_is_exact(seq) else ["frames are not 8-bit: written as 8-bit sRGB"]
    return {"summary": {"frames": n, "depth": has_depth}, "notes": notes}
