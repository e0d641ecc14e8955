# SPDX-License-Identifier: GPL-3.0-or-later
"""tools/blender, the `blender` stand-in: the batch paths exactly as a user types them.

The stand-in runs with the interpreter running pytest (DATASET_FORGE_PYTHON=sys.executable), so
under ``-m smoke`` with the 4.5/4.2 venvs it is Blender 4.5/4.2 that answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, bpy_env, build_scenes

BLENDER = str(REPO / "tools" / "blender")
# Every test starts the stand-in, a Python process that imports bpy.
pytestmark = pytest.mark.render


def blender(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = bpy_env(DATASET_FORGE_PYTHON=sys.executable)
    return subprocess.run([BLENDER, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def basic(tmp_path_factory) -> Path:
    return build_scenes(tmp_path_factory.mktemp("standin_scenes"), ["basic"]) / "basic.blend"


def check_sequence(out: Path, frames: list[int], w: int, h: int) -> dict:
    from PIL import Image

    tf = json.loads((out / "transforms.json").read_text())
    assert [f["frame"] for f in tf["frames"]] == frames
    assert (tf["w"], tf["h"]) == (w, h)
    assert tf["fl_x"] == pytest.approx(50.0 * w / 36.0)  # basic: 50 mm lens, 36 mm sensor
    for f in tf["frames"]:
        img = np.asarray(Image.open(out / f["file_path"]))
        assert img.shape[:2] == (h, w)
        assert img[..., :3].std() > 3  # not a blank frame: ground, cube and sphere differ
        assert np.allclose(np.array(f["transform_matrix"])[:3, 3], [0, 0, 10], atol=1e-6)
    return tf


@pytest.mark.smoke
def test_python_expr_renders_through_the_package(basic, tmp_path):
    out = tmp_path / "expr"
    expr = (f"import dataset_forge; s = dataset_forge.render_animation({str(basic)!r}, {str(out)!r}, "
            "frame_start=2, frame_end=3, width=40, height=30, max_samples=2, use_denoising=False); "
            "print('OK', s['frames_rendered'])")
    proc = blender("--background", "--factory-startup", "-noaudio", "--python-exit-code", "1",
                   "--python-expr", expr)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "OK 2" in proc.stdout
    check_sequence(out, [2, 3], 40, 30)


def test_python_expr_with_the_extension_module_name(basic, tmp_path):
    """The README's expression after a zip install names bl_ext.user_default.dataset_forge."""
    out = tmp_path / "ext"
    expr = ("import bl_ext.user_default.dataset_forge as df; "
            f"df.render_animation({str(basic)!r}, {str(out)!r}, frame_start=1, frame_end=1, "
            "width=32, height=24, max_samples=1); print('MODULE', df.__name__)")
    proc = blender("-b", "--python-exit-code", "1", "--python-expr", expr)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "MODULE bl_ext.user_default.dataset_forge" in proc.stdout
    check_sequence(out, [1], 32, 24)


@pytest.mark.smoke
def test_command_dataset_render_animation(basic, tmp_path):
    out = tmp_path / "cmd"
    proc = blender("--background", "--command", "dataset", "render-animation", str(basic), str(out),
                   "--frame-start", "1", "--frame-end", "2", "--width", "32", "--height", "24",
                   "--max-samples", "1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    check_sequence(out, [1, 2], 32, 24)


def test_command_accepts_the_tutorial_spelling(basic, tmp_path):
    out = tmp_path / "tut"
    proc = blender("-b", "-c", "dataset", "render-animation", str(basic), str(out),
                   "--frame-start", "4", "--frame-end", "4", "--render-config.width=36",
                   "--render-config.height", "28", "--render-config.max-samples=1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    check_sequence(out, [4], 36, 28)


def test_workers_can_use_the_stand_in_as_their_blender(basic, tmp_path):
    """engine/launch.py treats a non-python executable as Blender: -b --factory-startup -noaudio
    --disable-autoexec --python-expr BOOTSTRAP -- JOB.json."""
    out = tmp_path / "exe"
    code = ("import json, dataset_forge; s = dataset_forge.render_animation("
            f"{str(basic)!r}, {str(out)!r}, frame_start=1, frame_end=2, width=32, height=24, "
            f"max_samples=1, executable={BLENDER!r}); print('SUMMARY' + json.dumps(s))")
    env = bpy_env(DATASET_FORGE_PYTHON=sys.executable)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(proc.stdout.split("SUMMARY", 1)[1].splitlines()[0])
    assert summary["ok"] and summary["frames_rendered"] == 2
    check_sequence(out, [1, 2], 32, 24)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return errors[0]


def test_unknown_stand_in_argument_is_one_line_and_exit_1():
    proc = blender("--background", "--no-such-flag")
    assert proc.returncode == 1
    line = _one_line_error(proc)
    assert line.startswith("blender: error: unknown argument '--no-such-flag'")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,fragment", [
    (["--python-expr"], "--python-expr expects a value"),
    (["--python-exit-code", "x"], "--python-exit-code expects an integer"),
    (["-f", "a..b"], "-f expects frame numbers"),
    (["--command"], "--command expects a command id"),
])
def test_missing_or_malformed_values(args, fragment):
    proc = blender("-b", *args)
    assert proc.returncode == 1
    assert fragment in _one_line_error(proc)


