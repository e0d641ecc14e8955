# SPDX-License-Identifier: GPL-3.0-or-later
"""File-level checks of a sequence: ``schema``, ``frame_count``, ``files``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import exr
from ..documents import info as info_doc
from ..documents.base import JSONObject
from ..layout import INFO, RGB_FOLDER, RGB_STEM
from ..loader import FOLDERS, KINDS, DatasetError, Sequence, read_image
from .thresholds import check as _check


def schema(seq: Sequence) -> JSONObject:
    """``transforms.json`` complete and consistent (at most 10 problems named)."""
    m = seq.meta
    problems = []
    for k in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        v = m.get(k, seq.frames_meta[0].get(k) if seq.frames_meta else None)
        if v is None and seq.schema == "tutorial":
            continue  # derived (camera_angle_x, image centre, first frame's size): see 'assumed'
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            problems.append(f"'{k}' missing or not a number")
    if not seq.frames_meta:
        problems.append("no frames")
    if not problems:
        try:
            problems += _schema_intrinsics(seq)
        except DatasetError as exc:
            return _check(False, str(exc), schema=seq.schema, assumed=seq.assumed)
    problems += _schema_frames(seq, limit=10 - len(problems))
    if seq.schema == "dataset_forge":
        for kind in KINDS:
            if any(f"{kind}_file_path" in f for f in seq.frames_meta) and kind not in seq.conventions:
                problems.append(f"frames list {kind}_file_path but conventions has no '{kind}' entry")
    return _check(not problems, "; ".join(problems[:10]), schema=seq.schema, assumed=seq.assumed)


def _schema_intrinsics(seq: Sequence) -> list[str]:
    """Positive focal lengths; top-level and per-frame ``intrinsics`` agree with ``fl_x``...``cy``."""
    m = seq.meta
    K = seq.K
    problems = []
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        problems.append(f"focal lengths must be positive (fl_x={K[0, 0]}, fl_y={K[1, 1]})")
    top = np.array([[m.get("fl_x", K[0, 0]), 0, m.get("cx", K[0, 2])],
                    [0, m.get("fl_y", K[1, 1]), m.get("cy", K[1, 2])], [0, 0, 1]], float)
    problems += _intrinsics_agree(m, top, "")
    for i, f in enumerate(seq.frames_meta):
        if "intrinsics" in f:
            problems += _intrinsics_agree(f, seq.intrinsics_of(i), f"frame {seq.frame_numbers[i]}: ")
    return problems


def _schema_frames(seq: Sequence, limit: int) -> list[str]:
    """Per frame: a ``file_path``, a rigid 4x4 ``transform_matrix``, flow-validity flags that are
    booleans and agree; stops after ``limit`` problems."""
    problems: list[str] = []
    for i, f in enumerate(seq.frames_meta):
        if "file_path" not in f:
            problems.append(f"frame {i}: no file_path")
        try:
            T = np.array(f["transform_matrix"], dtype=float).reshape(4, 4)
            R = T[:3, :3]
            if not (np.allclose(R.T @ R, np.eye(3), atol=1e-4) and np.isclose(np.linalg.det(R), 1, atol=1e-4)
                    and np.allclose(T[3], [0, 0, 0, 1])):
                problems.append(f"frame {seq.frame_numbers[i]}: transform_matrix is not a rigid pose")
        except (KeyError, ValueError, TypeError):
            problems.append(f"frame {i}: no 4x4 transform_matrix")
        for direction in ("forward", "backward"):
            flags = seq.flow_flags(i, direction)
            odd = [f"{k} is {json.dumps(v)}" for k, v in flags.items() if not isinstance(v, bool)]
            if odd:
                problems.append(f"frame {seq.frame_numbers[i]}: {', '.join(odd)}, not true or false "
                                "(read as invalid)")
            elif len(set(flags.values())) > 1:
                problems.append(f"frame {seq.frame_numbers[i]}: {' and '.join(flags)} disagree "
                                "(read as invalid)")
        if len(problems) > limit:
            break
    return problems


def _intrinsics_agree(d: JSONObject, K: np.ndarray, where: str) -> list[str]:
    """``d["intrinsics"]`` (when present) against ``K`` built from the ``fl_x, fl_y, cx, cy`` that
    apply there."""
    if "intrinsics" not in d:
        return []
    try:
        Ki = np.array(d["intrinsics"], dtype=float).reshape(3, 3)
    except (ValueError, TypeError):
        return [f"{where}'intrinsics' is not a 3x3 matrix"]
    if np.allclose(Ki, K, rtol=1e-6, atol=1e-6):
        return []
    bad = [name for name, (r, c) in (("fl_x", (0, 0)), ("fl_y", (1, 1)), ("cx", (0, 2)), ("cy", (1, 2)))
           if not np.isclose(Ki[r, c], K[r, c])]
    return [f"{where}'intrinsics' disagrees with {', '.join(bad) or 'K'} ({Ki.tolist()} vs {K.tolist()})"]


def frame_count(seq: Sequence, manifest_frames: int | None, manifest_problem: str | None = None
                ) -> JSONObject:
    m = seq.meta
    n = len(seq)
    nums = seq.frame_numbers
    problems = [manifest_problem] if manifest_problem else []
    gaps = [f"{a}->{b}" for a, b in zip(nums, nums[1:]) if b != a + 1]
    if gaps:
        problems.append(f"frame numbers not consecutive ({', '.join(gaps[:5])}): a frame is missing "
                        "from transforms.json")
    if "frame_start" in m and "frame_end" in m:
        expect = int(m["frame_end"]) - int(m["frame_start"]) + 1
        if expect != n:
            problems.append(f"{n} frames listed but frame_start..frame_end is {expect}")
    if (seq.path / INFO).is_file():
        try:
            num = info_doc.read(seq.path).num_frames
            if num != n:
                problems.append(f"info.json says {num} frames, transforms.json lists {n}")
        except (ValueError, OSError):
            problems.append("info.json unreadable")
    if manifest_frames is not None and manifest_frames != n:
        problems.append(f"manifest.json says {manifest_frames} frames, transforms.json lists {n}")
    for _kind, (folder, prefix) in [("rgb", (RGB_FOLDER, RGB_STEM)), *FOLDERS.items()]:
        d = seq.path / folder
        if d.is_dir():
            count = sum(1 for p in d.iterdir() if p.name.startswith(prefix + "_"))
            if count > n:
                problems.append(f"{folder}/ holds {count} files for {n} frames")
    return _check(not problems, "; ".join(problems), frames=n,
                  expected=(int(m["frame_end"]) - int(m["frame_start"]) + 1)
                  if "frame_start" in m and "frame_end" in m else None)


class FileCheck:
    """The ``files`` check, one frame at a time (so the geometric checks can reuse what it
    decoded): :meth:`frame` reads every file of a frame, :meth:`result` gives the check and, per
    kind, the frame indices that read."""

    def __init__(self, seq: Sequence):
        self.seq = seq
        self.problems: list[str] = []
        self.good: dict[str, set[int]] = {k: set() for k in ("rgb", *KINDS)}
        self.checked = 0
        self._wanted = {
            "depth": lambda: [seq.channels["depth"]], "normal": lambda: list(seq.channels["normal"]),
            "flow": lambda: list(seq.channels["flow"].values()),
            "segmentation": lambda: [seq.channels["segmentation"]]
            + ([seq.instance_channel] if seq.instance_channel else [])}

    def frame(self, i: int) -> dict[str, dict[str, np.ndarray]]:
        """Check every file of frame ``i``; returns, per kind whose file is good, its channels as
        :func:`exr.read_stored` decoded them."""
        seq, problems = self.seq, self.problems
        w, h = seq.width, seq.height
        c = seq.meta.get("c")
        decoded: dict[str, dict[str, np.ndarray]] = {}
        p = seq.file("rgb", i)
        try:
            if p is None:
                raise DatasetError("no file_path")
            im = read_image(p)
            self.checked += 1
            ch = 1 if im.ndim == 2 else im.shape[2]
            if im.shape[:2] != (h, w):
                problems.append(f"{p.relative_to(seq.path)}: {im.shape[1]}x{im.shape[0]} px, "
                                f"expected {w}x{h}")
            elif c is not None and int(c) != ch:
                problems.append(f"{p.relative_to(seq.path)}: {ch} channels, expected {c}")
            else:
                self.good["rgb"].add(i)
        except (DatasetError, OSError) as exc:
            problems.append(_short(exc, seq.path))
        for kind in seq.kinds:
            p = seq.file(kind, i)
            if p is None:
                problems.append(f"frame {seq.frame_numbers[i]}: no {kind} file listed")
                continue
            try:
                names = self._wanted[kind]()
                chans = exr.read_stored(p, names)
                self.checked += 1
                shapes = {a.shape for a in chans.values()}
                bad_types = sorted(n for n, a in chans.items() if a.dtype != np.float32 and not (
                    n == seq.instance_channel and a.dtype == np.uint32))
                if shapes != {(h, w)}:
                    problems.append(f"{p.relative_to(seq.path)}: shape {sorted(shapes)}, expected {(h, w)}")
                elif bad_types:
                    problems.append(f"{p.relative_to(seq.path)}: channel(s) {', '.join(bad_types)} "
                                    "not float32")
                else:
                    self.good[kind].add(i)
                    decoded[kind] = chans
            except (exr.ExrError, OSError) as exc:
                problems.append(_short(exc, seq.path))
        return decoded

    def result(self) -> tuple[JSONObject, dict[str, set[int]]]:
        bad = len(self.problems)
        return _check(not self.problems, "; ".join(self.problems[:8])
                      + (f" (+{bad - 8} more)" if bad > 8 else ""),
                      files_read=self.checked, problems=bad), self.good


def _short(exc: BaseException, root: Path) -> str:
    return str(exc).replace(str(root) + os.sep, "")


def present(ids: np.ndarray) -> set[int]:
    """Distinct values of an integer image (bincount: much faster than np.unique on big frames)."""
    lo = int(ids.min()) if ids.size else 0
    counts = np.bincount((ids.ravel() - lo).astype(np.int64))
    return set((np.flatnonzero(counts) + lo).tolist())
