# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the bundled test scenes and render the demo dataset (all ground truth, tiny and fast).

    .venv/bin/python tools/demo.py [--datasets-dir datasets] [--width 128 --height 96 ...]

1. ``tests/scenes.py`` builds the scenes into ``DATASETS/scenes/*.blend`` (a subprocess: the
   scene builder imports ``bpy``).
2. ``dataset_forge.create_datasets`` renders ``--sequences`` disjoint sequences of ``--frames``
   frames per scene into ``DATASETS/renders/<scene>/<sequence-id>/`` with depths, normals, flows,
   segmentations and previews.
3. Every sequence folder is checked for its frames and ``transforms.json``; the folders are listed.

Exit code 0 when every scene rendered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def import_package():
    """``dataset_forge`` from the venv (tools/setup.sh links it), else from this checkout."""
    try:
        import dataset_forge
    except ImportError:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "dataset_forge", REPO / "__init__.py", submodule_search_locations=[str(REPO)])
        dataset_forge = importlib.util.module_from_spec(spec)
        sys.modules["dataset_forge"] = dataset_forge
        spec.loader.exec_module(dataset_forge)
    return dataset_forge


def build_scenes(out: Path) -> list[Path]:
    """Run tests/scenes.py with this Python; returns the .blend files."""
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "scenes.py"), str(out)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"demo: building the scenes failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return sorted(out.glob("*.blend"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/demo.py", description=__doc__.split("\n")[0])
    ap.add_argument("--datasets-dir", default=str(REPO / "datasets"))
    ap.add_argument("--sequences", type=int, default=2, help="sequences per scene")
    ap.add_argument("--frames", type=int, default=8, help="frames per sequence")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)

    # Blender must not write into the user's own config (preferences, extension cache).
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="df-demo-blender-"))
    datasets = Path(args.datasets_dir).resolve()
    t0 = time.perf_counter()
    blends = build_scenes(datasets / "scenes")
    print(f"built {len(blends)} scenes into {datasets / 'scenes'}: "
          f"{', '.join(b.stem for b in blends)}", flush=True)

    df = import_package()
    summary = df.create_datasets(
        datasets / "scenes", datasets, sequences_per_scene=args.sequences, num_frames=args.frames,
        width=args.width, height=args.height, max_samples=args.samples, use_denoising=False,
        depths=True, normals=True, flows=True, segmentations=True, debug=True, jobs=args.jobs)

    from dataset_forge.dataset import layout

    renders = datasets / layout.RENDERS
    ok = bool(summary.get("ok", False))
    for tf in sorted(renders.glob(f"*/*/{layout.TRANSFORMS}")):
        meta = json.loads(tf.read_text(encoding="utf-8"))
        frames = sorted((tf.parent / layout.RGB_FOLDER).glob(f"{layout.RGB_STEM}_*"))
        kinds = sorted(p.name for p in tf.parent.iterdir() if p.is_dir() and not p.name.startswith("."))
        print(f"{tf.parent.relative_to(datasets)}: {len(frames)} frames, {meta['w']}x{meta['h']}, "
              f"fl_x={meta['fl_x']:.2f} fl_y={meta['fl_y']:.2f}; {' '.join(kinds)}")
        if len(frames) != len(meta["frames"]) or not frames:
            ok = False
            print(f"  expected {len(meta['frames'])} frames in {tf.parent / layout.RGB_FOLDER}",
                  file=sys.stderr)
    expected = len(blends) * args.sequences
    found = len(list(renders.glob(f"*/*/{layout.TRANSFORMS}")))
    if found != expected:
        ok = False
        print(f"demo: {found} sequences written, expected {expected}", file=sys.stderr)
    for name, why in (summary.get("failed") or {}).items():
        print(f"demo: scene {name} failed: {why}", file=sys.stderr)
    print(f"demo dataset {'ready' if ok else 'INCOMPLETE'} in {renders} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
