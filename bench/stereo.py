# SPDX-License-Identifier: GPL-3.0-or-later
"""The cost of the right view: a stereo pair against the mono sequence, interleaved rounds.

    .venv/bin/python bench/stereo.py [--size 128] [--samples 4] [--frames 8] [--rounds 3]

Builds a small scene (a tilted wall, a cube, a moving camera), then each round renders it once
mono and once with ``stereo_baseline`` (every ground truth on, debug previews off) through
``dataset_forge.render_animation`` (the real worker process), in an order that alternates between
rounds so that load from elsewhere hits both alike. Prints the wall and CPU seconds of each and
the stereo/mono ratios per round and their median. Never passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENE = """
import math, sys, bpy, bmesh
bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, {frames} + 1
scene.render.engine = "CYCLES"
scene.world = bpy.data.worlds.new("World")
sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
sun.rotation_euler = (0.6, 0.2, 0.3)
scene.collection.objects.link(sun)
cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
scene.collection.objects.link(cam)
scene.camera = cam
for f, y in ((1, 0.0), ({frames} + 1, 0.1 * {frames})):
    cam.location = (0.0, y, 0.0)
    cam.keyframe_insert("location", frame=f)
def mesh(name, kind, loc, size):
    me = bpy.data.meshes.new(name)
    bm = bmesh.new()
    if kind == "cube":
        bmesh.ops.create_cube(bm, size=size)
    else:
        bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=size / 2)
    bm.to_mesh(me)
    bm.free()
    ob = bpy.data.objects.new(name, me)
    ob.location = loc
    scene.collection.objects.link(ob)
    return ob
mesh("Wall", "plane", (0.5, 0.0, -8.0), 6.0).rotation_euler = (0.0, math.radians(30), 0.0)
mesh("Box", "cube", (0.3, 0.0, -5.0), 1.0)
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1], compress=False)
import os; os._exit(0)
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=float, default=0.5)
    args = ap.parse_args()
    import dataset_forge

    work = Path(tempfile.mkdtemp(prefix="df-bench-stereo-"))
    try:
        blend = work / "stereo.blend"
        subprocess.run([sys.executable, "-c", SCENE.format(frames=args.frames), str(blend)],
                       check=True, capture_output=True)
        opts = dict(width=args.size, height=int(args.size * 0.75), max_samples=args.samples,
                    adaptive_threshold=0.0, use_denoising=False, depths=True, normals=True,
                    flows=True, segmentations=True, debug=False, allow_skips=False)
        runs: dict[str, list[tuple[float, float]]] = {"mono": [], "stereo": []}
        for r in range(args.rounds):
            order = ["mono", "stereo"] if r % 2 == 0 else ["stereo", "mono"]
            for name in order:
                out = work / f"{name}-{r}"
                t0, c0 = time.perf_counter(), children_cpu()
                s = dataset_forge.render_animation(
                    blend, out, frame_start=1, frame_end=args.frames,
                    stereo_baseline=args.baseline if name == "stereo" else 0.0, **opts)
                assert s["ok"], json.dumps(s)[:2000]
                runs[name].append((time.perf_counter() - t0, children_cpu() - c0))
                shutil.rmtree(out)
        walls = [s[0] / m[0] for s, m in zip(runs["stereo"], runs["mono"])]
        cpus = [s[1] / m[1] for s, m in zip(runs["stereo"], runs["mono"])]
        print(f"{args.frames} frames {args.size}x{int(args.size * 0.75)} px, {args.samples} samples, "
              "depth+normals+flow+segmentation, debug off")
        for name, rs in runs.items():
            print(f"{name:6s} wall s {[round(w, 2) for w, _ in rs]}  CPU s {[round(c, 2) for _, c in rs]}")
        print(f"stereo/mono wall per round {[round(x, 3) for x in walls]} median "
              f"{statistics.median(walls):.3f}")
        print(f"stereo/mono CPU  per round {[round(x, 3) for x in cpus]} median "
              f"{statistics.median(cpus):.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
