# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-frame cost of instance ids and object records, side by side between two checkouts.

    .venv/bin/python bench/idcost.py BLEND --res 256x192 --frames 24 --samples 8
        [--pkg ROOT ...] [--rounds 2] [--noseg] [--profile] [--keep] [--work DIR]
    .venv/bin/python bench/idcost.py --compare SEQ_A SEQ_B

Each configuration is one process running the real worker (``worker.run_job``) on ``BLEND``
with every ground truth (bench/scale.py's ``ours``); ``--noseg`` adds the same without
segmentations. ``--pkg ROOT`` (repeatable) imports ``dataset_forge`` from ``ROOT`` instead of
the venv's (``ROOT/dataset_forge`` is the package), so a baseline checkout (``git archive``)
and this one run alternately in one invocation. Reported per configuration: the wall and CPU
seconds of ``run_job`` (CPU: user + system of the process, every thread), the steady seconds
per frame (the slope of the frame completion times), the render time per frame (``frame_done``
``seconds``: the render call, the collection inside it, and the data render), the worker's
own object timings (``info.json``) in ms per frame, and ``rig_finish_frame``: all of
``PassRig.finish_frame`` (the tracker's resolve and the writing of the frame's record).
``--profile`` instead runs the first configuration once under cProfile (without segmentations
with ``--noseg``) and prints the functions of the frame loop by cumulative ms per frame.
``--keep`` keeps each configuration's output folder (to compare outputs byte for byte). It
prints; it never passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scale import slope  # bench/ is the script's folder, first on sys.path

REPO = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, os, sys, time
spec = json.loads(open(sys.argv[1]).read())
if spec["pkg"]:
    sys.path.insert(0, spec["pkg"])
import dataset_forge
from dataset_forge.render_passes import worker
from dataset_forge.settings import Settings
ts, render = [], [0.0]
def emit(e):
    if e.get("event") == "frame_done":
        ts.append(time.perf_counter())
        render[0] += e.get("seconds") or 0.0  # the render call (collect inside) + data render
    elif e.get("event") in ("error",):
        print("@event " + json.dumps(e, default=str), flush=True)
from dataset_forge.render_passes import passes
rig_finish = [0.0]
_finish = passes.PassRig.finish_frame
def finish_frame(self, frame, rendered):  # timed: the tracker's resolve + the record's file
    t = time.perf_counter()
    try:
        return _finish(self, frame, rendered)
    finally:
        rig_finish[0] += time.perf_counter() - t
passes.PassRig.finish_frame = finish_frame
settings = Settings.from_dict(spec["options"])
job = {"blend": spec["blend"], "scene_name": "", "settings": settings.to_dict(),
       "frame_budget": 0, "gpu_index": None,
       "sequences": [{"id": "s", "out_dir": spec["out"], "frame_start": 1,
                      "frame_end": spec["frames"]}]}
prof = None
if spec["profile"]:
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
import resource
def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
c0, t0 = cpu_s(), time.perf_counter()
rc = worker.run_job(job, emit)
wall, cpu = time.perf_counter() - t0, cpu_s() - c0
if prof is not None:
    prof.disable()
    prof.dump_stats(spec["out"] + ".prof")
print("@idcost " + json.dumps({"rc": rc, "wall": wall, "cpu": cpu, "render": render[0],
                               "t": [t - t0 for t in ts],
                               "rig_finish_frame": rig_finish[0],
                               "pkg": os.path.realpath(dataset_forge.__path__[0])}),
      flush=True)
os._exit(0)
'''


def run_one(a, pkg: str, seg: bool, out: Path, profile: bool = False) -> dict:
    w, h = (int(v) for v in a.res.split("x"))
    opts = {"width": w, "height": h, "max_samples": a.samples, "adaptive_threshold": 0.0,
            "use_denoising": False, "device_type": "CPU", "depths": True, "normals": True,
            "flows": True, "segmentations": seg, "debug": False, "use_persistent_data": True,
            "threads": 0}
    subprocess.run(["rm", "-rf", str(out)], check=False)
    spec = {"pkg": pkg, "blend": str(Path(a.blend).resolve()), "out": str(out),
            "frames": a.frames, "options": opts, "profile": profile}
    path = out.parent / (out.name + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="df-idcost-user-"))
    p = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                       env=env, timeout=3600)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("@idcost ")]
    if not line:
        raise RuntimeError(p.stdout[-3000:] + p.stderr[-3000:])
    r = json.loads(line[-1][8:])
    if r["rc"] != 0:
        raise RuntimeError(f"rc {r['rc']}: {p.stdout[-3000:]}")
    info = next(out.rglob("info.json"), None)
    objs = json.loads(info.read_text()).get("objects") or {} if info else {}
    r["timings"] = {k: 1e3 * v / a.frames for k, v in (objs.get("timings") or {}).items()}
    if r["timings"]:
        r["timings"]["rig_finish_frame"] = 1e3 * r["rig_finish_frame"] / a.frames
    r["steady"] = slope(r["t"])
    return r


def profile(a, pkg: str, work: Path) -> None:
    import pstats

    out = work / "profile"
    run_one(a, pkg, not a.noseg, out, profile=True)
    st = pstats.Stats(str(out) + ".prof")
    keep = ("render_passes/objects.py", "render_passes/instance", "render_passes/geometry.py",
            "render_passes/segmentation.py", "dataset/pixel", "dataset/objects.py",
            "dataset/documents/objects", "dataset/random_ids.py", "dataset/exr.py",
            "render_passes/passes.py", "render_passes/commits.py", "render_passes/sequence.py")
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _c) in st.stats.items():
        f = file.replace("\\", "/")
        if any(k in f for k in keep) or "OpenEXR" in func or "numpy" in f:
            rows.append((ct, tt, nc, f"{'/'.join(f.split('/')[-2:])}:{line}:{func}"))
    print(f"cProfile, ms per frame ({a.frames} frames): cumulative, own, calls")
    for ct, tt, nc, name in sorted(rows, reverse=True)[:a.top]:
        print(f"  {1e3 * ct / a.frames:9.2f} {1e3 * tt / a.frames:8.2f} {nc:7d}  {name}")


def _members(path: Path) -> dict[str, bytes]:
    """The uncompressed members of a ``.npz`` (its zip entries carry the write time)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in sorted(z.namelist())}


def compare(a: Path, b: Path) -> int:
    """Compare the object outputs of two sequence folders: the id EXRs, ``objects.json`` and
    ``segmentation_ids.json`` byte for byte, the ``objects/*.npz`` records member by member.
    Prints the files that differ; returns their count."""
    names = sorted({p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file()}
                   | {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()})
    keep = [n for n in names if n.startswith(("segmentations/", "objects/"))
            or n in ("objects.json", "segmentation_ids.json")]
    bad = 0
    for n in keep:
        pa, pb = a / n, b / n
        if not pa.is_file() or not pb.is_file():
            print(f"  only in one: {n}")
            bad += 1
        elif n.endswith(".npz") and _members(pa) != _members(pb):
            print(f"  differs: {n}")
            bad += 1
        elif not n.endswith(".npz") and pa.read_bytes() != pb.read_bytes():
            print(f"  differs: {n}")
            bad += 1
    print(f"compared {len(keep)} files of {a} and {b}: {bad} differ")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("blend", nargs="?", default="")
    ap.add_argument("--res", default="256x192")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--pkg", action="append", default=[],
                    help="a root holding dataset_forge/ ('' = the venv's)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--noseg", action="store_true", help="also run without segmentations")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--work", default="")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"),
                    help="compare the object outputs of two sequence folders instead")
    a = ap.parse_args(argv)
    if a.compare:
        return 1 if compare(Path(a.compare[0]), Path(a.compare[1])) else 0
    pkgs = a.pkg or [""]
    work = Path(a.work or tempfile.mkdtemp(prefix="df-idcost-"))
    if a.profile:
        profile(a, pkgs[0], work)
        return 0
    configs = [(p, True) for p in pkgs] + ([(pkgs[0], False)] if a.noseg else [])
    res: dict[int, list[dict]] = {i: [] for i in range(len(configs))}
    for r in range(a.rounds):
        order = list(range(len(configs)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            pkg, seg = configs[i]
            out = work / f"out_{i}_{r}"
            res[i].append(run_one(a, pkg, seg, out))
            x = res[i][-1]
            print(f"  round {r} [{i}] {x['pkg']} seg={seg}: run_job {x['wall']:.2f} s "
                  f"({x['cpu']:.2f} CPU s), steady {1e3 * x['steady']:.1f} ms/frame", flush=True)
            if not a.keep and r < a.rounds - 1:
                subprocess.run(["rm", "-rf", str(out)], check=False)
    print("| config | run_job s (median) | CPU s (median) | steady ms/frame | render ms/frame "
          "| object timings ms/frame |")
    print("|---|---|---|---|---|---|")
    for i, (_pkg, seg) in enumerate(configs):
        xs = res[i]
        walls = ", ".join(f"{x['wall']:.2f}" for x in xs)
        tm = {k: statistics.median(x["timings"].get(k, 0.0) for x in xs)
              for k in xs[-1]["timings"]}
        print(f"| [{i}] {xs[-1]['pkg']} seg={seg} | {statistics.median(x['wall'] for x in xs):.2f} "
              f"({walls}) | {statistics.median(x['cpu'] for x in xs):.2f} | "
              f"{1e3 * statistics.median(x['steady'] for x in xs):.1f} | "
              f"{1e3 * statistics.median(x['render'] for x in xs) / a.frames:.1f} | "
              + ", ".join(f"{k} {v:.2f}" for k, v in tm.items() if v) + " |")
    print(f"outputs under {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
