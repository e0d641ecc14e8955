# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line's parsing, without rendering: the tutorial's own line, aliases, one-line
errors that never exit the process."""

from __future__ import annotations

import functools
import shlex

import pytest
from dataset_forge import cli
from dataset_forge.settings import Settings

TUTORIAL = ("create-datasets --scenes-dir=scenes/ --datasets-dir=datasets/ --sequences-per-scene=1 "
            "--render-config.width=800 --render-config.height=800 --render-config.depths "
            "--render-config.normals --render-config.flows --render-config.segmentations "
            "--render-config.keyframe-multiplier=2.0 --render-config.jobs=5")


# built once: parsing leaves the parser as it was (each parse fills a new namespace)
_parser = functools.cache(cli.build_parser)


def _settings(argv: list[str]) -> tuple[object, Settings]:
    ns = _parser().parse_args(argv)
    return ns, Settings.from_dict(cli._options(ns))


def test_tutorial_line_parses_unchanged():
    ns, s = _settings(shlex.split(TUTORIAL))
    assert ns.command == "create-datasets"
    assert (ns.scenes_dir, ns.datasets_dir, ns.dry_run) == ("scenes/", "datasets/", False)
    assert (s.sequences_per_scene, s.width, s.height, s.keyframe_multiplier, s.jobs) == (1, 800, 800,
                                                                                        2.0, 5)
    assert (s.depths, s.normals, s.flows, s.segmentations) == (True, True, True, True)
    # What was not typed keeps the settings' defaults.
    default = Settings()
    assert (s.max_samples, s.debug, s.num_frames, s.allow_skips) == (
        default.max_samples, default.debug, default.num_frames, default.allow_skips)


def test_every_setting_has_both_spellings_and_booleans_negate():
    for f in Settings.fields():
        flag = f.name.replace("_", "-")
        if isinstance(f.default, bool):
            for on, off in ((f"--{flag}", f"--no-{flag}"),
                            (f"--render-config.{flag}", f"--render-config.no-{flag}")):
                base = ["create-datasets", "--scenes-dir", "s", "--datasets-dir", "d"]
                assert getattr(_settings([*base, on])[1], f.name) is True
                assert getattr(_settings([*base, off])[1], f.name) is False
        else:
            value = (f.metadata["choices"][-1] if f.metadata.get("choices") else
                     "8" if f.name == "bit_depth" else "0.5" if f.name == "adaptive_threshold"
                     else "0" if f.name == "gpus" else "3")
            needs = {"stereo_baseline": {"depths": True}}.get(f.name, {})  # what it needs set too
            for spelling in (f"--{flag}={value}", f"--render-config.{flag}={value}"):
                s = _settings(["create-datasets", "--scenes-dir", "s", "--datasets-dir", "d",
                               spelling, *(f"--{k}" for k in needs)])[1]
                assert getattr(s, f.name) == getattr(Settings.from_dict({f.name: value, **needs}),
                                                     f.name)
                assert str(getattr(s, f.name)) in (value, str(float(value)) if value[0].isdigit() else value)


def test_later_flag_wins_and_no_debug():
    _, s = _settings(shlex.split(TUTORIAL) + ["--width", "32", "--render-config.no-debug",
                                              "--no-depths", "--max-samples", "2"])
    assert (s.width, s.debug, s.depths, s.normals, s.max_samples) == (32, False, False, True, 2)


def test_render_animation_arguments():
    ns, s = _settings(["render-animation", "a.blend", "out", "--frame-start", "3",
                       "--frame-end=7", "--render-config.width=64", "--no-use-denoising"])
    assert (ns.blend, ns.out_dir, ns.frame_start, ns.frame_end) == ("a.blend", "out", 3, 7)
    assert (s.width, s.use_denoising) == (64, False)


@pytest.mark.parametrize("argv, message", [
    (["create-datasets", "--scenes-dir", "s", "--datasets-dir", "d", "--width", "abc"],
     "dataset create-datasets: error: argument --width/--render-config.width: invalid int value: 'abc'"),
    (["create-datasets", "--scenes-dir", "s"],
     "dataset create-datasets: error: the following arguments are required: --datasets-dir"),
    (["create-datasets", "--scenes-dir", "s", "--datasets-dir", "d", "--bogus"],
     "dataset: error: unrecognized arguments: --bogus"),
    (["create-datasets", "--scenes-dir", "s", "--datasets-dir", "d", "--widt", "3"],
     "dataset: error: unrecognized arguments: --widt 3"),
    (["render-animation", "a.blend", "out", "--width", "-3"],
     "dataset: error: width=-3 is below its minimum 0"),
    (["render-animation", "a.blend", "out", "--device-type", "TPU"],
     "dataset: error: device_type='TPU' is not one of AUTO, OPTIX, CUDA, HIP, METAL, ONEAPI, CPU"),
    (["frobnicate"], "dataset: error: argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_bad_arguments_one_line_and_exit_code_1(argv, message, capsys, tmp_path):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(message), err


def test_missing_scenes_folder_and_help(capsys, tmp_path):
    assert cli.main(["create-datasets", "--scenes-dir", str(tmp_path / "none"), "--datasets-dir",
                     str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert err == (f"dataset: error: scenes folder {tmp_path / 'none'} does not exist or is not a "
                   "folder; pass the folder that holds your .blend files\n")
    assert cli.main(["--help"]) == 0
    assert "create-datasets" in capsys.readouterr().out
    assert cli.main(["create-datasets", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--keyframe-multiplier" in out and "--no-depths" in out and "--render-config.width" in out


@pytest.mark.render
def test_register_unregister_symmetric_in_blender(tmp_path):
    """Inside Blender (the bpy wheel, in a subprocess): register twice is one command, unregister
    removes it (registering again gives no 'duplicate' warning), the command returns its code."""
    import subprocess
    import sys

    from conftest import bpy_env

    code = (
        "import os, sys, bpy\n"
        "from dataset_forge import cli\n"
        "cli.register(); h = cli._handle; cli.register(); assert cli._handle is h\n"
        "rc = cli.execute(['create-datasets', '--scenes-dir', 's', '--datasets-dir', 'd', "
        "'--width', 'x'])\n"
        "cli.unregister(); assert cli._handle is None; cli.unregister()\n"
        "cli.register(); cli.unregister()\n"
        "print('RC', rc); sys.stdout.flush(); os._exit(0)\n")
    p = subprocess.run([sys.executable, "-c", code], env=bpy_env(), capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "RC 1" in p.stdout
    assert "duplicate" not in p.stdout + p.stderr
    assert "invalid int value: 'x'" in p.stderr


def test_dataset_tools_add_their_subcommands(monkeypatch, capsys):
    """dataset/commands.py's add_commands(subparsers) plugs in; its func(args) is the exit code.
    (A stand-in module here, so that the hook is tested whether or not that module exists.)"""
    import sys
    import types

    mod = types.ModuleType("dataset_forge.dataset.commands")

    def add_commands(sub):
        p = sub.add_parser("validate", help="check a dataset folder")
        p.add_argument("path")
        p.set_defaults(func=lambda ns: 0 if ns.path == "good" else 1)

    mod.add_commands = add_commands
    monkeypatch.setitem(sys.modules, "dataset_forge.dataset.commands", mod)
    assert cli.main(["validate", "good"]) == 0
    assert cli.main(["validate", "bad"]) == 1
    assert cli.main(["validate"]) == 1
    assert capsys.readouterr().err == ("dataset validate: error: the following arguments are "
                                       "required: path\n")
    assert cli.main(["--help"]) == 0
    assert "check a dataset folder" in capsys.readouterr().out
