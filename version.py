# SPDX-License-Identifier: GPL-3.0-or-later
"""The package version, written once (``blender_manifest.toml`` must agree; a test checks it)."""

__version__ = "0.1.0"
