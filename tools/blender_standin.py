# SPDX-License-Identifier: GPL-3.0-or-later
"""A ``blender`` stand-in: Blender's own command line, run through the ``bpy`` wheel.

Run it as ``tools/blender ARGS...`` (a bash wrapper that execs the project's venv Python) or as
``python tools/blender_standin.py ARGS...`` with any Python that can ``import bpy``.

Arguments are processed in order, as Blender does:

=====================================  ==========================================================
``-b``, ``--background``               accepted (the ``bpy`` module always runs in background)
``--factory-startup``, ``-noaudio``    accepted, no effect (the module starts from its defaults)
``--python-use-system-env``            accepted, no effect (the module's Python is the system's)
``-Y``/``--disable-autoexec``          .blend files opened after it do not run embedded scripts
``-y``/``--enable-autoexec``           .blend files opened after it may run embedded scripts
``FILE.blend``                         opened with ``bpy.ops.wm.open_mainfile``
``--python-expr EXPR``                 executed as ``__main__``
``-P``/``--python FILE``               executed as ``__main__``
``--python-exit-code N``               exit with N as soon as a later script raises (0: go on)
``-E``/``--engine``, ``-t``/``--threads``, ``-o``/``--render-output``, ``-s``/``--frame-start``,
``-e``/``--frame-end``, ``-f``/``--render-frame N``, ``-a``/``--render-anim``: as in Blender
``-c``/``--command ID ARGS...``        run a command registered with ``bpy.utils.register_cli_command``
                                       by this checkout's extension; consumes all remaining arguments
``--``                                 stop; what follows is only for the scripts (``sys.argv``)
``-v``/``--version``, ``-h``/``--help``  print and exit
=====================================  ==========================================================

``sys.argv`` is ``[<this launcher>, *ARGS]`` like Blender's, so scripts find their own arguments
after ``--``. For ``--command`` the checkout is imported as ``bl_ext.user_default.dataset_forge``
(the module name of a zip install), its ``register()`` runs with ``register_cli_command`` wrapped
to capture the commands, and the command's ``execute(args)`` return value is the exit code.
Anything else a script imports (``dataset_forge`` itself) comes from the interpreter's environment.

An unknown option or a missing value is a one-line error and exit code 1. The process always
ends with ``os._exit`` after flushing: Blender 4.5 hangs and 4.2 crashes at interpreter exit when
handlers are left registered.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.util
import os
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXTENSION_MODULE = "bl_ext.user_default.dataset_forge"
LAUNCHER = str(Path(__file__).resolve().parent / "blender")

FLAGS = {"-b": "background", "--background": "background", "--factory-startup": None,
         "-noaudio": None, "--python-use-system-env": None, "-Y": "no_autoexec",
         "--disable-autoexec": "no_autoexec",
         "-y": "autoexec", "--enable-autoexec": "autoexec", "-a": "render_anim",
         "--render-anim": "render_anim"}
WITH_VALUE = {"--python-expr": "expr", "-P": "file", "--python": "file",
              "--python-exit-code": "exit_code", "-E": "engine", "--engine": "engine",
              "-t": "threads", "--threads": "threads", "-o": "output", "--render-output": "output",
              "-s": "frame_start", "--frame-start": "frame_start", "-e": "frame_end",
              "--frame-end": "frame_end", "-f": "render_frame", "--render-frame": "render_frame"}
INT_VALUES = {"exit_code", "threads", "frame_start", "frame_end"}


class ArgError(Exception):
    """A bad command line: reported as one line, exit code 1."""


def parse(args: list[str]) -> list[tuple[str, object]]:
    """Turn Blender's arguments into ordered actions; raises :class:`ArgError`."""
    actions: list[tuple[str, object]] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            break
        if a in ("-h", "--help", "-v", "--version"):
            actions.append(("help" if a in ("-h", "--help") else "version", None))
            return actions
        if a in ("-c", "--command"):
            if i + 1 >= len(args):
                raise ArgError(f"{a} expects a command id (try '{a} help')")
            actions.append(("command", (args[i + 1], args[i + 2:])))
            return actions
        if a in FLAGS:
            if FLAGS[a]:
                actions.append((FLAGS[a], None))
            i += 1
            continue
        if a in WITH_VALUE:
            if i + 1 >= len(args):
                raise ArgError(f"{a} expects a value")
            kind, value = WITH_VALUE[a], args[i + 1]
            if kind in INT_VALUES:
                try:
                    value = int(value)
                except ValueError:
                    raise ArgError(f"{a} expects an integer, got {value!r}") from None
            if kind == "render_frame":
                value = _frames(a, value)
            actions.append((kind, value))
            i += 2
            continue
        if a.startswith("-"):
            raise ArgError(f"unknown argument {a!r} (the stand-in accepts: "
                           f"{', '.join(sorted({*FLAGS, *WITH_VALUE, '-c', '--command', '--'}))})")
        actions.append(("open", a))
        i += 1
    return actions


