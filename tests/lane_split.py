# SPDX-License-Identifier: GPL-3.0-or-later
"""The bpy-free lane on two cores: after collection the test process forks once, and both
processes take whole test modules from one shared queue (the heavy ones first) until it is empty.
A module may ask to be taken in parts (``lane_group``, see :func:`_groups`).
The second process runs each test as pytest would (fixtures, capture, the render guard of
conftest.py) and sends its reports, serialized by pytest's own hooks, back through a pipe; this
process logs them as they arrive, so the terminal, ``-ra``, ``--durations`` and the exit status
cover every test. A test whose process ended before it reported is logged as failed, naming the
exit status: nothing is lost silently.

Used only when every selected test is bpy-free (no ``render`` marker: those use every core
already), with two or more cores, ``fork``, and neither ``-x``/``--maxfail``, ``--pdb`` nor
``DF_TEST_JOBS=1`` (which runs the lane in one process, as before)."""

from __future__ import annotations

import builtins
import multiprocessing
import os
import pickle
import queue
import resource
import struct
import sys
import threading
import time
import traceback
import warnings

import pytest
from _pytest.config import create_terminal_writer

# Modules that take seconds (measured with --durations): started first, so that the two
# processes end together. Only the order depends on this list.
HEAVY = ("test_validate_faults.py", "test_objects_scale.py", "test_dataset_tools.py",
         "test_controller.py", "test_objects_format.py")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def wanted(session: pytest.Session) -> bool:
    """Whether this session's tests run in two processes (see the module docstring)."""
    opt = session.config.option
    if os.environ.get("DF_TEST_JOBS", "") == "1" or cores() < 2:
        return False
    if opt.collectonly or opt.maxfail or getattr(opt, "usepdb", False):
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    if any(item.get_closest_marker("render") is not None for item in session.items):
        return False
    return len(_groups(session.items)) >= 2


def _groups(items: list[pytest.Item]) -> list[list[int]]:
    """Indices of ``items`` by test module (collection order inside each), heavy modules first.
    A module may define ``lane_group(item) -> str`` to be taken in several groups (one per
    label, in the module's place), and ``LANE_LAST``: the labels taken after every module."""
    by: dict[tuple[str, str], list[int]] = {}
    last: set[tuple[str, str]] = set()
    for k, item in enumerate(items):
        module = getattr(item, "module", None)
        split = getattr(module, "lane_group", None)
        key = (item.nodeid.split("::")[0], split(item) if callable(split) else "")
        if key[1] in getattr(module, "LANE_LAST", ()):
            last.add(key)
        by.setdefault(key, []).append(k)

    def rank(key: tuple[str, str]) -> tuple[bool, int]:
        name = key[0].rsplit("/", 1)[-1]
        return key in last, HEAVY.index(name) if name in HEAVY else len(HEAVY)
    return [by[key] for key in sorted(by, key=rank)]


class _Queue:
    """The modules not yet taken, shared by both processes (a counter in shared memory)."""

    def __init__(self, groups: list[list[int]]):
        self.groups = groups
        self.next = multiprocessing.get_context("fork").Value("i", 0)

    def take(self) -> int | None:
        with self.next.get_lock():
            g = self.next.value
            if g >= len(self.groups):
                return None
            self.next.value = g + 1
        return g


def _run(session: pytest.Session, work: _Queue, on_take, after_item) -> None:
    """Run the modules this process takes, each test with the next one it will run as
    ``nextitem`` (so that module and session fixtures are torn down at the right time)."""
    items = session.items

    def order():
        while (g := work.take()) is not None:
            on_take(g)
            yield from work.groups[g]
    it = order()
    cur = next(it, None)
    while cur is not None:
        nxt = next(it, None)
        items[cur].config.hook.pytest_runtest_protocol(item=items[cur],
                                                       nextitem=None if nxt is None else items[nxt])
        after_item()
        cur = nxt


# -- the second process ------------------------------------------------------------------------------
class _Forward:
    """In the second process: collects each test's reports and warnings and sends them when the
    test is finished."""

    def __init__(self, session: pytest.Session, out):
        self.config, self.out = session.config, out
        self.index = {item.nodeid: k for k, item in enumerate(session.items)}
        self.reports: list = []
        self.warnings: list = []

    def send(self, msg) -> None:
        data = pickle.dumps(msg)
        self.out.write(struct.pack("<Q", len(data)) + data)
        self.out.flush()

    def pytest_runtest_logreport(self, report):
        self.reports.append(self.config.hook.pytest_report_to_serializable(config=self.config,
                                                                             report=report))

    def pytest_warning_recorded(self, warning_message, when, nodeid, location):
        w = warning_message
        self.warnings.append((str(w.message), w.category.__name__, w.filename, w.lineno, when, nodeid,
                              location))

    def pytest_runtest_logfinish(self, nodeid, location):
        self.send(("item", self.index[nodeid], self.reports, self.warnings))
        self.reports, self.warnings = [], []


