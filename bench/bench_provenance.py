# SPDX-License-Identifier: GPL-3.0-or-later
"""What the provenance of a scene's dependencies costs, against the sequence it guards.

    .venv/bin/python bench/bench_provenance.py [--textures 50] [--texture-size 512] [--size 128]
        [--samples 16] [--frames 12] [--rounds 3]

One bpy process: tests/scenes.py's ``basic`` with ``--textures`` distinct PNG textures (random
pixels, so the files do not compress: the worst case for hashing), all used by the ground's
material. Each round, interleaved, measures

* ``provenance``: what a worker adds per run for the dependencies: the ``.blend`` hashed as
  loaded, every dependency collected and hashed (the per-process hash cache cleared first: a cold
  run), and the record compared with the folder's (``provenance.prepare`` on a resume);
* ``sequence``: one sequence of ``--frames`` frames rendered through the worker
  (``render_sequence``, all ground truth, skips off).

Prints the medians and the ratio ``provenance / sequence`` (the target: under 1 %). Ratios only,
measured in the same process and rounds: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--textures", type=int, default=50)
    ap.add_argument("--texture-size", type=int, default=512)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="")
    a = ap.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", os.path.join(tempfile.gettempdir(),
                                                                 "df-bench-user"))
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="df-bench-prov-"))
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "bench"))
    import numpy as np
    import run as bench
    from PIL import Image

    bench._import_package()
    import bpy
    import scenes
    from dataset_forge.dataset import provenance
    from dataset_forge.render_passes import dependencies, worker
    from dataset_forge.settings import Settings

    blend = work / "scenes" / "textured.blend"
    scenes.build("basic", blend)
    rng = np.random.default_rng(0)
    tex = work / "textures"
    tex.mkdir(exist_ok=True)
    mat = bpy.data.materials.new("Textures")
    mat.use_nodes = True
    for i in range(a.textures):
        p = tex / f"t{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (a.texture_size, a.texture_size, 3), np.uint8)).save(p)
        node = mat.node_tree.nodes.new("ShaderNodeTexImage")
        node.image = bpy.data.images.load(str(p))
    bpy.data.objects["Ground"].data.materials.append(mat)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)

    settings = Settings(width=a.size, height=a.size, max_samples=a.samples, adaptive_threshold=0.0,
                        use_denoising=False, allow_skips=False, device_type="CPU")
    from dataset_forge.render_passes import scene_setup
    scene = bpy.context.scene
    scene_setup.apply_render_settings(scene, settings)
    job = {"blend": str(blend), "scene_name": "textured", "settings": settings.to_dict(),
           "sequences": []}
    found = dependencies.collect(scene)
    assert len(found) == a.textures, found
    job["_loaded"] = provenance.identity_as_loaded(blend, lambda: None)
    job["_dependencies"] = provenance.dependency_identities(found)
    times: dict[str, list[float]] = {"provenance": [], "sequence": []}
    seq_dir = work / "out" / "seq"
    for r in range(a.rounds):
        seq = {"id": f"r{r}", "out_dir": str(seq_dir), "frame_start": 1, "frame_end": a.frames}
        t0 = time.perf_counter()
        worker.render_sequence(scene, seq, job, settings, lambda e: None, [None], "CPU")
        times["sequence"].append(time.perf_counter() - t0)
        provenance._CONTENT.clear()  # a cold run: nothing hashed yet in this process
        t0 = time.perf_counter()
        loaded = provenance.identity_as_loaded(blend, lambda: None)
        deps = provenance.dependency_identities(dependencies.collect(scene))
        provenance.prepare(seq_dir, blend, settings.replace(allow_skips=True), bpy.app.version_string,
                           scene.name, loaded=loaded, dependencies=deps)
        times["provenance"].append(time.perf_counter() - t0)
        job["_loaded"], job["_dependencies"] = loaded, deps
    med = {k: statistics.median(v) for k, v in times.items()}
    mib = sum(p.stat().st_size for p in tex.iterdir()) / 2**20
    out = {"textures": a.textures, "texture_mib": round(mib, 1), "frames": a.frames,
           "size": a.size, "samples": a.samples, "rounds": a.rounds,
           "provenance_s": round(med["provenance"], 4), "sequence_s": round(med["sequence"], 3),
           "ratio_percent": round(100 * med["provenance"] / med["sequence"], 3)}
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
