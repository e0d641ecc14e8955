# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress events: the JSON lines a worker prints and the runner parses. Pure Python.

A worker writes one event per line on stdout, prefixed with :data:`PREFIX` so that Blender's own
output on the same stream is ignored. Kinds (``event`` key):

* ``worker_started``: ``pid``, ``blender`` (version), ``device`` (sentence)
* ``scene_opened``: ``scene``, ``blend``, ``seconds``
* ``job_started``: ``job`` (sequence id), ``scene``, ``frames`` (total), ``todo``
* ``device``: ``scene``, ``device`` (sentence), ``gpu`` (bool), ``gpu_index``, ``cuda_visible_devices``
* ``frame_done``: ``job``, ``scene``, ``frame``, ``seconds`` (render wall time), ``rss_mib``
* ``frame_skipped``: ``job``, ``scene``, ``frame`` (already complete)
* ``job_done``: ``job``, ``scene``, ``seconds``
* ``error``: ``scene``, ``job`` (or null), ``message`` (names the file and the fix)
* ``worker_done``: ``rc`` of this worker
* ``heartbeat``: the worker is busy (its CPU time grew) though no frame finished lately
* ``recycle``: the frame budget is spent; the runner starts a fresh process for the rest
* ``probe_started`` / ``probe``: discovery (``blend``; ``frame_start``, ``frame_end``, ``fps``,
  ``camera``, ``scene``, ``error``)

The runner passes these on (with the worker's ``slot``; not ``heartbeat``) and adds its own:
``progress`` (``frames_done``, ``frames_skipped``, ``frames_total``, ``fraction``, ``eta`` s,
``fps`` frames/s, ``workers``, ``scenes_total``, ``scenes_finished``, ``elapsed``, ``done``),
``scene_done`` (``status``: done or skipped), ``scene_failed`` (``reasons``), ``retry``
(``attempt``, ``reason``), ``worker_timeout`` (``seconds``) and ``worker_recycled``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import Any

PREFIX = "@dataset_forge "

Emit = Callable[[dict[str, Any]], None]


def encode(event: dict[str, Any]) -> str:
    return PREFIX + json.dumps(event, sort_keys=True)


def decode(line: str) -> dict[str, Any] | None:
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

    def emit(event: dict[str, Any]) -> None:
        out = stream or sys.stdout
        with lock:
            out.write("\n" + encode(event) + "\n")
            out.flush()

    return emit
