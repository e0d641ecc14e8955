# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the data render's time goes: each frame's RGB render and second render timed apart.

    .venv/bin/python bench/data_render.py [--width 256] [--height 256] [--samples 16]
        [--rounds 3] [--variants full,same_fo,...] [--scene basic|scatter] [--count 50000]

One Blender process (imports ``bpy``), our :class:`PassRig` built as the worker builds it (all
ground truth, no previews). Each measured frame is ``frame_set`` + ``prepare_frame`` + the RGB
render (``write_still``) + one *second render* made as a variant says; variants rotate frame by
frame so that load from elsewhere hits all alike. The first frame of the run is excluded.
Variants (``-x``: the data render without toggle x, i.e. x left as the RGB render had it):

* ``rgb_writes``: no second render; our File Output nodes write in the RGB render (the
  ``filtered_passes`` path: one render per frame, the floor's shape);
* ``same``: a second render with nothing changed (File Outputs muted: writes nothing);
* ``same_fo``: a second render with only our File Outputs unmuted (the lower bound of a render
  that writes the files);
* ``full``: :func:`render_passes.data_render.render` itself;
* ``-samples``, ``-bounces``, ``-filter``, ``-adaptive_denoise``, ``-offset``: ``full`` with that
  setting left alone; ``samples_only``: only ``samples = 1`` (and File Outputs unmuted);
* ``full_no_fo``: ``full`` with our File Outputs kept muted (no EXR written, no compositing of
  our nodes' outputs to files).

After ``same`` and ``full_no_fo`` an untimed ``full`` data render writes the frame's files (the
object records read them).

``--compare``: renders the scene's first ``--rounds`` frames twice, once with a separate data
render forced after each RGB render and once as the rig chooses (one render per frame where the
RGB render is one sample), and compares every file written (bytes, else the EXRs' and PNGs'
pixels: the segmentation files, the object records, the RGB frames); prints the differing ones
and by how much.

Phase times come from ``render_stats`` (the string Cycles reports, with a timestamp): seconds
from the render call to the first "Sample", to the last stats line, and to the call's return.
Prints per variant the median seconds per frame of the RGB render and of the second render.
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

VARIANTS = ["rgb_writes", "same", "same_fo", "full", "-samples", "-bounces", "-filter",
            "-adaptive_denoise", "samples_only", "full_no_fo"]
# ``+name`` variants: ``full`` with one more Cycles setting (name -> (property, value)).
_EXTRA = {"fpt": ("direct_light_sampling_type", "FORWARD_PATH_TRACING"),
          "notree": ("use_light_tree", False), "caustics": ("caustics_reflective", False)}
_GROUPS = {"samples": ("samples",), "bounces": ("max_bounces",),
           "filter": ("pixel_filter_type", "filter_width"),
           "adaptive_denoise": ("use_adaptive_sampling", "use_denoising", "time_limit"),
           "offset": ("sample_offset",)}


def _second(rig, variant: str, stats: list) -> None:
    """The second render of the frame as ``variant`` says (see the module docstring)."""
    import bpy
    from dataset_forge.render_passes import data_render

    if variant == "full":
        data_render.render(rig)
        return
    if variant.startswith("+"):  # full with one more Cycles setting changed (and restored)
        k, val = _EXTRA[variant[1:]]
        old = getattr(rig.scene.cycles, k)
        setattr(rig.scene.cycles, k, val)
        try:
            data_render.render(rig)
        finally:
            setattr(rig.scene.cycles, k, old)
        return
    scene = rig.scene
    cy = scene.cycles
    keys = set(data_render.DATA_RENDER)
    if variant.startswith("-"):
        keys -= set(_GROUPS[variant[1:]])
    elif variant == "samples_only":
        keys = {"samples"}
    elif variant in ("same", "same_fo"):
        keys = set()
    undo = {k: getattr(cy, k) for k in keys if k in cy.bl_rna.properties}
    try:
        for k in undo:
            setattr(cy, k, data_render.DATA_RENDER[k])
        rig._data_passes(variant not in ("same", "full_no_fo"))
        bpy.ops.render.render(write_still=False)
    finally:
        for k, v in undo.items():
            setattr(cy, k, v)
        rig._data_passes(False)


def _phases(stats: list, t0: float, t1: float) -> dict:
    """Seconds from the call to the first sampling line, to the last stats line, and the call."""
    samp = [t for t, s in stats if "Sample" in s and t0 <= t <= t1]
    last = [t for t, _ in stats if t0 <= t <= t1]
    return {"call": t1 - t0, "to_sampling": (samp[0] - t0) if samp else float("nan"),
            "sampling": (samp[-1] - samp[0]) if samp else float("nan"),
            "after_stats": (t1 - last[-1]) if last else float("nan")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--scene", default="basic", choices=("basic", "scatter"))
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--work", default="")
    ap.add_argument("--stats", action="store_true", help="print every render_stats line")
    ap.add_argument("--blend", default="", help="render this file instead of --scene")
    ap.add_argument("--compare", action="store_true", help="forced data render vs the rig's choice")
    ap.add_argument("--normal-kind", default="shading", choices=("shading", "geometric"))
    ap.add_argument("--noseg", action="store_true", help="without segmentations")
    ap.add_argument("--depthflow", action="store_true",
                    help="the flow made from depth where the survey allows it (no Vector pass)")
    a = ap.parse_args()
    os.environ.setdefault("BLENDER_USER_RESOURCES", os.path.join(tempfile.gettempdir(),
                                                                 "df-bench-user"))
    import run as bench

    variants = a.variants.split(",")
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="df-bench-data-"))
    frames = 1 + len(variants) * a.rounds
    blend = Path(a.blend) if a.blend else _scene(bench, work, a, frames)
    bench._import_package()
    import bpy
    from dataset_forge.render_passes import scene_setup
    from dataset_forge.render_passes.passes import PassRig
    from dataset_forge.settings import Settings

    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    scene = bpy.context.scene
    opts = bench._options({"size": a.width, "samples": a.samples, "threads": a.threads}, False)
    opts["height"], opts["normal_kind"] = a.height, a.normal_kind
    opts["segmentations"] = not a.noseg
    settings = Settings.from_dict(opts)
    scene_setup.apply_render_settings(scene, settings)
    scene.cycles.device = "CPU"
    if a.compare:
        return _compare(scene, settings, work / "compare", a.rounds)
    stats: list[tuple[float, str]] = []
    bpy.app.handlers.render_stats.append(lambda s: stats.append((time.perf_counter(), str(s))))
    per: dict[str, list[dict]] = {v: [] for v in variants}
    out = work / "out"
    plan = None
    if a.depthflow:
        from dataset_forge.render_passes import flow_plan

        plan, why = flow_plan.survey(scene, settings, scene.frame_start, scene.frame_start + frames - 1)
        print("flow from depth:" if plan else "Vector pass:", why)
    rig = PassRig(scene, settings, out, plan)
    try:
        for i in range(frames):
            f = scene.frame_start + i
            v = "warmup" if i == 0 else variants[(i - 1) % len(variants)]
            scene.frame_set(f)
            rig.prepare_frame(f)
            if v == "rgb_writes":
                rig._data_passes(True)
            scene.render.filepath = str(out / "frames" / f"frame_{f:06d}")
            t0, c0 = time.perf_counter(), time.process_time()
            bpy.ops.render.render(write_still=True)
            t1, c1 = time.perf_counter(), time.process_time()
            if v not in ("rgb_writes", "warmup"):
                _second(rig, v, stats)
            elif v == "warmup":
                _second(rig, "full", stats)
            rig._data_passes(False)
            t2, c2 = time.perf_counter(), time.process_time()
            if v in ("same", "full_no_fo"):  # untimed: the files the frame's records read
                _second(rig, "full", stats)
            if a.stats:
                print(v, [(round(t - t0, 3), s) for t, s in stats if t >= t0])
            if v != "warmup":
                per[v].append({"rgb": {**_phases(stats, t0, t1), "cpu": c1 - c0},
                               "second": {**_phases(stats, t1, t2), "cpu": c2 - c1},
                               "frame": t2 - t0})
            stats.clear()
            rig.finish_frame(f, rendered=True)
    finally:
        rig.teardown()
    _report(a, per, bpy.app.version_string)
    os._exit(0)