def _frames(flag: str, value: str) -> list[int]:
    """``-f`` values: ``3``, ``1,4``, ``2..5``."""
    out: list[int] = []
    try:
        for part in value.split(","):
            if ".." in part:
                lo, hi = part.split("..")
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise ArgError(f"{flag} expects frame numbers like 3, 1,4 or 2..5; got {value!r}") from None
    return out


class _ExtensionFinder(importlib.abc.MetaPathFinder):
    """Makes this checkout importable as ``bl_ext.user_default.dataset_forge`` (what a zip install
    is called) without copying it into a user repository."""

    def find_spec(self, name, path=None, target=None):
        if name != EXTENSION_MODULE:
            return None
        return importlib.util.spec_from_file_location(
            name, str(REPO / "__init__.py"), submodule_search_locations=[str(REPO)])


def load_extension():
    """Import this checkout as the extension and run its ``register()``; returns the commands it
    registered as ``{id: execute}``."""
    import bpy

    commands: dict[str, object] = {}
    original = bpy.utils.register_cli_command

    def capture(cli_id, execute):
        commands[cli_id] = execute
        return original(cli_id, execute)

    bpy.utils.register_cli_command = capture
    try:
        mod = importlib.import_module(EXTENSION_MODULE)
        mod.register()
    finally:
        bpy.utils.register_cli_command = original
    return commands


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not block the exit
            pass
    os._exit(code)


def _run_script(kind: str, value: str, exit_code: int) -> None:
    """Run one --python / --python-expr like Blender: a traceback on error, then exit with
    ``exit_code`` if it is not 0; ``sys.exit`` inside the script ends the process."""
    try:
        if kind == "expr":
            code = compile(value, "<string>", "exec")
            exec(code, {"__name__": "__main__", "__builtins__": builtins})
        else:
            path = os.path.abspath(value)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"Python script {value!r} not found")
            src = Path(path).read_text(encoding="utf-8")
            exec(compile(src, path, "exec"), {"__name__": "__main__", "__file__": path,
                                              "__builtins__": builtins})
    except SystemExit as exc:
        code = exc.code
        if code is None:
            _exit(0)
        if isinstance(code, int):
            _exit(code)
        print(code, file=sys.stderr)
        _exit(1)
    except BaseException:  # noqa: BLE001 - Blender reports and goes on (or exits on request)
        traceback.print_exc()
        if exit_code:
            _exit(exit_code)


def _render(bpy, state: dict, frames: list[int] | None) -> None:
    scene = bpy.context.scene
    if state.get("output"):
        scene.render.filepath = state["output"]
    if frames is None:
        bpy.ops.render.render(animation=True)
        return
    pattern = scene.render.filepath
    for f in frames:
        scene.frame_set(f)
        # The frame path as Blender names it for -f (``#`` runs replaced, else 4 digits appended).
        scene.render.filepath = scene.render.frame_path(frame=f)
        bpy.ops.render.render(write_still=True)
        scene.render.filepath = pattern