def _child(session: pytest.Session, work: _Queue, fd: int) -> None:
    config = session.config
    out = os.fdopen(fd, "wb")
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None and capman._global_capturing is not None:
        # the capture files are shared with the first process: start new ones (never read theirs)
        capman._global_capturing = None
        capman.start_global_capturing()
        capman.suspend_global_capture()
    tr = config.pluginmanager.getplugin("terminalreporter")
    if tr is not None:  # the first process writes the terminal
        tr._tw = create_terminal_writer(config, open(os.devnull, "w", encoding="utf-8"))
    fwd = _Forward(session, out)
    config.pluginmanager.register(fwd, "df-lane-split-forward")
    _run(session, work, lambda g: fwd.send(("take", g)), lambda: None)
    fwd.send(("end", time.monotonic()))
    out.close()


# -- the first process -------------------------------------------------------------------------------
def _reader(fd: int, q: queue.Queue) -> None:
    with os.fdopen(fd, "rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            (n,) = struct.unpack("<Q", head)
            q.put(pickle.loads(f.read(n)))
    q.put(None)


class _Replay:
    """In the first process: logs the second process's tests as if they had run here."""

    def __init__(self, session: pytest.Session, q: queue.Queue, work: _Queue):
        self.session, self.q, self.work = session, q, work
        self.taken: list[int] = []      # items of the modules the second process took
        self.reported: set[int] = set()
        self.ended = False
        self.other_end: float | None = None  # when the second process ran out of tests (monotonic)

    def drain(self, block: bool = False) -> None:
        while not self.ended:
            try:
                msg = self.q.get(block=block)
            except queue.Empty:
                return
            if msg is None:
                self.ended = True
            elif msg[0] == "take":
                self.taken += self.work.groups[msg[1]]
            elif msg[0] == "end":
                self.other_end = msg[1]
            else:
                self.log(*msg[1:])

    def log(self, k: int, reports: list, warns: list) -> None:
        config = self.session.config
        item = self.session.items[k]
        self.reported.add(k)
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for message, category, filename, lineno, when, nodeid, location in warns:
            cat = _category(category)
            w = warnings.WarningMessage(cat(message), cat, filename, lineno)
            item.ihook.pytest_warning_recorded.call_historic(
                kwargs={"warning_message": w, "when": when, "nodeid": nodeid, "location": location})
        for data in reports:
            rep = config.hook.pytest_report_from_serializable(config=config, data=data)
            item.ihook.pytest_runtest_logreport(report=rep)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)

    def lost(self, status: int) -> None:
        """Log every test the second process took but never reported as failed."""
        for k in self.taken:
            if k in self.reported:
                continue
            item = self.session.items[k]
            rep = pytest.TestReport(item.nodeid, item.location, {}, "failed",
                             f"the second test process (lane_split.py) ended with status {status} "
                             "before this test reported", "call", [], 0.0)
            self.reported.add(k)
            item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            item.ihook.pytest_runtest_logreport(report=rep)
            item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _category(name: str) -> type[Warning]:
    cat = getattr(builtins, name, None)
    return cat if isinstance(cat, type) and issubclass(cat, Warning) else UserWarning


BALANCE = pytest.StashKey[str]()


def _say_balance(session: pytest.Session, replay: _Replay, usage, own_end: float) -> None:
    """The line the terminal summary prints (conftest.py): each process's tests and CPU time
    (user + sys; this one's includes the collection before the fork, neither counts the
    subprocesses its tests started), and how far apart they ran out of tests (wall)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    apart = "" if replay.other_end is None else \
        f"; they ran out of tests {abs(replay.other_end - own_end):.1f} s apart"
    session.config.stash[BALANCE] = (
        f"two processes (tests/lane_split.py): this one {len(session.items) - len(replay.taken)} tests, "
        f"{own.ru_utime + own.ru_stime:.1f} s CPU; the other {len(replay.taken)} tests, "
        f"{usage.ru_utime + usage.ru_stime:.1f} s CPU{apart}")


def run_split(session: pytest.Session) -> None:
    """Run ``session.items`` in this process and a forked one (see the module docstring)."""
    work = _Queue(_groups(session.items))
    session.config._tmp_path_factory.getbasetemp()  # one base folder for both processes
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        status = 0
        try:
            _child(session, work, w)
        except BaseException:  # noqa: BLE001 - reported by the first process as lost tests
            traceback.print_exc()
            status = 1
        finally:
            os._exit(status)
    os.close(w)
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(r, q), daemon=True).start()
    replay = _Replay(session, q, work)
    try:
        _run(session, work, lambda g: None, replay.drain)
        own_end = time.monotonic()
        replay.drain(block=True)
        _, status, usage = os.wait4(pid, 0)
        pid = 0
        replay.lost(os.waitstatus_to_exitcode(status))
        _say_balance(session, replay, usage, own_end)
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
