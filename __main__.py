# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m dataset_forge ...``: the same commands as ``blender --command dataset ...``."""

from __future__ import annotations

import os
import sys

from .cli import main

if __name__ == "__main__":
    rc = main(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):  # None when closed at start (``2>&-``)
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    if "bpy" in sys.modules:
        # A bpy module with a handler or timer left registered hangs (4.5) or crashes (4.2) at
        # exit (docs/blender_notes.md).
        os._exit(rc)
    sys.exit(rc)
