# SPDX-License-Identifier: GPL-3.0-or-later
"""Ground-truth passes: view-layer passes + compositor nodes + File Output nodes.

Interface used by the worker (one rig per sequence):

* ``PassRig(scene, settings, seq_dir)``: enable passes, add our compositor nodes beside the user's.
* ``rig.frame_files(frame) -> dict[str, str]``: the ``*_file_path`` entries of this frame for
  ``transforms.json`` (relative to ``seq_dir``); their values are the files the journal checks.
* ``rig.prepare_frame(frame)``: per-frame updates (e.g. camera rotation for camera-frame normals),
  called after ``scene.frame_set(frame)`` and before the render.
* ``rig.conventions() -> dict``: the ``conventions`` entries for the enabled passes.
* ``rig.teardown()``: remove our nodes and restore what was changed.

This first version writes no ground truth; the ground-truth issue fills it in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..settings import Settings


class PassRig:
    def __init__(self, scene, settings: Settings, seq_dir: Path):
        self.scene = scene
        self.settings = settings
        self.seq_dir = Path(seq_dir)

    def frame_files(self, frame: int) -> dict[str, str]:
        return {}

    def prepare_frame(self, frame: int) -> None:
        pass

    def conventions(self) -> dict[str, Any]:
        return {}

    def teardown(self) -> None:
        pass
