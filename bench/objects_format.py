# SPDX-License-Identifier: GPL-3.0-or-later
"""Size and write/read time of one frame's object records at N instances, per candidate format
(interleaved rounds, same process). Prints numbers; asserts nothing.

    .venv/bin/python bench/objects_format.py [--n 5000 50000] [--rounds 3]

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
    ids = np.sort(rng.choice(2**31 - 2, n, replace=False) + 1).astype(np.uint32)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[5000, 50000])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
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
