# SPDX-License-Identifier: GPL-3.0-or-later
"""The extension zip, built by tools/build_extension.py with Blender's own builder, installs into a
fresh user repository through Blender's extension API, enables as ``bl_ext.<repo>.dataset_forge``,
unregisters and registers symmetrically, and renders through the installed module.

Marked ``smoke``: .ci/run also runs it with the bpy 4.5 and 4.2 venvs
(``.venv-4.5.15/bin/python -m pytest -m smoke``); every subprocess uses ``sys.executable``, so the
Blender under test is the one of the interpreter running pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, build_scenes

pytestmark = [pytest.mark.smoke, pytest.mark.render]

REPO_MODULE = "df_test_repo"
WIDTH, HEIGHT, LENS, SENSOR = 48, 36, 50.0, 36.0  # basic.blend's camera (tests/scenes.py SPECS)

INSTALL = r"""
import json, os, sys, bpy
ZIP, REPO_DIR, MODULE, SCENE, OUT = {zip!r}, {repo_dir!r}, {module!r}, {scene!r}, {out!r}
name = f"bl_ext.{{MODULE}}.dataset_forge"
res = {{"blender": bpy.app.version_string}}
prefs = bpy.context.preferences
prefs.extensions.repos.new(name="Dataset Forge test repo", module=MODULE, custom_directory=REPO_DIR)
types_before = set(dir(bpy.types))
res["install"] = sorted(bpy.ops.extensions.package_install_files(
    filepath=ZIP, repo=MODULE, enable_on_install=True))
res["enabled"] = name in prefs.addons
mod = sys.modules[name]
res["module"] = [mod.__name__, os.path.realpath(mod.__file__)]
res["scene_prop_after_install"] = "dataset_forge" in bpy.types.Scene.bl_rna.properties
res["new_types"] = sorted(set(dir(bpy.types)) - types_before)
res["disable"] = sorted(bpy.ops.preferences.addon_disable(module=name))
res["enabled_after_disable"] = name in prefs.addons
res["scene_prop_after_disable"] = "dataset_forge" in bpy.types.Scene.bl_rna.properties
res["types_left_after_disable"] = sorted(set(res["new_types"]) & set(dir(bpy.types)))
res["enable"] = sorted(bpy.ops.preferences.addon_enable(module=name))
res["scene_prop_after_enable"] = "dataset_forge" in bpy.types.Scene.bl_rna.properties
res["types_after_enable"] = sorted(set(dir(bpy.types)) - types_before)
mod = sys.modules[name]
summary = mod.render_animation(SCENE, OUT, frame_start=1, frame_end=3, width={w}, height={h},
                               max_samples=4, use_denoising=False, depths=True, debug=False)
