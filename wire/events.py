# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress events on the wire: the JSON lines a worker prints and the runner parses. Pure Python.

A worker writes one event per line on stdout, prefixed with :data:`PREFIX` so that Blender's own
output on the same stream is ignored. Each event is a JSON object whose ``event`` key is one of
:class:`protocol.Ev`, the one list of kinds and their keys: the worker's (``worker_started``,
``scene_opened``, ``device``, ``job_started``, ``frame_done``, ``frame_skipped``, ``job_done``,
``notice``, ``warning``, ``error``, ``heartbeat``, ``recycle``, ``worker_done``; discovery's ``probe_started``
and ``probe``; a Ray task's ``task_started``) and the runner's. The runner passes worker events on
(with the worker's ``slot``; not ``heartbeat``) and adds its own (``progress``, ``scene_done``,
``scene_failed``, ``retry``, ``worker_timeout``, ``worker_recycled``). New keys may
be added to an event; existing keys keep their meaning, so workers and runners of neighbouring
versions understand each other.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable

from .protocol import Event

PREFIX = "@dataset_forge "

Emit = Callable[[Event], None]


def encode(event: Event) -> str:
    return PREFIX + json.dumps(event, sort_keys=True)


def decode(line: str) -> Event | None:
    """The event on ``line``, or None for ordinary output (and for torn lines)."""
    if not line.startswith(PREFIX):
        return None
    try:
        ev = json.loads(line[len(PREFIX):])
    except ValueError:
        return None
    return ev if isinstance(ev, dict) and "event" in ev else None


def stdout_emitter(stream=None) -> Emit:
    """An emitter that prints events on ``stream`` (stdout) and flushes each one."""

    lock = threading.Lock()  # the worker's heartbeat thread emits too: keep lines whole

    def emit(event: Event) -> None:
        out = stream or sys.stdout
        with lock:
            out.write("\n" + encode(event) + "\n")
            out.flush()

    return emit
