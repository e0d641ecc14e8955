# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures. Blender never touches the user's config: BLENDER_USER_RESOURCES points at a
temporary folder for this process and every subprocess it starts.

The ``render`` marker is enforced, so that ``pytest -m "not render"`` is an honest bpy-free lane: a
test without it fails when it (or a fixture it uses)

* calls :func:`bpy_env`, :func:`build_scenes` or :func:`run_bpy`, or uses ``scenes_dir``;
* imports ``bpy`` in this process (a meta-path finder sees the import);
* starts a subprocess that imports ``bpy`` (a worker, the ``tools/blender`` stand-in, a script):
  while an unmarked test runs, ``PYTHONPATH`` starts with a folder whose ``bpy`` package records
  the import in a flag file and raises ``ImportError``.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _scratch_in_memory() -> None:
    """Test scratch (``tmp_path``, pytest's base folders, the folders below) goes to /dev/shm
    where that is a RAM file system with 4 GiB free. On this machine's disk (ext4 mounted with
    ``discard``) the lane's 927 fsyncs, 18,000 opens and 3,700 mkdirs took about 3.8 s of wall
    time. What the tests run is the same: fsync, hard links, symbolic links, permissions and file
    size limits behave there as on a disk. ``DF_TEST_TMP`` names another folder; empty keeps the
    system's temporary folder."""
    want = os.environ.get("DF_TEST_TMP")
    if want is None:
        try:
            st = os.statvfs("/dev/shm")
        except OSError:
            return
        want = "/dev/shm" if st.f_bavail * st.f_frsize >= 4 << 30 else ""
    if want:
        tempfile.tempdir = want


_scratch_in_memory()
_USER = tempfile.mkdtemp(prefix="df-blender-user-")
_OWNER = os.getpid()


