# SPDX-License-Identifier: GPL-3.0-or-later
"""The one base class of every error this package raises on purpose. Pure Python.

Each floor keeps its own subclass (``SettingsError``, ``SamplingError``, ``PlanError``,
``DatasetError``, ``SceneError``, ...), so that a caller can catch ``DatasetForgeError`` for "the
tool refused, with a message that names the thing and the fix", and let anything else propagate as
a bug. Messages are one line: what is wrong, where (file, setting), and how to fix it.
"""

from __future__ import annotations


class DatasetForgeError(Exception):
    """Base of all deliberate errors of Dataset Forge."""
