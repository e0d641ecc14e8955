# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything that runs inside Blender to render: Cycles and device set-up, view-layer passes, the
compositor graph that writes ground truth, and the worker. Modules here import ``bpy``; nothing
outside this package (and the thin UI faces) does.
"""
