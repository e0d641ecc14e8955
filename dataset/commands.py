# SPDX-License-Identifier: GPL-3.0-or-later
"""Subcommands of the dataset tools for ``cli.py``: ``validate``, ``preview``, ``occlusion``,
``export``.

``python -m dataset_forge validate DATASETS --jobs 2`` and ``blender --command dataset validate
...`` both end here; nothing imports ``bpy``. Each ``func(args)`` returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields


def add_commands(sub) -> None:
    """Add the subcommands to ``sub`` (an ``argparse`` subparsers object)."""
    from .validate import Thresholds

    v = sub.add_parser("validate", help="check a sequence or datasets folder (exit 1: a check "
                       "failed, 2: could not run)",
                       description="Check every sequence below PATH: files, schema, frame count, "
                       "objects.json, camera cuts, flow of every thing vs depth + K + camera and "
                       "object poses, forward/backward cycle of deforming things, K fitted from "
                       "depth + normals, normals vs depth, segmentation ids (docs/validate.md). "
                       "Writes validation.json and validation.txt into PATH and marks each sequence "
                       "in manifest.json. Exit code 0: every sequence passed; 1: a check failed; 2: "
                       "validate could not run, or could not check a sequence (and none failed).")
    v.add_argument("path", metavar="PATH", help="a sequence folder or a datasets folder")
    v.add_argument("--jobs", type=int, default=1, help="sequences checked in parallel (default 1)")
    v.add_argument("--json", metavar="OUT", default=None,
                   help="also write the JSON report to OUT ('-' prints it instead of the table)")
    v.add_argument("--stride", type=int, default=1,
                   help="check geometry on every N-th frame only (default 1: all)")
    v.add_argument("--no-write", dest="write", action="store_false",
                   help="do not write validation.json/.txt nor touch manifest.json")
    v.add_argument("--allow-incomplete", action="store_true",
                   help="pass although sequences of the plan are missing or a run is writing PATH "
                        "(they are still reported)")
    helps = Thresholds.help()
    g = v.add_argument_group("thresholds")
    for f in fields(Thresholds):
        g.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default), default=None,
                       metavar="X", help=f"{helps.get(f.name, '')} (default {f.default})")
    v.set_defaults(func=_validate)

    p = sub.add_parser("preview", help="animated preview grids and a contact sheet",
                       description="Write one animated grid (RGB | depth | normals | flow | "
                       "segmentation) per sequence of PATH into OUT as WebP (or GIF), plus "
                       "OUT/contact_sheet.png.")
    p.add_argument("path", metavar="PATH", help="a sequence folder or a datasets folder")
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--fps", type=float, default=12.0, help="frames per second (default 12)")
    p.add_argument("--size", type=int, default=128, help="tile height in pixels (default 128)")
    p.add_argument("--format", dest="fmt", choices=("webp", "gif"), default=None,
                   help="animation format (default webp when pillow supports it, else gif)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="at most this many frames per animation (evenly spaced)")
    p.set_defaults(func=_preview)

    o = sub.add_parser("occlusion", help="write occlusion masks next to the flows",
                       description="Write flows/occlusion_NNNNNN.png for every frame with flow: "
                       "0 = valid forward flow, 128 = occluded (forward/backward check), "
                       "255 = leaves the frame.")
    o.add_argument("path", metavar="PATH", help="a sequence folder or a datasets folder")
    o.add_argument("--alpha", type=float, default=0.01, help="relative tolerance (default 0.01)")
    o.add_argument("--beta", type=float, default=0.5, help="absolute tolerance in px^2 (default 0.5)")
    o.set_defaults(func=_occlusion)

    add_export_command(sub)


def add_export_command(sub) -> None:
    """``export FORMAT SRC DST [--overwrite]`` (see :mod:`dataset.exports`)."""
    from .exports import FORMATS

    e = sub.add_parser("export", help="write a sequence or dataset in another tool's layout",
                       description="Export every sequence of SRC (a sequence folder or a datasets "
                       "folder) as FORMAT into DST, which must be empty or new. SRC is only read. "
                       "Formats: " + "; ".join(f"{f.name}: {f.help}" for f in FORMATS.values())
                       + ". See docs/use_the_dataset.md.")
    e.add_argument("format", metavar="FORMAT", choices=tuple(FORMATS),
                   help="one of " + ", ".join(FORMATS))
    e.add_argument("src", metavar="SRC", help="a sequence folder or a datasets folder")
    e.add_argument("dst", metavar="DST", help="output folder (created; must be empty)")
    e.add_argument("--overwrite", action="store_true",
                   help="replace a previous export in DST (recognised by its dataset_forge_export.json)")
    e.add_argument("--allow-incomplete", action="store_true",
                   help="export although sequences of the plan are missing or a run is writing "
                        "SRC (the export record then says \"complete\": false)")
    e.set_defaults(func=_export)


def _validate(ns: argparse.Namespace) -> int:
    """Exit codes (docs/dataset_tools.md): 0 every sequence passed, 1 a check failed,
    2 validate could not run (no such folder, not a sequence or datasets folder, a bug) or could
    not check a sequence and none failed."""
    from ..errors import DatasetForgeError
    from .documents.validation import EXIT_NOT_RUN
    from .validate import Thresholds, format_report, validate

    limits = {f.name: getattr(ns, f.name) for f in fields(Thresholds)
              if getattr(ns, f.name, None) is not None}
    if ns.jobs < 1 or ns.stride < 1:
        print("dataset validate: error: --jobs and --stride must be at least 1", file=sys.stderr)
        return EXIT_NOT_RUN
    try:
        report = validate(ns.path, jobs=ns.jobs, stride=ns.stride, write=ns.write,
                          update_manifest=ns.write, progress=True,
                          allow_incomplete=ns.allow_incomplete, **limits)
    except (DatasetForgeError, OSError) as exc:
        print(f"dataset validate: error: {' '.join(str(exc).splitlines()[:1])}", file=sys.stderr)
        return EXIT_NOT_RUN
    except Exception as exc:  # noqa: BLE001 - a bug of validate's: say so, never "a check failed"
        import traceback

        traceback.print_exc()
        print(f"dataset validate: could not run: internal error {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return EXIT_NOT_RUN
    if ns.json == "-":
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
        for line in report.get("incomplete", []):
            print(f"INCOMPLETE: {line}")
        if ns.json:
            from .transforms import write_json_atomic

            write_json_atomic(ns.json, report)
    return int(report["exit_code"])


def _preview(ns: argparse.Namespace) -> int:
    from .preview import preview

    res = preview(ns.path, ns.out, fps=ns.fps, size=ns.size, fmt=ns.fmt, max_frames=ns.max_frames,
                  progress=True)
    print(f"{len(res['animations'])} animation(s) and {res['contact_sheet']}")
    return 0


def _occlusion(ns: argparse.Namespace) -> int:
    from .occlusion import write_masks

    written = write_masks(ns.path, alpha=ns.alpha, beta=ns.beta)
    print(f"{len(written)} occlusion mask(s) written", file=sys.stdout)
    return 0


def _export(ns: argparse.Namespace) -> int:
    import time

    from .exports import MissingDependency, export, format_progress

    last = [0.0]

    def say(e):
        now = time.monotonic()
        if now - last[0] >= 1.0 or e["sequences_done"] == e["sequences_total"]:
            last[0] = now
            print(format_progress(e), file=sys.stderr, flush=True)

    try:
        res = export(ns.format, ns.src, ns.dst, overwrite=ns.overwrite, on_progress=say,
                     allow_incomplete=ns.allow_incomplete)
    except MissingDependency as exc:
        print(f"dataset: error: {exc}", file=sys.stderr)
        return 1
    for note in res["notes"]:
        print(f"note: {note}")
    print(f"{len(res['sequences'])} sequence(s) exported as {ns.format} into {ns.dst}")
    return 0