def _compare(scene, settings, out: Path, frames: int) -> int:
    """See ``--compare`` in the module docstring; returns the number of differing files."""
    import shutil

    import bpy
    import numpy as np
    from dataset_forge.dataset import exr
    from dataset_forge.render_passes import data_render
    from dataset_forge.render_passes.passes import PassRig

    shutil.rmtree(out, ignore_errors=True)
    for forced in (True, False):
        rig = PassRig(scene, settings, out / ("forced" if forced else "chosen"))
        try:
            for f in range(scene.frame_start, scene.frame_start + frames):
                scene.frame_set(f)
                rig.prepare_frame(f)
                if forced and rig._rgb_writes:
                    rig._rgb_writes = False
                    rig._data_passes(False)
                scene.render.filepath = str(rig.seq_dir / "frames" / f"frame_{f:06d}")
                bpy.ops.render.render(write_still=True)
                if forced:
                    data_render.render(rig)
                else:
                    rig.render_data(f)
                rig.finish_frame(f, rendered=True)
            rig.finish_sequence()
        finally:
            rig.teardown()
    print(f"centre sample: {data_render.rgb_is_centre_sample(scene)}")
    bad = 0
    files = sorted(p.relative_to(out / "forced") for p in (out / "forced").rglob("*") if p.is_file())
    for rel in files:
        a_, b_, diff = out / "forced" / rel, out / "chosen" / rel, []
        same = b_.is_file() and a_.read_bytes() == b_.read_bytes()
        if not same and b_.is_file() and rel.suffix == ".exr":
            ca, cb = exr.read_channels(a_), exr.read_channels(b_)
            same = ca.keys() == cb.keys() and all(np.array_equal(ca[k], cb[k]) for k in ca)
            diff = [f"{k} max |diff| {np.abs(ca[k].astype(np.float64) - cb[k]).max():.3g} on "
                    f"{int((ca[k] != cb[k]).sum())} of {ca[k].size} px" for k in sorted(ca)]
        elif not same and b_.is_file() and rel.suffix == ".png":  # the bytes hold a date
            same = np.array_equal(*(_png(p) for p in (a_, b_)))
        bad += not same
        print(f"{'same' if same else 'DIFFERENT'}  {rel}" + ("" if same else f"  {'; '.join(diff)}"))
    print(f"{len(files)} files, {bad} differ")
    os._exit(1 if bad else 0)


