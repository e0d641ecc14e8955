# SPDX-License-Identifier: GPL-3.0-or-later
"""``transforms.json``: a superset of the tutorial's (NeRF-style) schema. Pure Python.

Top level: ``fl_x, fl_y, cx, cy, w, h`` (pixels), ``c`` (channels of the RGB frames),
``intrinsics`` (3x3 K), ``camera_model`` ("PINHOLE"), ``frame_rate`` (after the keyframe
multiplier), ``keyframe_multiplier``, ``frame_start``/``frame_end`` (inclusive, stretched timeline),
``scene``, ``blend_file``, ``sequence_id``, ``blender_version``, ``dataset_forge_version``,
``conventions`` and ``frames``. Each frame: ``file_path`` (relative to the sequence folder),
``transform_matrix`` (4x4 camera-to-world, Blender/OpenGL camera axes: x right, y up, looking down
-z; world units), ``frame`` (stretched frame number), ``time`` (seconds from ``frame_start``),
``camera`` (the name of the frame's active camera; timeline markers can switch it), plus one
``*_file_path`` per enabled ground truth; with flows ``flow_forward_valid`` /
``flow_backward_valid`` (false across a camera cut); per-frame ``fl_x ... intrinsics`` where
they differ from the top level.

The top-level ``camera`` and intrinsics are the first frame's; ``cameras`` (names in order of
first use) is added when a sequence uses more than one camera.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .camera import Intrinsics
from .verify import fsync_folder, write_error

SCHEMA_VERSION = 1

BASE_CONVENTIONS: dict[str, Any] = {
    "pixel_coordinates": "u right, v down, origin at the top-left corner of the image; the centre "
                         "of pixel (column i, row j) is (i + 0.5, j + 0.5)",
    "intrinsics": "K maps OpenCV camera coordinates (x right, y down, z forward) to pixels",
    "transform_matrix": "camera-to-world 4x4, Blender/OpenGL camera axes (x right, y up, camera "
                        "looks down -z), world units; right-multiply by diag(1,-1,-1,1) for OpenCV",
    "frame_numbers": "frames on the timeline stretched by keyframe_multiplier (keyframe f -> f*m)",
}


def build_transforms(*, intrinsics: Intrinsics, channels: int, frames: list[dict[str, Any]],
                     frame_rate: float, keyframe_multiplier: float, frame_start: int,
                     frame_end: int, scene: str, blend_file: str, sequence_id: str,
                     blender_version: str, dataset_forge_version: str, camera: str,
                     unit_scale: float = 1.0,
                     conventions: dict[str, Any] | None = None,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble the ``transforms.json`` dictionary (frames sorted by frame number)."""
    k = intrinsics
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "camera_model": "PINHOLE",
        "fl_x": k.fl_x, "fl_y": k.fl_y, "cx": k.cx, "cy": k.cy, "w": k.w, "h": k.h,
        "c": channels,
        "intrinsics": k.K,
        "frame_rate": frame_rate,
        "keyframe_multiplier": keyframe_multiplier,
        "frame_start": frame_start,
        "frame_end": frame_end,
        "scene": scene,
        "blend_file": blend_file,
        "camera": camera,
        "sequence_id": sequence_id,
        "unit_scale_m": unit_scale,
        "blender_version": blender_version,
        "dataset_forge_version": dataset_forge_version,
        "conventions": {**BASE_CONVENTIONS, **(conventions or {})},
        "frames": sorted(frames, key=lambda f: f["frame"]),
    }
    if extra:
        doc.update(extra)
    return doc


def _file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0644 under the usual 022):
    metadata gets the same permissions as the images beside it, not ``mkstemp``'s 0600."""
    global _MODE
    if _MODE is None:
        mask = os.umask(0o022)
        os.umask(mask)
        _MODE = 0o666 & ~mask
    return _MODE


_MODE: int | None = None


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON (indent 2, trailing newline) with :func:`write_text_atomic`."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to a temporary file in the same folder, fsync, then rename over
    ``path`` and fsync the folder: a reader sees the old file or the new one, never a torn one. A
    write error (disk full, quota, file-size limit, permission) raises
    :class:`dataset.verify.WriteError` naming ``path`` and the cause; the temporary file is
    removed."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), _file_mode())
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_folder(path.parent)
    except OSError as exc:
        raise write_error(exc, path) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
