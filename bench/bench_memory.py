# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory of a long run: the runner's own RSS over many scenes, and a worker's RSS before and
after it is recycled. Prints numbers (MiB); asserts nothing.

    BLENDER_USER_RESOURCES=/tmp/bur .venv/bin/python bench/bench_memory.py [--scenes 30]
        [--frames 12] [--recycle 4] [--work DIR]

Scenes are copies of tests/scenes.py's ``basic`` (built once with the bpy wheel), rendered tiny
(32x24 px, 1 sample, 2 frames each).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO.parent))


def rss_mib(pid: int | str = "self") -> float | None:
    """Resident set size of ``pid`` in MiB (Linux /proc), None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def build_scene(work: Path) -> Path:
    src = work / "src"
    if not (src / "basic.blend").exists():
        subprocess.run([sys.executable, str(REPO / "tests" / "scenes.py"), str(src), "basic"],
                       check=True, capture_output=True, timeout=300)
    return src / "basic.blend"


def runner_rss(work: Path, n: int) -> None:
    from dataset_forge import create_datasets

    blend = build_scene(work)
    scenes = work / f"scenes{n}"
    scenes.mkdir(exist_ok=True)
    for i in range(n):
        shutil.copy(blend, scenes / f"scene{i:03d}.blend")
    samples: list[tuple[int, float]] = []
    finished = [0]

    def on_event(e):
        if e["event"] in ("scene_done", "scene_failed"):
            finished[0] += 1
            samples.append((finished[0], rss_mib()))

    shutil.rmtree(work / "ds_runner", ignore_errors=True)
    before = rss_mib()
    t0 = time.monotonic()
    s = create_datasets(scenes, work / "ds_runner", sequences_per_scene=1, num_frames=2, width=32,
                        height=24, max_samples=1, use_denoising=False, threads=1, jobs=2,
                        on_event=on_event)
    dt = time.monotonic() - t0
    print(f"runner RSS over {n} scenes ({s['frames_rendered']} frames, ok={s['ok']}, {dt:.1f} s):")
    print(f"  before the run: {before:.1f} MiB")
    for k, r in samples:
        if k in (1, 2, 5) or k % 5 == 0:
            print(f"  after {k:3d} scenes: {r:.1f} MiB")
    first, last = samples[0][1], samples[-1][1]
    print(f"  growth from scene 1 to scene {len(samples)}: {last - first:+.1f} MiB")


def worker_rss(work: Path, frames: int, recycle: int) -> None:
    from dataset_forge import create_datasets

    blend = build_scene(work)
    scenes = work / "one"
    scenes.mkdir(exist_ok=True)
    shutil.copy(blend, scenes / "basic.blend")
    pids: dict[int, int] = {}  # slot -> pid of the current worker
    per_worker: dict[int, list[tuple[int, float]]] = {}

    def on_event(e):
        if e["event"] == "worker_started":
            pids[e["slot"]] = e["pid"]
            per_worker[e["pid"]] = []
        elif e["event"] == "frame_done" and e.get("rss_mib") is not None:
            # Measured by the worker itself right after the frame (it may be gone by now).
            per_worker[pids[e["slot"]]].append((e["frame"], e["rss_mib"]))

    shutil.rmtree(work / "ds_worker", ignore_errors=True)
    s = create_datasets(scenes, work / "ds_worker", sequences_per_scene=1, num_frames=frames,
                        width=64, height=48, max_samples=4, use_denoising=False, threads=1,
                        recycle_frames=recycle, depths=True, normals=True, flows=True,
                        segmentations=True, on_event=on_event)
    print(f"worker RSS, {frames} frames with recycle_frames={recycle} (ok={s['ok']}):")
    for i, (pid, rows) in enumerate(per_worker.items(), 1):
        if not rows:
            continue
        text = ", ".join(f"f{f}: {r:.0f}" for f, r in rows)
        print(f"  process {i} (pid {pid}): {text} MiB")
    firsts = [rows[0][1] for rows in per_worker.values() if rows]
    lasts = [rows[-1][1] for rows in per_worker.values() if rows]
    if len(firsts) > 1:
        print(f"  after its first frame, process 1: {firsts[0]:.0f} MiB; at its last frame before "
              f"recycling: {lasts[0]:.0f} MiB; the fresh process 2 after its first frame: "
              f"{firsts[1]:.0f} MiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=30)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--recycle", type=int, default=4)
    ap.add_argument("--work", default="")
    a = ap.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="df-bench-user-"))
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="df-bench-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    runner_rss(work, a.scenes)
    worker_rss(work, a.frames, a.recycle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
