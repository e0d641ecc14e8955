# SPDX-License-Identifier: GPL-3.0-or-later
"""Find the scenes of a folder and read what each one really holds. Pure Python.

:func:`find_blends` lists ``.blend`` files in the folder and one level below (a scene may sit in its
own folder), in natural order, skipping Blender's ``.blend1`` backups and hidden entries.
:func:`scene_names` gives each a folder-safe, unique and stable name. :func:`probe` asks a worker
process (``bpy`` lives there, never here) for each file's frame range, frame rate and camera, so
this module is usable from the CLI, from plain Python and from inside Blender (the "Scan" button).
With a generated camera (``settings.camera`` orbit / flythrough) the worker adds its camera before
it checks the scene, so a file without a camera is accepted and reports that camera's name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..dataset.documents.job import JobSpec
from ..dataset.documents.plan import SceneFacts
from ..dataset.documents.provenance import FileIdentityDict
from ..dataset.provenance import read_bindings
from ..errors import DatasetForgeError
from ..settings import Settings
from ..wire import events as ev
from ..wire.protocol import Ev, Event
from .launch import worker_command, worker_env

# One scene file as discovery read it (its fields: the plan document's).
SceneInfo = SceneFacts


class DiscoveryError(DatasetForgeError, RuntimeError):
    """The scenes folder cannot be used at all (missing, empty); the message says why."""


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``scene2`` before ``scene10`` (case-insensitive)."""
    return [(0, int(t), t) if t.isdigit() else (1, t.lower(), t) for t in re.split(r"(\d+)", text)
            if t != ""]


def _is_scene_file(p: Path) -> bool:
    # ".blend1", ".blend2" ... are Blender's backups; the suffix test alone excludes them.
    return p.is_file() and p.suffix.lower() == ".blend" and not p.name.startswith(".")


def find_blends(scenes_dir: str | os.PathLike) -> list[Path]:
    """``.blend`` files in ``scenes_dir`` and its direct subfolders, natural order by relative path
    (absolute paths)."""
    root = Path(scenes_dir).expanduser().resolve()
    if not root.is_dir():
        raise DiscoveryError(f"scenes folder {root} does not exist or is not a folder; pass the "
                             "folder that holds your .blend files")
    found: list[Path] = []
    for entry in root.iterdir():
        if entry.name.startswith("."):
            continue
        if _is_scene_file(entry):
            found.append(entry)
        elif entry.is_dir():
            try:
                found.extend(p for p in entry.iterdir() if _is_scene_file(p))
            except PermissionError:
                continue
    return sorted(found, key=lambda p: [natural_key(part) for part in p.relative_to(root).parts])


# Characters no folder name may hold on Windows, macOS or Linux, plus control characters.
_ILLEGAL = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f]')
_RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$",
             *(f"{d}{i}" for d in ("com", "lpt") for i in (*range(1, 10), "\u00b9", "\u00b2",
                                                          "\u00b3"))}
# Bytes of one folder name: most file systems allow 255; leave room for suffixes like ``-12``.
_MAX_BYTES = 200


def safe_name(text: str, max_len: int = 80) -> str:
    """A folder name valid on Linux, macOS and Windows that keeps the letters of every script:
    Unicode NFC; only characters illegal somewhere (``< > : " / \\ | ? *``) and control
    characters become ``_``; no leading dot or space, no trailing dot or space, no Windows device
    name (``CON``, ``com1.x`` ...); at most ``max_len`` characters and 200 UTF-8 bytes."""
    name = unicodedata.normalize("NFC", text)
    name = _ILLEGAL.sub("_", name)
    name = name.strip(" .")
    name = name[:max_len]
    while len(name.encode("utf-8")) > _MAX_BYTES:
        name = name[:-1]
    name = unicodedata.normalize("NFC", name).rstrip(" .")
    if not name.strip(" ._"):
        return "scene"
    if name.split(".")[0].rstrip(" ").lower() in _RESERVED:
        name = "_" + name
    return name