res["summary_ok"] = summary["ok"]
res["summary"] = json.dumps(summary)[:2000]
import site
res["wheel_dirs"] = sorted(p for p in sys.path if "extensions" in p and "site-packages" in p)
print("RESULT" + json.dumps(res))
"""


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "build_extension.py"),
                           "--output-dir", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zips = [Path(line) for line in proc.stdout.split() if line.endswith(".zip")]
    assert len(zips) == 1 and zips[0].is_file()
    return zips[0]


@pytest.fixture(scope="module")
def installed(built_zip, tmp_path_factory):
    """Install into a fresh user folder + repository and render 3 frames through the module."""
    base = tmp_path_factory.mktemp("install")
    scenes = build_scenes(base / "scenes", ["basic"])
    user, repo_dir, out = base / "user", base / "repo", base / "out"
    code = INSTALL.format(zip=str(built_zip), repo_dir=str(repo_dir), module=REPO_MODULE,
                          scene=str(scenes / "basic.blend"), out=str(out), w=WIDTH, h=HEIGHT)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user), PYTHONUNBUFFERED="1")
    src = code + "\nsys.stdout.flush(); os._exit(0)\n"
    # The test uses only sys.modules[bl_ext...]; the workers import the extracted folder by path.
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env,
                          cwd=str(base), timeout=600)
    assert proc.returncode == 0 and "RESULT" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(proc.stdout.split("RESULT", 1)[1].strip().splitlines()[0])
    return {"res": res, "repo_dir": repo_dir, "user": user, "out": out, "zip": built_zip}


def test_zip_layout_is_what_blender_installs(built_zip):
    with zipfile.ZipFile(built_zip) as zf:
        names = zf.namelist()
    import tomllib

    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text(encoding="utf-8"))
    assert built_zip.name == f"dataset_forge-{manifest['version']}.zip"
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "render_passes/worker.py" in names and "settings.py" in names
    assert not [n for n in names if n.startswith(("tests/", "tools/", "bench/", "docs/", ".ci/"))]
    wheels = sorted(n.split("/")[1].split("-")[0] for n in names if n.startswith("wheels/"))
    assert wheels == ["openexr", "pillow"]


def test_installs_and_enables_as_bl_ext(installed):
    res = installed["res"]
    assert res["install"] == ["FINISHED"]
    assert res["enabled"] is True
    name = f"bl_ext.{REPO_MODULE}.dataset_forge"
    assert res["module"][0] == name
    extracted = installed["repo_dir"] / "dataset_forge"
    assert res["module"][1] == os.path.realpath(extracted / "__init__.py")
    assert (extracted / "blender_manifest.toml").is_file()
    assert not (extracted / "tests").exists() and not (extracted / "tools").exists()
    # The bundled wheels were installed into the extensions' own site-packages.
    site = [Path(p) for p in res["wheel_dirs"]]
    assert site and any((p / "PIL").is_dir() for p in site)
    assert any(list(p.glob("OpenEXR*")) for p in site)


def test_register_and_unregister_are_symmetric(installed):
    res = installed["res"]
    assert res["scene_prop_after_install"] is True
    assert res["new_types"], "enabling registered no classes"
    assert any(t.startswith("DATASETFORGE") for t in res["new_types"])
    assert res["disable"] == ["FINISHED"] and res["enabled_after_disable"] is False
    assert res["scene_prop_after_disable"] is False
    assert res["types_left_after_disable"] == []
    assert res["enable"] == ["FINISHED"] and res["scene_prop_after_enable"] is True
    assert res["types_after_enable"] == res["new_types"]


def test_renders_three_frames_through_the_installed_module(installed):
    from PIL import Image

    res = installed["res"]
    assert res["summary_ok"] is True, res["summary"]
    out = installed["out"]
    tf = json.loads((out / "transforms.json").read_text())
    assert tf["blender_version"] == res["blender"]
    assert [f["frame"] for f in tf["frames"]] == [1, 2, 3]
    fl = LENS * WIDTH / SENSOR
    assert (tf["w"], tf["h"]) == (WIDTH, HEIGHT)
    assert tf["fl_x"] == pytest.approx(fl) and tf["fl_y"] == pytest.approx(fl)
    assert (tf["cx"], tf["cy"]) == (WIDTH / 2, HEIGHT / 2)
    for f in tf["frames"]:
        pose = np.array(f["transform_matrix"])
        assert np.allclose(pose, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 10], [0, 0, 0, 1]], atol=1e-6)
    # The red cube (top face centre at (-1 + 0.1 (f-1), 0, 1), 9 m from the camera) is where
    # K puts it: centroid of the clearly red pixels within 1 px.
    for f in tf["frames"]:
        img = np.asarray(Image.open(out / f["file_path"]).convert("RGB"), dtype=float)
        assert img.shape == (HEIGHT, WIDTH, 3)
        red = (img[..., 0] > img[..., 1] + 60) & (img[..., 0] > img[..., 2] + 60)
        assert 20 < red.sum() < 80, red.sum()
        vv, uu = np.nonzero(red)
        x = -1.0 + 0.1 * (f["frame"] - 1)
        expected = (tf["cx"] + fl * x / 9.0, tf["cy"])
        assert abs(uu.mean() + 0.5 - expected[0]) < 1.0 and abs(vv.mean() + 0.5 - expected[1]) < 1.0
        grey = img[2:6, -6:-2]  # the ground in a corner far from the objects
        assert np.ptp(grey.mean(axis=(0, 1))) < 12 and grey.mean() > 40


def test_depth_output_is_readable_and_planar(installed):
    import OpenEXR

    out = installed["out"]
    tf = json.loads((out / "transforms.json").read_text())
    conv = tf["conventions"]["depth"]
    path = out / conv["file"].replace("NNNNNN", "000002")
    with OpenEXR.File(str(path), separate_channels=True) as f:
        depth = np.asarray(f.channels()[conv["channel"]].pixels, dtype=np.float64)
    assert depth.shape == (HEIGHT, WIDTH)
    # Ground plane 10 m below a camera looking straight down: planar depth 10 everywhere on it,
    # including the corner (a ray distance would be larger there).
    assert depth[0, -1] == pytest.approx(10.0, abs=1e-3)
    assert depth[HEIGHT // 2, WIDTH // 2] == pytest.approx(10.0, abs=1e-3)
    assert depth.min() == pytest.approx(9.0, abs=0.02)  # the cube's top face


def _build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / "build_extension.py"), *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args,fragment", [
    (["--platform", "linux-arm64"], "platform(s) linux-arm64 not in blender_manifest.toml platforms"),
    (["--builder", "/nonexistent/blender_ext.py"], "--builder /nonexistent/blender_ext.py does not exist"),
])
def test_build_errors_are_one_line(args, fragment, tmp_path):
    proc = _build(*args, "--output-dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.startswith("build_extension: error: ")
    assert fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_all_platforms_build_one_zip_per_platform_with_its_wheels(tmp_path):
    import tomllib

    proc = _build("--all-platforms", "--output-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text(encoding="utf-8"))
    tags = {"linux-x64": "manylinux", "windows-x64": "win_amd64", "macos-arm64": "arm64",
            "macos-x64": "x86_64"}
    assert sorted(manifest["platforms"]) == sorted(tags)
    for platform, tag in tags.items():
        path = tmp_path / f"dataset_forge-{manifest['version']}-{platform.replace('-', '_')}.zip"
        with zipfile.ZipFile(path) as zf:
            inner = tomllib.loads(zf.read("blender_manifest.toml").decode())
            wheels = [n for n in zf.namelist() if n.startswith("wheels/")]
        assert inner["build"]["generated"]["platforms"] == [platform]
        assert len(wheels) == 2 and all(tag in w for w in wheels), (platform, wheels)
        if platform == "macos-x64":
            assert not any("arm64" in w for w in wheels)
