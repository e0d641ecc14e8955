# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene discovery, the plan, the runner and its workers' protocol. Pure Python (no ``bpy``)."""
