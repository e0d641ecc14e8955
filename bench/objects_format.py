# SPDX-License-Identifier: GPL-3.0-or-later
"""Size and write/read time of one frame's object records at N instances, per candidate format
(interleaved rounds, same process). Prints numbers; asserts nothing.

    .venv/bin/python bench/objects_format.py [--n 5000 50000] [--rounds 3] [--sequence 1.0 0.3]

Synthetic records: instances of 20 meshes (shared object-space boxes) scattered with random
rotation, scale and position; amodal boxes random floats; visible boxes small integers.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from dataset_forge.dataset.documents.objects import FrameRecord  # noqa: E402


def synthetic(n: int, seed: int = 0) -> FrameRecord:
    """``n`` instances (the same ids for every seed); poses and boxes from ``seed``."""
    ids = np.sort(np.random.default_rng(0).choice(2**31 - 2, n, replace=False) + 1).astype(np.uint32)
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    R = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                  2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                  2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).reshape(n, 3, 3)
    m = np.zeros((n, 4, 4))
    m[:, :3, :3] = R * rng.uniform(0.5, 2, (n, 1, 1))
    m[:, :3, 3] = rng.uniform(-50, 50, (n, 3))
    m[:, 3, 3] = 1
    mesh = rng.integers(0, 20, n)
    half = rng.uniform(0.1, 1, (20, 3))[mesh]
    xy = rng.uniform(0, 1800, (n, 2))
    return FrameRecord.make(1, "Camera", instance_id=ids, object_to_world=m, box_lo=-half, box_hi=half,
                            bbox_obj=np.c_[xy, rng.uniform(1, 80, (n, 2))],
                            bbox_visib=np.c_[xy.astype(int), rng.integers(1, 60, (n, 2))],
                            px_count_visib=rng.integers(1, 2000, n))


def jsonl(rec: FrameRecord) -> bytes:
    out = io.StringIO()
    for i in range(len(rec)):
        out.write(json.dumps({"instance_id": int(rec.instance_id[i]),
                              "object_to_world": rec.object_to_world[i].tolist(),
                              "box_lo": rec.box_lo[i].tolist(), "box_hi": rec.box_hi[i].tolist(),
                              "bbox_obj": rec.bbox_obj[i].tolist(),
                              "bbox_visib": rec.bbox_visib[i].tolist(),
                              "px_count_visib": int(rec.px_count_visib[i])}, separators=(",", ":")))
        out.write("\n")
    return out.getvalue().encode()


def sequence(n: int, frames: int, visible: float, tmp: Path) -> None:
    """A sequence of ``frames`` records of ``n`` instances, a fraction ``visible`` of them with
    pixels, written as the worker writes them (default mode), and the table at the end."""
    from dataset_forge.dataset.documents.objects_files import ObjectsSource, SequenceWriter

    seq = tmp / f"seq_{n}_{visible}"
    w = SequenceWriter(seq, "visible")
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    for f in range(1, frames + 1):
        r = synthetic(n, seed=f)
        px = np.where(rng.random(n) < visible, r.px_count_visib, 0)
        w.frame(FrameRecord.make(f, "Camera", **{**{k: getattr(r, k) for k in (
            "instance_id", "object_to_world", "box_lo", "box_hi", "bbox_obj", "bbox_visib")},
            "px_count_visib": px}))
    t1 = time.perf_counter()
    ids = synthetic(n).instance_id
    rows = {int(i): {"instance_id": int(i), "object_id": 1 + int(i) % 20, "object": f"Rock.{int(i) % 20:03d}",
                     "instancer_chain": ["Scatter"], "persistent_id": [int(i) % 100000],
                     "category": "rock", "deforming": False} for i in ids}
    t2 = time.perf_counter()
    w.finish(rows)
    t3 = time.perf_counter()
    src = ObjectsSource(seq, seq / "objects.json")
    for f in src.doc.frames:
        rec = src.record(f)
        rec.bbox_3d(), rec.object_to_camera(np.eye(4))
    t4 = time.perf_counter()
    recs = sum(p.stat().st_size for p in (seq / "objects").iterdir())
    table = (seq / "objects.json").stat().st_size
    print(f"sequence N={n} x {frames} frames, {visible:.0%} visible: records {recs / 1e6:.1f} MB, "
          f"objects.json {table / 1e6:.2f} MB ({len(src.rows)} rows), total {(recs + table) / 1e6:.1f} MB; "
          f"write {t1 - t0:.2f} s, table {t3 - t2:.2f} s, read + derive all frames {t4 - t3:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[5000, 50000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sequence", type=float, nargs="*", default=None, metavar="VISIBLE",
                    help="also write 6-frame sequences with these visible fractions")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    for n in a.n:
        for v in a.sequence or []:
            sequence(n, 6, v, tmp)
    if a.sequence:
        return
    fmts = {
        "npz": (lambda r, p: np.savez(p, **r.arrays()), lambda p: dict(np.load(p))),
        "npz_compressed": (lambda r, p: r.write(p), lambda p: FrameRecord.read(p)),
        "jsonl": (lambda r, p: p.write_bytes(jsonl(r)),
                  lambda p: [json.loads(line) for line in p.read_text().splitlines()]),
    }
    for n in a.n:
        rec = synthetic(n)
        t = {k: [0.0, 0.0] for k in fmts}
        size = {}
        for _ in range(a.rounds):
            for k, (wr, rd) in fmts.items():
                p = tmp / f"{k}_{n}.{'jsonl' if k == 'jsonl' else 'npz'}"
                t0 = time.perf_counter()
                wr(rec, p)
                t1 = time.perf_counter()
                rd(p)
                t2 = time.perf_counter()
                t[k][0] += t1 - t0
                t[k][1] += t2 - t1
                size[k] = p.stat().st_size
        for k in fmts:
            print(f"N={n:6d} {k:15s} {size[k] / 1e6:7.2f} MB/frame  {size[k] / n:6.1f} B/instance  "
                  f"write {t[k][0] / a.rounds * 1e3:7.1f} ms  read {t[k][1] / a.rounds * 1e3:7.1f} ms  "
                  f"6 frames {6 * size[k] / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()
