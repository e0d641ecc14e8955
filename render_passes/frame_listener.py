# SPDX-License-Identifier: GPL-3.0-or-later
"""A ``frame_change_post`` listener that removes itself (the object tracker and the topology
watch listen to the render's own evaluations)."""

from __future__ import annotations

import bpy


class FrameListener:
    """Calls ``self._on_frame(scene, depsgraph)`` after every frame change (``frame_change_post``,
    also for the render's own evaluations) from :meth:`_listen` until :meth:`close`."""

    def _listen(self) -> None:
        self._handler = self._on_frame
        bpy.app.handlers.frame_change_post.append(self._handler)

    def close(self) -> None:
        hs = bpy.app.handlers.frame_change_post
        while self._handler in hs:
            hs.remove(self._handler)
