# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera model, ``transforms.json``, loader, validation and previews. Pure Python (no ``bpy``)."""
