# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures. Blender never touches the user's config: BLENDER_USER_RESOURCES points at a
temporary folder for this process and every subprocess it starts."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_USER = tempfile.mkdtemp(prefix="df-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = _USER
os.environ.setdefault("PYTHONUNBUFFERED", "1")

sys.path.insert(0, str(REPO / "tests"))


def bpy_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that imports bpy."""
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = _USER
    env.update(extra)
    return env


def build_scenes(out_dir: Path, names: list[str] | None = None, python: str | None = None) -> Path:
    """Build test scenes (tests/scenes.py) in a subprocess; returns ``out_dir``."""
    cmd = [python or sys.executable, str(REPO / "tests" / "scenes.py"), str(out_dir), *(names or [])]
    subprocess.run(cmd, check=True, env=bpy_env(), capture_output=True, timeout=300)
    return out_dir


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory) -> Path:
    """All scenes of tests/scenes.py SPECS, built once per test session."""
    return build_scenes(tmp_path_factory.mktemp("scenes"))
