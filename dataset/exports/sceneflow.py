# SPDX-License-Identifier: GPL-3.0-or-later
"""``sceneflow-stereo``: stereo pairs in the FlyingThings3D layout (see :mod:`.stereo`)."""

from __future__ import annotations

from .stereo import export_sceneflow_sequence as export_sequence
from .stereo import finish_sceneflow as finish

__all__ = ["export_sequence", "finish"]
