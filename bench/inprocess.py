# SPDX-License-Identifier: GPL-3.0-or-later
"""Our ground-truth graph against the plain one, in ONE Blender process, interleaved in chunks.

    .venv/bin/python bench/inprocess.py [--size 128] [--samples 16] [--chunk 8] [--rounds 4]

Separate processes on a shared machine drift apart by tens of percent; here every configuration
renders the same scene in the same process, chunk after chunk in a rotating order, so that load
from elsewhere hits all of them alike. Configurations:

* ``anim_plain``: the floor's graph (passes -> four EXR File Output nodes), ``render(animation=True)``;
* ``loop_plain``: the same graph, ``frame_set`` + ``render(write_still=True)`` per frame;
* ``loop_rig``: our :class:`PassRig` (debug off) driven like the worker does (``prepare_frame``);
* ``loop_rig_filtered``: the same with ``filtered_passes`` (normals and flow from the RGB render:
  no data render);
* ``loop_rig_previews``: the same with previews (debug on);
* ``loop_rig_depthflow``: ``loop_rig`` with the flow made from depth where the survey allows it
  (``render_passes/flow_plan.py``: no Vector pass in either render, the flow file written on the
  flow writer's thread, whose CPU time counts).

Prints the median CPU and wall seconds per frame of each (first frame of a chunk excluded).
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--work", default="")
    a = ap.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", os.path.join(tempfile.gettempdir(),
                                                                 "df-bench-user"))
    import run as bench

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="df-bench-inproc-"))
    frames = a.chunk * a.rounds * 4
    blend = bench.prepare_scene(work, frames)
    bench._import_package()
    import bpy
    import floor
    from dataset_forge.dataset import layout
    from dataset_forge.render_passes import flow_plan, scene_setup
    from dataset_forge.render_passes.passes import FLOW_DEPTH_STEM, PassRig
    from dataset_forge.settings import Settings

    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    scene = bpy.context.scene
    w = {"size": a.size, "samples": a.samples, "frames": frames, "threads": a.threads}
    base = Settings.from_dict(bench._options(w, False))
    scene_setup.apply_render_settings(scene, base)
    scene.cycles.device = "CPU"
    out = work / "out"

    def plain_graph():
        before = set(_tree_nodes(scene))
        floor.add_passes(scene, str(out / "plain"), "ZIP")
        added = [n for n in _tree_nodes(scene) if n.name not in before]
        return lambda: [_tree(scene).nodes.remove(n) for n in added if n.bl_idname !=
                        "NodeGroupOutput" and n.bl_idname != "CompositorNodeRLayers"]

    def still_path(cfg: str, f: int) -> str:  # write_still does not expand '#'
        return str(out / cfg / layout.RGB_FOLDER / f"{layout.RGB_STEM}_{layout.frame_digits(f)}")

    def render_chunk(cfg: str, f0: int, f1: int) -> list[tuple[float, float]]:
        marks: list[tuple[float, float]] = []
        if cfg.startswith("loop_rig"):
            s = base.replace(debug=cfg.endswith("previews"), filtered_passes=cfg.endswith("filtered"))
            plan = flow_plan.survey(scene, s, f0, f1)[0] if cfg.endswith("depthflow") else None
            rig = PassRig(scene, s, out / cfg, plan)
            try:
                for f in range(f0, f1 + 1):
                    scene.frame_set(f)
                    rig.prepare_frame(f)
                    scene.render.filepath = still_path(cfg, f)
                    bpy.ops.render.render(write_still=True)
                    rig.render_data(f)  # the worker's second, 1-sample render (not if filtered)
                    if rig.flow_writer is not None:
                        rig.flow_writer.submit(f, rig.flow_mask_path(f, FLOW_DEPTH_STEM))
                    marks.append((time.perf_counter(), time.process_time()))
            finally:
                rig.teardown()
            return marks
        undo = plain_graph()
        try:
            if cfg == "anim_plain":
                def on_write(*_):
                    marks.append((time.perf_counter(), time.process_time()))
                scene.frame_start, scene.frame_end = f0, f1
                scene.render.filepath = str(out / cfg / layout.RGB_FOLDER /
                                             layout.blender_stem(layout.RGB_STEM))
                bpy.app.handlers.render_write.append(on_write)
                try:
                    bpy.ops.render.render(animation=True)
                finally:
                    bpy.app.handlers.render_write.remove(on_write)
            else:
                for f in range(f0, f1 + 1):
                    scene.frame_set(f)
                    scene.render.filepath = still_path(cfg, f)
                    bpy.ops.render.render(write_still=True)
                    marks.append((time.perf_counter(), time.process_time()))
        finally:
            undo()
        return marks

    cfgs = ["anim_plain", "loop_plain", "loop_rig", "loop_rig_filtered", "loop_rig_previews",
            "loop_rig_depthflow"]
    per: dict[str, list[tuple[float, float]]] = {c: [] for c in cfgs}
    f = 1
    for rnd in range(a.rounds):
        k = rnd % len(cfgs)
        for cfg in cfgs[k:] + cfgs[:k]:
            m = render_chunk(cfg, f, f + a.chunk - 1)
            per[cfg].extend((t1 - t0, c1 - c0) for (t0, c0), (t1, c1) in zip(m, m[1:]))
            f += a.chunk
    print(f"{a.size}x{a.size}, {a.samples} spp, {a.rounds} rounds x {a.chunk} frames per "
          f"configuration, threads={a.threads or 'all'}, Blender {bpy.app.version_string}")
    print("| configuration | median wall s/frame | median CPU s/frame | CPU vs anim_plain |")
    print("|---|---|---|---|")
    ref = statistics.median(c for _, c in per["anim_plain"])
    rows = {}
    for cfg in cfgs:
        wall = statistics.median(t for t, _ in per[cfg])
        cpu = statistics.median(c for _, c in per[cfg])
        rows[cfg] = {"wall": wall, "cpu": cpu, "cpu_ratio": cpu / ref, "frames": len(per[cfg])}
        print(f"| {cfg} | {wall:.4f} | {cpu:.4f} | {cpu / ref:.3f} |")
    sys.stdout.write("\n@bench " + json.dumps({"rows": rows, "size": a.size, "samples": a.samples,
                                               "chunk": a.chunk, "rounds": a.rounds}) + "\n")
    sys.stdout.flush()
    os._exit(0)


def _tree(scene):
    import bpy

    if "compositing_node_group" in bpy.types.Scene.bl_rna.properties:
        return scene.compositing_node_group
    return scene.node_tree


def _tree_nodes(scene):
    tree = _tree(scene)
    return [] if tree is None else list(tree.nodes)


if __name__ == "__main__":
    sys.exit(main())