def _remove_own_folders() -> None:
    """At exit of the process that made them (not of the process tests/lane_split.py forks):
    the Blender user folder and the bpy guard below."""
    if os.getpid() == _OWNER:
        for d in (_USER, _GUARD):
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_remove_own_folders)
os.environ["BLENDER_USER_RESOURCES"] = _USER
os.environ.setdefault("PYTHONUNBUFFERED", "1")
# The tests run many small numpy operations, often several processes at once: OpenBLAS worker
# threads only spin (validate's fault matrix took twice the CPU time with them, for no gain in
# wall time). Set before numpy is imported; a value the caller set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _keep_freed_heap() -> None:
    """glibc hands the top of the heap back to the kernel as soon as 2x the mmap threshold is
    free there, so the short-lived numpy temporaries of the checks (up to ~1 MB) fault their pages
    in again and again: 118,000 page faults for the 126 validations of the fault matrix. Keeping up
    to 256 MB of freed heap (plus 64 MB of headroom per growth) leaves 10,000, and validate takes
    about 9% less CPU (41.1/43.1/38.9 -> 37.7/38.2/36.4 ms per validation). This process and the
    one tests/lane_split.py forks only; nothing else changes (glibc on Linux, else nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    mallopt(-2, 64 << 20)   # M_TOP_PAD


_keep_freed_heap()

sys.path.insert(0, str(REPO / "tests"))
import lane_split  # noqa: E402  (tests/ is on the path from here)


def _hypothesis_not_rewritten() -> None:
    """pytest rewrites the asserts of every module of a distribution that ships a pytest plugin,
    so all of hypothesis (about 70 modules) was parsed, rewritten and compiled on each run (0.9 s
    of the lane's serial collection; with PYTHONDONTWRITEBYTECODE nothing is cached). Its own
    asserts gain nothing from it: it is imported from its installed bytecode instead. The
    tests' asserts are rewritten as before. (pytest 9 keeps the marked names in the import
    hook's ``_must_rewrite``; without it this does nothing.)"""
    for finder in sys.meta_path:
        marked = getattr(finder, "_must_rewrite", None)
        if isinstance(marked, set) and "hypothesis" in marked:
            marked.discard("hypothesis")
            getattr(finder, "_marked_for_rewrite_cache", {}).clear()


_hypothesis_not_rewritten()

# -- the render marker, enforced ------------------------------------------------------------------
RENDER_FIXTURES = ("scenes_dir",)
_GUARD = Path(tempfile.mkdtemp(prefix="df-no-bpy-"))
(_GUARD / "bpy").mkdir()
(_GUARD / "bpy" / "__init__.py").write_text(
    "import os, sys\n"
    "_flag = os.environ.get('DF_NO_BPY_FLAG')\n"
    "if _flag:\n"
    "    with open(_flag, 'a', encoding='utf-8') as _f:\n"
    "        _f.write(' '.join([sys.executable, *sys.argv])[:300] + '\\n')\n"
    "raise ImportError('bpy imported by a subprocess of a test not marked @pytest.mark.render')\n",
    encoding="utf-8")
_current: dict = {"item": None, "bpy_in_process": []}


def _unmarked_item():
    """The running test when it lacks the ``render`` marker, else None."""
    item = _current["item"]
    if item is None or item.get_closest_marker("render") is not None:
        return None
    return item


def require_render(what: str) -> None:
    """Fail the running test unless it is marked ``render`` (``what`` starts bpy)."""
    item = _unmarked_item()
    if item is not None:
        pytest.fail(f"{item.nodeid} {what} but is not marked @pytest.mark.render", pytrace=False)


class _BpyImportGuard(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Fails the in-process import of bpy during a test not marked ``render``. ``find_spec`` still
    answers (bpy looks installed, as it is); only executing the import is refused."""

    def find_spec(self, name, path=None, target=None):
        if name != "bpy" or _unmarked_item() is None:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        _current["bpy_in_process"].append(_current["item"].nodeid)
        raise ImportError("bpy imported by a test not marked @pytest.mark.render")


sys.meta_path.insert(0, _BpyImportGuard())


def _check_no_bpy(item, flag: Path) -> None:
    if flag.exists():
        started = flag.read_text(encoding="utf-8").strip().splitlines()
        flag.unlink()
        pytest.fail(f"{item.nodeid} started a subprocess that imports bpy ({started[0][:160]}) "
                    "but is not marked @pytest.mark.render", pytrace=False)
    if item.nodeid in _current["bpy_in_process"]:
        _current["bpy_in_process"].remove(item.nodeid)
        pytest.fail(f"{item.nodeid} imports bpy but is not marked @pytest.mark.render", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    _current["item"] = item
    if item.get_closest_marker("render") is not None:
        return (yield)
    used = [f for f in RENDER_FIXTURES if f in item.fixturenames]
    if used:
        pytest.fail(f"{item.nodeid} uses the fixture {used[0]} (it builds scenes with bpy) but is "
                    "not marked @pytest.mark.render", pytrace=False)
    flag = _GUARD / f"flag-{os.getpid()}"
    item.stash[_FLAG] = flag
    item.stash[_SAVED_ENV] = {k: os.environ.get(k) for k in ("PYTHONPATH", "DF_NO_BPY_FLAG")}
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(_GUARD), os.environ.get("PYTHONPATH"))
                                               if p)
    os.environ["DF_NO_BPY_FLAG"] = str(flag)
    try:
        return (yield)
    finally:
        _check_no_bpy(item, flag)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    finally:
        if _FLAG in item.stash:
            _check_no_bpy(item, item.stash[_FLAG])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:
        saved = item.stash.get(_SAVED_ENV, None)
        if saved is not None:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            flag = item.stash[_FLAG]
            try:
                _check_no_bpy(item, flag)
            finally:
                flag.unlink(missing_ok=True)
        _current["item"] = None


_RENDER_MODULE = re.compile(r"^pytestmark\s*=.*\bpytest\.mark\.render\b", re.M)


def pytest_ignore_collect(collection_path, config):
    """Under ``-m "not render"`` (the bpy-free lane) a test module marked ``render`` as a whole
    (``pytestmark = pytest.mark.render`` at module level) is not imported: none of its tests
    could be selected, and importing it only costs the lane time."""
    if (config.getoption("markexpr", "") or "").split() != ["not", "render"]:
        return None
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        try:
            if _RENDER_MODULE.search(collection_path.read_text(encoding="utf-8")):
                return True
        except OSError:
            return None
    return None


_CLEANERS: list[threading.Thread] = []


def pytest_sessionstart(session):
    """pytest removes the base folders of earlier sessions (all but the last
    ``tmp_path_retention_count``) when this one ends, after the last test: on this disk (ext4
    mounted with ``discard``) that took 5.3 s of wall time for one earlier lane run's folder
    (2,046 entries), almost no CPU. The same removal (pytest's own function, which takes each
    folder's lock first, so a running session's folder is left alone) starts here in a thread
    and runs while the tests do; pytest's own call at the end then finds nothing left."""
    config = session.config
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None or config.option.basetemp or config.getini("tmp_path_retention_policy") == "none":
        return
    try:
        from _pytest.pathlib import LOCK_TIMEOUT, cleanup_numbered_dir
    except ImportError:  # another pytest: it removes them at the end, as before
        return
    base = factory.getbasetemp()
    keep = int(config.getini("tmp_path_retention_count"))
    t = threading.Thread(target=cleanup_numbered_dir, name="df-old-basetemps", daemon=True,
                         args=(base.parent, "pytest-", keep, base.stat().st_mtime - LOCK_TIMEOUT))
    t.start()
    _CLEANERS.append(t)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    for t in _CLEANERS:  # before pytest's own cleanup of the same folders
        t.join()


def pytest_collection_finish(session):
    """Decide whether the tests run in two processes (tests/lane_split.py). What exists now (the
    modules, the collected tests) lives to the end: moved out of the garbage collector's sight,
    so that its full collections during the tests do not walk it again each time (in each
    process: 0.87 -> 0.69 s of collector time for the lane in one process)."""
    import gc

    gc.freeze()
    session.config.stash[_SPLIT] = lane_split.wanted(session)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """The tests in two processes when :func:`pytest_collection_finish` chose so (else pytest's
    own loop)."""
    if session.testsfailed or not session.config.stash.get(_SPLIT, False):
        return None
    lane_split.run_split(session)
    return True


def pytest_terminal_summary(terminalreporter):
    line = terminalreporter.config.stash.get(lane_split.BALANCE, None)
    if line:
        terminalreporter.write_line(line)


_SPLIT = pytest.StashKey[bool]()
_FLAG = pytest.StashKey[Path]()
_SAVED_ENV = pytest.StashKey[dict]()


def bpy_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that imports bpy (only in tests marked ``render``)."""
    require_render("starts a bpy subprocess (bpy_env)")
    env = dict(os.environ)
    env["BLENDER_USER_RESOURCES"] = _USER
    env.update(extra)
    return env


def build_scenes(out_dir: Path, names: list[str] | None = None, python: str | None = None) -> Path:
    """Build test scenes (tests/scenes.py) in a subprocess; returns ``out_dir``."""
    require_render("builds scenes with bpy (build_scenes)")
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


def bpy_pythons() -> list[tuple[str, str]]:
    """``(label, python)`` to run a ground-truth check with: this bpy (``("5.0", "")``) and each
    of :func:`extra_pythons` (labelled by its venv, e.g. ``venv-4.5.15``)."""
    return [("5.0", "")] + [(Path(p).parent.parent.name.lstrip(".") or p, p) for p in extra_pythons()]


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
    require_render("runs a bpy subprocess (run_bpy)")
    src = package_prelude() + code + "\nimport os as _o, sys as _s\n_s.stdout.flush()\n_o._exit(0)\n"
    proc = subprocess.run([python or sys.executable, "-c", src], env=bpy_env(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"bpy subprocess failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc.stdout


def run_forked(code: str, *, limit: int | None = None, umask: int | None = None,
               timeout: float = 60) -> tuple[int, str, str]:
    """Run the Python source ``code`` in a forked child of this process, under a file-size limit
    (``RLIMIT_FSIZE``, bytes) and/or a umask that stay in the child; returns ``(exit status,
    stdout, stderr)``. The child has this process's modules already imported: no interpreter
    start and no imports compiled again (0.15-0.2 s per fresh ``python -c``). An exception in
    ``code`` is exit status 1, its traceback on stderr."""
    import resource
    import selectors
    import signal
    import textwrap
    import time
    import traceback

    pipes = [os.pipe(), os.pipe()]  # stdout, stderr
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            for k, (r, w) in enumerate(pipes):
                os.close(r)
                os.dup2(w, 1 + k)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            if umask is not None:
                os.umask(umask)
            exec(compile(textwrap.dedent(code), "<run_forked>", "exec"), {"__name__": "__main__"})
            status = 0
        except BaseException:  # noqa: BLE001 - the parent reads it from stderr
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)
    for _, w in pipes:
        os.close(w)
    chunks: dict[int, list[bytes]] = {r: [] for r, _ in pipes}
    sel = selectors.DefaultSelector()
    for r, _ in pipes:
        sel.register(r, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"run_forked: the child ran over {timeout} s")
            for key, _ in sel.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
    finally:
        sel.close()
        for r, _ in pipes:
            os.close(r)
        _, st = os.waitpid(pid, 0)
    out, err = (b"".join(chunks[r]).decode("utf-8", "replace") for r, _ in pipes)
    return os.waitstatus_to_exitcode(st), out, err
