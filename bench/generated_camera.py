# SPDX-License-Identifier: GPL-3.0-or-later
"""What a generated camera (``camera`` = orbit / flythrough) adds to a sequence, measured in one
run (prints; never passes or fails on time):

    .venv/bin/python bench/generated_camera.py [--size 128] [--frames 24] [--samples 16]
        [--repeats 3] [--work DIR]

Scenes: tests/camera_scenes.py's ``interior`` as built (static: one BVH), the same with its
stool keyframed to move (``interior_moving``: one BVH per frame) and the ``terrain``, plus a
copy of the interior with a fixed scene camera for the ``scene`` baseline. In every round the
configurations run in a rotating order, each as ``render_animation`` (runner + worker, depth and
flow on). Reported per configuration (medians over rounds):

* ``wall``: the whole call (s);
* ``rig``: ``info.json`` ``camera_rig.rig_seconds``: BVH trees, path search, checks and
  keyframes, inside the worker;
* ``rig / sequence``: ``rig`` over the sequence's time in the worker (``rig`` +
  ``render_seconds``): what the generated camera adds to the sequence's wall time;
* ``wall / scene``: the wall time over the ``scene`` baseline's in the same round (a generated
  camera sees other things, so this also holds the cost of rendering another view).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

_PREP = """
import bpy, sys
src, dst, what = sys.argv[1], sys.argv[2], sys.argv[3]
bpy.ops.wm.open_mainfile(filepath=src, load_ui=False)
scene = bpy.context.scene
if what == "moving":
    ob = scene.objects["box8"]
    for f, x in ((1, 0.5), (200, 2.5)):
        ob.location.x = x
        ob.keyframe_insert("location", frame=f)
else:
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.location = (-3.0, -2.0, 1.6)
    cam.rotation_euler = (1.35, 0.0, -0.9)
    scene.collection.objects.link(cam)
    scene.camera = cam
bpy.ops.wm.save_as_mainfile(filepath=dst)
"""


def _scenes(work: Path) -> dict[str, Path]:
    out = work / "scenes"
    subprocess.run([sys.executable, str(REPO / "tests" / "camera_scenes.py"), str(out),
                    "interior", "terrain"], check=True, capture_output=True)
    for what, name in (("moving", "interior_moving"), ("camera", "interior_camera")):
        subprocess.run([sys.executable, "-c", _PREP, str(out / "interior.blend"),
                        str(out / f"{name}.blend"), what], check=True, capture_output=True)
    return {"interior": out / "interior.blend", "interior_moving": out / "interior_moving.blend",
            "terrain": out / "terrain.blend", "interior_camera": out / "interior_camera.blend"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default="")
    a = ap.parse_args(argv)
    import dataset_forge

    work = Path(a.work or tempfile.mkdtemp(prefix="df-bench-camera-"))
    scenes = _scenes(work)
    configs = [("scene", "interior_camera", "scene"), ("orbit", "interior", "orbit"),
               ("flythrough", "interior", "flythrough"),
               ("flythrough moving", "interior_moving", "flythrough"),
               ("orbit terrain", "terrain", "orbit"), ("flythrough terrain", "terrain", "flythrough")]
    opts = dict(width=a.size, height=a.size * 3 // 4, max_samples=a.samples,
                adaptive_threshold=0.0, use_denoising=False, depths=True, flows=True,
                debug=False, timeout=600.0, retries=0)
    rows: dict[str, dict[str, list[float]]] = {c[0]: {"wall": [], "rig": [], "share": [],
                                                       "vs_scene": []} for c in configs}
    for r in range(a.repeats):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        walls = {}
        for label, scene, mode in order:
            out = work / f"r{r}" / label.replace(" ", "_")
            t0 = time.perf_counter()
            s = dataset_forge.render_animation(scenes[scene], out, frame_start=1,
                                               frame_end=a.frames, camera=mode, **opts)
            wall = time.perf_counter() - t0
            assert s["ok"], json.dumps(s["scenes"])[:2000]
            info = json.loads((out / "info.json").read_text())
            rig = info.get("camera_rig", {}).get("rig_seconds", 0.0)
            rows[label]["wall"].append(wall)
            rows[label]["rig"].append(rig)
            rows[label]["share"].append(rig / (rig + info["render_seconds"]))
            walls[label] = wall
        for label in walls:
            rows[label]["vs_scene"].append(walls[label] / walls["scene"])
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in rows.items()}
    print(f"{a.frames} frames, {opts['width']}x{opts['height']}, {a.samples} samples, depth + "
          f"flow, {a.repeats} rounds (medians)")
    print(f"{'configuration':20s} {'wall s':>8s} {'rig s':>8s} {'rig/sequence':>13s} "
          f"{'wall/scene':>11s}")
    for k, m in med.items():
        print(f"{k:20s} {m['wall']:8.2f} {m['rig']:8.3f} {m['share']:12.2%} {m['vs_scene']:11.3f}")
    return med


if __name__ == "__main__":
    main()
