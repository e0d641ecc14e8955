# SPDX-License-Identifier: GPL-3.0-or-later
"""The wire between the engine and its workers: the event kinds and typed messages
(``protocol``) and their line encoding on a worker's stdout (``events``). Both processes import
it; it imports nothing of the package but the base floor."""
