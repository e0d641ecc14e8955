# SPDX-License-Identifier: GPL-3.0-or-later
"""The scale benchmark: what object ground truth (ids + object records) costs as instances grow.

    .venv/bin/python bench/scale.py [--quick] [--cases scatter,many,light,particles]
        [--counts 0,1000,...]
        [--res 640x480,...] [--repeats 1] [--work DIR] [--json FILE]

Scenes, built by code (tests/instance_scenes.py, tests/scenes.py):

* ``scatter N``: a ground plane whose geometry nodes scatter N cones (Distribute Points on Faces
  + Instance on Points), camera moving, 6 frames, 160x120 (and 640x480 for 50k), 4 spp;
* ``particles N``: the same N cones as a static hair particle system of the ground drawn as an
  object (the way forests were scattered before geometry nodes), 10k and 50k;
* ``many``: 400 mesh objects + 200 collection instances, camera moving, 24 frames, 256x192, 8 spp;
* ``light``: tests/scenes.py ``basic`` (a few objects), 256x256 and 1920x1080.

Configurations, each its own process tree, in a rotating order per round:

* ``floor``: bench/floor.py, plain ``bpy`` rendering the same view-layer passes to EXR File
  Output nodes (no Dataset Forge);
* ``noseg``: Dataset Forge, every ground truth but segmentations (no ids, no object records);
* ``ours``: Dataset Forge, every ground truth (ids and object records included);
* ``filtered`` (with ``--filtered``): ``ours`` with ``filtered_passes``: one render per frame,
  normals and flow averaged over its samples (no data render), so ``filtered/floor`` is what ids,
  records and the rest cost beside a single render.

Reported per case: wall seconds of each (the whole process, start-up included), the ratios
``ours/floor`` (of the medians, and of each configuration's fastest round: load from elsewhere
only adds time) and ``ours/noseg`` (the cost of ids + object records alone), the steady per-frame
ratio, the peak RSS of each configuration's largest process (the worker for ours), the metadata
bytes per frame (on disk: the schema-2 ``objects/*.npz`` records + ``objects.json``, over the
frames; and uncompressed: visible records x ``dataset.objects.RECORD_BYTES``), the instances
per frame (recorded, and visible)
and the worker's own object timings. Numbers are medians over ``--repeats``; the machine is
shared, so compare ratios of one run only. It prints; it never passes or fails on time.
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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from run import _env  # noqa: E402  (bench/run.py: the one environment of measured runs)

FLOOR = REPO / "bench" / "floor.py"
RUN = REPO / "bench" / "run.py"
PREFIX = "@bench "
RECORD_BYTES = 4 + 16 * 8 + 3 * 8 * 2 + 4 * 8 + 4 * 4 + 8  # = dataset.objects.RECORD_BYTES

FULL = [dict(kind="scatter", count=n, res=(160, 120), frames=6, samples=4)
        for n in (0, 1000, 10_000, 50_000)] + [
    dict(kind="many", count=600, res=(256, 192), frames=24, samples=8),
    dict(kind="light", count=0, res=(256, 256), frames=24, samples=16),
    dict(kind="scatter", count=50_000, res=(640, 480), frames=6, samples=4),
    dict(kind="light", count=0, res=(1920, 1080), frames=3, samples=1),
    dict(kind="scatter", count=200_000, res=(160, 120), frames=6, samples=4)] + [
    dict(kind="particles", count=n, res=(160, 120), frames=6, samples=4) for n in (10_000, 50_000)]
QUICK = [dict(kind="scatter", count=n, res=(64, 48), frames=3, samples=1) for n in (0, 300)]
CONFIGS = ("floor", "noseg", "ours")
FILTERED = "filtered"  # opt-in fourth configuration (--filtered)


def case_name(c: dict[str, Any]) -> str:
    return f"{c['kind']}_{c['count']}_{c['res'][0]}x{c['res'][1]}_{c['frames']}f"


# -- scenes -----------------------------------------------------------------------------------------
BUILD = r'''
import sys
sys.path.insert(0, {tests!r})
import instance_scenes
c = {case!r}
if c["kind"] in ("scatter", "particles"):
    instance_scenes.build_scatter({path!r}, c["count"], c["frames"], tuple(c["res"]), c["samples"],
                                  via="particles" if c["kind"] == "particles" else "nodes")
else:
    instance_scenes.build_many({path!r}, 400, 200, c["frames"], tuple(c["res"]), c["samples"])
import os
os._exit(0)
'''


def build_scene(work: Path, c: dict[str, Any]) -> Path:
    """The case's ``.blend`` (built once per work folder)."""
    path = work / "scenes" / f"{case_name(c)}.blend"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if c["kind"] == "light":
        src = work / "scenes" / "light_src"
        subprocess.run([sys.executable, str(REPO / "tests" / "scenes.py"), str(src), "basic"],
                       check=True, capture_output=True, env=_env(), timeout=600)
        spec = work / "prepare.json"
        spec.write_text(json.dumps({"mode": "prepare", "blend": str(src / "basic.blend"),
                                    "out": str(path), "frame_start": 1,
                                    "frame_end": c["frames"]}))
        subprocess.run([sys.executable, str(FLOOR), str(spec)], check=True, capture_output=True,
                       env=_env(), timeout=600)
        return path
    code = BUILD.format(tests=str(REPO / "tests"), case=c, path=str(path))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=_env(),
                   timeout=1800)
    return path


