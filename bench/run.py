# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark: Dataset Forge against plain Blender, measured side by side in one run.

    .venv/bin/python bench/run.py [--quick] [--sizes 128,256] [--frames 48] [--samples 16]
        [--repeats 3] [--scaling-frames 12] [--sequences 1,2,4] [--work DIR] [--json FILE]

Every number is the median over ``--repeats`` rounds; inside a round the configurations run one
after the other in a rotating order, so that drift of a shared machine hits them all alike. Each
configuration runs as its own process tree, started and waited for by this script, so its wall
time includes the Python start-up and its CPU seconds (user + system, all threads and child
processes) come from ``getrusage(RUSAGE_CHILDREN)``.

Configurations (see docs/benchmarks.md for what each row means):

* ``floor``: bench/floor.py, plain ``bpy``: open, same render settings, the four view-layer passes
  and four EXR File Output nodes straight from Render Layers, ``render(animation=True)``.
* ``floor_bare``: the same without passes and File Output nodes (fixed-cost workload only).
* ``ours``: ``dataset_forge.render_animation`` (runner + worker), all ground truth, ``debug=False``.
* ``ours_previews``: the same with ``debug=True`` (colourised previews).
* paired: ``floor`` and ``ours`` (or ``ours_previews``) rendering at the same time with half of the
  cores each, compared over the frames both finished side by side (robust to outside load).
* in-process: bench/inprocess.py, the plain graph vs our ``PassRig`` interleaved in one process.
* scaling: ``create_datasets`` with 1, 2, N sequences of one scene and ``--jobs`` 1 vs 2.
* EXR codecs: the float ground truth of the last ``ours`` run rewritten with each codec (OpenEXR).

The scene is tests/scenes.py's ``basic`` with its range extended (linear motion continues).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FLOOR = REPO / "bench" / "floor.py"
PREFIX = "@bench "
MAIN_CONFIGS = ("floor", "ours", "ours_previews")
FIXED_CONFIGS = ("floor_bare", "floor", "ours", "ours_previews")
CODECS = ("NONE", "RLE", "ZIPS", "ZIP", "PIZ", "DWAA")
LOSSLESS = ("NONE", "RLE", "ZIPS", "ZIP", "PIZ")

QUICK = {"sizes": [64], "frames": 8, "samples": 4, "repeats": 1, "scaling_frames": 4,
         "sequences": [1, 2, 3], "fixed_frames": 8, "chunk": 3}
FULL = {"sizes": [128, 256], "frames": 48, "samples": 16, "repeats": 3, "scaling_frames": 12,
        "sequences": [1, 2, 4], "fixed_frames": 48, "chunk": 8}


# -- processes ------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    """The environment of every measured process (the one owner for bench/*.py). Compiled
    modules are cached as a user's Python caches them (pip compiles ``bpy``'s at install; ours
    are compiled on first import): a ``PYTHONDONTWRITEBYTECODE=1`` inherited from a shell would
    make each of our processes compile its ~70 modules of this package again (0.15-0.25 s a
    process) and none of ``bpy``'s, so it is dropped and the caches go to one scratch folder
    (``PYTHONPYCACHEPREFIX``), not into the checkout. Call :func:`warm_up` before timing."""
    env = dict(os.environ)
    env.setdefault("BLENDER_USER_RESOURCES", os.path.join(tempfile.gettempdir(), "df-bench-user"))
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(), "df-bench-pycache"))
    return env


WARM = """
import bpy, importlib.util, sys
sys.path.insert(0, {tools!r})
from demo import import_package
df = import_package()
import dataset_forge.engine.api, dataset_forge.render_passes.worker
from dataset_forge.engine.launch import PACKAGE_ROOT, WORKER_ALIAS
spec = importlib.util.spec_from_file_location(
    WORKER_ALIAS, str(PACKAGE_ROOT / "__init__.py"), submodule_search_locations=[str(PACKAGE_ROOT)])
mod = importlib.util.module_from_spec(spec)
sys.modules[WORKER_ALIAS] = mod
spec.loader.exec_module(mod)
importlib.import_module(WORKER_ALIAS + ".render_passes.worker")
import os
os._exit(0)
"""


def warm_up() -> None:
    """Fill the module caches of :func:`_env` (``bpy``'s scripts; this package under each path
    a process imports it by: the runner's and the worker's) before anything is timed."""
    subprocess.run([sys.executable, "-c", WARM.format(tools=str(REPO / "tools"))], check=True,
                   capture_output=True, env=_env(), timeout=600)


def _cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_measured(cmd: list[str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``cmd`` to its end; its ``@bench`` JSON line plus ``t_popen`` (time.time()), ``wall``
    (s) and ``cpu`` (s, the whole process tree)."""
    c0 = _cpu_children()
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
    wall = time.time() - t0
    cpu = _cpu_children() - c0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(PREFIX)]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed (rc {p.returncode}):\n{p.stdout[-2000:]}\n"
                           f"{p.stderr[-2000:]}")
    out = json.loads(lines[-1][len(PREFIX):])
    out.update(t_popen=t0, wall=wall, cpu=cpu)
    return out


