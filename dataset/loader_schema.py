# SPDX-License-Identifier: GPL-3.0-or-later
"""Schema inference of the loader: what a ``transforms.json`` says or what is assumed where it is
silent (the tutorial's schema; see :mod:`.loader`). Pure Python + numpy + OpenEXR.

:class:`SchemaInference` is the part of :class:`.loader.Sequence` that resolves files, channels,
image size, intrinsics and frame numbers; every assumption is appended to ``Sequence.assumed``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetForgeError
from . import exr, layout
from .documents.base import JSONObject
from .documents.transforms import Key
from .layout import FLOW_KEYS, TRANSFORMS, frame_digits

KINDS = tuple(layout.KINDS)
FOLDERS = {k.name: (k.folder, k.stem) for k in layout.KINDS.values()}


class DatasetError(DatasetForgeError, ValueError):
    """A folder that is not a sequence or dataset, or a ``transforms.json`` that cannot be used."""


def _inside(seq_dir: Path, rel: Any, what: str, root: layout.Inside) -> Path:
    """``seq_dir / rel`` after checking that it stays inside ``seq_dir`` (nothing is read);
    ``root``: the containment check of ``seq_dir`` (one per sequence)."""
    if not isinstance(rel, (str, os.PathLike)):
        raise DatasetError(f"{seq_dir / TRANSFORMS}: {what} {rel!r} is not a path")
    try:
        root(rel, what)
    except layout.LayoutError as exc:
        raise DatasetError(str(exc)) from None
    return seq_dir / rel



def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None


class SchemaInference:
    """Mixin of :class:`.loader.Sequence`: needs ``path``, ``meta``, ``frames_meta``, ``schema``,
    ``conventions``, ``assumed``, ``_files``, ``channels``, ``_root`` and ``file()``."""

    def _size(self) -> tuple[int, int]:
        w = self.meta.get(Key.W) or (self.frames_meta[0].get(Key.W) if self.frames_meta else None)
        h = self.meta.get(Key.H) or (self.frames_meta[0].get(Key.H) if self.frames_meta else None)
        if w and h:
            return int(w), int(h)
        if getattr(self, "_image_size", None) is None:
            p = self.file("rgb", 0) if self.frames_meta else None
            if p is None or not p.is_file():
                raise DatasetError(f"{self.path / TRANSFORMS}: no 'w'/'h' and no first frame to measure")
            from PIL import Image

            with Image.open(p) as im:
                self._image_size = im.size
            w, h = self._image_size
            self.assumed.append(f"image size {w}x{h} from the first frame")
        return self._image_size


    def intrinsics_of(self, index: int) -> np.ndarray:
        """3x3 intrinsics of frame ``index``: per-frame values override top-level ones. Missing
        ``fl_x`` comes from NeRF's ``camera_angle_x``, ``fl_y`` from ``camera_angle_y`` or
        ``fl_x`` (square pixels), ``cx``/``cy`` from the image centre (noted in ``assumed``)."""
        f = self.frames_meta[index] if self.frames_meta else {}

        def get(k):
            v = f.get(k, self.meta.get(k))
            return None if v is None else float(v)

        def note(msg):
            if msg not in self.assumed:
                self.assumed.append(msg)

        fl_x, fl_y, cx, cy = get(Key.FL_X), get(Key.FL_Y), get(Key.CX), get(Key.CY)
        if fl_x is None:
            ax = get(Key.CAMERA_ANGLE_X)
            if ax is None:
                raise DatasetError(f"{self.path / TRANSFORMS}: no 'fl_x' (nor 'camera_angle_x')")
            fl_x = 0.5 * self.width / np.tan(0.5 * ax)
            note("fl_x from camera_angle_x")
        if fl_y is None:
            ay = get(Key.CAMERA_ANGLE_Y)
            fl_y = fl_x if ay is None else 0.5 * self.height / np.tan(0.5 * ay)
            note("fl_y = fl_x (square pixels)" if ay is None else "fl_y from camera_angle_y")
        if cx is None or cy is None:
            cx = self.width / 2.0 if cx is None else cx
            cy = self.height / 2.0 if cy is None else cy
            note("principal point at the image centre")
        return np.array([[fl_x, 0.0, cx], [0.0, fl_y, cy], [0.0, 0.0, 1.0]])

    def _frame_number(self, i: int, f: JSONObject) -> int:
        if Key.FRAME in f:
            return int(f[Key.FRAME])
        m = re.findall(r"\d+", Path(str(f.get(Key.FILE_PATH, ""))).stem)
        if m:
            return int(m[-1])
        return i

    def _resolve_files(self) -> None:
        for kind in KINDS:
            key = layout.KINDS[kind].key
            listed = [f.get(key) for f in self.frames_meta]
            if any(p is not None for p in listed):
                self._files[kind] = [None if p is None else _inside(self.path, p, key, self._root)
                                     for p in listed]
            else:
                folder, prefix = FOLDERS[kind]
                if self.schema != "tutorial" or not (self.path / folder).is_dir():
                    continue  # Dataset Forge lists every file it wrote
                found = []
                for f, num in zip(self.frames_meta, self.frame_numbers):
                    digits = re.findall(r"\d+", Path(str(f.get(Key.FILE_PATH, ""))).stem)
                    name = f"{prefix}_{digits[-1] if digits else frame_digits(num)}.exr"
                    # checked like a listed path: a symlinked folder or file must not lead out
                    found.append(_inside(self.path, f"{folder}/{name}", key, self._root))
                self._files[kind] = found
                self.assumed.append(f"{kind} files {folder}/{prefix}_N.exr (no {key} in frames)")
            self.channels[kind] = self._channels(kind)

    def _first_file(self, kind: str) -> Path | None:
        for p in self._files.get(kind, []):
            if p is not None and p.is_file():
                return p
        return None

    def _channels(self, kind: str):
        conv = self.conventions.get(kind) or {}
        if kind in ("depth", "segmentation") and conv.get(Key.CHANNEL):
            return str(conv[Key.CHANNEL])
        if kind == "normal" and conv.get(Key.CHANNELS):
            return [str(c) for c in conv[Key.CHANNELS]]
        if kind == "flow" and isinstance(conv.get(Key.CHANNELS), dict):
            return {k: str(conv[Key.CHANNELS][k]) for k in FLOW_KEYS}
        # No conventions (tutorial schema): look at the first file's channel names.
        names: list[str] = []
        p = self._first_file(kind)
        if p is not None:
            try:
                names = sorted(exr.read_channels(p))
            except exr.ExrError:
                names = []
        if kind in ("depth", "segmentation"):
            pick = names[0] if len(names) == 1 else next(
                (n for n in ("V", "R", "Y", "Z") if n in names), "V")
            self.assumed.append(f"{kind} channel {pick!r}")
            return pick
        if kind == "normal":
            pick = ["X", "Y", "Z"] if {"X", "Y", "Z"} <= set(names) or not names else ["R", "G", "B"]
            self.assumed.append(f"normal channels {pick} in the camera frame")
            return pick
        quad = ["R", "G", "B", "A"] if {"R", "G", "B", "A"} <= set(names) or not names \
            else ["X", "Y", "Z", "W"]
        self.assumed.append(f"flow channels {quad}: forward u, v then backward u, v (v down)")
        return dict(zip(FLOW_KEYS, quad))

