# SPDX-License-Identifier: GPL-3.0-or-later
"""How to start a worker process: which Blender, which arguments. Pure Python.

Order: ``settings.executable`` if given; else the Blender binary this code runs in
(``bpy.app.binary_path``, empty in the ``bpy`` module); else the current Python, which must be
able to ``import bpy`` (the wheel). The worker imports this package from its folder under a fixed
alias, so it works whatever the folder is called (``dataset_forge``, a git checkout, or
``bl_ext/user_default/dataset_forge``) and without the extension being enabled.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
WORKER_ALIAS = "_dataset_forge_worker"


def bootstrap_code(package_root: Path = PACKAGE_ROOT) -> str:
    """Python source that imports the package from ``package_root`` and runs the worker."""
    init = str(package_root / "__init__.py")
    return (
        "import importlib.util, json, sys\n"
        # a Python without bpy: one error event that says so, not an import traceback
        "try:\n"
        "    import bpy\n"
        "except ImportError as exc:\n"
        "    print('@dataset_forge ' + json.dumps({'event': 'error', 'scene': None, 'job': None, "
        "'permanent': True, 'message': f'{sys.executable} cannot import bpy ({exc}): it is not "
        "Blender nor a Python with the bpy module; set the executable option to a Blender binary "
        "or to a Python where pip install bpy was run'}), flush=True)\n"
        "    sys.exit(2)\n"
        f"spec = importlib.util.spec_from_file_location({WORKER_ALIAS!r}, {init!r}, "
        f"submodule_search_locations=[{str(package_root)!r}])\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        f"sys.modules[{WORKER_ALIAS!r}] = mod\n"
        "spec.loader.exec_module(mod)\n"
        f"from {WORKER_ALIAS}.render_passes import worker\n"
        "worker.main()\n"
    )


def running_blender_binary() -> str:
    """The Blender executable we run inside, or '' (plain Python or the bpy module)."""
    mod = sys.modules.get("bpy")
    if mod is None:
        return ""
    try:
        return mod.app.binary_path or ""
    except AttributeError:
        return ""


def worker_command(job_path: str | os.PathLike, executable: str = "") -> list[str]:
    """The argv that runs the worker on ``job_path``."""
    exe = executable or running_blender_binary()
    code = bootstrap_code()
    if exe and not _is_python(exe):
        # Real Blender (or the project's stand-in): factory settings, no audio, no autoexec: the
        # worker opens the scene itself with embedded scripts allowed only on opt-in.
        return [exe, "--background", "--factory-startup", "-noaudio", "--disable-autoexec",
                "--python-expr", code, "--", str(job_path)]
    return [exe or sys.executable, "-c", code, str(job_path)]


def _is_python(exe: str) -> bool:
    return Path(exe).name.lower().startswith("python")


def gpu_for_slot(slot: int, gpus: list[int]) -> int | None:
    """The GPU of worker slot ``slot``: slots go round-robin over ``gpus`` (so ``--jobs 4`` with
    ``gpus='0,1'`` puts two workers on each GPU); None when no GPU list is given."""
    return gpus[slot % len(gpus)] if gpus else None


def gpu_pinning(gpu: int | None) -> tuple[dict[str, str], int | None]:
    """Environment variables and Cycles device index that pin a worker to GPU ``gpu``.

    The variables hide every other GPU from CUDA/OptiX, HIP and oneAPI, so the one left is
    device 0 of whichever backend Cycles picks (its position among the visible devices).
    Metal has no such variable; Macs have one GPU."""
    if gpu is None:
        return {}, None
    g = str(int(gpu))
    return {"CUDA_VISIBLE_DEVICES": g, "HIP_VISIBLE_DEVICES": g,
            "ONEAPI_DEVICE_SELECTOR": f"level_zero:{g}"}, 0


def worker_env(base: dict[str, str] | None = None, gpu: int | None = None,
               user_resources: str | None = None) -> dict[str, str]:
    """Environment for a worker: its own ``BLENDER_USER_RESOURCES`` (never the user's config when
    not inside Blender), unbuffered output, one OpenBLAS thread unless the caller chose, and the
    :func:`gpu_pinning` variables for ``gpu``."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    # The worker's numpy work is many small arrays beside Cycles' own threads: OpenBLAS threads
    # only spin there (a 4x4 inverse took 0.75 ms instead of 0.03 ms on 2 busy cores).
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if "BLENDER_USER_RESOURCES" not in env and not running_blender_binary():
        env["BLENDER_USER_RESOURCES"] = user_resources or os.path.join(
            tempfile.gettempdir(), "dataset_forge_blender_user")
    env.update(gpu_pinning(gpu)[0])
    return env
