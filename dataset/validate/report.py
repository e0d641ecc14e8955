# SPDX-License-Identifier: GPL-3.0-or-later
"""validate's reports: ``validation.json``, the ``validation.txt`` table, manifest entries and
the progress line. A cell reads ``n/c`` where a check could not tell (the message says why)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..transforms import write_json_atomic, write_text_atomic

REPORT_JSON = "validation.json"
REPORT_TXT = "validation.txt"
CHECKS = ("schema", "frame_count", "files", "objects", "camera_cuts", "flow_rigid", "flow_cycle",
          "intrinsics", "normals", "segmentation_ids", "coverage", "trajectory")
HEADS = {"frame_count": "count", "camera_cuts": "cuts", "flow_rigid": "rigid", "flow_cycle": "cycle",
         "segmentation_ids": "ids", "coverage": "cover", "intrinsics": "K",
         "trajectory": "path"}


def verdict(rel: str, r: dict[str, Any]) -> str:
    return f"{rel}: " + ("OK" if r["ok"] else "FAILED " + ", ".join(r["failed"]))


def progress_bar(done: int, total: int, t0: float, label: str = "", width: int = 20) -> str:
    """``[######----] 3/10  0:12 elapsed, ETA 0:28  label`` (``t0``: ``time.monotonic()`` at start)."""
    el = time.monotonic() - t0
    fill = int(width * done / total) if total else width
    eta = el / done * (total - done) if done else 0.0

    def mmss(x: float) -> str:
        return f"{int(x // 60)}:{int(x % 60):02d}"
    return (f"[{'#' * fill}{'-' * (width - fill)}] {done}/{total}  {mmss(el)} elapsed, "
            f"ETA {mmss(eta)}  {label}").rstrip()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_report(report: dict[str, Any], folder: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``validation.json`` and ``validation.txt`` (the table) into ``folder``."""
    folder = Path(folder)
    j = folder / REPORT_JSON
    write_json_atomic(j, report)
    txt = folder / REPORT_TXT
    write_text_atomic(txt, format_report(report) + "\n")
    return j, txt


def update_manifest_file(manifest_path: str | os.PathLike, report: dict[str, Any],
                         paths: dict[str, str] | None = None, summary: bool = True) -> None:
    """Set ``"validation"`` on every sequence of ``manifest.json`` that the report covers (other
    keys untouched) and, with ``summary``, a top-level ``"validation"``; atomic rewrite.
    ``paths`` maps the report's sequence paths to the manifest's (default: the same)."""
    p = Path(manifest_path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    paths = paths or {}
    by_path = {paths.get(r["path"], r["path"]): r for r in report["sequences"]}
    for sc in doc.get("scenes", []):
        for q in sc.get("sequences", []):
            r = by_path.get(q.get("path"))
            if r is None:
                continue
            q["validation"] = {"ok": r["ok"], "failed": r["failed"],
                               "messages": {k: r["checks"][k]["message"] for k in r["failed"]},
                               "not_checked": sorted(k for k, m in (r.get("not_checked") or {}).items()
                                                     if not m.startswith("not needed")),
                               "checked": report["checked"], "report": REPORT_JSON,
                               "journal_sha256": r.get("journal_sha256")}
    if summary:
        doc["validation"] = {"ok": report["ok"], "checked": report["checked"],
                             "sequences": len(report["sequences"]),
                             "sequences_failed": len(report["failed"]), "report": REPORT_JSON}
    write_json_atomic(p, doc)


def _cell(name: str, c: dict[str, Any] | None) -> str:
    if not c or c.get("ok") is None:
        return "n/c"
    mark = "" if c["ok"] else "!"
    if name in ("flow_rigid", "flow_cycle") and c.get("worst_px") is not None:
        return f"{mark}{c['worst_px']:.2g}px"
    if name == "normals" and c.get("median_deg") is not None:
        return f"{mark}{c['median_deg']:.2g}°"
    return "ok" if c["ok"] else "FAIL"


def format_report(report: dict[str, Any]) -> str:
    """The report as a fixed-width table (one row per sequence) plus one line per failure."""
    cols = list(CHECKS)
    heads = [HEADS.get(c, c) for c in cols]
    rows = [["sequence", "frames", *heads, "result"]]
    for r in report["sequences"]:
        rows.append([r["path"], str(r.get("frames", "?")),
                     *[_cell(c, r["checks"].get(c)) for c in cols], "OK" if r["ok"] else "FAILED"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in report["sequences"]:
        for k in r.get("failed", []):
            lines.append(f"FAILED {r['path']}: {k}: {r['checks'][k]['message']}")
    for r in report["sequences"]:
        for k in CHECKS:
            c = r["checks"].get(k)
            if (c and c.get("ok") is None and c.get("message") and not r.get("failed") == ["schema"]
                    and not c["message"].startswith("not needed")):
                msg = c["message"].removeprefix("not checked: ")
                lines.append(f"not checked {r['path']}: {k}: {msg}")
    if report.get("manifest_not_updated"):
        lines.append(report["manifest_not_updated"])
    n = len(report["sequences"])
    nf = len(report["failed"])
    lines.append(f"{n - nf}/{n} sequence(s) passed" + ("" if report["ok"] else f", {nf} failed")
                 + f" ({report.get('seconds', 0):.1f} s)")
    return "\n".join(lines)
