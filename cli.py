# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line: ``blender --command dataset ...`` and ``python -m dataset_forge ...``.

Subcommands::

    render-animation BLEND OUT_DIR --frame-start A --frame-end B [options]
    create-datasets --scenes-dir DIR --datasets-dir DIR --sequences-per-scene N --num-frames N
                    [--allow-skips/--no-allow-skips] [--dry-run] [options]

plus those of ``dataset/commands.py`` (``validate``, ``preview``) when that module exists. Every
option comes from :class:`settings.Settings`: ``--width 800``, ``--keyframe-multiplier 2``,
``--depths`` / ``--no-depths``; the tutorial's spelling ``--render-config.width=800``,
``--render-config.depths``, ``--render-config.no-debug`` is accepted too.

:func:`main` never exits the process: a bad argument prints one line and returns 1 (inside Blender
``sys.exit`` would end Blender itself). ``bpy`` is imported only in :func:`register`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from .errors import DatasetForgeError
from .settings import Settings, SettingsDict, SettingsError
from .wire.protocol import Summary

PROG = "dataset"
TUTORIAL_PREFIX = "--render-config."


class CliError(DatasetForgeError):
    """A bad command line; the message is the one line shown to the user."""


class _Exit(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of calling ``sys.exit``."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise CliError(f"{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None):  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


class _Bool(argparse.Action):
    """``--x`` / ``--no-x`` (and ``--render-config.x`` / ``--render-config.no-x``)."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.pop("nargs", None)
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        last = option_string.split(".")[-1].lstrip("-")
        setattr(namespace, self.dest, not last.startswith("no-"))


def _field_type(default: Any):
    if isinstance(default, bool):
        return bool
    return type(default)


def _help(f) -> str:
    m = f.metadata
    extra = []
    if m.get("choices"):
        extra.append("one of " + ", ".join(map(str, m["choices"])))
    if m.get("min") is not None:
        extra.append(f"min {m['min']:g}")
    if m.get("max") is not None:
        extra.append(f"max {m['max']:g}")
    default = f.default if not isinstance(f.default, str) or f.default else "''"
    extra.append(f"default {default}")
    return f"{m.get('help', '')} ({'; '.join(extra)})".replace("%", "%%")


def add_settings_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One option per :class:`Settings` field, grouped as in the panel; defaults stay None so
    that only what was typed overrides the settings' own defaults."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in Settings.fields():
        if f.name in skip:
            continue
        group_name = f.metadata.get("group", "Options")
        group = groups.get(group_name)
        if group is None:
            group = groups[group_name] = parser.add_argument_group(f"{group_name} options")
        flag = f.name.replace("_", "-")
        names = [f"--{flag}"]
        tutorial = [f"{TUTORIAL_PREFIX}{flag}"]
        if flag != f.name:
            tutorial.append(f"{TUTORIAL_PREFIX}{f.name}")
        t = _field_type(f.default)
        if t is bool:
            group.add_argument(*names, f"--no-{flag}", *tutorial,
                               *[f"{TUTORIAL_PREFIX}no-{n[len(TUTORIAL_PREFIX):]}" for n in tutorial],
                               dest=f.name, action=_Bool, default=None, help=_help(f))
        else:
            choices = f.metadata.get("choices")
            metavar = "{" + ",".join(map(str, choices)) + "}" if choices else f.name.upper()
            group.add_argument(*names, *tutorial, dest=f.name, default=None, help=_help(f), type=t,
                               metavar=metavar)


def _options(ns: argparse.Namespace, skip: tuple[str, ...] = ()) -> SettingsDict:
    return {k: getattr(ns, k) for k in Settings.field_names()
            if k not in skip and getattr(ns, k, None) is not None}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Dataset Forge: render folders of animated "
                            ".blend scenes into video datasets with ground truth.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    ra = sub.add_parser("render-animation", help="render one frame range of one .blend",
                        description="Render frames A..B (inclusive, after the keyframe multiplier) "
                        "of BLEND into OUT_DIR (frames/, ground truth, transforms.json).")
    ra.add_argument("blend", metavar="BLEND", help="the .blend file")
    ra.add_argument("out_dir", metavar="OUT_DIR", help="the sequence folder to write")
    ra.add_argument("--frame-start", "--render-config.frame-start", type=int, default=None,
                    help="first frame (default: the scene's)")
    ra.add_argument("--frame-end", "--render-config.frame-end", type=int, default=None,
                    help="last frame, inclusive (default: the scene's)")
    add_settings_options(ra, skip=tuple(f.name for f in Settings.fields()
                                        if "render-animation" not in f.metadata["cli"]))
    ra.set_defaults(func=_render_animation)

    cd = sub.add_parser("create-datasets", help="render every scene of a folder into a dataset",
                        description="Render SEQUENCES_PER_SCENE disjoint sequences of NUM_FRAMES "
                        "frames from every .blend of the scenes folder (and its direct subfolders) "
                        "into DATASETS_DIR/renders/SCENE/SEQUENCE-ID/.")
    cd.add_argument("--scenes-dir", "--render-config.scenes-dir", required=True,
                    help="folder of .blend files")
    cd.add_argument("--datasets-dir", "--render-config.datasets-dir", required=True,
                    help="output folder (created)")
    cd.add_argument("--dry-run", action="store_true",
                    help="print the plan (scenes, ranges, sequences) as JSON and render nothing")
    cd.add_argument("--json", action="store_true",
                    help="print the summary as JSON instead of text")
    ex_opts = cd.add_argument_group("Executor options (docs/cluster.md)")
    ex_opts.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local: worker processes on this machine (default); ray: one Ray task per "
                     "scene on a Ray cluster (pip install -r requirements-ray.txt)")
    ex_opts.add_argument("--ray-address", default=None, metavar="ADDRESS",
                     help="the Ray cluster: auto (the one running here), HOST:6379 (default: "
                     "RAY_ADDRESS, else a private local instance)")
    ex_opts.add_argument("--ray-num-cpus", type=float, default=None, metavar="C",
                     help="CPUs per Ray task (default: --threads, else 1)")
    ex_opts.add_argument("--ray-num-gpus", type=float, default=None, metavar="G",
                     help="GPUs per Ray task, fractional allowed (default: 1 on a GPU cluster "
                     "unless --device-type CPU, else 0)")
    add_settings_options(cd)
    cd.set_defaults(func=_create_datasets)
    ra.add_argument("--json", action="store_true", help="print the summary as JSON")

    commands = None
    try:
        commands = importlib.import_module(f"{__package__}.dataset.commands")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.dataset.commands":
            _err(f"{PROG}: warning: dataset tools unavailable ({exc})")
    except ImportError as exc:
        _err(f"{PROG}: warning: dataset tools unavailable ({exc})")
    if commands is not None and hasattr(commands, "add_commands"):
        commands.add_commands(sub)
    return parser


def _print_summary(summary: Summary, as_json: bool) -> None:
    from .engine.progress import format_summary

    _out(json.dumps(summary, indent=1, default=str) if as_json else format_summary(summary))


def _out(text: str) -> None:
    """Print on stdout; a closed stdout (``>&-``) or a reader that went away loses the text, not
    the run's exit code."""
    try:
        if sys.stdout is not None:
            print(text, file=sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


def _err(text: str) -> None:
    """Print one line on stderr, if there is one."""
    try:
        if sys.stderr is not None:
            print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _render_animation(ns: argparse.Namespace) -> int:
    from .engine.api import render_animation

    # The progress line on stderr, a terminal or not (a log gets a line every 10 s).
    summary = render_animation(ns.blend, ns.out_dir, frame_start=ns.frame_start,
                               frame_end=ns.frame_end, progress_bar=True, **_options(ns))
    if ns.json:
        _print_summary(summary, True)
    else:
        for scene, reason in summary["failed"].items():
            _out(f"FAILED {scene}: {reason}")
        _out(f"{summary['frames_rendered']} frame(s) rendered, {summary['frames_skipped']} already "
             f"complete, into {ns.out_dir}" + ("" if summary["ok"] else " (with errors)"))
    return summary["exit_code"]


def _create_datasets(ns: argparse.Namespace) -> int:
    from .engine.api import create_datasets

    ray = {"executor": ns.executor, "ray_address": ns.ray_address, "ray_num_cpus": ns.ray_num_cpus,
           "ray_num_gpus": ns.ray_num_gpus}
    if ns.dry_run:
        _out(json.dumps(create_datasets(ns.scenes_dir, ns.datasets_dir, dry_run=True, **ray,
                                        **_options(ns)), indent=1))
        return 0
    summary = create_datasets(ns.scenes_dir, ns.datasets_dir, progress_bar=True, **ray,
                              **_options(ns))
    _print_summary(summary, ns.json)
    return summary["exit_code"]


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0: everything succeeded, 1: anything failed or a
    bad argument, 128 + N: stopped by signal N: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). Never
    calls ``sys.exit``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        ns = parser.parse_args(argv)
        if getattr(ns, "func", None) is None:
            parser.print_help()
            return 1
        return int(ns.func(ns) or 0)
    except _Exit as exc:
        return exc.status
    except CliError as exc:
        _err(str(exc).splitlines()[0])
        return 1
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM / SIGHUP during a run (engine.session.Interrupted): the workers were
        # stopped and the manifest written; 128 + the signal's number, as a shell reports it.
        signum = getattr(exc, "signum", 2)
        how = "interrupted" if signum == 2 else f"terminated by {getattr(exc, 'name', signum)}"
        _err(f"{PROG}: {how}; finished frames are kept, rerun the same command to resume")
        return getattr(exc, "exit_code", 130)
    except (SettingsError, ValueError, RuntimeError, OSError) as exc:
        # SettingsError, SamplingError, DiscoveryError, PlanError: one sentence with the fix.
        msg = " ".join(str(exc).split("\n")[:1]) or type(exc).__name__
        _err(f"{PROG}: error: {msg}")
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: show it, but still return a code to Blender
        import traceback

        if sys.stderr is not None:
            traceback.print_exc()
        _err(f"{PROG}: internal error: {type(exc).__name__}: {exc}")
        return 1


_handle: Any = None


def execute(args: list[str]) -> int:
    """``blender --command dataset ARGS``: Blender passes the arguments after the command name."""
    return main(list(args))


def register() -> None:
    """Register ``blender --command dataset`` (Blender 4.2+). Keeps the handle for
    :func:`unregister`."""
    global _handle
    import bpy

    if _handle is not None or not hasattr(bpy.utils, "register_cli_command"):
        return
    _handle = bpy.utils.register_cli_command(PROG, execute)


def unregister() -> None:
    global _handle
    if _handle is None:
        return
    import bpy

    bpy.utils.unregister_cli_command(_handle)
    _handle = None
