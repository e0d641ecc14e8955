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


def extra_pythons() -> list[str]:
    """Pythons with other bpy versions (4.5, 4.2) for the oracle/smoke subsets, from
    DF_EXTRA_PYTHONS (comma-separated paths; CI sets it)."""
    raw = os.environ.get("DF_EXTRA_PYTHONS", "")
    return [p for p in (s.strip() for s in raw.split(",")) if p]


def package_prelude() -> str:
    """Python source that makes this checkout importable as ``dataset_forge`` in any interpreter
    (the other bpy venvs have no link to it)."""
    init = str(REPO / "__init__.py")
    return (
        "import importlib.util, sys\n"
        f"_spec = importlib.util.spec_from_file_location('dataset_forge', {init!r}, "
        f"submodule_search_locations=[{str(REPO)!r}])\n"
        "_mod = importlib.util.module_from_spec(_spec)\n"
        "sys.modules['dataset_forge'] = _mod\n"
        "_spec.loader.exec_module(_mod)\n"
    )


def run_bpy(code: str, python: str | None = None, timeout: float = 300) -> str:
    """Run ``code`` (after :func:`package_prelude`) in a bpy subprocess; returns its stdout.
    The script must end by printing what the test checks; failures raise with the output."""
    src = package_prelude() + code + "\nimport os as _o, sys as _s\n_s.stdout.flush()\n_o._exit(0)\n"
    proc = subprocess.run([python or sys.executable, "-c", src], env=bpy_env(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"bpy subprocess failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc.stdout
