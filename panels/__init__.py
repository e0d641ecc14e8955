# SPDX-License-Identifier: GPL-3.0-or-later
"""The sidebar panels (3D Viewport > Sidebar > "Dataset")."""

from __future__ import annotations

import bpy

from .dataset import CLASSES


def register() -> None:
    unregister()  # registering twice replaces, never duplicates
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