def _fold(name: str) -> str:
    """The form two folder names share when a case-insensitive file system (macOS, Windows)
    would see one folder."""
    return unicodedata.normalize("NFC", name).casefold()


def _bound_to(ident: FileIdentityDict, blend: Path) -> bool:
    """Whether a recorded binding ``ident`` (``path`` and optionally ``size``, ``mtime_ns``) is
    ``blend``: the same path, or, when the recorded path is gone, a moved file (same name, size
    and modification time; the worker's content hash has the last word)."""
    here = str(blend.resolve())
    if ident.get("path") == here:
        return True
    old = ident.get("path") or ""
    if not old or os.path.exists(old) or os.path.basename(old) != blend.name:
        return False
    try:
        st = blend.stat()
    except OSError:
        return False
    return ident.get("size") == st.st_size and ident.get("mtime_ns") == st.st_mtime_ns


def scene_names(blends: list[Path], scenes_dir: str | os.PathLike,
                bindings: dict[str, FileIdentityDict] | None = None) -> list[str]:
    """Unique folder names for ``blends`` (in the same order).

    ``bindings`` maps existing scene folder names to the ``.blend`` they hold (``path`` and, to
    recognise a moved file, ``size`` and ``mtime_ns``; see ``dataset.provenance.read_bindings``):
    a file keeps its folder, and a folder bound to any other file (even one no longer present) is
    never given to a new file. Other files are named after their stem (:func:`safe_name`). When
    several share a stem (case-insensitively: macOS and Windows folders ignore case), each of them
    is named after its path instead (``sub_scene``), so adding a duplicate never renames an
    unrelated scene; a remaining clash gets ``-2``, ``-3`` ... in natural order.
    """
    root = Path(scenes_dir).expanduser().resolve()
    bindings = bindings or {}
    kept: dict[int, str] = {}
    for i, p in enumerate(blends):
        own = sorted((n for n, ident in bindings.items()
                      if n not in kept.values() and _bound_to(ident, p)), key=natural_key)
        if own:
            natural = safe_name(p.stem)
            kept[i] = natural if natural in own else own[0]
    taken = {_fold(n) for n in bindings} | {_fold(n) for n in kept.values()}
    stems = [safe_name(p.stem) for p in blends]
    counts: dict[str, int] = {}
    for s in stems:
        counts[_fold(s)] = counts.get(_fold(s), 0) + 1
    out = []
    for i, (p, s) in enumerate(zip(blends, stems)):
        if i in kept:
            out.append(kept[i])
            continue
        if counts[_fold(s)] > 1:
            s = safe_name("_".join(_relative(p, root).with_suffix("").parts))
        cand, k = s, 1
        while _fold(cand) in taken:
            k += 1
            cand = f"{s}-{k}"
        taken.add(_fold(cand))
        out.append(cand)
    return out


def _relative(p: Path, root: Path) -> Path:
    """``p`` relative to ``root`` without following links (a linked .blend keeps its place)."""
    for a, b in ((p, root), (p.absolute(), root), (p.resolve(), root.resolve())):
        try:
            return a.relative_to(b)
        except ValueError:
            continue
    return Path(p.parent.name) / p.name


PROBE_PREFIX = "dataset_forge_probe_"  # TMP/dataset_forge_probe_PID_XXXX/: one probe's job files