def run_concurrent(cmds: list[list[str]], delays: list[float],
                   timeout: float = 3600) -> list[dict[str, Any]]:
    """Start ``cmds[i]`` ``delays[i]`` seconds from now (all running at once) and wait for all;
    each result is its ``@bench`` JSON line plus ``t_popen``."""
    procs = []
    t_base = time.time()
    for cmd, delay in sorted(zip(cmds, delays), key=lambda cd: cd[1]):
        time.sleep(max(0.0, t_base + delay - time.time()))
        t0 = time.time()
        procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env=_env()), t0))
    results = []
    for p, t0 in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        results.append((p, t0, stdout, stderr))
    out = []
    order = [cmd for cmd, _ in sorted(zip(cmds, delays), key=lambda cd: cd[1])]
    by_cmd = {id(cmd): res for cmd, res in zip(order, results)}
    for cmd in cmds:
        p, t0, stdout, stderr = by_cmd[id(cmd)]
        lines = [ln for ln in stdout.splitlines() if ln.startswith(PREFIX)]
        if p.returncode != 0 or not lines:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed (rc {p.returncode}):\n"
                               f"{stdout[-2000:]}\n{stderr[-2000:]}")
        r = json.loads(lines[-1][len(PREFIX):])
        r["t_popen"] = t0
        out.append(r)
    return out


