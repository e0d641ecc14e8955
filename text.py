# SPDX-License-Identifier: GPL-3.0-or-later
"""How durations and progress bars read, written once for every face (CLI, panel, validate,
export). Pure Python."""

from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    """``0:04``, ``1:05``, ``1:02:05`` (M:SS under an hour, else H:MM:SS); ``--:--`` when
    unknown or negative."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def bar(fraction: float, width: int) -> str:
    """``[###-----]``: ``fraction`` (clamped to 0..1) of ``width`` cells filled."""
    fill = int(round(min(max(fraction, 0.0), 1.0) * width))
    return f"[{'#' * fill}{'-' * (width - fill)}]"


def eta(elapsed: float, done: int, total: int) -> float | None:
    """Seconds left at the rate so far; None before the first item is done."""
    return elapsed / done * (total - done) if done else None
