# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress events: the JSON lines a worker prints and the runner parses. Pure Python.

A worker writes one event per line on stdout, prefixed with :data:`PREFIX` so that Blender's own
output on the same stream is ignored. Kinds (``event`` key):

* ``worker_started``: ``pid``, ``blender`` (version), ``device`` (sentence)
* ``scene_opened``: ``scene``, ``blend``, ``seconds``
* ``job_started``: ``job`` (sequence id), ``scene``, ``frames`` (total), ``todo``
* ``frame_done``: ``job``, ``scene``, ``frame``, ``seconds`` (render wall time)
* ``frame_skipped``: ``job``, ``scene``, ``frame`` (already complete)
* ``job_done``: ``job``, ``scene``, ``seconds``
* ``error``: ``scene``, ``job`` (or null), ``message`` (names the file and the fix)
* ``worker_done``: ``frames`` rendered by this worker
"""

from __future__ import annotations

import json
import sys
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

    def emit(event: dict[str, Any]) -> None:
        out = stream or sys.stdout
        out.write("\n" + encode(event) + "\n")
        out.flush()

    return emit