def test_bad_command_argument_is_one_line_and_exit_1(basic, tmp_path):
    proc = blender("-b", "--command", "dataset", "render-animation", str(basic), str(tmp_path),
                   "--widht", "32")
    assert proc.returncode == 1
    line = _one_line_error(proc)
    assert "--widht" in line
    assert not list(tmp_path.iterdir())


def test_missing_blend_file_is_one_line_and_exit_1(tmp_path):
    proc = blender("-b", str(tmp_path / "nope.blend"), "--python-expr", "print('RAN')")
    assert proc.returncode == 1
    assert "cannot read file" in _one_line_error(proc)
    assert "RAN" not in proc.stdout


def test_unknown_command_lists_the_registered_ones():
    proc = blender("-b", "--command", "datset")
    assert proc.returncode == 1
    assert "unrecognized command 'datset' (registered: dataset" in _one_line_error(proc)
    help_ = blender("-b", "-c", "help")
    assert help_.returncode == 0 and "    dataset" in help_.stdout


def test_arguments_run_in_order_and_scripts_see_argv_after_double_dash(basic, tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys, bpy\n"
                      "print('SCRIPT', bpy.context.scene.name, sys.argv[sys.argv.index('--') + 1:])\n")
    proc = blender("-b", "--python-expr", "import bpy; print('BEFORE', bpy.context.scene.name)",
                   str(basic), "--python", str(script), "--", "a", "--width", "3")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "SCRIPT basic ['a', '--width', '3']" in out
    assert out.index("BEFORE") < out.index("SCRIPT basic")
    assert "BEFORE basic" not in out


def test_python_exit_code(tmp_path):
    failing = "raise RuntimeError('boom')"
    proc = blender("-b", "--python-exit-code", "7", "--python-expr", failing,
                   "--python-expr", "print('AFTER')")
    assert proc.returncode == 7
    assert "RuntimeError: boom" in proc.stderr and "AFTER" not in proc.stdout
    # Blender's default (0) reports the error and goes on.
    proc = blender("-b", "--python-expr", failing, "--python-expr", "print('AFTER')")
    assert proc.returncode == 0 and "AFTER" in proc.stdout and "RuntimeError: boom" in proc.stderr
    # sys.exit inside a script ends the process with its code.
    proc = blender("-b", "--python-expr", "import sys; sys.exit(3)", "--python-expr", "print('AFTER')")
    assert proc.returncode == 3 and "AFTER" not in proc.stdout


def test_render_frame_flags_write_blender_named_files(basic, tmp_path):
    proc = blender("-b", str(basic), "-E", "CYCLES", "-o", str(tmp_path / "f_##"), "-f", "2,4",
                   "--python-expr", "import bpy; print('RES', bpy.context.scene.render.resolution_x)")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f_02.png", "f_04.png"]
    assert "RES 64" in proc.stdout


def test_version_and_help():
    from importlib.metadata import version

    proc = blender("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"Blender {version('bpy')}")
    proc = blender("--help")
    assert proc.returncode == 0 and "--python-exit-code" in proc.stdout


def test_embedded_scripts_run_only_with_enable_autoexec(tmp_path):
    """A .blend with a registered text block: -Y (and the default) keep it from running, -y lets
    it run, for files opened after the flag."""
    blend = tmp_path / "scripted.blend"
    make = ("import bpy; bpy.ops.wm.read_homefile(use_empty=True); "
            "t = bpy.data.texts.new('m.py'); t.write('print(\"EMBEDDED RAN\")'); t.use_module = True; "
            f"bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})")
    assert blender("-b", "--python-exit-code", "1", "--python-expr", make).returncode == 0
    assert blend.is_file()
    for args, ran in ((["-b", str(blend)], False), (["-b", "-Y", str(blend)], False),
                      (["-b", "--enable-autoexec", str(blend)], True),
                      (["-b", "-y", "-Y", str(blend)], False)):
        proc = blender(*args, "--python-expr", "print('OPENED')")
        assert proc.returncode == 0, proc.stderr
        assert "OPENED" in proc.stdout
        assert ("EMBEDDED RAN" in proc.stdout) is ran, args