def _help() -> str:
    return __doc__ or ""


def main(args: list[str]) -> int:
    try:
        actions = parse(args)
    except ArgError as exc:
        print(f"blender: error: {exc}", file=sys.stderr)
        return 1
    if actions and actions[0][0] == "help":
        print(_help())
        return 0
    # Scripts (and the runner's workers started from them) see Blender's argv, and nested
    # launches of this stand-in use the same interpreter.
    sys.argv = [LAUNCHER, *args]
    os.environ.setdefault("DATASET_FORGE_PYTHON", sys.executable)
    try:
        import bpy
    except ImportError as exc:
        print(f"blender: error: this Python ({sys.executable}) cannot import bpy: {exc}",
              file=sys.stderr)
        return 1
    sys.meta_path.append(_ExtensionFinder())
    if actions and actions[0][0] == "version":
        print(f"Blender {bpy.app.version_string} (bpy module stand-in)")
        return 0
    state: dict = {"exit_code": 0, "autoexec": False}
    for kind, value in actions:
        if kind in ("background",):
            continue
        if kind in ("autoexec", "no_autoexec"):
            state["autoexec"] = kind == "autoexec"
        elif kind == "exit_code":
            state["exit_code"] = int(value)  # type: ignore[arg-type]
        elif kind == "open":
            path = os.path.abspath(str(value))
            if not os.path.isfile(path):
                print(f"blender: error: cannot read file {path!r}: no such file", file=sys.stderr)
                return 1
            try:
                bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=state["autoexec"])
            except RuntimeError as exc:
                print(f"blender: error: cannot read file {path!r}: {str(exc).strip()}",
                      file=sys.stderr)
                return 1
        elif kind in ("expr", "file"):
            _run_script(kind, str(value), state["exit_code"])
        elif kind == "engine":
            bpy.context.scene.render.engine = str(value)
        elif kind == "threads":
            r = bpy.context.scene.render
            r.threads_mode = "FIXED" if value else "AUTO"
            if value:
                r.threads = int(value)  # type: ignore[arg-type]
        elif kind == "output":
            state["output"] = str(value)
            bpy.context.scene.render.filepath = str(value)
        elif kind == "frame_start":
            bpy.context.scene.frame_start = int(value)  # type: ignore[arg-type]
        elif kind == "frame_end":
            bpy.context.scene.frame_end = int(value)  # type: ignore[arg-type]
        elif kind == "render_frame":
            _render(bpy, state, list(value))  # type: ignore[arg-type]
        elif kind == "render_anim":
            _render(bpy, state, None)
        elif kind == "command":
            cli_id, rest = value  # type: ignore[misc]
            return run_command(cli_id, list(rest))
    return 0


def run_command(cli_id: str, rest: list[str]) -> int:
    """``--command ID ARGS``: register the extension, call the command, return its code."""
    try:
        commands = load_extension()
    except Exception as exc:  # noqa: BLE001 - a broken checkout is one line, not a crash
        traceback.print_exc()
        print(f"blender: error: registering {EXTENSION_MODULE} from {REPO} failed: {exc}",
              file=sys.stderr)
        return 1
    if cli_id == "help":
        print("Blender Command Line Commands:")
        for name in sorted(commands):
            print(f"    {name}")
        return 0
    if cli_id not in commands:
        known = ", ".join(sorted(commands)) or "none"
        print(f"blender: error: unrecognized command {cli_id!r} (registered: {known})",
              file=sys.stderr)
        return 1
    try:
        rc = commands[cli_id](rest)  # type: ignore[operator]
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - Blender prints the error and exits with 1
        traceback.print_exc()
        return 1
    if not isinstance(rc, int):
        print(f"blender: error: command {cli_id!r} returned {rc!r}, not an int", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    _exit(main(sys.argv[1:]))