# -- one configuration ------------------------------------------------------------------------------
def _measured(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run ``cmd`` in a fresh wrapper process: its ``@bench`` line, wall seconds and the peak RSS
    (MiB) of the largest process of its tree (``RUSAGE_CHILDREN`` of the wrapper)."""
    wrap = ("import resource, subprocess, sys, json, time\n"
            "t = time.time()\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "w = time.time() - t\n"
            "sys.stdout.write(p.stdout)\nsys.stderr.write(p.stderr[-4000:])\n"
            "print('@wrap ' + json.dumps({'rc': p.returncode, 'wall': w, 'maxrss_kib': "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")
    p = subprocess.run([sys.executable, "-c", wrap, *cmd], capture_output=True, text=True,
                       env=_env(), timeout=timeout)
    lines = p.stdout.splitlines()
    wrap_line = [ln for ln in lines if ln.startswith("@wrap ")]
    bench = [ln for ln in lines if ln.startswith(PREFIX)]
    if not wrap_line or not bench or json.loads(wrap_line[-1][6:])["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    w = json.loads(wrap_line[-1][6:])
    out = json.loads(bench[-1][len(PREFIX):])
    out.update(wall=w["wall"], peak_mib=w["maxrss_kib"] / 1024.0)
    return out


def slope(ts: list[float]) -> float:
    """Least-squares seconds per frame of completion times ``ts`` (nan below 3)."""
    n = len(ts)
    if n < 3:
        return float("nan")
    xm, ym = (n - 1) / 2, statistics.fmean(ts)
    return sum((i - xm) * (t - ym) for i, t in enumerate(ts)) / sum((i - xm) ** 2 for i in range(n))


def run_config(work: Path, blend: Path, c: dict[str, Any], config: str,
               timeout: float = 3600) -> dict[str, Any]:
    w, h = c["res"]
    out = work / "out" / f"{case_name(c)}_{config}"
    subprocess.run(["rm", "-rf", str(out)], check=False)
    if config == "floor":
        spec = {"mode": "floor", "blend": str(blend), "out": str(out), "width": w, "height": h,
                "samples": c["samples"], "frame_start": 1, "frame_end": c["frames"],
                "passes": True, "threads": 0, "persistent": True, "exr_codec": "ZIP"}
        path = work / f"spec_{config}.json"
        path.write_text(json.dumps(spec))
        r = _measured([sys.executable, str(FLOOR), str(path)], timeout)
        return {"wall": r["wall"], "peak_mib": r["peak_mib"],
                "steady": slope([f["t"] for f in r["frames"]]), "frames": len(r["frames"])}
    opts = {"width": w, "height": h, "max_samples": c["samples"], "adaptive_threshold": 0.0,
            "use_denoising": False, "device_type": "CPU", "depths": True, "normals": True,
            "flows": True, "segmentations": config in ("ours", FILTERED), "debug": False,
            "use_persistent_data": True, "threads": 0, "filtered_passes": config == FILTERED}
    spec = {"mode": "ours", "blend": str(blend), "out": str(out), "frame_start": 1,
            "frame_end": c["frames"], "options": opts}
    path = work / f"spec_{config}.json"
    path.write_text(json.dumps(spec))
    r = _measured([sys.executable, str(RUN), "--child", str(path)], timeout)
    if not r["ok"]:
        raise RuntimeError(f"{case_name(c)} {config}: {r['summary']}")
    fd = [e["t"] for e in r["events"] if e["event"] == "frame_done"]
    res = {"wall": r["wall"], "peak_mib": r["peak_mib"], "steady": slope(fd), "frames": len(fd)}
    if config == "ours":
        res.update(_objects_facts(out, c["frames"]))
    return res


def _objects_facts(out: Path, frames: int) -> dict[str, Any]:
    """Metadata sizes and the worker's object timings of a finished ``ours`` sequence: the bytes
    on disk of the schema-2 objects files (``objects.json`` + the frame records ``objects/*.npz``)
    per frame, the instances recorded (drawn) and visible per frame, and the uncompressed record
    bytes (``visible x RECORD_BYTES``)."""
    from dataset_forge.dataset.documents.objects_files import ObjectsSource

    objs = next(out.rglob("objects.json"), None)
    info = next(out.rglob("info.json"), None)
    res: dict[str, Any] = {}
    if objs is not None:
        src = ObjectsSource(objs.parent, objs)
        recs = [src.record(f) for f in src.doc.frames]
        per = [len(r.instance_id) for r in recs]
        vis = [int((r.px_count_visib > 0).sum()) for r in recs]
        npz = sum(src.record_path(f).stat().st_size for f in src.doc.frames)
        res.update(json_bytes=objs.stat().st_size, npz_bytes_per_frame=npz / max(frames, 1),
                   disk_bytes_per_frame=(npz + objs.stat().st_size) / max(frames, 1),
                   drawn=statistics.fmean(per) if per else 0.0,
                   visible=statistics.fmean(vis) if vis else 0.0)
        res["record_bytes_visible"] = res["visible"] * RECORD_BYTES
        res["record_bytes_all"] = res["drawn"] * RECORD_BYTES
    if info is not None:
        st = json.loads(info.read_text()).get("objects") or {}
        res["timings"] = st.get("timings", {})
        res["pixels"] = st.get("pixels", {})
    return res


# -- the whole benchmark --------------------------------------------------------------------------------
def measure(cases: list[dict[str, Any]], work: Path, repeats: int = 1, log=print,
            configs: tuple[str, ...] = CONFIGS) -> list[dict]:
    rows = []
    # untimed: every module a run imports (lazily too: more than bench/run.py's warm_up),
    # compiled into _env's caches
    tiny = QUICK[0]
    for config in configs[:3]:
        run_config(work, build_scene(work, tiny), tiny, config)
    for c in cases:
        blend = build_scene(work, c)
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in configs}
        n = len(configs)
        for r in range(repeats):
            order = configs[r % n:] + configs[:r % n]
            for config in order:
                t0 = time.time()
                runs[config].append(run_config(work, blend, c, config))
                log(f"  {case_name(c)} {config}: {runs[config][-1]['wall']:.1f} s "
                    f"(bench {time.time() - t0:.0f} s)")
        med = {k: {f: statistics.median(x[f] for x in v) for f in ("wall", "peak_mib", "steady")}
               for k, v in runs.items()}
        row = {"case": case_name(c), **c, "runs": runs, "median": med,
               "ours_floor": med["ours"]["wall"] / med["floor"]["wall"],
               # load from elsewhere only adds time: the fastest round of each is the other view
               "ours_floor_min": (min(x["wall"] for x in runs["ours"])
                                  / min(x["wall"] for x in runs["floor"])),
               "ours_noseg": med["ours"]["wall"] / med["noseg"]["wall"],
               "steady_ours_floor": med["ours"]["steady"] / med["floor"]["steady"],
               **({"filtered_floor": med[FILTERED]["wall"] / med["floor"]["wall"]}
                  if FILTERED in med else {}),
               "objects": {k: v for k, v in runs["ours"][-1].items()
                           if k not in ("wall", "peak_mib", "steady", "frames")}}
        rows.append(row)
        log(table([row]).splitlines()[-1])
    return rows


def table(rows: list[dict]) -> str:
    head = ("| case | floor s | noseg s | ours s | ours/floor | ours/floor (fastest rounds) "
            "| ours/noseg | steady ours/floor "
            "| peak MiB floor / noseg / ours | recorded / visible per frame "
            "| on disk B/frame (npz + objects.json) | records B/frame (visible, uncompressed) |")
    filtered = any("filtered_floor" in r for r in rows)
    if filtered:
        head += " filtered s | filtered/floor |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        m, o = r["median"], r["objects"]
        tail = (f" {m[FILTERED]['wall']:.1f} | {r['filtered_floor']:.2f} |"
                if filtered and "filtered_floor" in r else " — | — |" if filtered else "")
        out.append(
            f"| {r['case']} | {m['floor']['wall']:.1f} | {m['noseg']['wall']:.1f} | "
            f"{m['ours']['wall']:.1f} | {r['ours_floor']:.2f} | {r['ours_floor_min']:.2f} | "
            f"{r['ours_noseg']:.2f} | "
            f"{r['steady_ours_floor']:.2f} | {m['floor']['peak_mib']:.0f} / "
            f"{m['noseg']['peak_mib']:.0f} / {m['ours']['peak_mib']:.0f} | "
            f"{o.get('drawn', 0):.0f} / {o.get('visible', 0):.0f} | "
            f"{o.get('disk_bytes_per_frame', 0):,.0f} | {o.get('record_bytes_visible', 0):,.0f} |"
            + tail)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two tiny scatter cases (smoke)")
    ap.add_argument("--cases", default="scatter,many,light,particles")
    ap.add_argument("--counts", default="", help="scatter instance counts (default: all)")
    ap.add_argument("--res", default="", help="keep only cases of these sizes (e.g. 640x480)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work", default="")
    ap.add_argument("--json", default="")
    ap.add_argument("--filtered", action="store_true",
                    help="also run ours with filtered_passes (one render per frame)")
    a = ap.parse_args(argv)
    cases = QUICK if a.quick else [c for c in FULL if c["kind"] in a.cases.split(",")]
    if a.counts:
        keep = {int(x) for x in a.counts.split(",")}
        cases = [c for c in cases if c["kind"] not in ("scatter", "particles")
                 or c["count"] in keep]
    if a.res:
        keep_res = {tuple(int(v) for v in r.split("x")) for r in a.res.split(",")}
        cases = [c for c in cases if tuple(c["res"]) in keep_res]
    work = Path(a.work or tempfile.mkdtemp(prefix="df-scale-"))
    rows = measure(cases, work, a.repeats,
                   configs=CONFIGS + (FILTERED,) if a.filtered else CONFIGS)
    print()
    print(table(rows))
    for r in rows:
        print(f"{r['case']}: worker object timings {r['objects'].get('timings')}, "
              f"pixels {r['objects'].get('pixels')}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