def measure_paired(work: Path, blend: Path, w: dict[str, Any], debug: bool,
                   floor_delay: float = 0.0) -> dict[str, Any]:
    """The floor and ours rendering at the same time, each with half of the cores: whatever else
    loads the machine slows both alike, so their ratio holds up where sequential runs drift.
    The floor starts ``floor_delay`` s later (ours' longer start-up) so that both render together.
    Per-frame cost of each = mean step between frames that finished while both were rendering."""
    half = {**w, "threads": max(1, (os.cpu_count() or 2) // 2)}
    fcmd, _ = _floor_cmd(work, blend, half, True, tag="_paired")
    ocmd, _ = _ours_cmd(work, blend, half, debug, tag="_paired")
    rf, ro = run_concurrent([fcmd, ocmd], [max(0.0, floor_delay), 0.0])
    tf, to = frame_times(rf), frame_times(ro)
    lo, hi = max(tf[0][0], to[0][0]), min(tf[-1][0], to[-1][0])

    def window(ft):
        inside = [x for x in ft[1:] if lo <= x[0] <= hi]
        if len(inside) < 3:
            return math.nan, math.nan, len(inside)
        return (_slope([x[0] for x in inside]), _slope_valid([x[1] for x in inside]), len(inside))

    (f_s, f_c, f_n), (o_s, o_c, o_n) = window(tf), window(to)
    return {"config": "ours_previews" if debug else "ours", "threads": half["threads"],
            "floor_steady": f_s, "ours_steady": o_s, "floor_cpu": f_c, "ours_cpu": o_c,
            "ratio": o_s / f_s, "ratio_cpu": o_c / f_c, "frames_floor": f_n, "frames_ours": o_n}


def _write_spec(work: Path, name: str, spec: dict[str, Any]) -> Path:
    path = work / f"{name}.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def prepare_scene(work: Path, frames: int) -> Path:
    """tests/scenes.py's ``basic`` with its range set to 1..``frames`` (motion extrapolated)."""
    src = work / "src"
    if not (src / "basic.blend").exists() or not (src / "orbit.blend").exists():
        subprocess.run([sys.executable, str(REPO / "tests" / "scenes.py"), str(src), "basic",
                        "orbit"],
                       check=True, capture_output=True, env=_env(), timeout=600)
    out = work / "scenes" / "basic.blend"
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = _write_spec(work, "prepare", {"mode": "prepare", "blend": str(src / "basic.blend"),
                                         "out": str(out), "frame_start": 1, "frame_end": frames})
    run_measured([sys.executable, str(FLOOR), str(spec)])
    return out


# -- one configuration ------------------------------------------------------------------------------
def _options(w: dict[str, Any], debug: bool) -> dict[str, Any]:
    """Dataset Forge options of a workload (the floor applies the same by hand)."""
    return {"width": w["size"], "height": w["size"], "max_samples": w["samples"],
            "adaptive_threshold": 0.0, "use_denoising": False, "device_type": "CPU",
            "depths": True, "normals": True, "flows": True, "segmentations": True,
            "debug": debug, "use_persistent_data": True, "threads": w.get("threads", 0)}


def _floor_cmd(work: Path, blend: Path, w: dict[str, Any], passes: bool = True,
               tag: str = "") -> tuple[list[str], Path]:
    out = work / "out" / (("floor" if passes else "floor_bare") + f"_{w['size']}_{w['samples']}" + tag)
    shutil.rmtree(out, ignore_errors=True)
    spec = _write_spec(work, "floor" + tag, {
        "blend": str(blend), "out": str(out), "width": w["size"], "height": w["size"],
        "samples": w["samples"], "frame_start": 1, "frame_end": w["frames"], "passes": passes,
        "threads": w.get("threads", 0), "persistent": True, "exr_codec": "ZIP"})
    return [sys.executable, str(FLOOR), str(spec)], out


def _ours_cmd(work: Path, blend: Path, w: dict[str, Any], debug: bool,
              tag: str = "") -> tuple[list[str], Path]:
    out = work / "out" / (("ours_previews" if debug else "ours") + f"_{w['size']}_{w['samples']}" + tag)
    shutil.rmtree(out, ignore_errors=True)
    spec = _write_spec(work, "ours" + tag, {"mode": "ours", "blend": str(blend), "out": str(out),
                                            "frame_start": 1, "frame_end": w["frames"],
                                            "options": _options(w, debug)})
    return [sys.executable, str(Path(__file__).resolve()), "--child", str(spec)], out


def frame_times(r: dict[str, Any]) -> list[tuple[float, float]]:
    """(completion time, process CPU seconds) of every frame of a floor or ours run."""
    if "frames" in r:
        return [(f["t"], f["cpu"]) for f in r["frames"]]
    return [(e["t"], e["cpu_worker"]) for e in r["events"] if e["event"] == "frame_done"]


def measure_floor(work: Path, blend: Path, w: dict[str, Any], passes: bool = True) -> dict:
    cmd, out = _floor_cmd(work, blend, w, passes)
    r = run_measured(cmd)
    fr = r["frames"]
    steady, steady_cpu = _slope([f["t"] for f in fr]), _slope([f["cpu"] for f in fr])
    return {"config": "floor" if passes else "floor_bare", "frames": len(fr), "wall": r["wall"],
            "cpu": r["cpu"], "steady": steady, "steady_cpu": steady_cpu,
            "steady_med": _median([b["t"] - a["t"] for a, b in zip(fr, fr[1:])]),
            "render_call": _median([f["render"] for f in fr[1:]]),
            "python": 0.0, "startup": r["t_opened"] - r["t_popen"],
            "import": r["t_imported"] - r["t_popen"], "open": r["t_opened"] - r["t_open_start"],
            "first_extra": (fr[0]["t"] - r["t_render"]) - steady,
            "tail": r["t_popen"] + r["wall"] - fr[-1]["t"],
            "first_frame_at": fr[0]["t"] - r["t_popen"],
            "scene_opens": 1, "workers": 1, "out": str(out)}


def measure_ours(work: Path, blend: Path, w: dict[str, Any], debug: bool) -> dict:
    config = "ours_previews" if debug else "ours"
    cmd, out = _ours_cmd(work, blend, w, debug)
    r = run_measured(cmd)
    ev = r["events"]
    fd = [e for e in ev if e["event"] == "frame_done"]
    opened = [e for e in ev if e["event"] == "scene_opened"]
    if not r["ok"] or len(fd) != w["frames"]:
        raise RuntimeError(f"{config}: run failed or incomplete ({len(fd)} frames): {r['summary']}")
    secs = [e["seconds"] for e in fd]
    steady = _slope([e["t"] for e in fd])
    python = steady - statistics.fmean(secs[1:]) if len(secs) > 1 else math.nan
    return {"config": config, "frames": len(fd), "wall": r["wall"], "cpu": r["cpu"],
            "steady": steady, "steady_cpu": _slope_valid([e["cpu_worker"] for e in fd]),
            # Median render call plus the mean time outside it (per-frame arrival times jitter
            # with the runner's 50 ms poll; the render seconds are measured in the worker).
            "steady_med": _median(secs[1:]) + python,
            "render_call": _median(secs[1:]),
            # Wall time per frame outside bpy.ops.render.render: frame_set, camera, rig, journal,
            # events. Exact up to the event-arrival jitter of the two end points (/ frames - 1).
            "python": python,
            "startup": opened[0]["t"] - r["t_popen"],
            "import": next(e["t"] for e in ev if e["event"] == "worker_started") - r["t_popen"],
            "open": opened[0]["seconds"], "first_extra": secs[0] - statistics.fmean(secs[1:]),
            "tail": r["t_popen"] + r["wall"] - fd[-1]["t"],
            "first_frame_at": fd[0]["t"] - r["t_popen"],
            "scene_opens": len(opened),
            "workers": sum(e["event"] == "worker_started" for e in ev), "out": str(out)}


def measure_sequences(work: Path, blend: Path, w: dict[str, Any], count: int, jobs: int = 1,
                      scenes: int = 1) -> dict:
    """``create_datasets`` over ``scenes`` copies of the scene, ``count`` sequences each."""
    sdir = work / f"scenes_x{scenes}"
    if not sdir.is_dir():
        sdir.mkdir(parents=True)
        for i in range(scenes):
            shutil.copy(blend, sdir / f"scene{i + 1}.blend")
    out = work / "out" / f"seqs_{scenes}x{count}_j{jobs}"
    shutil.rmtree(out, ignore_errors=True)
    opts = {**_options(w, False), "jobs": jobs}
    spec = _write_spec(work, "seqs", {"mode": "datasets", "scenes": str(sdir), "out": str(out),
                                      "sequences": count, "frames": w["frames"], "options": opts})
    r = run_measured([sys.executable, str(Path(__file__).resolve()), "--child", str(spec)])
    ev = r["events"]
    frames = sum(e["event"] == "frame_done" for e in ev)
    if not r["ok"] or frames != scenes * count * w["frames"]:
        raise RuntimeError(f"sequences {scenes}x{count}: failed or incomplete: {r['summary']}")
    return {"config": f"{scenes}x{count} j{jobs}", "scenes": scenes, "sequences": count,
            "jobs": jobs, "frames": frames, "wall": r["wall"], "cpu": r["cpu"],
            "discovery": r["discovery"], "render_wall": r["t_done"] - r["t_call"],
            "scene_opens": sum(e["event"] == "scene_opened" for e in ev),
            "workers": sum(e["event"] == "worker_started" for e in ev),
            "sequences_done": sum(e["event"] == "job_done" for e in ev)}


# -- EXR codecs --------------------------------------------------------------------------------------
def measure_codecs(gt_dir: Path, frame: int = 1, reps: int = 10) -> list[dict[str, Any]]:
    """Rewrite the four ground-truth EXRs of ``frame`` with each codec: write and read time
    (median ms for the four files), bytes, and the largest error against the original."""
    import numpy as np
    import OpenEXR
    from dataset_forge.dataset import layout
    from dataset_forge.dataset.exr import compression_name

    files = [gt_dir / layout.gt_file(k, frame) for k in ("depth", "normal", "flow", "segmentation")]
    data = []
    for p in files:
        with OpenEXR.File(str(p), separate_channels=True) as f:
            data.append({n: np.array(c.pixels, dtype=np.float32) for n, c in f.channels().items()})
    tmp = Path(tempfile.mkdtemp(prefix="df-bench-exr-"))
    rows = []
    try:
        for codec in CODECS:
            comp = getattr(OpenEXR, f"{compression_name(codec)}_COMPRESSION")
            wt, rt, size, err = [], [], 0, 0.0
            for rep in range(reps):
                t0 = time.perf_counter()
                paths = []
                for i, chans in enumerate(data):
                    path = tmp / f"{codec}_{i}.exr"
                    # (a copy: OpenEXR.File turns the dict's arrays into Channel objects)
                    with OpenEXR.File({"compression": comp, "type": OpenEXR.scanlineimage},
                                      dict(chans)) as f:
                        f.write(str(path))
                    paths.append(path)
                wt.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                back = []
                for path in paths:
                    with OpenEXR.File(str(path), separate_channels=True) as f:
                        back.append({n: np.array(c.pixels) for n, c in f.channels().items()})
                rt.append(time.perf_counter() - t0)
                if rep == 0:
                    size = sum(p.stat().st_size for p in paths)
                    per = {}
                    for kind, a, b in zip(("depth", "normal", "flow", "segmentation"), data, back):
                        per[kind] = max(float(np.max(np.abs(a[n].astype(np.float64) -
                                                             b[n].astype(np.float64))))
                                        for n in a)
                    err = max(per.values())
            rows.append({"codec": codec, "write_ms": 1e3 * _median(wt), "read_ms": 1e3 * _median(rt),
                         "bytes": size, "max_error": err, "errors": per,
                         "lossless": codec in LOSSLESS})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# -- the whole run ---------------------------------------------------------------------------------
def measure(params: dict[str, Any], work: Path, log=print) -> dict[str, Any]:
    """All measurements of one benchmark run (raw, one record per configuration and round)."""
    work.mkdir(parents=True, exist_ok=True)
    warm_up()
    need = max(params["frames"], params["fixed_frames"],
               max(params["sequences"]) * params["scaling_frames"])
    blend = prepare_scene(work, need)
    small = min(params["sizes"])
    workloads = [{"name": f"{s}x{s}, {params['samples']} spp, {params['frames']} frames", "size": s,
                  "samples": params["samples"], "frames": params["frames"],
                  "configs": MAIN_CONFIGS} for s in params["sizes"]]
    workloads.append({"name": f"{small}x{small}, 1 spp, {params['fixed_frames']} frames "
                              "(fixed costs)", "size": small, "samples": 1,
                      "frames": params["fixed_frames"], "configs": FIXED_CONFIGS})
    scale_w = {"size": small, "samples": params["samples"], "frames": params["scaling_frames"]}
    runs: dict[str, list[dict]] = {}
    scaling: dict[str, list[dict]] = {}
    paired: dict[str, list[dict]] = {}
    for rnd in range(params["repeats"]):
        for w in workloads:
            cfgs = list(w["configs"])
            k = rnd % len(cfgs)
            for cfg in cfgs[k:] + cfgs[:k]:
                t0 = time.time()
                if cfg.startswith("floor"):
                    rec = measure_floor(work, blend, w, passes=cfg == "floor")
                else:
                    rec = measure_ours(work, blend, w, debug=cfg == "ours_previews")
                runs.setdefault(w["name"], []).append(rec)
                log(f"  round {rnd + 1}: {w['name']}: {cfg}: {rec['steady']:.4f} s/frame, "
                    f"whole {rec['wall']:.2f} s ({time.time() - t0:.0f} s)")
            if w["configs"] is MAIN_CONFIGS and params.get("paired", True):
                mine = runs[w["name"]][-len(cfgs):]
                delay = _median([r["first_frame_at"] for r in mine if r["config"] != "floor"]) - \
                    _median([r["first_frame_at"] for r in mine if r["config"] == "floor"])
                for debug in (False, True):
                    rec = measure_paired(work, blend, w, debug, delay)
                    paired.setdefault(w["name"], []).append(rec)
                    log(f"  round {rnd + 1}: {w['name']}: paired {rec['config']}/floor: "
                        f"{rec['ratio']:.3f} (CPU {rec['ratio_cpu']:.3f})")
        for count in params["sequences"]:
            rec = measure_sequences(work, blend, scale_w, count)
            scaling.setdefault(rec["config"], []).append(rec)
        for jobs in (1, 2):
            rec = measure_sequences(work, blend, scale_w, 1, jobs=jobs, scenes=2)
            scaling.setdefault(rec["config"], []).append(rec)
        log(f"  round {rnd + 1}: scaling done")
    inproc = {}
    for size in params["sizes"]:
        r = run_measured([sys.executable, str(REPO / "bench" / "inprocess.py"), "--size", str(size),
                          "--samples", str(params["samples"]), "--chunk",
                          str(params.get("chunk", 8)), "--rounds", str(params["repeats"] + 1),
                          "--work", str(work / f"inprocess_{size}")])
        inproc[f"{size}x{size}, {params['samples']} spp"] = r
        log(f"  in-process comparison {size}: " + ", ".join(
            f"{k} {v['cpu_ratio']:.3f}" for k, v in r["rows"].items()))
    reps = 3 if params["repeats"] == 1 else 10
    big = workloads[len(params["sizes"]) - 1]
    codecs = {"basic": measure_codecs(Path(next(r["out"] for r in reversed(runs[big["name"]])
                                                if r["config"] == "ours")), 1, reps)}
    # A moving, tilted camera: depth, normals and flow vary over the whole image.
    orbit_w = {"size": big["size"], "samples": params["samples"], "frames": 2}
    orbit = measure_ours(work, work / "src" / "orbit.blend", orbit_w, debug=False)
    codecs["orbit"] = measure_codecs(Path(orbit["out"]), 2, reps)
    log("  codecs done")
    return {"params": params, "machine": machine(), "blender": _blender_version(),
            "workloads": [w["name"] for w in workloads], "runs": runs, "scaling": scaling,
            "paired": paired, "inprocess": inproc,
            "codecs": codecs, "codec_size": max(params["sizes"])}


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Medians per configuration and the ratios ours/floor (the numbers the tables print)."""
    out: dict[str, Any] = {"workloads": {}, "scaling": {}}
    for name in raw["workloads"]:
        by: dict[str, list[dict]] = {}
        for r in raw["runs"][name]:
            by.setdefault(r["config"], []).append(r)
        med = {c: {k: _median([r[k] for r in rs]) for k in rs[0]
                   if isinstance(rs[0][k], (int, float)) and k not in ("scene_opens", "workers")}
               | {"scene_opens": max(r["scene_opens"] for r in rs),
                  "workers": max(r["workers"] for r in rs), "n": len(rs)}
               for c, rs in by.items()}
        fl = med["floor"]
        for c, m in med.items():
            m["ratio"] = m["steady"] / fl["steady"]
            m["ratio_med"] = m["steady_med"] / fl["steady_med"]
            m["ratio_cpu"] = m["steady_cpu"] / fl["steady_cpu"]
            m["whole_ratio"] = m["wall"] / fl["wall"]
            m["whole_minus_floor"] = m["wall"] - fl["wall"]
            # Paired per round (same position in the drift): ratio of the steady states.
            pairs = [a["steady"] / b["steady"] for a, b in
                     zip([r for r in raw["runs"][name] if r["config"] == c],
                         [r for r in raw["runs"][name] if r["config"] == "floor"])]
            m["ratio_paired"] = _median(pairs)
        out["workloads"][name] = med
    for name, rs in raw["scaling"].items():
        out["scaling"][name] = ({k: _median([r[k] for r in rs]) for k in rs[0]
                                 if isinstance(rs[0][k], (int, float))}
                                | {"config": name, "n": len(rs)})
    out["codecs"] = raw["codecs"]  # {scene: [rows]}
    out["inprocess"] = raw.get("inprocess", {})
    out["paired"] = {}
    for name, rs in raw.get("paired", {}).items():
        for cfg in ("ours", "ours_previews"):
            sel = [r for r in rs if r["config"] == cfg]
            if sel:
                out["paired"][(name, cfg)] = {k: _median([r[k] for r in sel]) for k in sel[0]
                                              if isinstance(sel[0][k], (int, float))} | {
                    "n": len(sel), "ratios": [r["ratio"] for r in sel]}
    return out


def build_tables(raw: dict[str, Any]) -> str:
    """The printed report: Markdown tables of :func:`summarize`'s numbers."""
    s = summarize(raw)
    p = raw["params"]
    lines = [f"Machine: {raw['machine']}; Blender {raw['blender']}; median of {p['repeats']} "
             "round(s); wall = elapsed seconds, CPU = user+system seconds of all threads.", ""]
    lines += ["### 1. Ours vs the floor (steady state = per frame after the first)", "",
              "| workload | configuration | mean frame s | median frame s | CPU s/frame | "
              "ours/floor mean | ours/floor median | ours/floor CPU | whole sequence s | "
              "whole CPU s | whole - floor s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, med in s["workloads"].items():
        for c, m in med.items():
            lines.append(f"| {name} | {c} | {m['steady']:.4f} | {m['steady_med']:.4f} | "
                         f"{m['steady_cpu']:.4f} | {m['ratio']:.3f} | {m['ratio_med']:.3f} | "
                         f"{m['ratio_cpu']:.3f} | {m['wall']:.2f} | {m['cpu']:.2f} | "
                         f"{m['whole_minus_floor']:+.2f} |")
    if s["paired"]:
        lines += ["", "### 1b. Paired: floor and ours rendering at the same time (each with half "
                  "of the cores; steady state over the frames both finished while the other was "
                  "rendering)", "",
                  "| workload | configuration | threads each | floor s/frame | ours s/frame | "
                  "ours/floor | ours/floor CPU | ratio per round |", "|---|---|---|---|---|---|---|---|"]
        for (name, cfg), m in s["paired"].items():
            per = ", ".join(f"{x:.3f}" for x in m["ratios"])
            lines.append(f"| {name} | {cfg} | {int(m['threads'])} | {m['floor_steady']:.4f} | "
                         f"{m['ours_steady']:.4f} | {m['ratio']:.3f} | {m['ratio_cpu']:.3f} | "
                         f"{per} |")
    if s["inprocess"]:
        lines += ["", "### 1c. In one process, interleaved in chunks (bench/inprocess.py): the "
                  "plain graph vs our PassRig, CPU seconds per frame", "",
                  "| workload | configuration | median wall s/frame | median CPU s/frame | "
                  "CPU vs anim_plain | frames |", "|---|---|---|---|---|---|"]
        for name, r in s["inprocess"].items():
            for cfg, m in r["rows"].items():
                lines.append(f"| {name} | {cfg} | {m['wall']:.4f} | {m['cpu']:.4f} | "
                             f"{m['cpu_ratio']:.3f} | {m['frames']} |")
    lines += ["", "### Targets (measured above)", "",
              "| workload | check | measured | target | met |", "|---|---|---|---|---|"]
    for name, med in s["workloads"].items():
        if "fixed costs" in name:
            continue
        o, v, f = med["ours"], med["ours_previews"], med["floor"]
        fixed = (o["startup"] - f["startup"]) + (o["first_extra"] - f["first_extra"]) + \
            (o["tail"] - f["tail"])
        checks = []
        for cfg, limit in (("ours", 1.05), ("ours_previews", 1.30)):
            pm = s["paired"].get((name, cfg))
            if pm:
                checks.append((f"{cfg}/floor, paired wall", pm["ratio"], limit))
                checks.append((f"{cfg}/floor, paired CPU", pm["ratio_cpu"], limit))
            checks.append((f"{cfg}/floor, sequential median frame", med[cfg]["ratio_med"], limit))
        checks.append(("whole sequence - floor (s), sequential", o["whole_minus_floor"], 1.0))
        checks.append(("per-sequence fixed cost - floor's (s): start-up + first frame + after "
                       "last frame", fixed, 1.0))
        checks.append(("scene opens per worker", o["scene_opens"] / o["workers"], 1.0))
        for label, val, limit in checks:
            lines.append(f"| {name} | {label} | {val:.3f} | <= {limit:g} | "
                         f"{'n/a' if math.isnan(val) else 'yes' if val <= limit else 'NO'} |")
    lines += ["", "### 2. Where the time goes (seconds; medians)", "",
              "| workload | configuration | start until bpy imported | start-up to scene ready | "
              "scene open | first-frame extra | render call/frame | our Python/frame | after "
              "last frame | scene opens | workers |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, med in s["workloads"].items():
        for c, m in med.items():
            lines.append(f"| {name} | {c} | {m['import']:.3f} | {m['startup']:.3f} | "
                         f"{m['open']:.4f} | "
                         f"{m['first_extra']:.3f} | {m['render_call']:.4f} | "
                         f"{_ms(m['python'])} | {m['tail']:.3f} | {m['scene_opens']} | "
                         f"{m['workers']} |")
    fixed = next((med for name, med in s["workloads"].items() if "floor_bare" in med), None)
    if fixed:
        b, f, o, v = (fixed[c]["steady"] for c in FIXED_CONFIGS)
        bc, fc, oc, vc = (fixed[c]["steady_cpu"] for c in FIXED_CONFIGS)
        lines += ["", "Fixed per-frame costs (1-spp workload, steady state, wall / CPU ms):", "",
                  "| cost | wall ms/frame | CPU ms/frame |", "|---|---|---|",
                  f"| plain frame (floor_bare) | {1e3 * b:.1f} | {1e3 * bc:.1f} |",
                  f"| passes + 4 File Output EXRs (floor - floor_bare) | {1e3 * (f - b):+.1f} | "
                  f"{1e3 * (fc - bc):+.1f} |",
                  f"| our conversion nodes + Python (ours - floor) | {1e3 * (o - f):+.1f} | "
                  f"{1e3 * (oc - fc):+.1f} |",
                  f"| previews (ours_previews - ours) | {1e3 * (v - o):+.1f} | "
                  f"{1e3 * (vc - oc):+.1f} |"]
    lines += ["", f"### 3. Scaling ({p['scaling_frames']} frames per sequence, "
              f"{min(p['sizes'])}x{min(p['sizes'])}, {p['samples']} spp; create_datasets)", "",
              "| scenes x sequences | jobs | frames | wall s | CPU s | wall s per sequence | "
              "discovery s | scene opens | render workers | sequences done |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for m in s["scaling"].values():
        lines.append(f"| {int(m['scenes'])}x{int(m['sequences'])} | {int(m['jobs'])} | "
                     f"{int(m['frames'])} | {m['wall']:.2f} | {m['cpu']:.2f} | "
                     f"{m['wall'] / (m['scenes'] * m['sequences']):.2f} | {m['discovery']:.2f} | "
                     f"{int(m['scene_opens'])} | {int(m['workers'])} | "
                     f"{int(m['sequences_done'])} |")
    lines += ["", f"### 4. EXR codecs for the float ground truth (one frame's 4 files, "
              f"{raw['codec_size']}x{raw['codec_size']}, OpenEXR {_openexr_version()})", "",
              "| scene | codec | lossless | write ms | read ms | bytes | vs ZIP size | max abs error "
              "(depth / normal / flow / segmentation) |", "|---|---|---|---|---|---|---|---|"]
    for scene, rows in s["codecs"].items():
        zip_bytes = next(r["bytes"] for r in rows if r["codec"] == "ZIP")
        for r in rows:
            e = r["errors"]
            lines.append(f"| {scene} | {r['codec']} | {'yes' if r['lossless'] else 'no'} | "
                         f"{r['write_ms']:.2f} | {r['read_ms']:.2f} | {r['bytes']} | "
                         f"{r['bytes'] / zip_bytes:.2f} | {e['depth']:.3g} / {e['normal']:.3g} / "
                         f"{e['flow']:.3g} / {e['segmentation']:.3g} |")
    return "\n".join(lines)


# -- child process (ours) -------------------------------------------------------------------------
def _import_package():
    """``dataset_forge`` from the venv, else from this checkout (the demo's loader)."""
    sys.path.insert(0, str(REPO / "tools"))
    from demo import import_package

    return import_package()


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) of a live process, from /proc."""
    if pid is None:
        return math.nan
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


def child(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    df = _import_package()
    events: list[dict[str, Any]] = []
    pids: dict[int, int] = {}

    def on_event(e: dict[str, Any]) -> None:
        rec = {"t": time.time(), **{k: e.get(k) for k in ("event", "seconds", "frame", "pid",
                                                          "slot", "job")}}
        if e["event"] == "worker_started":
            pids[e["slot"]] = e["pid"]
        elif e["event"] == "frame_done":
            rec["cpu_worker"] = _proc_cpu(pids.get(e["slot"]))
        if e["event"] != "progress":
            events.append(rec)

    result: dict[str, Any] = {"discovery": 0.0}
    if spec["mode"] == "ours":
        t_call = time.time()
        summary = df.render_animation(spec["blend"], spec["out"], frame_start=spec["frame_start"],
                                      frame_end=spec["frame_end"], on_event=on_event,
                                      **spec["options"])
    else:
        from dataset_forge.engine.discovery import discover
        from dataset_forge.settings import Settings

        t0 = time.time()
        infos = discover(spec["scenes"], Settings.from_dict(spec["options"]))
        result["discovery"] = time.time() - t0
        t_call = time.time()
        summary = df.create_datasets(spec["scenes"], spec["out"],
                                     sequences_per_scene=spec["sequences"],
                                     num_frames=spec["frames"], scenes=infos, on_event=on_event,
                                     **spec["options"])
    result.update(t_call=t_call, t_done=time.time(), events=events, ok=bool(summary["ok"]),
                  summary={k: summary.get(k) for k in ("ok", "failed", "frames_rendered")})
    sys.stdout.write("\n" + PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


# -- helpers -----------------------------------------------------------------------------------------
def _slope(values: list[float]) -> float:
    """Mean step between consecutive values after the first (the steady-state cost per frame)."""
    return (values[-1] - values[0]) / (len(values) - 1) if len(values) > 1 else math.nan


def _slope_valid(values: list[float]) -> float:
    """:func:`_slope` between the first and the last sample that could be read (the worker may
    have exited before its last event was handled)."""
    ok = [i for i, v in enumerate(values) if not math.isnan(v)]
    if len(ok) < 2:
        return math.nan
    return (values[ok[-1]] - values[ok[0]]) / (ok[-1] - ok[0])


def _median(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(vals) if vals else math.nan


def _ms(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{1e3 * v:.1f} ms"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
        ram = f"{mem / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        ram = "RAM unknown"
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.1f}/{:.1f}/{:.1f} at the end".format(*os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), {ram}, no GPU used (CPU rendering){load}"


def _blender_version() -> str:
    p = subprocess.run([sys.executable, "-c", "import bpy, os, sys; sys.stdout.write("
                        "'@v ' + bpy.app.version_string + '\\n'); sys.stdout.flush(); os._exit(0)"],
                       capture_output=True, text=True, env=_env(), timeout=300)
    return next((ln[3:] for ln in p.stdout.splitlines() if ln.startswith("@v ")), "unknown")


def _openexr_version() -> str:
    try:
        import OpenEXR

        return OpenEXR.__version__
    except (ImportError, AttributeError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64x64, 8 frames, 4 spp, 1 round")
    ap.add_argument("--sizes", help="comma-separated square sizes in px (default 128,256)")
    ap.add_argument("--frames", type=int, help="frames per sequence (default 48)")
    ap.add_argument("--samples", type=int, help="samples per pixel (default 16)")
    ap.add_argument("--repeats", type=int, help="rounds; medians are reported (default 3)")
    ap.add_argument("--scaling-frames", type=int, help="frames per sequence in the scaling runs")
    ap.add_argument("--fixed-frames", type=int, help="frames of the 1-spp fixed-cost workload")
    ap.add_argument("--sequences", help="sequence counts of the scaling runs (default 1,2,4)")
    ap.add_argument("--no-paired", action="store_true",
                    help="skip the paired runs (floor and ours at the same time)")
    ap.add_argument("--work", default="", help="scratch folder (default: a new temp folder)")
    ap.add_argument("--json", default="", help="also write the raw measurements here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a.child)
        return 0
    params = dict(QUICK if a.quick else FULL)
    if a.sizes:
        params["sizes"] = [int(x) for x in a.sizes.split(",")]
    for key in ("frames", "samples", "repeats", "scaling_frames", "fixed_frames"):
        if getattr(a, key) is not None:
            params[key] = getattr(a, key)
    params["paired"] = not a.no_paired
    if a.sequences:
        params["sequences"] = [int(x) for x in a.sequences.split(",")]
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="df-bench-"))
    print(f"benchmark in {work}: {params}", flush=True)
    t0 = time.time()
    raw = measure(params, work, log=lambda m: print(m, flush=True))
    if a.json:
        Path(a.json).write_text(json.dumps(raw, indent=1), encoding="utf-8")
    print()
    print(build_tables(raw))
    print(f"\n(total {time.time() - t0:.0f} s; scratch folder {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
