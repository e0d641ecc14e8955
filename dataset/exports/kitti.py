# SPDX-License-Identifier: GPL-3.0-or-later
"""``kitti-flow``: KITTI 2015 flow, read as is by ``torchvision.datasets.KittiFlow(DST)``::

    DST/KittiFlow/training/image_2/NNNNNN_10.png    frame t (8-bit RGB)
    DST/KittiFlow/training/image_2/NNNNNN_11.png    frame t + 1
    DST/KittiFlow/training/flow_occ/NNNNNN_10.png   forward flow of t: 16-bit RGB, u, v * 64 + 2^15,
                                                    B = 1 where valid
    DST/KittiFlow/training/pairs.json               NNNNNN -> sequence, frame numbers t and t + 1

One sample per pair of neighbouring frames, numbered from 0 over all sequences in order. Flow is
invalid where the frame has no surface and where it exceeds KITTI's range (±512 px); pairs whose
flow is flagged invalid in transforms.json (or that are not neighbours on the timeline) are left
out and named in the summary. Values are quantised to 1/64 px.
"""

from __future__ import annotations

from pathlib import Path

from ..documents.base import JSONObject
from .common import (
    SeqJob,
    SequenceResult,
    forward_flow,
    need,
    png_bytes,
    rgb8,
    rgb8_is_exact,
    write_bytes,
    write_json,
)
from .flowio import KITTI_MAX, kitti_flow_rgb16, png16_bytes

ROOT = Path("KittiFlow") / "training"


def export_sequence(job: SeqJob, dst: Path, tick, ctx: JSONObject) -> SequenceResult:
    seq = job.sequence
    need(seq, "flow", "kitti-flow")
    root = dst / ROOT
    pairs = ctx.setdefault("pairs", [])
    notes: list[str] = []
    written = clipped = 0
    png = png_bytes(rgb8(seq[0])) if len(seq) else b""
    for i in range(len(seq) - 1):
        nxt = seq[i + 1]
        png_next = png_bytes(rgb8(nxt))
        flow, valid, why = forward_flow(seq, i)
        if why:
            notes.append(f"{why}; pair left out")
        else:
            k = len(pairs)
            enc, big = kitti_flow_rgb16(flow, valid)
            clipped += big
            write_bytes(root / "image_2" / f"{k:06d}_10.png", png)
            write_bytes(root / "image_2" / f"{k:06d}_11.png", png_next)
            write_bytes(root / "flow_occ" / f"{k:06d}_10.png", png16_bytes(enc))
            pairs.append({"index": k, "sequence": job.rel or job.name,
                          "frame_10": seq.frame_numbers[i], "frame_11": seq.frame_numbers[i + 1]})
            written += 1
        png = png_next
        tick()
    if len(seq):
        tick()
    if clipped:
        notes.append(f"{clipped} pixel(s) with flow beyond ±{KITTI_MAX:.0f} px marked invalid")
    if not rgb8_is_exact(seq):
        notes.append("frames are not 8-bit: written as 8-bit sRGB PNG")
    return {"summary": {"pairs": written, "out_of_range_px": clipped}, "notes": notes}


def finish(jobs: list[SeqJob], dst: Path, ctx: JSONObject) -> None:
    write_json(dst / ROOT / "pairs.json", ctx.get("pairs", []))