def remove_stale_probe_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the probe folders in ``root`` (the temp folder) whose process is gone (a killed
    run leaves its folder behind); returns what was removed."""
    import shutil

    removed = []
    for p in Path(root or tempfile.gettempdir()).glob(f"{PROBE_PREFIX}*"):
        m = re.match(rf"{PROBE_PREFIX}(\d+)_", p.name)
        if m is None or not p.is_dir() or p.is_symlink():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except OSError:  # another user's, alive
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def probe(blends: list[str | os.PathLike], settings: Settings | None = None, *,
          timeout: float = 60.0, env: dict[str, str] | None = None,
          work_dir: str | os.PathLike | None = None,
          parallel: int | None = None) -> dict[str, Event]:
    """Open every file in a worker process and return ``{blend: probe event}``.

    Each result holds ``frame_start``, ``frame_end``, ``fps``, ``camera``, ``scene`` (the one
    that renders: ``settings.scene`` or the file's active one), ``scenes`` (all of the file's),
    ``warnings`` (a file that loaded with Blender's error reports, or saved by a newer Blender)
    and ``error``.
    The files are spread over ``parallel`` processes (default: up to ``settings.jobs``, one per
    64 MiB of files), each opening its share one after the other. If a process dies on a file (a
    crash inside Blender's reader, or a script), that file gets the error and a fresh process
    reads the rest of its share.
    ``timeout`` (s per file, plus 30 s to start) bounds a process.
    """
    settings = settings or Settings()
    todo = [str(Path(b).resolve()) for b in blends]
    if not work_dir:
        remove_stale_probe_dirs()
    tmp = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"{PROBE_PREFIX}{os.getpid()}_"))
    tmp.mkdir(parents=True, exist_ok=True)
    if parallel is None:
        # A process costs about half a second to start: worth it only for big files (Blender
        # reads on the order of 100 MB/s), so about one process per 64 MiB of .blend, up to jobs.
        size = sum(os.path.getsize(b) for b in todo if os.path.isfile(b))
        parallel = min(settings.jobs, max(1, size // (64 * 2**20)))
    n = max(1, min(int(parallel), len(todo)))
    shares = [todo[k::n] for k in range(n)]  # interleaved: big and small files mix
    results: dict[str, Event] = {}
    try:
        if n == 1:
            results.update(_probe_share(shares[0], settings, timeout, env, tmp, "0"))
        else:
            with ThreadPoolExecutor(n) as pool:
                for part in pool.map(lambda k: _probe_share(shares[k], settings, timeout, env, tmp,
                                                            str(k)), range(n)):
                    results.update(part)
    finally:
        try:
            for p in tmp.glob(f"probe-{os.getpid()}-*.json"):
                p.unlink()
            if not work_dir:
                tmp.rmdir()
        except OSError:
            pass
    return results


def _probe_share(todo: list[str], settings: Settings, timeout: float,
                 env: dict[str, str] | None, tmp: Path, tag: str) -> dict[str, Event]:
    """Probe ``todo`` in one process at a time (a fresh one after a crash)."""
    results: dict[str, Event] = {}
    attempt = 0
    while todo:
        attempt += 1
        job_path = tmp / f"probe-{os.getpid()}-{tag}-{attempt}.json"
        JobSpec.probe(todo, settings.to_dict()).write(job_path)
        cmd = worker_command(job_path, settings.executable)
        out, rc = _run_reader(cmd, env, 30 + timeout * len(todo))
        current, fatal = _read_probes(out, results)
        todo = [b for b in todo if b not in results]
        if not todo:
            break
        if current is None:
            # The process died before it reached any file: nothing to pin it on.
            tail = "\n".join(out.strip().splitlines()[-5:]) or "(nothing)"
            why = fatal or ("timed out" if rc is None else f"exited with code {rc}")
            raise DiscoveryError(f"the scene reader process {why} before opening any file; "
                                 f"command: {' '.join(cmd[:2])} ...; last output:\n{tail}")
        results[current] = _crashed(current, rc, timeout, settings)
        todo = [b for b in todo if b != current]
    return results


def _run_reader(cmd: list[str], env: dict[str, str] | None, limit: float) -> tuple[str, int | None]:
    """Run the scene reader ``cmd`` for at most ``limit`` s: its output (stdout and stderr) and
    exit code (None: timed out). Raises :class:`DiscoveryError` when it cannot start."""
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=worker_env(env), text=True,
                              encoding="utf-8", errors="replace", timeout=limit)
        return proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(
            "utf-8", "replace")
        return out, None
    except OSError as exc:
        raise DiscoveryError(f"cannot start Blender to read the scenes ({cmd[0]}: "
                             f"{exc.strerror}); set the executable option to a Blender "
                             "binary") from None


def _read_probes(out: str, results: dict[str, Event]) -> tuple[str | None, str | None]:
    """Put every ``probe`` event of the reader's output ``out`` into ``results`` (by ``.blend``);
    returns the file it had started and not finished (None: none) and the message of its error
    event outside any job (None: none)."""
    current = None
    fatal = None
    for line in out.splitlines():
        e = ev.decode(line.strip())
        if e is None:
            continue
        if e["event"] == Ev.PROBE_STARTED:
            current = e["blend"]
        elif e["event"] == Ev.PROBE:
            results[e["blend"]] = e
            current = None
        elif e["event"] == Ev.ERROR and not e.get("job"):
            fatal = e.get("message")
    return current, fatal


def _crashed(blend: str, rc: int | None, timeout: float, settings: Settings) -> Event:
    """The probe result of ``blend``, on which the reader process died (``rc`` None: timed out)."""
    if rc is None:
        why = f"took longer than {timeout:g} s"
    elif rc < 0:
        try:
            why = f"crashed Blender ({signal.Signals(-rc).name})"
        except ValueError:
            why = f"crashed Blender (signal {-rc})"
    else:
        why = f"crashed Blender (exit code {rc})"
    fix = ("its embedded scripts ran (autoexec is on): open it without autoexec, or fix the "
           "file's scripts" if settings.autoexec else
           "the file is damaged or needs a newer Blender: re-save it from Blender or remove it "
           "from the folder")
    return {"event": Ev.PROBE.value, "blend": blend, "frame_start": None, "frame_end": None,
            "fps": None, "camera": None, "scene": None,
            "error": f"{os.path.basename(blend)}: opening it {why}; {fix}"}


def discover(scenes_dir: str | os.PathLike, settings: Settings | None = None, *,
             env: dict[str, str] | None = None) -> list[SceneInfo]:
    """Every scene of ``scenes_dir`` with its real frame range, frame rate, camera and problems
    (read from the files by a worker process). Raises :class:`DiscoveryError` when the folder is
    missing or holds no ``.blend`` file."""
    blends = find_blends(scenes_dir)
    if not blends:
        raise DiscoveryError(f"no .blend files in {Path(scenes_dir).resolve()} or its direct "
                             "subfolders (.blend1 backups are ignored)")
    names = scene_names(blends, scenes_dir)
    found = probe(blends, settings, env=env)
    out = []
    for name, path in zip(names, blends):
        r = found.get(str(path.resolve()), {})
        out.append(SceneInfo(name=name, blend=str(path.resolve()), frame_start=r.get("frame_start"),
                             frame_end=r.get("frame_end"), fps=r.get("fps"),
                             camera=r.get("camera"), blender_scene=r.get("scene"),
                             blender_scenes=r.get("scenes"), warnings=r.get("warnings") or None,
                             error=r.get("error") or (None if r else
                                                      f"{path.name}: was not read")))
    return out


def bind_scene_names(infos: list[SceneInfo], scenes_dir: str | os.PathLike,
                     datasets_dir: str | os.PathLike) -> list[SceneInfo]:
    """``infos`` renamed so that every scene folder already in ``datasets_dir`` stays with the
    ``.blend`` that made it (see :func:`scene_names`)."""
    bindings = read_bindings(datasets_dir)
    if not bindings:
        return infos
    names = scene_names([Path(i.blend) for i in infos], scenes_dir, bindings)
    return [replace(i, name=n) for i, n in zip(infos, names)]
