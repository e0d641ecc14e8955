# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a worker's per-frame Python time goes: the real worker (``run_job``) under cProfile.

    .venv/bin/python bench/profile_worker.py [--size 64] [--frames 48] [--samples 1] [--debug]

Runs in this process (it imports ``bpy``): one sequence of tests/scenes.py's ``basic`` (range
extended by bench/floor.py) with all ground truth, then prints the time per frame spent outside
``bpy.ops.render.render`` and the functions that make it up (ms per rendered frame).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Functions of the frame loop worth naming (file suffix, function name).
WATCH = [
    ("render_passes/sequence.py", "render_sequence"),
    ("", "<method 'frame_set' of 'bpy_struct' objects>"),
    ("dataset/camera.py", "intrinsics"),
    ("render_passes/scene_setup.py", "camera_params"),
    ("dataset/camera.py", "orthonormal_pose"),
    ("render_passes/sequence.py", "_matrix"),
    ("render_passes/passes.py", "prepare_frame"),
    ("render_passes/passes.py", "frame_files"),
    ("dataset/journal.py", "mark_done"),
    ("", "<built-in method posix.fsync>"),
    ("wire/events.py", "emit"),
    ("render_passes/commits.py", "_rss_mib"),
    ("dataset/transforms.py", "build_transforms"),
    ("dataset/transforms.py", "write_json_atomic"),
    ("render_passes/passes.py", "__init__"),
    ("render_passes/passes.py", "teardown"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--debug", action="store_true", help="also write the previews")
    ap.add_argument("--work", default="")
    a = ap.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", os.path.join(tempfile.gettempdir(),
                                                                 "df-bench-user"))
    import run as bench

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="df-bench-prof-"))
    blend = bench.prepare_scene(work, a.frames)
    df = bench._import_package()
    from dataset_forge.render_passes import worker
    from dataset_forge.settings import Settings
    from dataset_forge.wire.events import stdout_emitter

    w = {"size": a.size, "samples": a.samples, "frames": a.frames}
    settings = Settings.from_dict(bench._options(w, a.debug))
    import shutil

    shutil.rmtree(work / "out", ignore_errors=True)  # else the journal skips every frame
    job = {"blend": str(blend), "scene_name": "basic", "settings": settings.to_dict(),
           "frame_budget": 0, "gpu_index": None,
           "sequences": [{"id": "prof", "out_dir": str(work / "out"), "frame_start": 1,
                          "frame_end": a.frames}]}
    sink = open(os.devnull, "w", encoding="utf-8")
    emit = stdout_emitter(sink)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    rc = worker.run_job(job, emit)
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    rows = {}
    render = 0.0
    for (file, _line, func), (_cc, nc, _tt, ct, callers) in st.stats.items():
        if func == "__call__" and file.replace("\\", "/").endswith("bpy/ops.py"):
            # Only the operator calls made by the frame step (commits._render_frame): the renders.
            render += sum(v[3] for (_f, _l, fn), v in callers.items() if fn == "_render_frame")
        for suffix, name in WATCH:
            if func == name and file.replace("\\", "/").endswith(suffix):
                key = f"{suffix}:{name}" if suffix else name
                if key not in rows or ct > rows[key][1]:
                    rows[key] = (nc, ct)
    n = a.frames
    seq = rows.get("render_passes/sequence.py:render_sequence", (0, 0.0))[1]
    print(f"dataset_forge {df.__version__}, rc={rc}, {a.size}x{a.size}, {a.samples} spp, {n} frames, "
          f"debug={a.debug}: run_job {wall:.3f} s")
    print(f"render_sequence {seq:.3f} s, of which bpy.ops.render.render {render:.3f} s; outside "
          f"the render: {1e3 * (seq - render) / n:.2f} ms per frame (cProfile adds its own cost)")
    print("| function | calls | ms per frame (cumulative) |")
    print("|---|---|---|")
    for key, (nc, ct) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        print(f"| {key} | {nc} | {1e3 * ct / n:.3f} |")
    print("\nTop functions by own time (ms per frame; _bpy.ops.call holds the renders and the "
          "scene open):")
    top = sorted(((tt, nc, f"{Path(file).name}:{func}") for (file, _l, func), (_cc, nc, tt, _ct, _c)
                  in st.stats.items()), reverse=True)
    for tt, nc, name in top[:16]:
        print(f"  {1e3 * tt / n:7.3f}  {nc:6d}  {name}")
    sys.stdout.flush()
    os._exit(0)



if __name__ == "__main__":
    main()