def _png(path: Path):
    """The pixels of a PNG (Blender's loader), float32 (H, W, 4)."""
    import bpy
    import numpy as np

    img = bpy.data.images.load(str(path))
    try:
        px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
        img.pixels.foreach_get(px)
        return px
    finally:
        bpy.data.images.remove(img)


def _scene(bench, work: Path, a, frames: int) -> Path:
    if a.scene == "basic":
        return bench.prepare_scene(work, frames)
    import subprocess

    path = work / f"scatter_{a.count}.blend"
    code = (f"import sys; sys.path.insert(0, {str(HERE.parent / 'tests')!r}); import instance_scenes;"
            f" instance_scenes.build_scatter({str(path)!r}, {a.count}, {frames}, "
            f"({a.width}, {a.height}), {a.samples})")
    subprocess.run([sys.executable, "-c", code], check=True, env=bench._env(), timeout=900)
    return path


def _report(a, per: dict, version: str) -> None:
    def med(rows, part, key):
        vals = [r[part][key] for r in rows]
        return statistics.median(vals) if vals else float("nan")

    print(f"{a.scene} {a.width}x{a.height}, {a.samples} spp, {a.rounds} frames per variant, "
          f"Blender {version}")
    print("| variant | RGB render s | second render s | to sampling | sampling | after "
          "last stats | frame s | RGB CPU s | second CPU s | second/RGB CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = {}
    for v, r in per.items():
        rows[v] = {k: med(r, p, q) for k, (p, q) in {
            "rgb": ("rgb", "call"), "second": ("second", "call"),
            "to_sampling": ("second", "to_sampling"), "sampling": ("second", "sampling"),
            "after": ("second", "after_stats"), "rgb_cpu": ("rgb", "cpu"),
            "second_cpu": ("second", "cpu")}.items()}
        rows[v]["frame"] = statistics.median(x["frame"] for x in r) if r else float("nan")
        x = rows[v]
        print(f"| {v} | {x['rgb']:.3f} | {x['second']:.3f} | {x['to_sampling']:.3f} | "
              f"{x['sampling']:.3f} | {x['after']:.3f} | {x['frame']:.3f} | {x['rgb_cpu']:.3f} | "
              f"{x['second_cpu']:.3f} | {x['second_cpu'] / x['rgb_cpu']:.3f} |")
    sys.stdout.write("\n@bench " + json.dumps({"rows": rows}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
