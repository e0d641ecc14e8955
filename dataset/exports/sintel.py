# SPDX-License-Identifier: GPL-3.0-or-later
"""``sintel``: the MPI-Sintel training layout, read as is by ``torchvision.datasets.Sintel(DST)``::

    DST/Sintel/training/clean/SCENE/frame_0001.png     every frame, 8-bit RGB
    DST/Sintel/training/flow/SCENE/frame_0001.flo      forward flow of frames 1..N-1 (Middlebury)
    DST/Sintel/training/invalid/SCENE/frame_0001.png   255 where that flow is invalid, else 0
    DST/Sintel/training/depth/SCENE/frame_0001.dpt     planar depth (0 = no surface), with depth
    DST/Sintel/training/frames.json                    SCENE -> source sequence and frame numbers

``SCENE`` is the sequence folder's name (a datasets folder: its path below it, ``/`` -> ``__``);
files are numbered 1..N in sequence order (4 digits, more when N > 9999). Invalid flow (no
surface, a pair flagged invalid in transforms.json, non-neighbouring frames) is written as
Middlebury's unknown value ``1e10`` too, so ``|flow| < 1000`` masks (RAFT, torchvision's
references) drop it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
from .flowio import dpt_bytes, flo_bytes

ROOT = Path("Sintel") / "training"


def export_sequence(job: SeqJob, dst: Path, tick, ctx: JSONObject) -> SequenceResult:
    seq = job.sequence
    need(seq, "flow", "sintel")
    root = dst / ROOT
    n = len(seq)
    digits = max(4, len(str(n)))
    notes: list[str] = []
    invalid_px = 0
    has_depth = "depth" in seq.kinds
    for i in range(n):
        fr = seq[i]
        stem = f"frame_{i + 1:0{digits}d}"
        write_bytes(root / "clean" / job.name / f"{stem}.png", png_bytes(rgb8(fr)))
        if has_depth:
            write_bytes(root / "depth" / job.name / f"{stem}.dpt", dpt_bytes(fr.planar_depth))
        if i + 1 < n:
            flow, valid, why = forward_flow(seq, i)
            if why:
                notes.append(f"{why}; pair {stem} written all-invalid")
            invalid_px += int((~valid).sum())
            write_bytes(root / "flow" / job.name / f"{stem}.flo", flo_bytes(flow, valid))
            write_bytes(root / "invalid" / job.name / f"{stem}.png",
                        png_bytes(np.where(valid, 0, 255).astype(np.uint8)))
        fr.clear()
        tick()
    if not rgb8_is_exact(seq):
        notes.append("frames are not 8-bit: written as 8-bit sRGB PNG")
    return {"summary": {"scene": job.name, "frames": n, "flows": max(0, n - 1),
                        "frame_numbers": list(seq.frame_numbers), "invalid_flow_px": invalid_px,
                        "depth": has_depth},
            "notes": notes}


def finish(jobs: list[SeqJob], dst: Path, ctx: JSONObject) -> None:
    write_json(dst / ROOT / "frames.json", {
        j.name: {"sequence": j.rel or j.sequence.path.resolve().name,
                 "frame_numbers": list(j.sequence.frame_numbers)} for j in jobs})
